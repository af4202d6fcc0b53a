"""Quick probes of head-level variants of the shipped row (``utt-mixup-prosody``) on the
shipping folds, with the 3-seed mean and worst single-clip LOCO UAR of each.

    python benchmarks/head_probe.py --work-root runs/default/work [--variants ship,dro,...] [--seeds 0,1,2]
    python benchmarks/head_probe.py --list

A probe is not a row of ``benchmarks/generalisation.py``: it trains the shipped row's linear
head (``DEFAULT_HEAD``'s streams, balance, mixup, epochs, prosody weight) on one pooled row per
utterance, built here from the cached YAMNet streams and prosody functionals, and reports
UAR only (no F1, ECE, eGeMAPS or fold cache). ``ship`` reproduces the benchmark's
``utt-mixup-prosody --folds ship`` 3-seed figures (0.490 / 0.429 at stop 15). A variant that
pays here becomes a benchmark row before it ships; those that did not are kept here, with
their figures in ``benchmarks/generalisation.md``, so the figures can be rerun. About
40-150 s per variant (3 seeds, one thread) after a 30-60 s load.

Work dirs: as ``benchmarks/generalisation.py`` or ``scripts/train_default`` prepare them
(checked: the shipped label maps).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

#: name -> (options, what it tests). Options: epochs, wd (weight decay), pw (prosody weight),
#: wpow (cell weights ``n_cell ** -wpow``; 1 = the shipped balance), cnap (corpus directions
#: projected out), gender (Hz: soft register from the median pitch, interaction features),
#: dro (group-DRO step size over training corpora), audioset (append the mean logits of the
#: speech gate's human-voice AudioSet classes, weight 1), ensemble (epoch counts of heads
#: whose log probabilities are averaged), parts ((hidden, first column[, stop column[, seed offset[,
#: weight]]]) heads, each on its columns, log probabilities summed with the weights (default 1):
#: with a linear head on every column and an MLP on the last ones, the per-clip streams, the
#: utterance logits stay the patches' linear shares plus one per-clip term; K MLPs of weight 1/K
#: average to one MLP with K times the hidden units). Unset options are ``DEFAULT_HEAD``'s.
VARIANTS: dict[str, tuple[dict, str]] = {
    "ship": ({}, "the shipped row (utt-mixup-prosody)"),
    "ep10": ({"epochs": 10}, "10 epochs instead of 40"),
    "ep20": ({"epochs": 20}, "20 epochs"),
    "ep80": ({"epochs": 80}, "80 epochs"),
    "wd1e-3": ({"wd": 1e-3}, "weight decay 1e-3 instead of 1e-4"),
    "pw1": ({"pw": 1.0}, "prosody weight 1 instead of 2"),
    "pw1.5": ({"pw": 1.5}, "prosody weight 1.5"),
    "pw3": ({"pw": 3.0}, "prosody weight 3"),
    "wpow0.5": ({"wpow": 0.5}, "cell weights n^-0.5: corpora and classes only half balanced"),
    "cnap1": ({"cnap": 1}, "the first direction of the training corpora's class-balanced means projected out"),
    "cnap3": ({"cnap": 3}, "every direction between the training corpora's means projected out"),
    "gender": ({"gender": 165.0}, "[prosody, (g - 1/2) prosody]: g a soft voice register from the median pitch (165 Hz)"),
    "dro": ({"dro": 0.05}, "group DRO over the training corpora (step 0.05): the worst corpus's loss weighs more"),
    "ep10+40": ({"ensemble": (10, 40)}, "the mean log probability of a 10-epoch and a 40-epoch head"),
    "mlp-prosody": ({"parts": ((0, 0), (256, -82))}, "the linear head plus an MLP 256 head on the 82 prosody functionals alone (log probabilities summed)"),
    "mlp-all": ({"parts": ((0, 0), (256, 0))}, "the linear head plus an MLP 256 head on every column (log probabilities summed)"),
    "mlp-yamnet": ({"parts": ((0, 0), (256, 0, -82))}, "the linear head plus an MLP 256 head on the YAMNet streams alone (log probabilities summed)"),
    "svm-prosody": ({"svm": (1.0, -82)}, "the linear head plus an RBF SVM on the 82 scaled prosody functionals (log probabilities summed)"),
    "audioset": ({"audioset": True}, "mean logits of the speech gate's 29 human-voice AudioSet classes (shout, laughter, crying, sigh...)"),
    "stable0.5": ({"stable": 0.5}, "only the half of the YAMNet columns whose emotion effect agrees most across the training corpora"),
    "stable0.25": ({"stable": 0.25}, "only the most consistent quarter of the YAMNet columns"),
    "stable-soft": ({"stable": "soft"}, "every YAMNet column scaled by its consistency r / (1 + r)"),
}


def pooled_rows(dirs: dict[str, Path], data: dict | None = None) -> dict[str, dict[str, np.ndarray]]:
    """Per corpus: ``X`` (U, 2560) pooled streams, ``P`` (U, 82) prosody functionals,
    ``L`` (U, 521) mean AudioSet logits of the speech patches, ``y``. ``data``: the dirs'
    ``load_corpus_features`` when the caller has them already (loaded here otherwise)."""
    from emolens.evaluation.utterance_levers import decision_patches, pool_streams
    from emolens.models import load_yamnet_file, resolve_weights
    from emolens.training.default_model import DEFAULT_HEAD, load_corpus_features

    yam = load_yamnet_file(resolve_weights("yamnet", None)).eval()
    W, b = yam.classifier.weight.detach().numpy(), yam.classifier.bias.detach().numpy()
    out = {}
    for name, cf in (data or load_corpus_features(list(dirs.values()), DEFAULT_HEAD)).items():
        use = decision_patches(cf.utt, cf.speech, cf.n_utt)
        u = cf.utt[use]
        L = np.zeros((cf.n_utt, W.shape[0]), np.float32)
        np.add.at(L, u, cf.feats["yamnet"][use].astype(np.float32) @ W.T + b)
        L /= np.bincount(u, minlength=cf.n_utt).clip(1)[:, None]
        out[name] = {"X": pool_streams(cf.feats, cf.utt, cf.speech, cf.n_utt, DEFAULT_HEAD.streams), "P": cf.prosody,
                     "L": L, "y": cf.y}
    return out


def _cell_weights(y: np.ndarray, corpus: np.ndarray, power: float = 1.0) -> np.ndarray:
    """The shipped row's sample weights (mean 1) raised to ``power``: each corpus x class
    cell of n rows weighs n ** (1 - power) (1: every cell the same)."""
    from emolens.evaluation.generalisation import _weights
    from emolens.training.default_model import DEFAULT_HEAD

    w = _weights(DEFAULT_HEAD, y, corpus, np.arange(len(y)), 4).astype(np.float64) ** power
    return (w * len(w) / w.sum()).astype(np.float32)


def _fit_dro(X, y, w, corpus, seed: int, eta: float, epochs: int, wd: float, mixup: float, lr: float,
             batch_size: int):
    """Linear head with mixup, group DRO (Sagawa et al. 2020) over the training corpora."""
    import torch
    from torch import nn

    from emolens.evaluation.generalisation import mixup_batch

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    cid = torch.from_numpy(np.unique(corpus, return_inverse=True)[1])
    G = int(cid.max()) + 1
    lin = nn.Linear(X.shape[1], 4)
    opt = torch.optim.Adam(lin.parameters(), lr=lr, weight_decay=wd)
    Xt, Y, Wt = torch.from_numpy(X), torch.from_numpy(y.astype(np.int64)), torch.from_numpy(w)
    q = torch.ones(G) / G
    for _ in range(epochs):
        order = torch.from_numpy(rng.permutation(len(y)))
        for s in range(0, len(y), batch_size):
            i = order[s:s + batch_size]
            xm, tm, wm = mixup_batch(rng, mixup, Xt[i], nn.functional.one_hot(Y[i], 4).float(), Wt[i])
            per = -(tm * torch.log_softmax(lin(xm), 1)).sum(1) * wm
            gl = torch.stack([per[cid[i] == g].sum() / wm[cid[i] == g].sum().clamp_min(1e-6) for g in range(G)])
            q = q * torch.exp(eta * gl.detach())
            q = q / q.sum()
            opt.zero_grad()
            (G * (q * gl).sum()).backward()
            opt.step()
    return nn.Sequential(lin).eval()


def _consistency(X: np.ndarray, y: np.ndarray, corpus: np.ndarray) -> np.ndarray:
    """Per column: how much the training corpora agree on its emotion effect, ``(D,)``. Each
    corpus's class means minus their average (the effect, in units of the column's pooled sd);
    the energy of the effect averaged over corpora over the spread of the corpora's effects
    around it (large: every corpus moves the column the same way for the same emotion)."""
    sd = X.std(0) + 1e-6
    eff = []
    for c in np.unique(corpus):
        m = np.stack([X[(corpus == c) & (y == k)].mean(0) for k in np.unique(y)]) / sd
        eff.append(m - m.mean(0))
    eff = np.stack(eff)  # (corpora, classes, D)
    mean = eff.mean(0)
    return (mean**2).sum(0) / (((eff - mean) ** 2).sum((0, 1)) / len(eff) + 1e-6)


def _balanced_mean(X: np.ndarray, y: np.ndarray) -> np.ndarray:
    return np.mean([X[y == c].mean(0) for c in np.unique(y)], 0)


def run_fold(rows: dict, train: list[str], test: str, opts: dict, seed: int) -> float:
    """Balanced accuracy (UAR) on ``test`` of the variant's head trained on ``train``."""
    from sklearn.metrics import balanced_accuracy_score

    return float(balanced_accuracy_score(rows[test]["y"], fold_logp(rows, train, [test], opts, seed)[0].argmax(1)))


