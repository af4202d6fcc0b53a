"""Probe (stop 23): a speaker mean shift that only fires on voices heard in several emotions.

The unlabelled ``--adapt`` has a trap the issue names: shifting a voice's clips by their mean
offset erases a *steady* emotion (one angry caller becomes "average"). The mean shift gains
about 8 pt on speakers heard in every emotion and loses about 28 pt on speakers heard in one.
What tells the two apart without labels is the *spread* of the voice's clips along the
directions where emotions differ: a voice heard in four emotions spreads along them, a voice
heard in one only as much as one emotion's clips vary. This probe gates the shift on that
spread:

The gate is the package's (:class:`emolens.adaptation.transform.SpreadGate`, method ``gated`` of
``--adapt``): an LDA of the training rows with each training voice's mean removed, scaled so one
emotion's clips of one voice spread by 1; the log spread of a voice's clips along it, and that
minus their log spread over every column; a logistic regression fitted on the training corpora
*nested* (each scored by directions learned on the others; voices whole are positives, their
one-emotion draws negatives). Here it is fitted on pooled rows. A test voice with at least
``MIN_CLIPS`` clips becomes ``z - w (mean_voice - m0)`` (``m0``: the training mean balanced over
corpus and class), with ``w`` the gate's probability (``soft``) or ``w = [p > t]`` (``hard@t``;
``hard@fit``: the gate's threshold, chosen on the training corpora so that 2 % of their
one-emotion voices are shifted).

Stop 24 added decision-level variants, all measured and dropped: ``em`` (each voice's class prior
re-estimated by EM from the head's posteriors at :data:`TEMPERATURE`, every voice), ``fit+em``
(the gated shift, then EM), ``fit+sinkhorn`` (a gated voice's clips spread equally over the
classes) and ``z@fit`` (a gated voice standardised: mean and half the log scale towards the
training voices' spread), ``fit2`` (the gated shift with a gate that also learns two-emotion
draws as negatives); and a third test condition, ``two`` (each speaker keeps two emotions).

Everything runs on pooled utterance rows (head_probe's: the mean of the speech patches' YAMNet
streams, the scaled prosody functionals, with ``--head whisper`` the Whisper stream), with the
shipped linear head's training recipe and a pooled decision; the mean shift here moves every
column, the prosody and Whisper ones included. Scored as ``adaptation_loco`` scores
``--adapt``: the balanced test corpora and their one- and two-emotion-per-speaker draws.

    python benchmarks/adaptation_gate.py [--work-root runs/default/work] [--head prosody|whisper] [--seeds 0,1,2]

Needs the work dirs of ``scripts/train_default`` (and for ``--head whisper`` their Whisper
cache). Figures: benchmarks/generalisation.md, "Stop 23" and "Stop 24".
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import head_probe as hp

from emolens.adaptation.transform import SpreadGate
from emolens.adaptation.transform import one_emotion_draw as one_emotion
from emolens.adaptation.transform import two_emotion_draw

#: a voice needs this many clips to be shifted (``--adapt``'s rule)
MIN_CLIPS = 3
#: hard gates: shift a voice only when the gate's probability exceeds these (``hard@fit``: the
#: gate's own threshold, chosen on the training corpora)
THRESHOLDS = (0.5, 0.8)
#: the decision-level variants read the head's posteriors at this temperature (the shipped
#: calibration's order of magnitude: T = 2.18)
TEMPERATURE = 2.0


def shift_groups(Z: np.ndarray, groups: np.ndarray, m0: np.ndarray, weight: np.ndarray,
                 min_clips: int = MIN_CLIPS) -> np.ndarray:
    """``Z (U, D)`` with each group of at least ``min_clips`` rows moved by ``weight[row]`` (one
    value per group) times its mean's offset from ``m0``; smaller groups unchanged."""
    out = Z.copy()
    for g in np.unique(groups):
        i = groups == g
        if i.sum() >= min_clips:
            out[i] -= weight[i][0] * (Z[i].mean(0) - m0)
    return out


