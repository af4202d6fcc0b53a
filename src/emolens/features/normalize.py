"""Group-wise standardisation of backbone stream features (a cross-corpus remedy).

``--normalize corpus|speaker|utterance`` z-scores every dimension of every stream
feature (``FusionNet.extract`` output, per patch) with the mean and standard deviation
of the patches of its group: its corpus, its speaker, or its own utterance. The
statistics come from the group itself and never use labels, so at evaluation time a
test speaker/corpus is normalised with its own statistics. Only ``utterance`` works on
a single clip at prediction time (its group is the clip); ``speaker``/``corpus`` models
fall back to the clip's own statistics there unless the caller passes groups (as
``emolens evaluate`` does). A group of one patch becomes all zeros (no information).
"""

from __future__ import annotations

import numpy as np

#: Accepted ``normalize`` modes (``none`` = features unchanged).
NORMALIZE_MODES = ("none", "corpus", "speaker", "utterance")
#: Added to the standard deviation (features of a constant dimension become 0, not NaN).
EPS = 1e-5


def check_mode(mode: str) -> str:
    from emolens.errors import EmolensError

    if mode not in NORMALIZE_MODES:
        raise EmolensError(f"normalize {mode!r}: use one of {', '.join(NORMALIZE_MODES)}")
    return mode


def standardize_groups(x: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """``(P, D)`` features -> ``(P, D)`` float32 z-scored within each group of ``groups (P,)``."""
    x = np.asarray(x, dtype=np.float32)
    groups = np.asarray(groups)
    if groups.shape != (x.shape[0],):
        raise ValueError(f"groups must have shape ({x.shape[0]},), got {groups.shape}")
    _, inv = np.unique(groups, return_inverse=True)
    n = np.bincount(inv).astype(np.float64)[:, None]
    mean = np.zeros((n.shape[0], x.shape[1]))
    np.add.at(mean, inv, x)
    mean /= n
    sq = np.zeros_like(mean)
    np.add.at(sq, inv, (x - mean[inv]) ** 2)
    std = np.sqrt(sq / n)
    return ((x - mean[inv]) / (std[inv] + EPS)).astype(np.float32)


def normalize_streams(feats: dict[str, np.ndarray], groups: np.ndarray | None) -> dict[str, np.ndarray]:
    """Every stream of ``{stream: (P, D)}`` standardised by ``groups (P,)`` (``None``: unchanged)."""
    if groups is None:
        return feats
    return {k: standardize_groups(v, groups) for k, v in feats.items()}


def group_keys(mode: str, utterance: np.ndarray, speakers: np.ndarray, corpora: np.ndarray) -> np.ndarray | None:
    """Per-item group key for ``mode``: item ``i`` belongs to utterance ``utterance[i]``
    whose speaker/corpus are ``speakers``/``corpora`` (indexed by utterance); ``None`` for none."""
    check_mode(mode)
    if mode == "none":
        return None
    if mode == "utterance":
        return np.asarray(utterance)
    table = np.asarray(speakers if mode == "speaker" else corpora, dtype=str)
    return table[np.asarray(utterance)]


__all__ = ["NORMALIZE_MODES", "check_mode", "standardize_groups", "normalize_streams", "group_keys"]
