"""Faithfulness of an attribution map: deletion and insertion curves (beyond the thesis).

On an utterance log-mel ``(n_frames, 64)``, the map ranks blocks of ``block`` =
(4 frames x 4 bands) cells by their mean importance (cells would be 16x slower and
the maps are smooth at that scale anyway; ties are broken by a seeded shuffle).

* **Deletion**: replace the top fraction ``k / steps`` of the blocks by the
  ``baseline`` (default: the utterance's mean log-mel) and record the target class's
  utterance probability, k = 0..steps; a faithful map makes it fall fast (low AUC).
* **Insertion**: start from the baseline everywhere and reveal the top blocks first;
  a faithful map makes the probability rise fast (high AUC).

AUCs are trapezoids over the fraction 0..1. :func:`random_baseline` gives the same
curves for random block orders: a map is faithful when its deletion AUC is below and
its insertion AUC above the random ones. All perturbed utterances of one call go to
``predict_fn`` stacked, ``batch_size`` at a time.

``predict_fn`` maps utterance log-mels ``(S, n_frames, 64)`` to class probabilities
``(S, n_classes)``; :func:`utterance_predictor` builds one from a patch model
(mean of the patch softmax, as the evaluation does).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from emolens.explain.stitch import SILENCE_LOG_MEL
from emolens.features.patches import DEFAULT_PATCHES, PatchConfig, frame_patches

__all__ = [
    "PredictFn",
    "utterance_predictor",
    "block_ids",
    "block_order",
    "deletion_insertion",
    "random_baseline",
    "faithfulness",
    "region_faithfulness",
    "beats_random",
]

#: ``(S, n_frames, n_mels)`` log-mels -> ``(S, n_classes)`` probabilities.
PredictFn = Callable[[np.ndarray], np.ndarray]

_trapezoid = getattr(np, "trapezoid", None) or np.trapz  # numpy < 2 has only trapz


def utterance_predictor(
    model: nn.Module,
    pcfg: PatchConfig = DEFAULT_PATCHES,
    pad_value: float = SILENCE_LOG_MEL,
    batch_size: int = 256,
    voting: np.ndarray | None = None,
) -> PredictFn:
    """A :data:`PredictFn` for a patch model: cut each utterance into patches, run
    them all (``batch_size`` per forward, eval mode, no grad), and decide each utterance
    over its patches (over the ``voting (N,)`` patches only when given: the utterance
    decision of a speech-gated recognizer; the mean softmax, or statistics pooling's,
    :func:`~emolens.explain.region_attribution.utterance_probs`)."""
    from emolens.explain.region_attribution import patch_outputs_of, utterance_probs

    def predict(log_mels: np.ndarray) -> np.ndarray:
        batch = np.asarray(log_mels, dtype=np.float32)
        if batch.ndim == 2:
            batch = batch[None]
        per = [frame_patches(u, pcfg, pad_value=pad_value) for u in batch]
        counts = [p.shape[0] for p in per]
        x = torch.from_numpy(np.concatenate(per)).unsqueeze(1)
        device = next((p.device for p in model.parameters()), torch.device("cpu"))
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                outs = torch.cat([patch_outputs_of(model, x[i : i + batch_size].to(device)).cpu()
                                  for i in range(0, x.shape[0], batch_size)])
                bounds = np.cumsum([0] + counts)
                res = []
                for a, b in zip(bounds[:-1], bounds[1:]):
                    o = outs[a:b]
                    if voting is not None and len(voting) == len(o) and np.any(voting):
                        o = o[torch.from_numpy(np.asarray(voting, bool))]
                    res.append(utterance_probs(model, o).numpy())
        finally:
            model.train(was_training)
        return np.stack(res)

    return predict


def block_ids(shape: tuple[int, int], block: tuple[int, int] = (4, 4)) -> tuple[np.ndarray, int]:
    """Block index of every cell of a ``shape`` = (frames, bands) grid, and the number
    of blocks (edge blocks may be partial)."""
    bf, bb = max(1, int(block[0])), max(1, int(block[1]))
    nb = -(-shape[1] // bb)
    nf = -(-shape[0] // bf)
    ids = (np.arange(shape[0])[:, None] // bf) * nb + np.arange(shape[1])[None, :] // bb
    return ids, nf * nb


def block_order(
    utt_map: np.ndarray, block: tuple[int, int] = (4, 4), seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """``(ids (n_frames, n_mels), order (n_blocks,))``: blocks from most to least
    important by mean map value; ties in a seeded random order."""
    m = np.asarray(utt_map, dtype=np.float64)
    ids, n = block_ids(m.shape, block)
    score = np.bincount(ids.ravel(), m.ravel(), n) / np.bincount(ids.ravel(), minlength=n)
    perm = np.random.default_rng(seed).permutation(n)
    return ids, perm[np.argsort(-score[perm], kind="stable")]


def _baseline_value(log_mel: np.ndarray, baseline: str | float) -> float:
    if baseline == "mean":
        return float(log_mel.mean())
    if baseline == "min":
        return float(log_mel.min())
    if isinstance(baseline, (int, float)) and not isinstance(baseline, bool):
        return float(baseline)
    raise ValueError(f"baseline {baseline!r}: use 'mean', 'min' or a log-mel value")


def _curves(
    predict_fn: PredictFn,
    log_mel: np.ndarray,
    ids: np.ndarray,
    orders: list[np.ndarray],
    target: int,
    steps: int,
    base: float,
    batch_size: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Deletion and insertion curves ``(n_orders, steps + 1)`` for each block order."""
    n_blocks = orders[0].size
    counts = np.rint(np.linspace(0.0, 1.0, steps + 1) * n_blocks).astype(int)
    inputs = []
    for order in orders:
        rank = np.empty(n_blocks, dtype=np.int64)
        rank[order] = np.arange(n_blocks)
        cell_rank = rank[ids]
        for c in counts:
            inputs.append(np.where(cell_rank < c, base, log_mel))  # deletion
        for c in counts:
            inputs.append(np.where(cell_rank < c, log_mel, base))  # insertion
    stacked = np.stack(inputs).astype(np.float32)
    probs = np.concatenate(
        [np.asarray(predict_fn(stacked[i : i + batch_size])) for i in range(0, len(stacked), batch_size)]
    )
    if probs.ndim != 2 or probs.shape[0] != len(stacked) or not 0 <= target < probs.shape[1]:
        raise ValueError(f"predict_fn returned shape {probs.shape} for {len(stacked)} inputs, target {target}")
    p = probs[:, target].reshape(len(orders), 2, steps + 1)
    return counts / n_blocks, p[:, 0], p[:, 1]


