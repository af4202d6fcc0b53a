"""Utterance-level levers of the generalisation yardstick (issue 12), measured and kept
or dropped by ``benchmarks/generalisation.py``.

Every function works on utterance rows: ``X (U, D)`` pooled features, ``y (U,)`` class
indices, ``corpus (U,)`` / ``groups (U,)`` names. They are the pieces the yardstick's
utterance-decision path (:func:`emolens.evaluation.generalisation.run_fold` with a
lever set in :class:`~emolens.evaluation.generalisation.HeadConfig`) combines:

* :func:`pool_streams`: statistics pooling over an utterance's speech patches of the
  layer-normalised streams: the mean (as the shipped head) and optionally the
  standard deviation (``mean+std``).
* :func:`nap_basis` / :func:`project_out`: nuisance attribute projection; the top
  ``k`` directions of emotion-balanced speaker means are removed (a linear map, so a
  linear head could absorb it).
* :class:`ProsodyScaler`: the eGeMAPS functionals (88 per clip) z-scored with the
  training folds' statistics, clipped to +-6, scaled by a fusion weight and
  concatenated to the YAMNet statistics (early fusion).
* :func:`fit_classifier`: a linear or MLP softmax classifier with the shipped recipe's
  corpus x class balance and mixup, and optionally a corpus adversary behind a
  gradient-reversal layer (DANN; weight ramped 0 -> ``adversarial`` as in Ganin et al.).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn


def decision_patches(utt: np.ndarray, speech: np.ndarray, n_utt: int) -> np.ndarray:
    """``(P,)`` bool: the patches each utterance decides on, as ``emolens predict`` does:
    its speech patches, or all of its patches when none is speech."""
    sp = np.zeros(n_utt, bool)
    sp[utt[speech]] = True
    return speech | ~sp[utt]


def pool_streams(feats: dict[str, np.ndarray], utt: np.ndarray, speech: np.ndarray, n_utt: int,
                 streams: Sequence[str], std: bool = False, square: bool = False) -> np.ndarray:
    """``(U, D)`` or ``(U, 2D)``: per utterance, the mean (and with ``std`` the standard
    deviation, or with ``square`` the mean of the squares) over its speech patches (all
    patches when none is speech) of each layer-normalised stream, streams concatenated in
    order (means first). The mean of squares keeps the decision a mean over patches (a head
    on ``[z, z**2]`` per patch); the standard deviation does not."""
    from emolens.evaluation.generalisation import layer_norm

    use = decision_patches(utt, speech, n_utt)
    u = utt[use]
    cnt = np.bincount(u, minlength=n_utt).clip(1)[:, None].astype(np.float32)
    means, stds = [], []
    for s in streams:
        z = layer_norm(feats[s][use])
        m = np.zeros((n_utt, z.shape[1]), np.float32)
        np.add.at(m, u, z)
        m /= cnt
        means.append(m)
        if std or square:
            q = np.zeros_like(m)
            np.add.at(q, u, z * z)
            stds.append(np.sqrt(np.maximum(q / cnt - m * m, 0)) if std else q / cnt)
    return np.concatenate(means + stds, 1)


def nap_basis(X: np.ndarray, y: np.ndarray, groups: np.ndarray, k: int, n_classes: int) -> np.ndarray:
    """``(D, k)`` orthonormal top-``k`` principal directions of the group means, each
    group's mean taken over its per-class means (so a group's emotion mix does not move
    it)."""
    means = []
    for g in np.unique(groups):
        m = groups == g
        cls = [X[m & (y == c)].mean(0) for c in range(n_classes) if np.any(m & (y == c))]
        means.append(np.mean(cls, 0))
    M = np.asarray(means, np.float64)
    M -= M.mean(0)
    k = min(k, len(M) - 1)
    return np.linalg.svd(M, full_matrices=False)[2][:k].T.astype(np.float32)


def project_out(X: np.ndarray, basis: np.ndarray) -> np.ndarray:
    """``X`` minus its component in the span of ``basis (D, k)``."""
    return (X - (X @ basis) @ basis.T).astype(np.float32)


@dataclass
class ProsodyScaler:
    """z-scores eGeMAPS functionals ``(U, 88)`` with statistics of the training rows,
    clips to +-``clip`` and multiplies by ``weight`` (the fusion weight against the
    2560 YAMNet statistics)."""

    weight: float = 2.0
    clip: float = 6.0

    def fit(self, E: np.ndarray) -> ProsodyScaler:
        self.mean_, self.scale_ = E.mean(0), E.std(0) + 1e-6
        return self

    def transform(self, E: np.ndarray) -> np.ndarray:
        return (self.weight * np.clip((E - self.mean_) / self.scale_, -self.clip, self.clip)).astype(np.float32)


class _GradReverse(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, lam):
        ctx.lam = lam
        return x.view_as(x)

    @staticmethod
    def backward(ctx, g):
        return -ctx.lam * g, None


def fit_classifier(X: np.ndarray, y: np.ndarray, weights: np.ndarray, n_classes: int, *, hidden: int = 0,
                   epochs: int = 40, batch_size: int = 128, lr: float = 1e-3, weight_decay: float = 1e-4,
                   mixup: float = 0.4, corpus: np.ndarray | None = None, adversarial: float = 0.0,
                   seed: int = 0, targets: np.ndarray | None = None) -> nn.Module:
    """Softmax classifier on ``X (U, D)`` (linear, or an MLP with ``hidden`` units),
    sample ``weights (U,)``, mixup Beta(``mixup``, ``mixup``). With ``adversarial`` > 0
    (needs ``hidden`` and ``corpus``) a corpus classifier reads the hidden layer through
    gradient reversal. ``targets (U, C)``: target distributions (rows summing to 1, e.g. a
    teacher's probabilities mixed with the labels) trained on instead of one-hot ``y``.
    Returns the module in eval mode; deterministic per seed."""
    from emolens.evaluation.generalisation import mixup_batch

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    if hidden:
        enc: nn.Module = nn.Sequential(nn.Dropout(0.2), nn.Linear(X.shape[1], hidden), nn.ReLU())
        out: nn.Module = nn.Sequential(nn.Dropout(0.3), nn.Linear(hidden, n_classes))
    else:
        if adversarial:
            raise ValueError("a corpus adversary needs a hidden layer (hidden > 0)")
        enc, out = nn.Identity(), nn.Linear(X.shape[1], n_classes)
    params = [*enc.parameters(), *out.parameters()]
    dom = None
    if adversarial:
        cid = np.unique(corpus, return_inverse=True)[1]
        dom = nn.Sequential(nn.Linear(hidden, 64), nn.ReLU(), nn.Linear(64, int(cid.max()) + 1))
        params += list(dom.parameters())
        D = torch.from_numpy(cid.astype(np.int64))
    Xt, Y, W = torch.from_numpy(np.ascontiguousarray(X, np.float32)), torch.from_numpy(y.astype(np.int64)), \
        torch.from_numpy(np.asarray(weights, np.float32))
    if targets is not None:
        T = torch.from_numpy(np.ascontiguousarray(targets, np.float32))
        if T.shape != (len(y), n_classes) or not torch.allclose(T.sum(1), torch.ones(len(y)), atol=1e-4):
            raise ValueError(f"targets must be ({len(y)}, {n_classes}) distributions, got {tuple(T.shape)}")
    opt = torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    n = len(y)
    steps, it = epochs * -(-n // batch_size), 0
    for _ in range(epochs):
        for m in (enc, out):
            m.train()
        order = torch.from_numpy(rng.permutation(n))
        for s in range(0, n, batch_size):
            i = order[s:s + batch_size]
            xb, wb = Xt[i], W[i]
            t = T[i] if targets is not None else nn.functional.one_hot(Y[i], n_classes).float()
            xm, tm, wm = xb, t, wb
            if mixup > 0:
                xm, tm, wm = mixup_batch(rng, mixup, xb, t, wb)
            loss = -((tm * torch.log_softmax(out(enc(xm)), 1)).sum(1) * wm).sum() / wm.sum()
            if dom is not None:
                a = adversarial * (2 / (1 + np.exp(-10 * it / steps)) - 1)
                loss = loss + nn.functional.cross_entropy(dom(_GradReverse.apply(enc(xb), a)), D[i])
            it += 1
            opt.zero_grad()
            loss.backward()
            opt.step()
    return nn.Sequential(enc, out).eval()


@torch.no_grad()
def predict_proba(model: nn.Module, X: np.ndarray) -> np.ndarray:
    """Softmax ``(U, C)`` of :func:`fit_classifier`'s model."""
    return torch.softmax(model(torch.from_numpy(np.ascontiguousarray(X, np.float32))), 1).numpy()


__all__ = ["ProsodyScaler", "decision_patches", "fit_classifier", "nap_basis", "pool_streams", "predict_proba", "project_out"]
