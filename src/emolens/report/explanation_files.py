"""Writing an :class:`~emolens.explain.explanation.Explanation` to a folder (what
``emolens explain`` leaves per file)::

    explanation.png     spectrogram (top region boxes outlined) + one overlay per method
    regions.png         the spectrogram with the top region boxes and the sentence that words them
    focus.wav/.png      the focus audio and its waveform with the kept spans shaded
    focus_tf.wav        only the top time-frequency cells
    faithfulness.png    deletion / insertion curves
    explanation.json    Explanation.as_dict()
"""

from __future__ import annotations

import json
from pathlib import Path

from emolens.explain.explanation import Explanation, method_title
from emolens.explain.sonify import write_wav
from emolens.features.mel import VGGISH_16K, FrontEndConfig
from emolens.report.explain_figures import plot_faithfulness, plot_focus, plot_four_panel, plot_regions

__all__ = ["write_explanation", "region_title"]


def region_title(ex: Explanation) -> str:
    """``"predicted angry (0.65): top regions for angry rather than happy (occlusion)"``."""
    what = ex.target_label + (f" rather than {ex.contrast_label}" if ex.contrast_label else "")
    return f"{ex.title()}: top regions for {what} ({ex.regions.method})"


def write_explanation(ex: Explanation, out: str | Path, cfg: FrontEndConfig = VGGISH_16K) -> dict:
    """Write the files listed in the module docstring into ``out``; return the JSON dict."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    plot_four_panel(ex.log_mel, {method_title(m): v for m, v in ex.maps.items()}, out / "explanation.png",
                    title=ex.title(), cfg=cfg, boxes=ex.boxes)
    if ex.regions is not None:
        plot_regions(ex.log_mel, ex.boxes, out / "regions.png", title=region_title(ex), sentence=ex.sentence, cfg=cfg)
    if ex.focus_mask is not None:
        write_wav(out / "focus.wav", ex.focus_audio, ex.sample_rate)
        plot_focus(ex.wave, ex.sample_rate, ex.focus_mask, out / "focus.png",
                   title=f"{method_title(ex.focus_method)} focus: {ex.target_label}", activation=ex.focus_activation)
        write_wav(out / "focus_tf.wav", ex.tf_audio, ex.sample_rate)
    if ex.faithfulness:
        plot_faithfulness(ex.faithfulness, out / "faithfulness.png", title=f"deletion / insertion: {ex.target_label}")
    info = ex.as_dict()
    (out / "explanation.json").write_text(json.dumps(info, indent=2))
    return info