def fold_logp(rows: dict, train: list[str], tests: list[str], opts: dict, seed: int) -> list[np.ndarray]:
    """The variant's head trained on ``train``: its log probabilities ``(U, 4)`` on each corpus of
    ``tests`` (a training corpus too, for a teacher's soft labels). ``opts["soft"]``: ``{corpus: (U, 4)}``
    teacher probabilities of the training rows, mixed into the targets as ``kd * one-hot + (1 - kd) *
    soft`` (``opts["kd"]``, default 0.5)."""
    from emolens.evaluation.utterance_levers import (
        ProsodyScaler,
        fit_classifier,
        predict_proba,
    )
    from emolens.features.prosody import PROSODY_NAMES
    from emolens.selection.speech import VOICE_CLASSES
    from emolens.training.default_model import DEFAULT_HEAD as H

    cat = lambda k: np.concatenate([rows[c][k] for c in train])
    y, corpus = cat("y"), np.concatenate([np.full(len(rows[c]["y"]), c) for c in train])
    tcat = lambda k: np.concatenate([rows[c][k] for c in tests])
    P, Pt = cat("P"), tcat("P")
    sc = ProsodyScaler(weight=opts.get("pw", H.prosody)).fit(P)
    X, Xt = np.concatenate([cat("X"), sc.transform(P)], 1), np.concatenate([tcat("X"), sc.transform(Pt)], 1)
    if opts.get("audioset"):
        A, At = cat("L")[:, list(VOICE_CLASSES)], tcat("L")[:, list(VOICE_CLASSES)]
        mu, sd = A.mean(0), A.std(0) + 1e-6
        X, Xt = np.concatenate([X, (A - mu) / sd], 1), np.concatenate([Xt, (At - mu) / sd], 1)
    if "gender" in opts:
        f0 = PROSODY_NAMES.index("pitch median")  # Hz
        g = lambda Q: 1 / (1 + np.exp(-(np.log(np.maximum(Q[:, f0], 50)) - np.log(opts["gender"])) / 0.12))
        X = np.concatenate([X, (g(P)[:, None] - 0.5) * sc.transform(P)], 1)
        Xt = np.concatenate([Xt, (g(Pt)[:, None] - 0.5) * sc.transform(Pt)], 1)
    if opts.get("cnap"):
        mus = np.stack([_balanced_mean(X[corpus == c], y[corpus == c]) for c in train])
        B = np.linalg.svd(mus - mus.mean(0), full_matrices=False)[2][:opts["cnap"]]
        X, Xt = X - (X @ B.T) @ B, Xt - (Xt @ B.T) @ B
    if "stable" in opts:  # keep (or weight) the YAMNet columns whose emotion effect the training corpora agree on
        r = _consistency(cat("X"), y, corpus)
        width = r.size
        if opts["stable"] == "soft":
            g = np.concatenate([r / (1 + r), np.ones(X.shape[1] - width)])
            X, Xt = X * g, Xt * g
        else:
            keep = np.concatenate([np.argsort(-r)[: int(round(opts["stable"] * width))], np.arange(width, X.shape[1])])
            X, Xt = X[:, keep], Xt[:, keep]
    X, Xt = X.astype(np.float32), Xt.astype(np.float32)
    w = _cell_weights(y, corpus, opts.get("wpow", 1.0))
    epochs, wd = opts.get("epochs", H.epochs), opts.get("wd", H.weight_decay)
    targets = None
    if "soft" in opts:
        kd = opts.get("kd", 0.5)
        targets = (kd * np.eye(4)[y] + (1 - kd) * np.concatenate([opts["soft"][c] for c in train])).astype(np.float32)

    def fit(cols: slice, hidden: int, ep: int = epochs, seed_offset: int = 0, weight: float = 1.0, **kw) -> tuple:
        return fit_classifier(X[:, cols], y, w, 4, hidden=hidden, epochs=ep, batch_size=H.batch_size, lr=H.lr,
                              weight_decay=wd, mixup=H.mixup, seed=seed + seed_offset, targets=targets, **kw), cols, weight

    every = slice(None)
    if opts.get("dro"):
        models = [(_fit_dro(X, y, w, corpus, seed, opts["dro"], epochs, wd, H.mixup, H.lr, H.batch_size), every, 1.0)]
    elif "parts" in opts:  # (hidden, first column[, stop column[, seed offset[, weight]]]): a head on X[:, first:stop]
        models = [fit(slice(p[1], p[2] if len(p) > 2 else None), p[0], seed_offset=p[3] if len(p) > 3 else 0,
                      weight=p[4] if len(p) > 4 else 1.0) for p in opts["parts"]]
    else:
        models = [fit(every, h, e, corpus=corpus, adversarial=opts.get("adv", 0.0))
                  for e in opts.get("ensemble", (epochs,)) for h in opts.get("hiddens", (opts.get("hidden", H.hidden),))]
    logp = sum(wt * np.log(predict_proba(m, Xt[:, c]) + 1e-9) for m, c, wt in models)
    if "svm" in opts:  # (weight, first column): an RBF SVM with Platt probabilities on X[:, first:]
        from sklearn.svm import SVC

        svm_w, first = opts["svm"]
        svm = SVC(kernel="rbf", C=1.0, probability=True, random_state=seed).fit(X[:, first:], y, sample_weight=w)
        logp = logp + svm_w * np.log(svm.predict_proba(Xt[:, first:]) + 1e-9)
    return np.split(logp, np.cumsum([len(rows[c]["y"]) for c in tests])[:-1])


