"""Speaker adaptation (``--adapt``) and calibration, measured on leave-one-corpus-out folds.

For each seed and held-out corpus a ``yamnet-layers`` head is trained exactly as the
shipped model (cached frozen features, speech-gated voting at test), then every
adaptation variant is applied to the held-out speakers with their *own unlabelled*
statistics:

* **balanced** folds: each test speaker with all of their clips;
* **one-emotion** folds: each test speaker keeps only the clips of one emotion (drawn
  per speaker, ``--draws`` draws), the case where speaker z-scoring erases the emotion.

Variants: ``none`` (single clip), ``zscore`` (the existing ``--normalize speaker``: head
trained and tested on speaker-z-scored features), ``mean`` / ``protect`` / ``napK``
(``emolens.adaptation``; suffix ``-d``: head trained on adapted + unadapted copies of the
training speakers, else the single-clip head is reused, i.e. test-time only). The
calibration section fits the temperature on the single-clip out-of-fold probabilities:
ECE before/after with the temperature cross-fitted (fitted on the other folds), and the
coverage/accuracy table of the "uncertain" threshold.

    python benchmarks/adaptation.py --work /work/cache/adapt/w3 --out runs/adaptation --seeds 0,1,2

Resumable: features and speech decisions are cached in the work dir / ``--out``, each
(seed, fold, trained head) is saved under ``--out`` and skipped on a re-run.
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from emolens.adaptation.transform import AdaptConfig, SpeakerAdapter, group_means
from emolens.corpora.multi import corpus_array
from emolens.corpora.splits import make_folds
from emolens.evaluation.calibration import (calibrate_oof, coverage_table, crossfit_calibration,
                                            expected_calibration_error)
from emolens.features.normalize import standardize_groups
from emolens.models import build_model
from emolens.selection.speech import SpeechGateConfig, speech_probability, voting_masks
from emolens.training.data import backbone_features
from emolens.training.trainer import TrainConfig, fit, predict_proba
from emolens.workdir import WorkDir

log = logging.getLogger("emolens")


def parse_variant(name: str) -> dict:
    """``none`` | ``zscore`` | ``mean`` | ``protect`` | ``nap<K>`` [``q<Q>``] [``s<S0>``] [``-d``]."""
    dual = name.endswith("-d")
    base = name[:-2] if dual else name
    v = {"name": name, "dual": dual, "kind": base, "k": 16, "q": 3, "s0": 10.0}
    if base in ("none", "zscore"):
        return v
    import re

    m = re.fullmatch(r"(nap|protect|mean)(\d+)?(?:q(\d+))?(?:s(\d+))?", base)
    if not m:
        raise SystemExit(f"unknown variant {name!r}")
    v["kind"] = m.group(1)
    if m.group(2):
        v["k"] = int(m.group(2))
    if m.group(3):
        v["q"] = int(m.group(3))
    if m.group(4):
        v["s0"] = float(m.group(4))
    return v


def uar(y: np.ndarray, pred: np.ndarray) -> float:
    cl = np.unique(y)
    return float(np.mean([np.mean(pred[y == c] == c) for c in cl]))


@dataclass
class Fold:
    name: str
    corpus: str
    train: np.ndarray  # utterance ids
    val: np.ndarray | None
    test: np.ndarray
    dev: bool = True  # False: an evaluate-only corpus (never trained on)


class Bench:
    """Patch features of every utterance with speaker/corpus/label, the folds, and the
    head trainer (``fit``: the shipped recipe with early stopping on validation
    speakers; ``fast``: the generalisation benchmark's recipe, 12 epochs, no validation)."""

    def __init__(self, feats, utt, voting, y_utt, spk_utt, corpus_utt, hop_s, classes, folds, trainer, out):
        self.feats, self.utt, self.voting = feats, utt, voting
        self.y_utt, self.spk_utt, self.corpus_utt = y_utt, spk_utt, corpus_utt
        self.hop_s, self.classes, self.folds, self.trainer, self.out = hop_s, classes, folds, trainer, out
        _, self.spk_id = np.unique(self.spk_utt, return_inverse=True)
        self.y = self.y_utt[self.utt]
        order = np.argsort(self.utt, kind="stable")
        self._order = order
        self._starts = np.searchsorted(self.utt[order], np.arange(len(self.y_utt) + 1))
        self.model, _ = build_model("yamnet-layers", len(classes), seed=0)

    def patch_indices(self, utts: np.ndarray) -> np.ndarray:
        utts = np.sort(np.asarray(utts))
        return np.sort(np.concatenate([self._order[self._starts[u]:self._starts[u + 1]] for u in utts])) if len(utts) else np.zeros(0, int)

    @classmethod
    def from_workdir(cls, work: WorkDir, out: Path, emb_dir: Path | None, seed_folds: int = 0) -> "Bench":
        ps = work.patchset(progress=False)
        classes = work.classes
        model, _ = build_model("yamnet-layers", len(classes), seed=0)
        emb_dir = emb_dir or work.root / "embeddings"
        feats = backbone_features(model, ps.patches, emb_dir, progress=True)
        sp = out / "speech.npy"
        if sp.exists():
            is_speech = np.load(sp)
        else:
            gate = SpeechGateConfig()
            # the YAMNet embedding is cached beside yamnet_mid by the same backbone pass: reuse it
            yam, _ = build_model("yamnet", len(classes), seed=0)
            emb = backbone_features(yam, ps.patches, emb_dir, progress=True)["yamnet"]
            with torch.no_grad():
                a = torch.sigmoid(model.yamnet.classifier(torch.from_numpy(emb))).numpy()
            is_speech = speech_probability(a, gate) >= gate.threshold
            np.save(sp, is_speech)
        voting = voting_masks(is_speech, np.ones(len(ps.utt), bool), ps.utt)
        corpus_utt = corpus_array(work.manifest)
        folds = [Fold(f.name, str(corpus_utt[f.test[0]]), f.train, f.val, f.test)
                 for f in make_folds(work.manifest, "locorpus", seed=seed_folds)]
        hop_s = work.patch_config.hop_frames * work.frontend.frame_seconds
        return cls(feats, ps.utt, voting, ps.y_utt, work.manifest.speaker_array().astype(str), corpus_utt, hop_s,
                   classes, folds, "fit", out)

    @classmethod
    def from_gen(cls, dirs: list[Path], out: Path, evaluate_only=("casia",)) -> "Bench":
        """Per-corpus work dirs whose ``generalisation/yamnet-*.npz`` holds the cached streams
        and speech decisions (written by the generalisation benchmark)."""
        parts = []
        for d in dirs:
            work = WorkDir.open(d)
            npz = sorted((Path(d) / "generalisation").glob("yamnet-*.npz"))
            if not npz:
                raise SystemExit(f"{d}: no cached generalisation features (run benchmarks/generalisation.py first)")
            with np.load(npz[-1], allow_pickle=False) as z:
                feats = {s: z[s] for s in ("yamnet_l5", "yamnet_mid", "yamnet_l9")}
                speech = z["speech"].astype(bool)
            ps = work.patchset(progress=False)
            assert len(ps.utt) == len(speech), (d, len(ps.utt), len(speech))
            name = str(corpus_array(work.manifest)[0])
            parts.append((name, work, feats, ps.utt, speech))
            log.info("%s: %d utterances, %d patches", name, len(work.manifest), len(ps.utt))
        classes = parts[0][1].classes
        feats = {k: np.concatenate([p[2][k] for p in parts]) for k in parts[0][2]}
        offs = np.cumsum([0] + [len(p[1].manifest) for p in parts])
        utt = np.concatenate([p[3] + o for p, o in zip(parts, offs)])
        speech = np.concatenate([p[4] for p in parts])
        voting = voting_masks(speech, np.ones(len(utt), bool), utt)
        y_utt = np.concatenate([p[1].labels() for p in parts])
        spk = np.concatenate([np.char.add(p[0] + "/", p[1].manifest.speaker_array().astype(str)) for p in parts])
        corp = np.concatenate([np.full(len(p[1].manifest), p[0]) for p in parts])
        names = [p[0] for p in parts]
        dev = [c for c in names if c not in evaluate_only]
        folds = []
        for c in names:
            test = np.flatnonzero(corp == c)
            train = np.flatnonzero(np.isin(corp, [d for d in dev if d != c]))
            folds.append(Fold(f"locorpus-{c}", c, train, None, test, dev=c in dev))
        w0 = parts[0][1]
        hop_s = w0.patch_config.hop_frames * w0.frontend.frame_seconds
        return cls(feats, utt, voting, y_utt, spk, corp, hop_s, classes, folds, "fast", out)

    # -- transforms ----------------------------------------------------------------
    def adapted(self, adapter: SpeakerAdapter, method: str, utts: np.ndarray, feats=None) -> tuple[np.ndarray, dict]:
        """Features of all patches of ``utts`` adapted with each speaker's statistics over ``utts``."""
        feats = self.feats if feats is None else feats
        p = self.patch_indices(utts)
        _, g = np.unique(self.spk_id[self.utt[p]], return_inverse=True)
        vote = self.voting[p]
        seconds = np.bincount(g, weights=vote.astype(float)) * self.hop_s
        n_clips = np.array([len(np.unique(self.utt[p][g == i])) for i in range(g.max() + 1)])
        cfg = adapter.config
        ok = (n_clips >= cfg.min_clips) & (seconds >= cfg.min_speech_seconds)
        sub = {k: v[p] for k, v in feats.items()}
        return p, adapter.apply(sub, g, vote, seconds, ok, method)

    def zscored(self, utts: np.ndarray) -> tuple[np.ndarray, dict]:
        p = self.patch_indices(utts)
        g = self.spk_id[self.utt[p]]
        return p, {k: standardize_groups(v[p], g) for k, v in self.feats.items()}

    # -- heads ---------------------------------------------------------------------
    def train_head(self, seed: int, feats_train: dict, y: np.ndarray, utt: np.ndarray,
                   train_idx: np.ndarray, val_idx: np.ndarray | None, path: Path):
        if self.trainer == "linear-utt":
            import pickle

            pk = path.with_suffix(".pkl")
            if pk.exists():
                return pickle.loads(pk.read_bytes())
            n_u = len(self.y_utt)
            if len(utt) != len(self.utt):  # doubled copies (dual training)
                raise SystemExit("dual variants are not supported with --trainer linear-utt")
            train_u = np.unique(utt[train_idx])
            h = LinearUttHead(("yamnet_l5", "yamnet_mid", "yamnet_l9")).fit(feats_train, utt, self.voting, self.y_utt, train_u, seed)
            path.parent.mkdir(parents=True, exist_ok=True)
            pk.write_bytes(pickle.dumps(h))
            return h
        head = copy.deepcopy(self.model.head)
        if path.exists():
            head.load_state_dict(torch.load(path, weights_only=True))
            return head.eval()
        torch.manual_seed(seed)
        for m in head.modules():
            if hasattr(m, "reset_parameters"):
                m.reset_parameters()

        def inputs(idx, train=False):
            return {k: torch.from_numpy(v[idx]) for k, v in feats_train.items()}

        path.parent.mkdir(parents=True, exist_ok=True)
        if self.trainer == "fit":
            fit(head, inputs, y, train_idx, val_idx, utt, len(self.classes), TrainConfig(seed=seed), progress=False)
        else:
            fast_fit(head, inputs, y, train_idx, len(self.classes), seed)
        torch.save(head.state_dict(), path)
        return head.eval()

    def utt_probs(self, head, feats: dict, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(utterance ids, (U, C) mean softmax over voting patches) for patch rows ``p`` of ``feats``."""
        # ``feats`` holds either exactly the rows ``p`` (adapted copies) or every patch
        sub = {k: v if len(v) == len(p) else v[p] for k, v in feats.items()}
        if isinstance(head, LinearUttHead):
            pr = head.patch_proba(sub)
        else:
            pr = predict_proba(head, lambda i: {k: torch.from_numpy(v[i]) for k, v in sub.items()}, len(p), batch_size=4096)
        vote = self.voting[p]
        ids, inv = np.unique(self.utt[p], return_inverse=True)
        m, _ = group_means(pr, inv, vote)
        return ids, m

    def one_emotion_draw(self, test_u: np.ndarray, draw: int) -> np.ndarray:
        rng = np.random.default_rng([1234, draw])
        keep = []
        y = self.y_utt
        for s in np.unique(self.spk_id[test_u]):
            us = test_u[self.spk_id[test_u] == s]
            e = rng.choice(np.unique(y[us]))
            keep.append(us[y[us] == e])
        return np.sort(np.concatenate(keep))


def _ln(x: np.ndarray) -> np.ndarray:
    """Layer norm without affine over the last axis (what the head applies to each stream)."""
    x = np.asarray(x, np.float32)
    return (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + 1e-5)


class LinearUttHead:
    """The generalisation benchmark's shipped recipe: a linear classifier on the
    layer-normalised streams, trained on each utterance's mean over its speech patches
    (multinomial logistic regression, class-balanced); applied per patch and voted."""

    def __init__(self, streams):
        self.streams = tuple(streams)

    def fit(self, feats: dict, utt: np.ndarray, voting: np.ndarray, y_utt: np.ndarray, train_u: np.ndarray, seed: int):
        from sklearn.linear_model import LogisticRegression

        p = np.flatnonzero(np.isin(utt, train_u) & voting)
        ids, inv = np.unique(utt[p], return_inverse=True)
        X = np.concatenate([group_means(_ln(feats[s][p]), inv)[0] for s in self.streams], 1)
        self.clf = LogisticRegression(C=1.0, max_iter=300, class_weight="balanced", random_state=seed).fit(X, y_utt[ids])
        return self

    def patch_proba(self, feats: dict) -> np.ndarray:
        X = np.concatenate([_ln(feats[s]) for s in self.streams], 1)
        return self.clf.predict_proba(X)


#: overrides of the fast recipe (set from the command line)
FAST: dict = {}


def fast_fit(head, inputs, y: np.ndarray, train_idx: np.ndarray, n_classes: int, seed: int,
             epochs: int = 12, batch: int = 256, lr: float = 1e-3, weight_decay: float = 1e-4) -> None:
    """The generalisation benchmark's head recipe (class-balanced loss, Adam, no early stopping);
    ``FAST`` may thin the training patches and enlarge the batch (``--train-stride``, ``--batch``)."""
    stride, batch, lr = FAST.get("stride", 1), FAST.get("batch", batch), FAST.get("lr", lr)
    train_idx = np.asarray(train_idx)[::stride]
    from emolens.training.trainer import class_weights

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    opt = torch.optim.Adam(head.parameters(), lr=lr, weight_decay=weight_decay)
    loss_fn = torch.nn.CrossEntropyLoss(weight=class_weights(y[train_idx], n_classes))
    for _ in range(epochs):
        head.train()
        order = rng.permutation(train_idx)
        for s in range(0, len(order), batch):
            idx = order[s:s + batch]
            loss = loss_fn(head(inputs(idx, True)), torch.from_numpy(y[idx].astype(np.int64)))
            opt.zero_grad()
            loss.backward()
            opt.step()
    head.eval()


def run(args) -> dict:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.gen_dirs:
        b = Bench.from_gen([Path(d) for d in args.gen_dirs.split(",")], out)
    else:
        b = Bench.from_workdir(WorkDir.open(args.work), out, Path(args.emb_cache) if args.emb_cache else None)
    if args.trainer:
        b.trainer = args.trainer
    variants = [parse_variant(v) for v in args.variants.split(",")]
    seeds = [int(s) for s in args.seeds.split(",")]
    y = b.y_utt
    results = {}  # (seed, corpus, variant) -> {"balanced": uar, "one": [uar per draw], "single": uar}
    oof = {s: {"probs": [], "y": [], "fold": [], "probs_adapt": []} for s in seeds}
    for seed in seeds:
        for fold in b.folds:
            corpus = fold.corpus
            tr_p = b.patch_indices(fold.train)
            va_p = b.patch_indices(fold.val) if fold.val is not None else None
            fdir = out / f"seed{seed}" / fold.name
            heads = {}
            base = b.train_head(seed, b.feats, b.y, b.utt, tr_p, va_p, fdir / "none.pt")
            heads["none"] = base
            test_u = fold.test
            draws = [b.one_emotion_draw(test_u, d) for d in range(args.draws)]
            # single clip
            ids, pr = b.utt_probs(base, b.feats, b.patch_indices(test_u))
            single_bal = uar(y[ids], pr.argmax(1))
            if fold.dev:
                oof[seed]["probs"].append(pr); oof[seed]["y"].append(y[ids]); oof[seed]["fold"] += [fold.name] * len(ids)
            pos = {int(u): i for i, u in enumerate(ids)}
            single_one = [uar(y[d], pr[[pos[int(u)] for u in d]].argmax(1)) for d in draws]
            results[(seed, corpus, "none")] = {"balanced": single_bal, "one": single_one}
            adapters = {}
            for v in variants:
                key = (seed, corpus, v["name"])
                if v["name"] == "none":
                    continue
                if v["kind"] == "zscore":
                    tp, zf = b.zscored(fold.train)
                    full = {k: np.zeros_like(a) for k, a in b.feats.items()}
                    for k in full:
                        full[k][tp] = zf[k]
                    if fold.val is not None:
                        vp, vf = b.zscored(fold.val)
                        for k in full:
                            full[k][vp] = vf[k]
                    head = b.train_head(seed, full, b.y, b.utt, tr_p, va_p, fdir / "zscore.pt")
                    def ev(us):
                        p, f = b.zscored(us)
                        return b.utt_probs(head, f, p)
                else:
                    acfg = AdaptConfig(method=v["kind"], k=v["k"], q=v["q"], shrink_seconds=v["s0"])
                    akey = (v["k"], v["q"], v["s0"])
                    if akey not in adapters:
                        adapters[akey] = SpeakerAdapter.fit(b.feats, b.utt, b.voting, b.spk_utt, y, fold.train, acfg)
                    adapter = copy.copy(adapters[akey]); adapter.config = acfg
                    head = base
                    if v["dual"]:
                        tr_u = np.concatenate([fold.train, fold.val]) if fold.val is not None else fold.train
                        pa, fa = b.adapted(adapter, v["kind"], tr_u)
                        P = len(b.utt)
                        feats2 = {k: np.concatenate([b.feats[k], b.feats[k]]) for k in b.feats}
                        for k in feats2:
                            feats2[k][P + pa] = fa[k]
                        y2 = np.concatenate([b.y, b.y])
                        utt2 = np.concatenate([b.utt, b.utt + len(y)])
                        val2 = np.concatenate([va_p, P + va_p]) if va_p is not None else None
                        head = b.train_head(seed, feats2, y2, utt2, np.concatenate([tr_p, P + tr_p]), val2,
                                            fdir / f"{v['name']}.pt")
                    def ev(us, adapter=adapter, head=head, kind=v["kind"]):
                        p, f = b.adapted(adapter, kind, us)
                        return b.utt_probs(head, f, p)
                ids, pr = ev(test_u)
                r = {"balanced": uar(y[ids], pr.argmax(1)), "one": []}
                if v["kind"] != "zscore" and v["dual"]:
                    i2, p2 = b.utt_probs(head, b.feats, b.patch_indices(test_u))
                    r["single_balanced"] = uar(y[i2], p2.argmax(1))
                if fold.dev and v["name"] == args.calibrate_variant:
                    oof[seed]["probs_adapt"].append(pr)
                for d in draws:
                    i3, p3 = ev(d)
                    r["one"].append(uar(y[i3], p3.argmax(1)))
                results[key] = r
            log.info("seed %d %s done", seed, corpus)
    # ---- tables --------------------------------------------------------------------
    corpora = [f.corpus for f in b.folds]
    dev_idx = [i for i, f in enumerate(b.folds) if f.dev]
    names = ["none"] + [v["name"] for v in variants if v["name"] != "none"]
    table = []
    for n in names:
        row = {"variant": n}
        for cond in ("balanced", "one"):
            per_seed = []
            for s in seeds:
                vals = [results[(s, c, n)][cond] for c in corpora]
                vals = [float(np.mean(x)) if isinstance(x, list) else x for x in vals]
                per_seed.append(vals)
            arr = np.array(per_seed)  # (seeds, corpora)
            row[cond] = {c: float(arr[:, i].mean()) for i, c in enumerate(corpora)}
            dev = arr[:, dev_idx]  # means and worst over the development corpora (evaluate-only ones apart)
            row[cond + "_mean"] = float(dev.mean(1).mean())
            row[cond + "_mean_std"] = float(dev.mean(1).std())
            row[cond + "_worst"] = float(dev.mean(0).min())
        sb = [results[(s, corpora[i], n)].get("single_balanced") for s in seeds for i in dev_idx]
        if all(x is not None for x in sb):
            row["single_balanced_mean"] = float(np.mean(sb))
        table.append(row)
    base_one = table[0]["one_mean"]
    for row in table:
        row["one_vs_single_pt"] = 100 * (row["one_mean"] - base_one)
        row["balanced_vs_single_pt"] = 100 * (row["balanced_mean"] - table[0]["balanced_mean"])
    # calibration on the single-clip out-of-fold predictions (seed 0 fits; others reported)
    cal = {}
    for s in seeds:
        P = np.concatenate(oof[s]["probs"]); Y = np.concatenate(oof[s]["y"]); F = np.array(oof[s]["fold"])
        fitted = calibrate_oof(P, Y, b.classes, folds=F)
        cross = crossfit_calibration(P, Y, F)
        entry = {"temperature": fitted["temperature"], "ece_before": fitted["ece_before"],
                 "ece_after_in_sample": fitted["ece_after"], "ece_after_crossfit": cross["ece_after"],
                 "crossfit_temperatures": cross["temperatures"], "uncertain_threshold": fitted["uncertain_threshold"],
                 "coverage_crossfit": coverage_table(cross["probs"], Y), "coverage_raw": coverage_table(P, Y)}
        if oof[s]["probs_adapt"]:
            PA = np.concatenate(oof[s]["probs_adapt"])
            ca = crossfit_calibration(PA, Y, F)
            entry["adapt"] = {"variant": args.calibrate_variant, "ece_before": expected_calibration_error(PA, Y),
                              "ece_after_crossfit": ca["ece_after"], "temperatures": ca["temperatures"]}
        cal[str(s)] = entry
    res = {"work": str(args.work or args.gen_dirs), "trainer": b.trainer, "fast": dict(FAST), "seeds": seeds,
           "dev_corpora": [corpora[i] for i in dev_idx], "draws": args.draws, "corpora": corpora, "table": table,
           "calibration": cal, "raw": {f"{k[0]}|{k[1]}|{k[2]}": v for k, v in results.items()}}
    (out / "adaptation.json").write_text(json.dumps(res, indent=2))
    return res


def print_tables(res: dict) -> None:
    corpora = res["corpora"]
    print(f"\nleave-one-corpus-out UAR, mean of seeds {res['seeds']}; one-emotion: mean of {res['draws']} draws; "
          f"head trainer {res.get('trainer', 'fit')}; mean/worst over {', '.join(res.get('dev_corpora', corpora))}")
    head = "| variant | " + " | ".join(f"balanced {c}" for c in corpora) + " | balanced mean (± seed sd) | worst | " \
        + " | ".join(f"one-emotion {c}" for c in corpora) + " | one-emotion mean | vs single (pt) |"
    print(head)
    print("|" + "---|" * (head.count("|") - 1))
    for r in res["table"]:
        print(f"| {r['variant']} | " + " | ".join(f"{r['balanced'][c]:.3f}" for c in corpora)
              + f" | {r['balanced_mean']:.3f} ± {r['balanced_mean_std']:.3f} | {r['balanced_worst']:.3f} | "
              + " | ".join(f"{r['one'][c]:.3f}" for c in corpora)
              + f" | {r['one_mean']:.3f} ± {r['one_mean_std']:.3f} | {r['one_vs_single_pt']:+.1f} |")
    print("\ncalibration (single clip, out-of-fold; ECE 15 bins; 'crossfit' = T fitted on the other folds)")
    print("| seed | T (all folds) | ECE before | ECE after (crossfit) | ECE after (in-sample) | chosen threshold |")
    print("|---|---|---|---|---|---|")
    for s, c in res["calibration"].items():
        print(f"| {s} | {c['temperature']:.3f} | {c['ece_before']:.3f} | {c['ece_after_crossfit']:.3f} | "
              f"{c['ece_after_in_sample']:.3f} | {c['uncertain_threshold']:.2f} |")
    c0 = res["calibration"][str(res["seeds"][0])]
    print(f"\ncoverage / accuracy (seed {res['seeds'][0]}, calibrated crossfit probabilities)")
    print("| threshold | coverage | accuracy | UAR |")
    print("|---|---|---|---|")
    for r in c0["coverage_crossfit"]:
        print(f"| {r['threshold']:.2f} | {r['coverage']:.3f} | {r['accuracy']:.3f} | {r['uar']:.3f} |")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--work", default=None, help="a prepared multi-corpus work dir (shipped recipe, early stopping)")
    ap.add_argument("--gen-dirs", default=None,
                    help="comma list of per-corpus work dirs with cached generalisation features (gen recipe); casia = evaluate only")
    ap.add_argument("--out", default="runs/adaptation")
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--emb-cache", default=None, help="backbone-feature cache folder (default: WORK/embeddings)")
    ap.add_argument("--draws", type=int, default=5)
    ap.add_argument("--variants", default="zscore,mean,protect,nap8,nap16,nap32,nap64")
    ap.add_argument("--calibrate-variant", default="nap16")
    ap.add_argument("--trainer", default=None, choices=["fit", "fast", "linear-utt"],
                    help="head recipe (default: fit for --work, fast for --gen-dirs)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest on a shared 2-core machine)")
    ap.add_argument("--train-stride", type=int, default=1, help="fast recipe: train on every N-th patch (patches overlap by half)")
    ap.add_argument("--batch", type=int, default=256, help="fast recipe: batch size")
    ap.add_argument("--lr", type=float, default=1e-3, help="fast recipe: learning rate")
    ap.add_argument("--print-only", action="store_true", help="print the tables of an existing --out")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(args.threads)
    FAST.update(stride=args.train_stride, batch=args.batch, lr=args.lr)
    if args.print_only:
        print_tables(json.loads((Path(args.out) / "adaptation.json").read_text()))
        return 0
    print_tables(run(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