def _check(log_mel: np.ndarray, steps: int) -> np.ndarray:
    x = np.asarray(log_mel, dtype=np.float32)
    if x.ndim != 2:
        raise ValueError(f"log_mel must be (n_frames, n_mels), got shape {x.shape}")
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    return x


def deletion_insertion(
    predict_fn: PredictFn,
    log_mel: np.ndarray,
    utt_map: np.ndarray,
    target: int,
    *,
    steps: int = 20,
    baseline: str | float = "mean",
    block: tuple[int, int] = (4, 4),
    seed: int = 0,
    batch_size: int = 64,
) -> dict:
    """Deletion/insertion curves of ``utt_map`` ``(n_frames, 64)`` on ``log_mel``.

    Returns ``fractions``, ``deletion``, ``insertion`` (each ``(steps + 1,)``; the
    target's probability after removing / revealing that fraction of the blocks)
    and ``deletion_auc``, ``insertion_auc``. ``2 * (steps + 1)`` predictions.
    """
    x = _check(log_mel, steps)
    if np.shape(utt_map) != x.shape:
        raise ValueError(f"map shape {np.shape(utt_map)} differs from log_mel shape {x.shape}")
    ids, order = block_order(utt_map, block, seed)
    frac, dele, ins = _curves(predict_fn, x, ids, [order], int(target), steps,
                              _baseline_value(x, baseline), batch_size)
    return {
        "fractions": frac,
        "deletion": dele[0],
        "insertion": ins[0],
        "deletion_auc": float(_trapezoid(dele[0], frac)),
        "insertion_auc": float(_trapezoid(ins[0], frac)),
    }


def random_baseline(
    predict_fn: PredictFn,
    log_mel: np.ndarray,
    target: int,
    *,
    steps: int = 20,
    baseline: str | float = "mean",
    block: tuple[int, int] = (4, 4),
    n_orders: int = 5,
    seed: int = 0,
    batch_size: int = 64,
) -> dict:
    """The same curves for ``n_orders`` random block orders: mean ``deletion`` and
    ``insertion`` curves, their mean AUCs, and the AUCs' std (``*_auc_std``)."""
    x = _check(log_mel, steps)
    ids, n_blocks = block_ids(x.shape, block)
    rng = np.random.default_rng(seed)
    orders = [rng.permutation(n_blocks) for _ in range(max(1, int(n_orders)))]
    frac, dele, ins = _curves(predict_fn, x, ids, orders, int(target), steps,
                              _baseline_value(x, baseline), batch_size)
    d_auc = np.array([_trapezoid(c, frac) for c in dele])
    i_auc = np.array([_trapezoid(c, frac) for c in ins])
    return {
        "fractions": frac,
        "deletion": dele.mean(axis=0),
        "insertion": ins.mean(axis=0),
        "deletion_auc": float(d_auc.mean()),
        "insertion_auc": float(i_auc.mean()),
        "deletion_auc_std": float(d_auc.std()),
        "insertion_auc_std": float(i_auc.std()),
        "n_orders": len(orders),
    }


