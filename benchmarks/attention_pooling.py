"""Attention pooling over an utterance's speech patches on the leave-one-corpus-out
yardstick (issue 12's "attention or statistics pooling" lever; statistics pooling is the
``utt-mixup-std`` row of ``benchmarks/generalisation.py``).

The head keeps the per-patch structure: ``logit = sum_p a_p W z_p + b`` with
``a = softmax_p(v . z_p)`` over the speech patches (``z_p``: the layer-normalised YAMNet
layers 5/7/9 of patch ``p``; at most ``--max-patches`` per utterance, evenly spaced), so
it would still be a weighted vote. Trained like the shipped row (corpus x class balance,
mixup 0.4 on the pooled vectors, 40 epochs, Adam 1e-3); ``v`` starts at zero (= the mean).

    python benchmarks/attention_pooling.py --work-root /work/cache/gen [--seeds 0,1,2]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work-root", type=Path, default=Path("work/gen"))
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--max-patches", type=int, default=24)
    args = ap.parse_args(argv)
    import torch
    from torch import nn

    from emolens.evaluation.generalisation import (FoldResult, _weights, corpus_features, layer_norm, loco_folds, score,
                                                   summarise)
    from emolens.training.default_model import VOTE_HEAD as cfg, prepared_dirs

    torch.set_num_threads(1)
    t0 = time.perf_counter()
    try:
        dirs = prepared_dirs(args.work_root)
    except ValueError as e:
        print(f"emolens: error: {e}", file=sys.stderr)
        return 2
    data = {}
    for d in dirs.values():
        cf = corpus_features(d, progress=False)
        data[cf.name] = cf

    def padded(cf):
        """``(U, max_patches, D)`` speech patches of each utterance and their mask."""
        z = np.concatenate([layer_norm(cf.feats[s]) for s in cfg.streams], 1)
        sp = np.zeros(cf.n_utt, bool)
        sp[cf.utt[cf.speech]] = True
        use = cf.speech | ~sp[cf.utt]
        X = np.zeros((cf.n_utt, args.max_patches, z.shape[1]), np.float32)
        M = np.zeros((cf.n_utt, args.max_patches), bool)
        for u in range(cf.n_utt):
            idx = np.flatnonzero((cf.utt == u) & use)
            if len(idx) > args.max_patches:
                idx = idx[np.linspace(0, len(idx) - 1, args.max_patches).astype(int)]
            X[u, :len(idx)], M[u, :len(idx)] = z[idx], True
        return X, M

    class Attention(nn.Module):
        def __init__(self, d: int, c: int):
            super().__init__()
            self.v, self.W = nn.Linear(d, 1), nn.Linear(d, c)
            nn.init.zeros_(self.v.weight)
            nn.init.zeros_(self.v.bias)

        def pool(self, X, M):
            a = torch.softmax(self.v(X).squeeze(-1).masked_fill(~M, -1e9), 1)
            return (a.unsqueeze(-1) * X).sum(1)

        def forward(self, X, M):
            return self.W(self.pool(X, M))

    T = {n: padded(cf) for n, cf in data.items()}
    sums = []
    for seed in [int(s) for s in args.seeds.split(",")]:
        res = []
        for fold in loco_folds(list(data)):
            tr, te = [data[c] for c in fold.train], data[fold.test]
            X = torch.from_numpy(np.concatenate([T[p.name][0] for p in tr]))
            M = torch.from_numpy(np.concatenate([T[p.name][1] for p in tr]))
            y = np.concatenate([p.y for p in tr])
            corpus = np.concatenate([np.full(p.n_utt, p.name) for p in tr])
            W = torch.from_numpy(_weights(cfg, y, corpus, np.arange(len(y)).astype(str), 4))
            Y = torch.from_numpy(y.astype(np.int64))
            torch.manual_seed(seed)
            rng = np.random.default_rng(seed)
            m = Attention(X.shape[2], 4)
            opt = torch.optim.Adam(m.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
            for _ in range(cfg.epochs):
                order = torch.from_numpy(rng.permutation(len(y)))
                for s in range(0, len(y), cfg.batch_size):
                    i = order[s:s + cfg.batch_size]
                    pooled, t, wb = m.pool(X[i], M[i]), nn.functional.one_hot(Y[i], 4).float(), W[i]
                    lam = float(rng.beta(cfg.mixup, cfg.mixup))
                    p = torch.from_numpy(rng.permutation(len(i)))
                    pooled, t, wb = lam * pooled + (1 - lam) * pooled[p], lam * t + (1 - lam) * t[p], lam * wb + (1 - lam) * wb[p]
                    loss = -((t * torch.log_softmax(m.W(pooled), 1)).sum(1) * wb).sum() / wb.sum()
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
            with torch.no_grad():
                probs = torch.softmax(m(*map(torch.from_numpy, T[te.name])), 1).numpy()
            res.append(FoldResult(fold.test, fold.train, probs, te.y, te.speakers, score(probs, te.y, te.classes)))
        sm = summarise(res)
        sums.append(sm)
        print(f"attention seed {seed}: " + " ".join(f"{k} {v['uar']:.3f}" for k, v in sm["per_corpus"].items())
              + f"  mean {sm['mean_uar']:.3f} worst {sm['worst_uar']:.3f}", flush=True)
    print(f"attention pooling: mean {np.mean([s['mean_uar'] for s in sums]):.3f} worst {np.mean([s['worst_uar'] for s in sums]):.3f} "
          f"over seeds {args.seeds} ({time.perf_counter() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
