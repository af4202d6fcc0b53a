"""What Gaussian Data Selection dropped: counts, energy of dropped vs kept patches, figure.

Silence measures (from the log-mel patches, VGGish offset 0.01):

* frame power = mean over bands of the squared linear mel, ``(exp(log_mel) - 0.01)^2``;
* a frame is *silent* when its power is more than ``silence_db`` (40 dB) under the
  loudest frame of its utterance (all patches with the same utterance id);
* a patch is *mostly silent* when more than ``silent_frames`` (half) of its frames are
  silent (end padding is digital silence, so a padded tail counts as silent);
* a patch's *level* is its mean frame power in dB relative to the utterance's loudest
  frame (floored at :data:`DB_FLOOR`).

:func:`plot_gds` draws one PNG with :class:`matplotlib.figure.Figure` (Agg, no pyplot).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from emolens.errors import EmolensError
from emolens.selection.gds import GDSResult

__all__ = [
    "DB_FLOOR",
    "frame_power_db",
    "gds_summary",
    "patch_silence",
    "plot_gds",
]

#: Lowest level reported, in dB relative to the utterance peak.
DB_FLOOR: float = -100.0
#: A frame this many dB under its utterance's loudest frame is silent.
SILENCE_DB: float = 40.0
#: A patch with more than this fraction of silent frames is mostly silent.
SILENT_FRAMES: float = 0.5
#: Log offset of the patches (VGGish).
LOG_OFFSET: float = 0.01


def frame_power_db(patches: np.ndarray, offset: float = LOG_OFFSET) -> np.ndarray:
    """Frame power in dB (absolute), ``(N, frames, bands)`` log-mel -> ``(N, frames)``."""
    lin = np.maximum(np.exp(np.asarray(patches, dtype=np.float64)) - offset, 0.0)
    power = np.mean(lin * lin, axis=-1)
    return 10.0 * np.log10(np.maximum(power, 1e-30))


def patch_silence(
    patches: np.ndarray,
    utterance_ids: Sequence | np.ndarray | None = None,
    silence_db: float = SILENCE_DB,
    offset: float = LOG_OFFSET,
) -> tuple[np.ndarray, np.ndarray]:
    """Per patch: (fraction of silent frames, level in dB re the utterance peak), both ``(N,)``.

    Without ``utterance_ids`` each patch is its own utterance.
    """
    db = frame_power_db(patches, offset)
    n = db.shape[0]
    groups = np.arange(n) if utterance_ids is None else np.asarray(utterance_ids)
    _, inv = np.unique(groups, return_inverse=True)
    peak = np.full(inv.max() + 1, -np.inf)
    np.maximum.at(peak, inv, db.max(axis=1))
    rel = db - peak[inv][:, None]
    silent = np.mean(rel < -silence_db, axis=1)
    mean_power = np.mean(10.0 ** (db / 10.0), axis=1)
    level = 10.0 * np.log10(np.maximum(mean_power, 1e-30)) - peak[inv]
    return silent, np.maximum(level, DB_FLOOR)


def _positions(utterance_ids: np.ndarray) -> np.ndarray:
    """Index of each patch within its utterance, in order of appearance."""
    _, inv = np.unique(utterance_ids, return_inverse=True)
    pos = np.zeros(inv.size, dtype=np.int64)
    seen: dict[int, int] = {}
    for i, u in enumerate(inv):
        pos[i] = seen.get(u, 0)
        seen[u] = pos[i] + 1
    return pos


def _group_stats(mask: np.ndarray, mu: np.ndarray, silent: np.ndarray | None, level: np.ndarray | None,
                 silent_frames: float) -> dict[str, Any] | None:
    if not mask.any():
        return None
    out: dict[str, Any] = {"patches": int(mask.sum()), "mean_log_mel": float(mu[mask].mean())}
    if silent is not None and level is not None:
        out["mean_level_db"] = float(level[mask].mean())
        out["mostly_silent_fraction"] = float(np.mean(silent[mask] > silent_frames))
        out["mean_silent_frame_fraction"] = float(silent[mask].mean())
    return out


def gds_summary(
    result: GDSResult,
    labels: Sequence | np.ndarray | None,
    utterance_ids: Sequence | np.ndarray | None,
    patches: np.ndarray | None = None,
    *,
    silence_db: float = SILENCE_DB,
    silent_frames: float = SILENT_FRAMES,
    offset: float = LOG_OFFSET,
) -> dict[str, Any]:
    """Counts and energy of what :meth:`GaussianDataSelector.select` dropped, JSON-ready.

    Keys: patches_before, patches_after, dropped_fraction, threshold, forced_patches,
    per_class {label: {before, after}}, utterances, utterances_with_forced_keep,
    per_position {index in utterance: {before, after}}, energy {kept, dropped} with
    mean_log_mel (the patch mean) and, when ``patches`` is given, mean_level_db,
    mostly_silent_fraction and mean_silent_frame_fraction (see the module docstring).
    """
    keep = np.asarray(result.keep, dtype=bool)
    n = keep.size
    lab = np.full(n, "all") if labels is None else np.asarray(labels).astype(str)
    if lab.shape != (n,):
        raise EmolensError(f"labels has shape {lab.shape}; expected one per patch ({n},)")
    utt = np.arange(n) if utterance_ids is None else np.asarray(utterance_ids)
    if utt.shape != (n,):
        raise EmolensError(f"utterance_ids has shape {utt.shape}; expected one per patch ({n},)")
    forced = result.forced if result.forced.size == n else np.zeros(n, dtype=bool)
    per_class = {
        str(c): {"before": int(np.sum(lab == c)), "after": int(np.sum(keep & (lab == c)))} for c in np.unique(lab)
    }
    pos = _positions(utt)
    per_position = {
        int(p): {"before": int(np.sum(pos == p)), "after": int(np.sum(keep & (pos == p)))} for p in np.unique(pos)
    }
    silent = level = None
    if patches is not None:
        silent, level = patch_silence(patches, utterance_ids, silence_db, offset)
    mu = np.asarray(result.mu, dtype=np.float64)
    return {
        "patches_before": int(n),
        "patches_after": int(keep.sum()),
        "dropped_fraction": float(1.0 - keep.sum() / max(n, 1)),
        "threshold": float(result.threshold),
        "forced_patches": int(forced.sum()),
        "per_class": per_class,
        "utterances": int(np.unique(utt).size),
        "utterances_with_forced_keep": int(np.unique(utt[forced]).size),
        "per_position": per_position,
        "energy": {
            "kept": _group_stats(keep, mu, silent, level, silent_frames),
            "dropped": _group_stats(~keep, mu, silent, level, silent_frames),
        },
        "silence_definition": {"silence_db": silence_db, "silent_frames": silent_frames},
    }


def _examples(idx: np.ndarray, scores: np.ndarray, k: int) -> np.ndarray:
    """``k`` indices spread evenly over ``idx`` sorted by score (lowest first)."""
    if idx.size == 0 or k <= 0:
        return idx[:0]
    ordered = idx[np.argsort(scores[idx], kind="stable")]
    picks = np.unique(np.round(np.linspace(0, ordered.size - 1, min(k, ordered.size))).astype(int))
    return ordered[picks]


def plot_gds(
    result: GDSResult,
    patches: np.ndarray,
    labels: Sequence | np.ndarray | None,
    path: str | Path,
    *,
    n_examples: int = 3,
    frame_seconds: float = 0.01,
    title: str | None = None,
) -> Path:
    """Save the GDS figure as a PNG and return its path.

    Top left: patches per class before/after; top right: histogram of normalised scores
    (kept vs dropped) with the threshold; bottom: ``n_examples`` kept and dropped patches
    (log-mel, time in s on x, mel band on y, spread over the score range), titled with
    their scores.
    """
    keep = np.asarray(result.keep, dtype=bool)
    scores = np.asarray(result.scores, dtype=np.float64)
    x = np.asarray(patches)
    if x.ndim != 3 or x.shape[0] != keep.size:
        raise EmolensError(f"patches of shape {x.shape} do not match {keep.size} selection results")
    lab = np.full(keep.size, "all") if labels is None else np.asarray(labels).astype(str)
    classes = list(np.unique(lab))
    n_ex = max(1, n_examples)

    fig = Figure(figsize=(max(12.0, 2.6 * 2 * n_ex), 8.5), constrained_layout=True)
    gs = fig.add_gridspec(2, 2 * n_ex, height_ratios=[1.0, 1.0])

    ax = fig.add_subplot(gs[0, :n_ex])
    before = np.array([np.sum(lab == c) for c in classes])
    after = np.array([np.sum(keep & (lab == c)) for c in classes])
    pos = np.arange(len(classes))
    ax.bar(pos - 0.2, before, 0.4, label="before", color="#9e9e9e")
    ax.bar(pos + 0.2, after, 0.4, label="after GDS", color="#1f77b4")
    for p, b, a in zip(pos, before, after):
        ax.annotate(f"-{100.0 * (1 - a / b):.0f}%" if b else "", (p + 0.2, a), ha="center", va="bottom", fontsize=8)
    ax.set_xticks(pos, classes)
    ax.set_ylabel("patches")
    ax.set_title(f"patches per class: {keep.size} -> {keep.sum()} ({100.0 * (1 - keep.mean()):.1f}% dropped)")
    ax.legend(loc="lower right")

    ax = fig.add_subplot(gs[0, n_ex:])
    finite = scores[np.isfinite(scores)]
    bins = np.linspace(finite.min(), finite.max(), 60) if finite.size and np.ptp(finite) > 0 else 20
    ax.hist([scores[keep], scores[~keep]], bins=bins, stacked=True, color=["#1f77b4", "#d62728"],
            label=["kept", "dropped"])
    if np.isfinite(result.threshold):
        ax.axvline(result.threshold, color="k", ls="--", lw=1.2, label=f"threshold {result.threshold:.2f}")
    ax.set_xlabel(f"normalised score ({result.config.normalize}, {result.config.correlation}, {result.config.scope})")
    ax.set_ylabel("patches")
    ax.set_title("GDS scores")
    ax.legend()

    kept_ex = _examples(np.flatnonzero(keep), scores, n_ex)
    drop_ex = _examples(np.flatnonzero(~keep), scores, n_ex)
    shown = np.concatenate([kept_ex, drop_ex])
    vmin = float(np.log(LOG_OFFSET))
    vmax = float(x[shown].max()) if shown.size else 0.0
    frames, bands = x.shape[1], x.shape[2]
    for col, (kind, idx) in enumerate([("kept", i) for i in kept_ex] + [("dropped", i) for i in drop_ex]):
        ax = fig.add_subplot(gs[1, col])
        im = ax.imshow(x[idx].T, origin="lower", aspect="auto", cmap="magma", vmin=vmin, vmax=max(vmax, vmin + 1e-3),
                       extent=(0.0, frames * frame_seconds, 0.0, bands))
        ax.set_title(f"{kind} #{idx} ({lab[idx]})\nscore {scores[idx]:.2f}", fontsize=9,
                     color="#1f77b4" if kind == "kept" else "#d62728")
        ax.set_xlabel("time (s)")
        if col == 0:
            ax.set_ylabel("mel band")
    if shown.size:
        fig.colorbar(im, ax=fig.axes[2:], shrink=0.8, label="log(mel + 0.01)")
    if title:
        fig.suptitle(title)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    return out