def em_prior(P: np.ndarray, iterations: int = 20) -> np.ndarray:
    """Posteriors ``(n, C)`` re-weighted by the group's own class prior, estimated by EM
    (Saerens et al. 2002) from a uniform training prior."""
    pi = np.full(P.shape[1], 1 / P.shape[1])
    Q = P
    for _ in range(iterations):
        Q = P * pi
        Q /= Q.sum(1, keepdims=True)
        pi = Q.mean(0)
    return Q


def sinkhorn(P: np.ndarray, iterations: int = 20) -> np.ndarray:
    """Posteriors ``(n, C)`` rescaled so that the group's classes are used equally (balanced assignment)."""
    Q = P.copy()
    for _ in range(iterations):
        Q /= Q.sum(0, keepdims=True) * P.shape[1] / len(P)
        Q /= Q.sum(1, keepdims=True)
    return Q


def per_group(P: np.ndarray, groups: np.ndarray, fire: np.ndarray, fn, min_clips: int = MIN_CLIPS) -> np.ndarray:
    """``fn`` applied to each group's posteriors where the group has ``min_clips`` rows and ``fire``."""
    out = P.copy()
    for g in np.unique(groups):
        i = groups == g
        if i.sum() >= min_clips and fire[i][0]:
            out[i] = fn(P[i])
    return out


def zscore_groups(Z: np.ndarray, groups: np.ndarray, m0: np.ndarray, s0: np.ndarray, fire: np.ndarray,
                  shrink: float = 0.5, min_clips: int = MIN_CLIPS) -> np.ndarray:
    """Each firing group moved to ``m0`` and its per-column spread scaled towards ``s0`` (the
    training voices' mean within-voice sd), the scale shrunk by ``shrink`` towards 1."""
    out = Z.copy()
    for g in np.unique(groups):
        i = groups == g
        if i.sum() >= min_clips and fire[i][0]:
            scale = (s0 / (Z[i].std(0) + 1e-6)) ** shrink
            out[i] = (Z[i] - Z[i].mean(0)) * scale + m0
    return out


def centre_groups(Z: np.ndarray, groups: np.ndarray, fire: np.ndarray | None = None,
                  min_clips: int = MIN_CLIPS) -> tuple[np.ndarray, np.ndarray]:
    """``(Z with each (firing) group of at least min_clips rows minus its own mean, (U,) bool: the
    rows centred)``: the voice-centred head's input (stop 25's ``vc`` variants)."""
    out, done = Z.copy(), np.zeros(len(Z), bool)
    for g in np.unique(groups):
        i = groups == g
        if i.sum() >= min_clips and (fire is None or fire[i][0]):
            out[i] = Z[i] - Z[i].mean(0)
            done[i] = True
    return out, done


