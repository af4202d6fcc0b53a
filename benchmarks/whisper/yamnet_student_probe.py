"""Probe (stop 24): a student that reads YAMNet's own maps learns the Whisper stream.

Stop 22's student mapped the default row's *pooled* inputs to the Whisper stream and learned
nothing that generalised: the pooled YAMNet streams cannot predict what Whisper adds. This
student reads more: a trainable copy of YAMNet layer ``--start`` (and the layers above it up to
``--top``), on the cached maps of the layer below (``(P, 512, 6, 4)``, every speech patch),
then the mean and max of the last layer's channels (layer-normalised) and a linear map to the
Whisper stream's 1024 values (layer 4's mean and sd, layer-normalised). Patches are averaged
per utterance and the loss is the mean squared error to the utterance's true Whisper stream,
so at ``predict`` the student would add YAMNet-sized layers (about 9 % of YAMNet's work each;
layers 8-11, the measured default, 37 %), not Whisper's encoder.

Per fold, the student trains on the fold's training corpora only (no labels; the test corpus's
audio is never seen), and its predicted stream is appended to the shipped row the way the
Whisper stream is (the Whisper model's linear head, optionally with its MLP on the stream). The
training rows are the student's *in-sample* predictions (no cross-fitting: one student per
fold), so the head may trust them more than it should on a new corpus; the probe is therefore
biased against the student, and reports the test cosine to the true stream.

    python benchmarks/whisper/yamnet_student_probe.py [--seeds 0,1,2] [--start 8] [--top 11] [--epochs 3]

(the defaults are the measured configuration; ``--start 10 --top 10 --epochs 3 --seeds 0`` is the
smaller student of the doc's last row)

Each fold's student is stored in ``WORK_ROOT/../student-l<start>-l<top>-e<epochs>/<test>.npz`` (its
predicted streams of the fold's corpora), so more head seeds cost only the heads.

Needs the work dirs and Whisper cache of ``HEAD=whisper scripts/train_default``; caches the
layer ``start - 1`` maps (``emolens.evaluation.finetune_top.lower_activations``, about 4 min).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import head_probe as hp


def train_student(acts, ups, targets, *, start: int, top: int, epochs: int, seed: int, lr: float = 3e-4,
                  batch_size: int = 64):
    """The student (a trainable copy of YAMNet layers ``start..top`` and a linear map), trained to
    regress ``targets[k] (U_k, 1024)`` from corpus ``k``'s maps; returns a function ``(act, up) -> (U, 1024)``."""
    import torch
    from torch import nn

    from emolens.evaluation.finetune_top import UpperBlocks, _pool_rows, stream_width
    from emolens.models import load_yamnet_file, resolve_weights

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    yam = load_yamnet_file(resolve_weights("yamnet", None)).eval()
    upper = UpperBlocks(yam, start, [f"yamnet_l{top}"])
    proj = nn.Linear(stream_width(f"yamnet_l{top}"), targets[0].shape[1])
    opt = torch.optim.Adam([{"params": upper.parameters(), "lr": lr * 0.3}, {"params": proj.parameters(), "lr": lr}],
                           weight_decay=1e-4)
    owner_corpus = np.concatenate([np.full(len(u.counts), k) for k, u in enumerate(ups)])
    local = np.concatenate([np.arange(len(u.counts)) for u in ups])
    T = [torch.from_numpy(t.astype(np.float32)) for t in targets]
    n = len(owner_corpus)
    for ep in range(epochs):
        upper.train()
        order = rng.permutation(n)
        total = 0.0
        for s in range(0, n, batch_size):
            b = order[s:s + batch_size]
            preds, trues = [], []
            for k in np.unique(owner_corpus[b]):
                sel = local[b[owner_corpus[b] == k]]
                idx, owner = ups[k].batch(sel)
                rows = _pool_rows(upper, torch.from_numpy(acts[k][idx].astype(np.float32)), torch.from_numpy(owner),
                                  len(sel))
                preds.append(proj(rows))
                trues.append(T[k][sel])
            loss = nn.functional.mse_loss(torch.cat(preds), torch.cat(trues))
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(b)
        print(f"    epoch {ep + 1}: train mse {total / n:.4f}", file=sys.stderr, flush=True)
    upper.eval()

    @torch.no_grad()
    def predict(act, up, batch: int = 256) -> np.ndarray:
        from emolens.evaluation.finetune_top import upper_rows

        return proj(torch.from_numpy(upper_rows(upper, act, up, batch))).numpy()

    return predict


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work-root", type=Path, default=Path("runs/default/work"))
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--start", type=int, default=8, help="first trainable YAMNet layer (maps of start-1 cached)")
    ap.add_argument("--top", type=int, default=11, help="last YAMNet layer of the student")
    ap.add_argument("--epochs", type=int, default=3)
    a = ap.parse_args(argv)
    import torch

    from emolens.evaluation.finetune_top import UtterancePatches, lower_activations
    from emolens.evaluation.generalisation import layer_norm, loco_folds
    from emolens.training.default_model import HEADS, load_corpus_features
    from emolens.training.package import NOT_SHIPPABLE

    torch.set_num_threads(2)
    try:
        seeds, dirs = hp.seeds_and_dirs(a.seeds, a.work_root)
    except ValueError as e:
        print(f"emolens: error: {e}", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    data = load_corpus_features(list(dirs.values()), HEADS["whisper"])
    rows = hp.pooled_rows(dirs, data)
    names = list(rows)
    folds = loco_folds(names, evaluate_only=sorted(set(names) & set(NOT_SHIPPABLE)))
    acts = {c: lower_activations(d, a.start - 1, progress=False) for c, d in zip(names, dirs.values())}
    ups = {c: UtterancePatches.of(data[c].utt, data[c].speech, data[c].n_utt) for c in names}
    W = {c: layer_norm(data[c].whisper.astype(np.float32)) for c in names}
    print(f"features loaded in {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
    student = {}  # per fold: predicted streams of every corpus
    cos = {}
    cache = a.work_root.parent / f"student-l{a.start}-l{a.top}-e{a.epochs}"
    cache.mkdir(parents=True, exist_ok=True)
    for f in folds:
        t = time.perf_counter()
        train = list(f.train)
        stored = cache / f"{f.test}.npz"
        if stored.exists():  # the fold's student was trained before (same layers and epochs)
            z = np.load(stored)
            student[f.test] = {c: z[c] for c in z.files}
        else:
            predict = train_student([acts[c] for c in train], [ups[c] for c in train], [W[c] for c in train],
                                    start=a.start, top=a.top, epochs=a.epochs, seed=0)
            student[f.test] = {c: layer_norm(predict(acts[c], ups[c])) for c in (*train, f.test)}
            np.savez(stored, **student[f.test])
        p, w = student[f.test][f.test], W[f.test]
        cos[f.test] = float(np.mean((p * w).sum(1) / (np.linalg.norm(p, axis=1) * np.linalg.norm(w, axis=1))))
        print(f"  student for {f.test}: {time.perf_counter() - t:.0f} s, test cosine {cos[f.test]:.3f}",
              file=sys.stderr, flush=True)
    print(hp.table_header(folds))
    hp.print_row("ship", rows, folds, seeds)
    hp.print_row("+ true Whisper stream", {c: dict(r, X=np.concatenate([r["X"], W[c]], 1)) for c, r in rows.items()},
                 folds, seeds)
    mlp = {"parts": ((0, 0), (256, 2560, 2560 + 1024))}  # the Whisper model's head: + an MLP 256 on the stream
    hp.print_row("+ true Whisper stream, MLP on it", {c: dict(r, X=np.concatenate([r["X"], W[c]], 1))
                                                      for c, r in rows.items()}, folds, seeds, mlp)
    # each fold's head sees that fold's student on its train and test corpora
    for name, opts in ((f"+ student (layers {a.start}-{a.top}) stream", {}), ("+ student stream, MLP on it", mlp)):
        t = time.perf_counter()
        res = np.array([[hp.run_fold({c: dict(r, X=np.concatenate([r["X"], student[f.test][c]], 1))
                                      for c, r in rows.items() if c in student[f.test]}, list(f.train), f.test, opts, s)
                         for f in folds] for s in seeds])
        print(hp.table_row(name, res, time.perf_counter() - t), flush=True)
    print("test cosine: " + ", ".join(f"{c} {v:.3f}" for c, v in cos.items()))
    print(f"total {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