def extract_clip_features(work_root: Path, out: Path, file_name, feature, desc: str) -> None:  # noqa: ANN001 - callables
    """For every prepared work dir ``d`` of ``work_root``: ``feature(samples)`` (a 1-D array) of
    each of its files (mono 16 kHz, manifest order), stacked ``(U, D)`` into
    ``out / file_name(d.name)``; a work dir whose file exists is skipped (resumable). Prints the
    speed, decoding included. What every stream probe's ``extract`` step does."""
    from tqdm.auto import tqdm

    from emolens.audio.io import load_audio
    from emolens.workdir import WorkDir

    out.mkdir(parents=True, exist_ok=True)
    for d in seeds_and_dirs("0", work_root)[1].values():
        f = out / file_name(d.name)
        if f.exists():
            continue
        t, seconds, rows = time.perf_counter(), 0.0, []
        for p in tqdm(list(WorkDir.open(d).manifest.paths()), desc=f"{d.name} {desc}", unit="file"):
            x = load_audio(str(p)).samples
            seconds += x.size / 16000
            rows.append(feature(x))
        np.save(f, np.stack(rows))
        dt = time.perf_counter() - t
        print(f"{d.name}: {len(rows)} files, {seconds:.0f} s of audio in {dt:.0f} s ({seconds / dt:.0f}x real time, "
              "decoding included)", flush=True)


