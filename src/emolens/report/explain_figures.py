"""Figures for explanations (PNG): the four-panel comparison (thesis figures 26-29),
the focused-audio waveform (30-31), the per-emotion frequency profile (24) and the
deletion/insertion curves.

Uses :class:`matplotlib.figure.Figure` directly (no pyplot state, Agg rendering).
Spectrogram axes: time in seconds (x), mel bands drawn evenly with their centre
frequencies in Hz as tick labels (y).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from emolens.features.mel import VGGISH_16K, FrontEndConfig, mel_band_centers

__all__ = ["plot_four_panel", "plot_focus", "plot_profile", "plot_faithfulness", "plot_regions", "draw_boxes"]

#: Maps that are >= 0 by construction use a sequential colour map, others diverge at 0.
_SIGNED = ("LIME", "Occlusion")


def _save(fig: Figure, path: str | Path) -> Path:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(p, format="png", dpi=120, bbox_inches="tight")
    return p


def _band_ticks(ax, n_mels: int, cfg: FrontEndConfig, n_ticks: int = 6) -> None:
    hz = mel_band_centers(cfg)
    idx = np.unique(np.linspace(0, n_mels - 1, n_ticks).round().astype(int))
    ax.set_yticks(idx)
    ax.set_yticklabels([f"{hz[i]:.0f}" for i in idx])


def draw_boxes(ax, boxes, cfg: FrontEndConfig = VGGISH_16K, labels: bool = True) -> None:
    """Outline region boxes (:class:`~emolens.explain.region_summary.RegionBox`) on a
    spectrogram axis drawn with time in seconds (x) and mel band index (y): evidence
    for solid lime, numbered by rank with its share; counter-evidence dashed cyan."""
    from matplotlib.patches import Rectangle

    fs = cfg.hop_length / cfg.sample_rate
    rank = 0
    for b in boxes:
        pos = b.sign > 0
        x0, x1 = b.frames[0] * fs, b.frames[1] * fs
        y0, y1 = b.bands[0] - 0.5, b.bands[1] - 0.5
        colour = "lime" if pos else "cyan"
        ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, edgecolor=colour, linewidth=2.2,
                               linestyle="-" if pos else "--", gid="region-box"))
        if labels:
            rank += pos
            text = f"{rank}: {b.share:.0%}" if pos else f"against {b.share:.0%}"
            # evidence labelled inside the top-left corner, counter-evidence under the box's bottom edge
            if pos:
                y, va = y1 - 0.6, "top"
            else:  # under the box, or above it when the box sits on the lowest band
                y, va = (y0 - 0.4, "top") if y0 > 3 else (y1 + 0.4, "bottom")
            ax.text(x0 + 0.01, y, text, color=colour, fontsize=8, fontweight="bold",
                    va=va, ha="left", bbox=dict(facecolor="black", alpha=0.55, pad=1.0, linewidth=0))


def plot_regions(
    log_mel: np.ndarray,
    boxes,
    path: str | Path,
    title: str | None = None,
    sentence: str | None = None,
    cfg: FrontEndConfig = VGGISH_16K,
) -> Path:
    """The spectrogram ``(n_frames, 64)`` with the top region boxes outlined (see
    :func:`draw_boxes`) and the sentence that words them under it."""
    spec = np.asarray(log_mel, dtype=np.float64)
    if spec.ndim != 2:
        raise ValueError(f"log_mel must be (n_frames, n_mels), got shape {spec.shape}")
    n_frames, n_mels = spec.shape
    extent = (0.0, n_frames * cfg.hop_length / cfg.sample_rate, -0.5, n_mels - 0.5)
    fig = Figure(figsize=(10, 4.4), layout="constrained")
    ax = fig.subplots()
    im = ax.imshow(spec.T, origin="lower", aspect="auto", extent=extent, cmap="magma")
    fig.colorbar(im, ax=ax, fraction=0.03, pad=0.01, label="log mel")
    draw_boxes(ax, boxes, cfg)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("frequency (Hz, mel band centre)")
    _band_ticks(ax, n_mels, cfg)
    if title:
        ax.set_title(title)
    if sentence:
        import textwrap

        fig.supxlabel("\n".join(textwrap.wrap(sentence, 130)), fontsize=9)
    return _save(fig, path)


def plot_four_panel(
    log_mel: np.ndarray,
    maps: Mapping[str, np.ndarray],
    path: str | Path,
    title: str | None = None,
    cfg: FrontEndConfig = VGGISH_16K,
    boxes=None,
) -> Path:
    """Spectrogram ``(n_frames, 64)`` and each map in ``maps`` (e.g. Grad-CAM, LIME,
    Occlusion; same shape) overlaid on it, side by side. Grad-CAM uses ``jet`` from 0;
    signed maps (LIME, Occlusion) ``RdBu_r`` centred on 0. ``boxes``: region boxes
    outlined on the spectrogram panel (:func:`draw_boxes`)."""
    spec = np.asarray(log_mel, dtype=np.float64)
    if spec.ndim != 2:
        raise ValueError(f"log_mel must be (n_frames, n_mels), got shape {spec.shape}")
    n_frames, n_mels = spec.shape
    extent = (0.0, n_frames * cfg.hop_length / cfg.sample_rate, -0.5, n_mels - 0.5)
    fig = Figure(figsize=(4.2 * (1 + len(maps)), 3.6), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, 1 + len(maps), sharey=True))
    im = axes[0].imshow(spec.T, origin="lower", aspect="auto", extent=extent, cmap="magma")
    axes[0].set_title("Log-mel spectrogram" + (" and top regions" if boxes else ""))
    if boxes:
        draw_boxes(axes[0], boxes, cfg)
    fig.colorbar(im, ax=axes[0], fraction=0.046, pad=0.02, label="log mel")
    for ax, (name, m) in zip(axes[1:], maps.items()):
        m = np.asarray(m, dtype=np.float64)
        if m.shape != spec.shape:
            raise ValueError(f"{name} map has shape {m.shape}, spectrogram {spec.shape}")
        ax.imshow(spec.T, origin="lower", aspect="auto", extent=extent, cmap="gray")
        # colour limits at the 99.5th percentile of |map|: pixel-level gradient maps are
        # spiky, and a few extreme cells would otherwise wash out the rest
        if name in _SIGNED or m.min() < 0:
            lim = float(np.percentile(np.abs(m), 99.5)) or float(np.abs(m).max()) or 1.0
            over = ax.imshow(m.T, origin="lower", aspect="auto", extent=extent, cmap="RdBu_r",
                             vmin=-lim, vmax=lim, alpha=0.6)
        else:
            over = ax.imshow(m.T, origin="lower", aspect="auto", extent=extent, cmap="jet",
                             vmin=0.0, vmax=float(np.percentile(m, 99.5)) or float(m.max()) or 1.0, alpha=0.5)
        ax.set_title(name)
        fig.colorbar(over, ax=ax, fraction=0.046, pad=0.02)
    for ax in axes:
        ax.set_xlabel("time (s)")
    axes[0].set_ylabel("frequency (Hz, mel band centre)")
    _band_ticks(axes[0], n_mels, cfg)
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def plot_focus(
    wave: np.ndarray,
    sr: int,
    mask: np.ndarray,
    path: str | Path,
    title: str | None = None,
    activation: np.ndarray | None = None,
) -> Path:
    """Waveform with the focus regions of bool ``mask`` ``(n_samples,)`` shaded, and
    optionally the smoothed ``activation`` ``(n_samples,)`` on a second axis."""
    w = np.asarray(wave, dtype=np.float64)
    m = np.asarray(mask, dtype=bool)
    if m.shape != w.shape:
        raise ValueError(f"mask {m.shape} and wave {w.shape} differ")
    t = np.arange(w.size) / sr
    fig = Figure(figsize=(10, 3.2), layout="constrained")
    ax = fig.subplots()
    ax.plot(t, w, color="0.35", linewidth=0.5)
    edges = np.diff(np.concatenate([[0], m.astype(np.int8), [0]]))
    for s, e in zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)):
        ax.axvspan(s / sr, e / sr, color="tab:orange", alpha=0.3, linewidth=0)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("amplitude")
    ax.set_xlim(0, max(t[-1] if t.size else 0.0, 1e-3))
    if activation is not None:
        tw = ax.twinx()
        tw.plot(t, np.asarray(activation, dtype=np.float64), color="tab:red", linewidth=1.0)
        tw.set_ylabel("smoothed activation", color="tab:red")
    ax.set_title(title or f"focus: {100.0 * m.mean() if m.size else 0:.0f}% of the clip kept")
    return _save(fig, path)


def plot_profile(
    profile: Mapping,
    band_hz: np.ndarray,
    path: str | Path,
    title: str | None = "Explanation mass per frequency band",
    log_x: bool = True,
) -> Path:
    """One line per emotion (profile mean, from :func:`frequency_profile`) with a
    shaded +-std band; x = band centre in Hz."""
    hz = np.asarray(band_hz, dtype=np.float64)
    fig = Figure(figsize=(8, 4.2), layout="constrained")
    ax = fig.subplots()
    for label, prof in profile.items():
        mean, std = np.asarray(prof.mean), np.asarray(prof.std)
        line, = ax.plot(hz, mean, label=f"{label} (n={prof.n})")
        ax.fill_between(hz, np.clip(mean - std, 0, None), mean + std, color=line.get_color(), alpha=0.15)
    if log_x:
        ax.set_xscale("log")
    ax.set_xlabel("frequency (Hz)")
    ax.set_ylabel("share of the map (sums to 1)")
    ax.legend(fontsize="small")
    if title:
        ax.set_title(title)
    return _save(fig, path)


def plot_faithfulness(curves: Mapping[str, dict], path: str | Path, title: str | None = None) -> Path:
    """Deletion and insertion curves (from :mod:`emolens.explain.faithfulness`), one
    line per entry with its AUC; an entry named ``random`` is drawn dashed grey."""
    fig = Figure(figsize=(10, 3.8), layout="constrained")
    axes = fig.subplots(1, 2, sharey=True)
    for kind, ax in zip(("deletion", "insertion"), axes):
        for name, res in curves.items():
            style = dict(color="0.5", linestyle="--") if name == "random" else {}
            ax.plot(res["fractions"], res[kind], label=f"{name} (AUC {res[kind + '_auc']:.3f})", **style)
        ax.set_title(kind)
        ax.set_xlabel("fraction of blocks " + ("removed" if kind == "deletion" else "revealed"))
        ax.set_xlim(0, 1)
        ax.legend(fontsize="small")
    axes[0].set_ylabel("target probability")
    if title:
        fig.suptitle(title)
    return _save(fig, path)
