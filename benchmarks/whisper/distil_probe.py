"""Probe (stop 22): can the fast default model learn what Whisper knows, without running Whisper?

The Whisper model's gain (+6 pt mean LOCO UAR) costs a 145 MB encoder that runs at 66x real
time. This probe tests a student that costs nothing at ``predict``: a regressor, fitted on the
training corpora only, that maps the default row's utterance inputs (the pooled YAMNet streams
``X`` (U, 2560) and the scaled prosody functionals (U, 82)) to the clip's Whisper stream
(layer 4 mean and sd over frames, standardised per clip, (U, 1024)). Its prediction is
appended to the default row as the Whisper stream would be (standardised per clip; with the
Whisper model's MLP on those columns where the variant says so), and the head is trained as
head_probe trains it. Teacher targets need no labels; the test corpus's audio is never used.

Training rows see *cross-fitted* predictions: for a training corpus, the regressor fitted on
the other training corpora (so the head learns how far to trust a prediction on a voice the
regressor never heard); the test corpus sees the regressor fitted on every training corpus.

    python benchmarks/whisper/distil_probe.py --seeds 0,1,2 [--variants ...]

Needs the work dirs of ``scripts/train_default`` and their Whisper cache
(``HEAD=whisper scripts/train_default``). Figures: benchmarks/generalisation.md, "Stop 22".
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import head_probe as hp

#: name -> (regressor, head options, what it tests). Regressors: ``true`` the real Whisper
#: stream (the reference), ``ridge:<alpha>`` closed-form ridge on the standardised inputs,
#: ``mlp:<hidden>`` a one-hidden-layer MLP (MSE, Adam, 20 epochs). ``mlp`` in the head options:
#: the Whisper model's MLP 256 on the stream's columns beside the linear head (``mlp_k`` of them,
#: from other seeds, averaged).
VARIANTS: dict[str, tuple[str, dict, str]] = {
    "ship": ("none", {}, "the shipped default row"),
    "true": ("true", {}, "the real Whisper stream appended (the Whisper row, linear head)"),
    "true-mlp": ("true", {"mlp": 256}, "the real Whisper stream with the MLP on it (the Whisper model's head)"),
    "true-mlp-x3": ("true", {"mlp": 256, "mlp_k": 3}, "the Whisper model's head with 3 MLPs (seeds s, s+100, s+200) averaged"),
    "true-mlp-x5": ("true", {"mlp": 256, "mlp_k": 5}, "the Whisper model's head with 5 MLPs averaged"),
    "ridge": ("ridge:1000", {}, "a ridge regression's prediction of the stream appended"),
    "ridge-mlp": ("ridge:1000", {"mlp": 256}, "the ridge prediction, with the MLP on it"),
    "mlp": ("mlp:256", {}, "an MLP regressor's prediction appended"),
    "mlp-mlp": ("mlp:256", {"mlp": 256}, "the MLP regressor's prediction, with the MLP head on it"),
    "kd-in": ("kd-in", {"kd": 0.5}, "the default row trained on half labels, half the Whisper model's probabilities "
                                     "(its head trained on the fold's training corpora; stop 25)"),
    "kd-cross": ("kd-cross", {"kd": 0.5}, "the same with each training corpus's probabilities from a Whisper head "
                                           "trained on the other training corpora (how a new corpus looks to it)"),
    "kd-cross-a0": ("kd-cross", {"kd": 0.0}, "kd-cross on the teacher's probabilities alone"),
}


def teacher_opts() -> dict:
    """The Whisper model's head (linear on every column, MLP 256 on the Whisper stream's columns)."""
    return {"parts": ((0, 0), (256, -1024 - 82, -82, 0, 1.0))}


def soft_labels(rows: dict, train: list[str], kind: str, seed: int) -> dict[str, np.ndarray]:
    """``{corpus: (U, 4)}`` the Whisper model's probabilities of each training corpus's clips: from
    its head trained on every corpus of ``train`` (``kd-in``), or on the others (``kd-cross``)."""
    def probs(logp: np.ndarray) -> np.ndarray:
        e = np.exp(logp - logp.max(1, keepdims=True))
        return e / e.sum(1, keepdims=True)

    if kind == "kd-in":
        return dict(zip(train, (probs(v) for v in hp.fold_logp(rows, train, train, teacher_opts(), seed))))
    return {c: probs(hp.fold_logp(rows, [t for t in train if t != c], [c], teacher_opts(), seed)[0]) for c in train}


def fit_regressor(kind: str, A: np.ndarray, T: np.ndarray, seed: int):
    """A map from inputs ``A (U, D)`` to targets ``T (U, K)``: ``ridge:<alpha>`` or ``mlp:<hidden>``."""
    name, arg = kind.split(":")
    mu, sd = A.mean(0), A.std(0) + 1e-6
    tm = T.mean(0)
    Z = (A - mu) / sd
    if name == "ridge":
        alpha = float(arg)
        G = Z.T @ Z + alpha * np.eye(Z.shape[1])
        B = np.linalg.solve(G, Z.T @ (T - tm))
        return lambda a: ((a - mu) / sd) @ B + tm
    import torch
    from torch import nn

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    net = nn.Sequential(nn.Dropout(0.1), nn.Linear(Z.shape[1], int(arg)), nn.ReLU(), nn.Linear(int(arg), T.shape[1]))
    opt = torch.optim.Adam(net.parameters(), lr=1e-3, weight_decay=1e-4)
    Zt, Tt = torch.from_numpy(Z.astype(np.float32)), torch.from_numpy((T - tm).astype(np.float32))
    for _ in range(20):
        net.train()
        order = torch.from_numpy(rng.permutation(len(Z)))
        for s in range(0, len(Z), 128):
            i = order[s:s + 128]
            loss = ((net(Zt[i]) - Tt[i]) ** 2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
    net.eval()

    def predict(a: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return net(torch.from_numpy(((a - mu) / sd).astype(np.float32))).numpy() + tm
    return predict


def student_streams(rows: dict, train: list[str], test: str, kind: str, seed: int) -> tuple[dict, float]:
    """``{corpus: (U, 1024)}`` predicted Whisper streams for ``train`` (cross-fitted: each from
    the regressor fitted on the other training corpora) and ``test`` (fitted on all of them), and
    the test corpus's mean cosine between predicted and true stream."""
    from emolens.evaluation.utterance_levers import ProsodyScaler

    def predict(fit_on: list[str], apply_to: str) -> np.ndarray:
        # the functionals scaled (z-scored, clipped) with the regressor's training corpora only, as the head does
        sc = ProsodyScaler(weight=1.0).fit(np.concatenate([rows[c]["P"] for c in fit_on]))
        inputs = lambda cs: np.concatenate([np.concatenate([rows[c]["X"], sc.transform(rows[c]["P"])], 1)  # noqa: E731
                                            for c in cs])
        f = fit_regressor(kind, inputs(fit_on), np.concatenate([rows[c]["W"] for c in fit_on]), seed)
        return f(inputs([apply_to]))

    out = {c: predict([o for o in train if o != c], c) for c in train}
    out[test] = predict(train, test)
    p, t = out[test], rows[test]["W"]
    cos = float(np.mean((p * t).sum(1) / (np.linalg.norm(p, axis=1) * np.linalg.norm(t, axis=1) + 1e-9)))
    return out, cos