def seeds_and_dirs(seeds: str, work_root: Path) -> tuple[list[int], dict[str, Path]]:
    """The ``--seeds`` list and the prepared work dirs of ``work_root`` (``prepared_dirs``);
    ValueError with a one-line message when either is wrong."""
    from emolens.training.default_model import prepared_dirs

    try:
        parsed = [int(s) for s in seeds.split(",")]
    except ValueError:
        raise ValueError(f"--seeds {seeds!r} is not a comma-separated list of integers") from None
    return parsed, prepared_dirs(work_root)


def table_header(folds) -> str:
    """The Markdown header of a probe table: variant, mean and worst UAR, one column a test corpus, seconds."""
    return ("| variant | mean UAR | worst UAR | " + " | ".join(f.test for f in folds) + " | s |\n"
            + "|" + "---|" * (len(folds) + 4))


def table_row(name: str, res: np.ndarray, seconds: float) -> str:
    """One probe's row from ``res`` ``(seeds, folds)`` UAR: mean ± sd over seeds of the mean and
    worst fold, then each fold's mean over seeds."""
    mean, worst = res.mean(1), res.min(1)
    return (f"| {name} | {mean.mean():.3f} ± {mean.std():.3f} | {worst.mean():.3f} ± {worst.std():.3f} | "
            + " | ".join(f"{v:.3f}" for v in res.mean(0)) + f" | {seconds:.0f} |")


