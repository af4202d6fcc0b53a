"""The timeline figure: emotion probabilities over time and the segment labels."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

from emolens.timeline import NO_SPEECH, Timeline  # noqa: E402

_NO_SPEECH_COLOUR = "#d9d9d9"


def plot_timeline(tl: Timeline, path: str | Path, title: str | None = None) -> Path:
    """Top: a band of segment labels; bottom: each class's (smoothed) probability per
    patch, greyed where patches carry no speech. Time in minutes past 2 minutes."""
    colours = {c: plt.get_cmap("tab10")(i % 10) for i, c in enumerate(tl.classes)}
    colours[NO_SPEECH] = _NO_SPEECH_COLOUR
    minutes = tl.duration > 120
    scale, unit = (60.0, "min") if minutes else (1.0, "s")
    fig, (band, ax) = plt.subplots(2, 1, figsize=(12, 4), sharex=True, gridspec_kw={"height_ratios": [1, 4]})
    for s in tl.segments:
        band.axvspan(s.start / scale, s.end / scale, color=colours[s.label], lw=0)
    band.set_yticks([])
    band.set_ylabel("label", rotation=0, ha="right", va="center")
    t = (tl.starts + tl.ends) / 2 / scale
    for i, c in enumerate(tl.classes):
        y = np.where(tl.voting, tl.patch_probs[:, i], np.nan)
        ax.plot(t, y, color=colours[c], lw=0.8 if len(t) > 2000 else 1.2, label=c)
    ax.set_ylim(0, 1)
    ax.set_xlim(0, max(tl.duration, 1e-3) / scale)
    ax.set_xlabel(f"time ({unit})")
    ax.set_ylabel("probability")
    handles = [Patch(color=colours[c], label=c) for c in [*tl.classes, NO_SPEECH]]
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=len(handles), fontsize=8, frameon=False)
    smooth = f", smoothed over {tl.config.smooth} patches" if tl.config.smooth > 1 else ""
    fig.suptitle(title or f"{Path(tl.path).name}: {tl.duration / scale:.1f} {unit}{smooth}")
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(p, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return p


__all__ = ["plot_timeline"]