def faithfulness(
    predict_fn: PredictFn,
    log_mel: np.ndarray,
    maps: dict[str, np.ndarray],
    target: int,
    *,
    n_orders: int = 5,
    seed: int = 0,
    **kwargs,
) -> dict[str, dict]:
    """Curves for each named map plus ``"random"``; each map's entry also gets
    ``deletion_gain`` (random AUC - map AUC) and ``insertion_gain`` (map - random),
    both > 0 for a faithful map. ``kwargs``: steps, baseline, block, batch_size."""
    rand = random_baseline(predict_fn, log_mel, target, n_orders=n_orders, seed=seed, **kwargs)
    out: dict[str, dict] = {}
    for name, m in maps.items():
        res = deletion_insertion(predict_fn, log_mel, m, target, seed=seed, **kwargs)
        res["deletion_gain"] = rand["deletion_auc"] - res["deletion_auc"]
        res["insertion_gain"] = res["insertion_auc"] - rand["insertion_auc"]
        out[name] = res
    out["random"] = rand
    return out


def region_faithfulness(
    predict_fn: PredictFn,
    log_mel: np.ndarray,
    ids: np.ndarray,
    scores: dict[str, np.ndarray],
    target: int,
    *,
    steps: int = 10,
    n_orders: int = 2,
    baseline: str | float = "mean",
    seed: int = 0,
    batch_size: int = 64,
) -> dict[str, dict]:
    """Deletion/insertion at **region** level: regions ``ids`` ``(n_frames, n_mels)``
    (ids 0..R-1, e.g. :attr:`emolens.explain.regions.Regions.ids`) removed / revealed
    in the order of each method's ``scores`` ``(R,)`` (highest first), ``steps``
    fractions of the regions; ``"random"``: the mean over ``n_orders`` random region
    orders. Same entries as :func:`faithfulness` (AUCs, curves, gains)."""
    x = _check(log_mel, steps)
    ids = np.asarray(ids, dtype=np.int64)
    if ids.shape != x.shape:
        raise ValueError(f"region ids {ids.shape} differ from log_mel {x.shape}")
    n = int(ids.max()) + 1
    rng = np.random.default_rng(seed)
    names = list(scores)
    orders = []
    for k in names:
        s = np.asarray(scores[k], dtype=np.float64)
        if s.shape != (n,):
            raise ValueError(f"{k}: scores must be ({n},), got {s.shape}")
        perm = rng.permutation(n)  # ties in a seeded random order
        orders.append(perm[np.argsort(-s[perm], kind="stable")])
    rand = [rng.permutation(n) for _ in range(max(1, int(n_orders)))]
    frac, dele, ins = _curves(predict_fn, x, ids, orders + rand, int(target), steps,
                              _baseline_value(x, baseline), batch_size)
    d_auc = np.array([_trapezoid(c, frac) for c in dele])
    i_auc = np.array([_trapezoid(c, frac) for c in ins])
    k = len(names)
    r_d, r_i = float(d_auc[k:].mean()), float(i_auc[k:].mean())
    out: dict[str, dict] = {}
    for j, name in enumerate(names):
        out[name] = {"fractions": frac, "deletion": dele[j], "insertion": ins[j],
                     "deletion_auc": float(d_auc[j]), "insertion_auc": float(i_auc[j]),
                     "deletion_gain": r_d - float(d_auc[j]), "insertion_gain": float(i_auc[j]) - r_i}
    out["random"] = {"fractions": frac, "deletion": dele[k:].mean(axis=0), "insertion": ins[k:].mean(axis=0),
                     "deletion_auc": r_d, "insertion_auc": r_i, "deletion_auc_std": float(d_auc[k:].std()),
                     "insertion_auc_std": float(i_auc[k:].std()), "n_orders": len(rand)}
    return out


def beats_random(entry: dict) -> bool:
    """True when a map's entry beats the random order on both curves (both gains > 0)."""
    return bool(entry.get("deletion_gain", 0) > 0 and entry.get("insertion_gain", 0) > 0)
