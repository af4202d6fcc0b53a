"""Figure: the emotion timeline of one recording, per patch (PNG).

One line per class (patch probability at the patch centre, stepped over the patch's
hop), patches left out of the utterance decision shaded grey (GDS-dropped) or
hatched (non-speech, when speech gating is available), the waveform underneath.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from emolens.explain.explanation import Explanation

__all__ = ["plot_patch_timeline"]


def plot_patch_timeline(ex: Explanation, path: str | Path, title: str | None = None) -> Path:
    """Patch probabilities over time for ``ex`` (``patch_probs`` ``(n, C)`` at
    ``patch_times`` ``(n, 2)`` s) above its waveform; saves a PNG to ``path``."""
    t = np.asarray(ex.patch_times, dtype=np.float64)
    pp = np.asarray(ex.patch_probs, dtype=np.float64)
    fig = Figure(figsize=(10, 4.2), layout="constrained")
    ax, wax = fig.subplots(2, 1, sharex=True, height_ratios=[3, 1])
    centres = t.mean(axis=1) if len(t) else np.zeros(0)
    for c, name in enumerate(ex.classes):
        ax.plot(centres, pp[:, c], "-o", markersize=4, label=name, linewidth=1.6 if c == int(np.argmax(ex.probs)) else 1.0)
    half = (t[1, 0] - t[0, 0]) / 2 if len(t) > 1 else (t[0, 1] - t[0, 0]) / 2 if len(t) else 0.5
    handles = []
    for i, (c0, keep, vote) in enumerate(zip(centres, ex.keep, ex.voting)):
        if not keep:
            ax.axvspan(c0 - half, c0 + half, color="0.6", alpha=0.35, linewidth=0)
        elif ex.speech is not None and not ex.speech[i]:
            ax.axvspan(c0 - half, c0 + half, facecolor="none", edgecolor="0.4", hatch="//", linewidth=0)
    if ex.keep.size and not ex.keep.all():
        handles.append(Patch(color="0.6", alpha=0.35, label="dropped by GDS"))
    if ex.speech is not None and not np.all(ex.speech):
        handles.append(Patch(facecolor="none", edgecolor="0.4", hatch="//", label="non-speech"))
    ax.set_ylim(0, 1)
    ax.set_ylabel("patch probability")
    ax.legend(handles=ax.get_legend_handles_labels()[0] + handles, fontsize="small", loc="upper right", ncol=2)
    ax.grid(alpha=0.3)
    ax.set_title(title or f"emotion per patch (utterance: {ex.label} {ex.confidence:.2f})")
    w = np.asarray(ex.wave, dtype=np.float64)
    wax.plot(np.arange(w.size) / ex.sample_rate, w, color="0.35", linewidth=0.4)
    wax.set_xlabel("time (s)")
    wax.set_yticks([])
    wax.set_xlim(0, max(ex.duration, 1e-3))
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(p, format="png", dpi=100, bbox_inches="tight")
    return p