def shipping_folds(work_root: Path) -> tuple[dict[str, Path], dict[str, dict[str, np.ndarray]], list]:
    """With one torch thread: the prepared work dirs of ``work_root`` (corpus order), their pooled
    rows (:func:`pooled_rows`) and the shipping folds (TurEV-DB and CASIA only tested); prints the
    table header. What every probe built on this one starts with."""
    import torch

    from emolens.evaluation.generalisation import loco_folds
    from emolens.training.package import NOT_SHIPPABLE

    torch.set_num_threads(1)
    dirs = seeds_and_dirs("0", work_root)[1]
    rows = pooled_rows(dirs)
    folds = loco_folds(list(rows), evaluate_only=sorted(set(rows) & set(NOT_SHIPPABLE)))
    print(table_header(folds))
    return dirs, rows, folds


def print_row(name: str, rows: dict, folds: list, seeds: list[int], opts: dict | None = None) -> np.ndarray:
    """Train and score ``rows`` on every fold and seed (:func:`run_fold` with ``opts``), print the
    table row; returns the ``(seeds, folds)`` UAR."""
    t = time.perf_counter()
    res = np.array([[run_fold(rows, list(f.train), f.test, opts or {}, s) for f in folds] for s in seeds])
    print(table_row(name, res, time.perf_counter() - t), flush=True)
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work-root", type=Path, default=Path("runs/default/work"))
    ap.add_argument("--variants", default="ship")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--list", action="store_true", help="print every variant and what it tests")
    args = ap.parse_args(argv)
    if args.list:
        for k, (_, what) in VARIANTS.items():
            print(f"{k:<10} {what}")
        return 0
    names = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        print(f"emolens: error: unknown variant(s) {', '.join(unknown)}; see --list", file=sys.stderr)
        return 2
    try:
        seeds, dirs = seeds_and_dirs(args.seeds, args.work_root)
    except ValueError as e:
        print(f"emolens: error: {e}", file=sys.stderr)
        return 2
    import torch

    from emolens.evaluation.generalisation import loco_folds
    from emolens.training.package import NOT_SHIPPABLE

    torch.set_num_threads(1)
    t0 = time.perf_counter()
    rows = pooled_rows(dirs)
    folds = loco_folds(list(rows), evaluate_only=sorted(set(rows) & set(NOT_SHIPPABLE)))
    print(f"loaded {len(rows)} corpora in {time.perf_counter() - t0:.0f} s; folds: "
          + ", ".join(f"{f.test} <- {'+'.join(f.train)}" for f in folds), flush=True)
    print(table_header(folds))
    for name in names:
        print_row(name, rows, folds, seeds, VARIANTS[name][0])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
