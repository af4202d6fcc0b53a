"""Sanity checks for attribution maps (Adebayo et al. 2018, "Sanity checks for saliency maps").

An explanation that says what the *trained* model uses must change when what the model
learned is destroyed:

* **model randomisation**: the trained head (the part emolens trains; the pretrained
  backbone is frozen in head mode) is re-initialised (:func:`randomized_head`); the
  cascading variant also re-initialises the top ``k`` YAMNet blocks
  (:func:`cascading_randomization`).
* **label randomisation**: a head trained on the cached backbone features with the
  utterance labels shuffled across utterances (:func:`label_randomized_head`), so it
  can only memorise, not learn emotion.

Similarity of the original and the randomised model's utterance maps is the Spearman
rank correlation over all cells (:func:`spearman`), in its signed form and on absolute
values (Adebayo's two variants; the larger counts). A method **passes** a test when the
mean over clips is below :attr:`SanityConfig.threshold` = 0.5: at 0.5 or more the map's
ranking, which is all deletion/insertion, the focus audio and the profile use, is
still mostly the same whatever the head learned.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from scipy.stats import spearmanr
from torch import nn

__all__ = [
    "SanityConfig",
    "SanityResult",
    "spearman",
    "map_similarity",
    "randomized_head",
    "cascading_randomization",
    "label_randomized_head",
    "sanity_check",
]


@dataclass(frozen=True)
class SanityConfig:
    """``threshold``: mean similarity below which a test passes (0.5).
    ``label_epochs``, ``label_lr``: Adam epochs / learning rate of the shuffled-label
    head (8, 1e-3; batches of 128, no early stopping).
    ``seed``: re-initialisation / shuffle seed (0)."""

    threshold: float = 0.5
    label_epochs: int = 8
    label_lr: float = 1e-3
    seed: int = 0


@dataclass(frozen=True)
class SanityResult:
    """Per test: mean similarity over clips, the per-clip values and pass/fail."""

    method: str
    similarity: dict[str, float]
    per_clip: dict[str, list[float]] = field(default_factory=dict)
    threshold: float = 0.5

    @property
    def passed(self) -> dict[str, bool]:
        return {k: bool(v < self.threshold) for k, v in self.similarity.items()}

    @property
    def all_passed(self) -> bool:
        return all(self.passed.values())


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation of two maps of one shape over all cells (0 when
    either is constant, where it is undefined)."""
    a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    if a.shape != b.shape:
        raise ValueError(f"maps differ in size: {a.size} vs {b.size}")
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return 0.0
    return float(spearmanr(a, b).statistic)


def map_similarity(a: np.ndarray, b: np.ndarray) -> float:
    """max(Spearman signed, Spearman of absolute values): the stricter reading."""
    return max(spearman(a, b), spearman(np.abs(a), np.abs(b)))


def _reset(module: nn.Module, seed: int) -> None:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for m in module.modules():
            if hasattr(m, "reset_parameters"):
                m.reset_parameters()


def randomized_head(model: nn.Module, seed: int = 0) -> nn.Module:
    """A copy of ``model`` whose ``head`` is re-initialised (backbones untouched)."""
    if not hasattr(model, "head"):
        raise ValueError("model randomisation needs a model with a .head")
    out = copy.deepcopy(model)
    _reset(out.head, seed)
    return out.eval()


def cascading_randomization(model: nn.Module, n_blocks: int, seed: int = 0) -> nn.Module:
    """:func:`randomized_head` plus the top ``n_blocks`` YAMNet blocks re-initialised."""
    out = randomized_head(model, seed)
    yam = getattr(out, "yamnet", None)
    if yam is None:
        raise ValueError("cascading randomisation here needs a model with a YAMNet")
    for i, block in enumerate(list(yam.layers)[::-1][: int(n_blocks)]):
        _reset(block, seed + 1 + i)
    return out.eval()


def label_randomized_head(model: nn.Module, features: dict[str, np.ndarray], patch_utt: np.ndarray,
                          utt_labels: np.ndarray, n_classes: int, cfg: SanityConfig = SanityConfig()) -> nn.Module:
    """A copy of ``model`` whose head is trained from scratch on ``features``
    (``{stream: (P, D)}``, the cached backbone features of every patch) with the
    utterance labels ``utt_labels`` ``(U,)`` shuffled across utterances (patch ``p``
    gets the shuffled label of utterance ``patch_utt[p]``)."""
    out = copy.deepcopy(model)
    _reset(out.head, cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    shuffled = rng.permutation(np.asarray(utt_labels))
    y = torch.from_numpy(shuffled[np.asarray(patch_utt)].astype(np.int64))
    feats = {k: torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32)) for k, v in features.items()}
    idx = np.flatnonzero(y.numpy() >= 0)
    opt = torch.optim.Adam(out.head.parameters(), lr=cfg.label_lr)
    loss_fn = nn.CrossEntropyLoss()
    out.head.train()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        for epoch in range(cfg.label_epochs):  # plain minibatch Adam: no early stopping to undo it
            order = rng.permutation(idx)
            for s in range(0, len(order), 128):
                b = order[s : s + 128]
                loss = loss_fn(out.head({k: v[b] for k, v in feats.items()}), y[b])
                opt.zero_grad()
                loss.backward()
                opt.step()
    return out.eval()


MapFn = Callable[[nn.Module, object], np.ndarray]


def sanity_check(method: str, map_fn: MapFn, model: nn.Module, randomized: dict[str, nn.Module],
                 clips: Sequence, cfg: SanityConfig = SanityConfig(),
                 reference: Sequence[np.ndarray] | None = None) -> SanityResult:
    """Compare ``map_fn(model, clip)`` with ``map_fn(randomized[test], clip)`` on every
    clip (``reference``: the original maps, when already computed). ``map_fn`` returns
    one utterance map per clip, explaining the same target class for both models."""
    ref = list(reference) if reference is not None else [map_fn(model, c) for c in clips]
    per: dict[str, list[float]] = {}
    for test, m in randomized.items():
        per[test] = [map_similarity(r, map_fn(m, c)) for r, c in zip(ref, clips)]
    sim = {k: float(np.mean(v)) for k, v in per.items()}
    return SanityResult(method, sim, per, cfg.threshold)