def voice_probabilities(gate, Z: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Per row ``(U,)``: the gate's probability for its group's rows."""
    out = np.zeros(len(Z))
    for g in np.unique(groups):
        i = groups == g
        out[i] = gate.probability(Z[i])
    return out


def _rows(work_root: Path, whisper: bool) -> tuple[dict, list]:
    """Pooled rows of every prepared corpus (with ``spk``, and ``W`` the Whisper stream) and the shipping folds."""
    import torch

    from emolens.evaluation.generalisation import layer_norm, loco_folds
    from emolens.training.default_model import HEADS, load_corpus_features
    from emolens.training.package import NOT_SHIPPABLE

    torch.set_num_threads(1)
    dirs = hp.seeds_and_dirs("0", work_root)[1]
    data = load_corpus_features(list(dirs.values()), HEADS["whisper" if whisper else "prosody"])
    rows = hp.pooled_rows(dirs, data)
    folds = loco_folds(list(rows), evaluate_only=sorted(set(rows) & set(NOT_SHIPPABLE)))
    for c, cf in data.items():
        rows[c]["spk"] = np.char.add(f"{c}/", np.asarray(cf.speakers).astype(str))  # ids may repeat across corpora
        if whisper:
            rows[c]["W"] = layer_norm(cf.whisper.astype(np.float32))
    return rows, folds


def run_fold(rows: dict, train: list[str], test: str, seed: int, draws: int) -> dict[str, float]:
    """UAR on ``test`` single clip, mean shift, soft and hard gates; balanced and one emotion per speaker."""
    import torch
    from sklearn.metrics import balanced_accuracy_score

    from emolens.evaluation.utterance_levers import ProsodyScaler, fit_classifier
    from emolens.training.default_model import DEFAULT_HEAD as H

    def features(corpora: list[str], others: list[str]) -> tuple[np.ndarray, list[np.ndarray]]:
        sc = ProsodyScaler(weight=H.prosody).fit(np.concatenate([rows[c]["P"] for c in corpora]))
        mk = lambda r: np.concatenate([r["X"], sc.transform(r["P"]), *([r["W"]] if "W" in r else [])], 1)  # noqa: E731
        return np.concatenate([mk(rows[c]) for c in corpora]), [mk(rows[c]) for c in others]

    cat = lambda k, cs: np.concatenate([rows[c][k] for c in cs])  # noqa: E731
    X, (Zt,) = features(train, [test])
    y = cat("y", train)
    corpus = np.concatenate([np.full(len(rows[c]["y"]), c) for c in train])
    head = fit_classifier(X.astype(np.float32), y, hp._cell_weights(y, corpus), 4, epochs=H.epochs,
                          batch_size=H.batch_size, lr=H.lr, weight_decay=H.weight_decay, mixup=H.mixup, seed=seed)
    m0 = np.mean([np.mean([X[(corpus == c) & (y == k)].mean(0) for c in train], 0) for k in range(4)], 0)
    _, own = features(train, train)  # every training corpus in the fold's feature space
    gate = SpreadGate.fit([(z, rows[c]["y"], rows[c]["spk"]) for z, c in zip(own, train)])
    gate2 = SpreadGate.fit([(z, rows[c]["y"], rows[c]["spk"]) for z, c in zip(own, train)], negatives=("one", "two"))

    spk_train = np.concatenate([rows[c]["spk"] for c in train])
    s0 = np.mean([X[spk_train == v].std(0) for v in np.unique(spk_train)], 0)
    # stop 25: a second head trained on each training voice's rows minus the voice's mean (what a
    # speaker-normalised head learns: emotion as a contrast within one voice)
    Xc = centre_groups(X, spk_train, min_clips=1)[0]
    head_c = fit_classifier(Xc.astype(np.float32), y, hp._cell_weights(y, corpus), 4, epochs=H.epochs,
                            batch_size=H.batch_size, lr=H.lr, weight_decay=H.weight_decay, mixup=H.mixup, seed=seed)

    def uar_vc(Z: np.ndarray, yy: np.ndarray, g: np.ndarray, fire: np.ndarray | None) -> float:
        C, done = centre_groups(Z, g, fire)
        with torch.no_grad():
            logits = np.where(done[:, None], head_c(torch.from_numpy(C.astype(np.float32))).numpy(),
                              head(torch.from_numpy(Z.astype(np.float32))).numpy())
        return float(balanced_accuracy_score(yy, logits.argmax(1)))

    def post(Z: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return torch.softmax(head(torch.from_numpy(Z.astype(np.float32))) / TEMPERATURE, 1).numpy()

    def uar(Z: np.ndarray, yy: np.ndarray) -> float:
        return float(balanced_accuracy_score(yy, post(Z).argmax(1)))

    def uar_p(P: np.ndarray, yy: np.ndarray) -> float:
        return float(balanced_accuracy_score(yy, P.argmax(1)))

    def scores(Z: np.ndarray, yy: np.ndarray, g: np.ndarray) -> dict[str, float]:
        p = voice_probabilities(gate, Z, g)
        out = {"single": uar(Z, yy), "mean": uar(shift_groups(Z, g, m0, np.ones(len(Z))), yy),
               "soft": uar(shift_groups(Z, g, m0, p), yy), "gate": float(np.mean([p[g == s][0] for s in np.unique(g)]))}
        out.update({f"hard@{t}": uar(shift_groups(Z, g, m0, (p > t).astype(float)), yy) for t in THRESHOLDS})
        fire = p > gate.threshold
        shifted = shift_groups(Z, g, m0, fire.astype(float))
        out["hard@fit"] = uar(shifted, yy)
        everyone = np.ones(len(Z), bool)
        out["em"] = uar_p(per_group(post(Z), g, everyone, em_prior), yy)
        out["fit+em"] = uar_p(per_group(post(shifted), g, everyone, em_prior), yy)
        out["fit+sinkhorn"] = uar_p(per_group(post(shifted), g, fire, sinkhorn), yy)
        out["z@fit"] = uar(zscore_groups(Z, g, m0, s0, fire), yy)
        p2 = voice_probabilities(gate2, Z, g)
        out["fit2"] = uar(shift_groups(Z, g, m0, (p2 > gate2.threshold).astype(float)), yy)
        out["vc-all"] = uar_vc(Z, yy, g, None)
        out["vc@fit"] = uar_vc(Z, yy, g, fire)
        out["threshold"] = gate.threshold
        return out

    yt, st = rows[test]["y"], rows[test]["spk"]
    res = scores(Zt, yt, st)
    rng = np.random.default_rng(seed)
    one = [scores(Zt[k], yt[k], st[k]) for k in (one_emotion(yt, st, rng) for _ in range(draws))]
    res.update({f"one {k}": float(np.mean([o[k] for o in one])) for k in one[0] if k != "threshold"})
    two = [scores(Zt[k], yt[k], st[k]) for k in (two_emotion_draw(yt, st, rng) for _ in range(draws))]
    res.update({f"two {k}": float(np.mean([o[k] for o in two])) for k in two[0] if k != "threshold"})
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work-root", type=Path, default=Path("runs/default/work"))
    ap.add_argument("--head", choices=("prosody", "whisper"), default="prosody")
    ap.add_argument("--seeds", default="0", help="comma-separated; the table gives the mean over seeds")
    ap.add_argument("--draws", type=int, default=3, help="one-emotion draws per test corpus")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    try:
        rows, folds = _rows(args.work_root, args.head == "whisper")
    except (ValueError, FileNotFoundError) as e:
        print(f"emolens: error: {e}", file=sys.stderr)
        return 2
    seeds = [int(s) for s in args.seeds.split(",")]
    runs = {}
    for seed in seeds:
        for f in folds:
            runs[seed, f.test] = r = run_fold(rows, list(f.train), f.test, seed, args.draws)
            print(f"seed {seed} {f.test}: " + " ".join(f"{k}={v:.3f}" for k, v in r.items()), file=sys.stderr, flush=True)
    keys = list(next(iter(runs.values())))
    per = {f.test: {k: float(np.mean([runs[s, f.test][k] for s in seeds])) for k in keys} for f in folds}
    if len(seeds) > 1:
        means = np.array([[np.mean([runs[s, f.test][k] for f in folds]) for k in keys] for s in seeds])
        print("\nmean over the folds, sd over seeds: " + ", ".join(f"{k} {m:.3f} ± {d:.3f}" for k, m, d in
                                                                 zip(keys, means.mean(0), means.std(0))))
    print("\n| test corpus | " + " | ".join(keys) + " |\n|" + "---|" * (len(keys) + 1))
    for c, r in [*per.items(), ("**mean**", {k: float(np.mean([r[k] for r in per.values()])) for k in keys})]:
        print(f"| {c} | " + " | ".join(f"{r[k]:.3f}" for k in keys) + " |")
    print(f"\n{time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