def whisper_rows(paths: list, folder: Path) -> np.ndarray:
    """The clips' Whisper streams ``(U, 1024)``: the shipped stream's cache under ``folder`` (computed
    where missing), or any other folder's ``.npy`` entries, which must all be there."""
    from emolens.features.cache import cached_file_vectors
    from emolens.features.whisper_files import extract_whisper

    if folder.name == "whisper":  # cached by HEAD=whisper scripts/train_default, else computed here
        return extract_whisper(paths, cache_dir=folder, progress=True)

    def missing(p: Path) -> np.ndarray:
        raise FileNotFoundError(f"{p} has no stream under {folder}; write them first (whisper-int8: "
                                "python benchmarks/whisper/whisper_int8_probe.py extract)")

    return cached_file_vectors(paths, missing, 1024, folder)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work-root", type=Path, default=Path("runs/default/work"))
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--whisper-dir", default="whisper",
                    help="each work dir's sub-folder holding the Whisper stream cache (default: whisper, the shipped "
                         "float32 stream; stop 25's int8 probe: whisper-int8, written by whisper_int8_probe.py)")
    args = ap.parse_args(argv)
    names = [v for v in args.variants.split(",") if v]
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        print(f"emolens: error: unknown variant(s) {', '.join(unknown)}; one of {', '.join(VARIANTS)}", file=sys.stderr)
        return 2
    try:
        seeds = hp.seeds_and_dirs(args.seeds, args.work_root)[0]
    except ValueError as e:
        print(f"emolens: error: {e}", file=sys.stderr)
        return 2
    from emolens.evaluation.generalisation import layer_norm
    from emolens.workdir import WorkDir

    dirs, rows, folds = hp.shipping_folds(args.work_root)
    try:
        for r, d in zip(rows.values(), dirs.values()):
            r["W"] = layer_norm(whisper_rows(WorkDir.open(d).manifest.paths(), Path(d) / args.whisper_dir))
    except FileNotFoundError as e:
        print(f"emolens: error: {e}", file=sys.stderr)
        return 2
    for name in names:
        kind, opts, _ = VARIANTS[name]
        t = time.perf_counter()
        res, coss = np.zeros((len(seeds), len(folds))), []
        for si, s in enumerate(seeds):
            for fi, f in enumerate(folds):
                if kind == "none":
                    stream = None
                elif kind.startswith("kd"):
                    wrows = {c: dict(rows[c], X=np.concatenate([rows[c]["X"], rows[c]["W"]], 1)) for c in rows}
                    o = dict(opts, soft=soft_labels(wrows, list(f.train), kind, s))
                    res[si, fi] = hp.run_fold(rows, list(f.train), f.test, o, s)
                    continue
                elif kind == "true":
                    stream = {c: rows[c]["W"] for c in [*f.train, f.test]}
                else:
                    stream, cos = student_streams(rows, list(f.train), f.test, kind, s)
                    stream = {c: layer_norm(v) for c, v in stream.items()}
                    coss.append(cos)
                vr = rows if stream is None else {c: dict(rows[c], X=np.concatenate([rows[c]["X"], stream[c]], 1))
                                                  for c in [*f.train, f.test]}
                o = dict(opts)
                k = o.pop("mlp_k", 1)
                if stream is not None and o.pop("mlp", 0):  # K MLPs of weight 1/K: one MLP with K x the units
                    o["parts"] = ((0, 0), *[(opts["mlp"], -1024 - 82, -82, 100 * j, 1 / k) for j in range(k)])
                res[si, fi] = hp.run_fold(vr, list(f.train), f.test, o, s)
        print(hp.table_row(name, res, time.perf_counter() - t)
              + (f" test cosine {np.mean(coss):.3f}" if coss else ""), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
