"""What the web app computes, without any web code: analyse an uploaded file once,
then explanations per (method, target class), cached, rendered into a temporary folder.
"""

from __future__ import annotations

import json
import logging
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from emolens.errors import AudioError, EmolensError
from emolens.explain.explanation import Explanation, method_title

log = logging.getLogger("emolens")
__all__ = ["AppConfig", "AppSession", "AppView", "model_card_markdown", "profile_files"]


@dataclass
class AppConfig:
    """Settings of ``emolens app``.

    Attributes:
        host: interface to bind (default ``127.0.0.1``: this machine only).
        port: TCP port (default 7860).
        max_upload_mb: largest accepted upload in MB (default 20).
        max_seconds: longest accepted recording in seconds (default 60).
        lime_samples: LIME perturbations per patch (default 100; the CLI uses 200).
        layer: Grad-CAM layer (default ``vggish``; falls back to the model's own).
        workdir: the only folder the app reads uploads from and writes to (default: a
            fresh temporary folder).
    """

    host: str = "127.0.0.1"
    port: int = 7860
    max_upload_mb: float = 20.0
    max_seconds: float = 60.0
    lime_samples: int = 100
    layer: str = "auto"
    workdir: Path | None = None

    def __post_init__(self) -> None:
        if self.workdir is None:
            self.workdir = Path(tempfile.mkdtemp(prefix="emolens-app-"))
        self.workdir = Path(self.workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)


@dataclass
class AppView:
    """What the page shows for one (recording, method, target)."""

    explanation: Explanation
    probabilities: dict[str, float]
    timeline_png: Path
    map_png: Path
    message: str = ""
    #: the top regions in words (the boxes on ``map_png``), and prosody lines when the model has them
    sentence: str = ""
    prosody: list = field(default_factory=list)
    #: the decision split between the model's streams (one line; "" for a vote head)
    streams: str = ""


@dataclass
class AppSession:
    """One analysed recording and its explanations, keyed by ``(method, target)``."""

    rec: object
    config: AppConfig
    analysis: object = None
    cache: dict = field(default_factory=dict)

    def _checked(self, path: str | Path, what: str = "recording") -> Path:
        p = Path(path)
        if not p.is_file():
            raise AudioError(f"no {what} received; upload a file or record one")
        size_mb = p.stat().st_size / 1e6
        if size_mb > self.config.max_upload_mb:
            raise AudioError(f"{p.name}: {size_mb:.1f} MB is over the {self.config.max_upload_mb:g} MB upload limit")
        return p

    def analyse(self, path: str | Path, adapt: bool = False, neutral: str | Path | None = None):
        """Decode and classify ``path`` (``EmolensError`` for bad, too long or too big input);
        ``adapt``: adapt to the recording's voice, from its own speech (needs the model's
        adaptation statistics and >= ``min_speech_seconds`` of speech, else unadapted with a
        note) or, with ``neutral``, from that recording of the voice speaking neutrally."""
        p = self._checked(path)
        if neutral is not None and not adapt:
            raise AudioError("a neutral clip enrols the voice for adapting: tick 'adapt to this voice' too")
        if adapt:
            from emolens.adaptation.runtime import require_adapter
            from emolens.audio.io import load_audio

            require_adapter(self.rec, unlabelled=neutral is None)
            load = lambda q: load_audio(q, sample_rate=self.rec.frontend.sample_rate,  # noqa: E731
                                        max_seconds=self.config.max_seconds)
            clip = load(p)
            ref = [load(self._checked(neutral, "neutral clip"))] if neutral is not None else None
            self.analysis = self.rec.analyze_clips([clip], groups=["speaker"], adapt=True, single_recording=True,
                                                   neutral=ref)[0]
            g = self.rec.last_adaptation[0]
            clip.notes.append(g.message() if g.adapted else f"not adapted: {g.reason}")
        else:
            self.analysis = self.rec.analyze(p, max_seconds=self.config.max_seconds)
        self.cache = {}
        return self.analysis

    def explanation(self, method: str, target: str | None = None, progress=None, contrast: bool = False) -> Explanation:
        """The explanation for ``method`` and ``target`` (default: the prediction),
        computed once; ``contrast``: the regions explain the target against the
        runner-up class. ``progress(step, done, total)`` reports LIME/Occlusion progress."""
        from emolens.explain.pipeline import explain

        if self.analysis is None:
            raise EmolensError("analyse a recording first")
        target = target or getattr(self.analysis, "emotion", self.analysis.label)
        key = (method, target, bool(contrast))
        if key not in self.cache:
            self.cache[key] = explain(self.rec, self.analysis, methods=[method], target=target,
                                      layer=self.config.layer, lime_samples=self.config.lime_samples,
                                      with_faithfulness=False, progress=progress or False,
                                      contrast=bool(contrast))
        return self.cache[key]

    def view(self, method: str, target: str | None = None, progress=None, contrast: bool = False) -> AppView:
        """Compute (or reuse) and render the explanation into the work folder."""
        from emolens.report.explain_figures import plot_four_panel
        from emolens.report.patch_timeline import plot_patch_timeline

        ex = self.explanation(method, target, progress, contrast)
        folder = Path(tempfile.mkdtemp(prefix="view-", dir=self.config.workdir))
        timeline = plot_patch_timeline(ex, folder / "timeline.png")
        map_png = plot_four_panel(ex.log_mel, {f"{method_title(method)} for {ex.target_label}": ex.maps[method]},
                                  folder / "map.png", title=None, cfg=self.rec.frontend, boxes=ex.boxes)  # the page says the rest
        msg = "; ".join(ex.notes)
        if ex.speech is not None and not np.all(ex.speech):
            msg = (msg + "; " if msg else "") + f"{int((~ex.speech).sum())} of {len(ex.speech)} patches are not speech"
        return AppView(ex, {c: float(p) for c, p in zip(ex.classes, ex.probs)}, timeline, map_png, msg,
                       sentence=ex.sentence, prosody=[getattr(p, "text", str(p)) for p in ex.prosody],
                       streams=ex.streams.text if ex.streams is not None else "")


def model_card_markdown(run_dir: str | Path | None) -> str:
    """``MODEL_CARD.md`` of the run, else a summary of ``model.json`` / ``metrics.json``."""
    if run_dir is None:
        return "No model directory."
    d = Path(run_dir)
    if (d / "MODEL_CARD.md").is_file():
        return (d / "MODEL_CARD.md").read_text(encoding="utf-8")
    lines = [f"## Model `{d.name}`", "", "(no MODEL_CARD.md in the run directory: summary of model.json and metrics.json)", ""]
    for name in ("model.json", "metrics.json"):
        try:
            data = json.loads((d / name).read_text()) if (d / name).is_file() else {}
        except json.JSONDecodeError:
            data = {}
        if name == "model.json" and data:
            lines += [f"- model kind: {data.get('model')}", f"- streams: {', '.join(data.get('streams', []))}",
                      f"- classes: {', '.join(data.get('classes', []))}",
                      *[f"- {n} pretrained: {data[k]}" for n, k in (("YAMNet", "yamnet_pretrained"), ("VGGish", "vggish_pretrained"))
                        if data.get(k) is not None],
                      f"- Gaussian Data Selection: {(data.get('gds') or {}).get('enabled')}"]
        if name == "metrics.json" and data:
            lines += ["", "| metric | mean | std |", "|---|---|---|"]
            for k in ("accuracy", "uar", "f1_macro"):
                if data.get(k) is not None:
                    lines.append(f"| {k} | {data[k]:.3f} | {data.get(k + '_std', float('nan')):.3f} |")
            lines.append(f"\n{data.get('n_folds')} speaker-independent folds ({data.get('fold_spec')}).")
    return "\n".join(lines)


def profile_files(run_dir: str | Path | None) -> tuple[Path | None, dict | None]:
    """``profile.png`` and parsed ``profile.json`` of the run directory (or its
    ``profile/`` folder) when present."""
    if run_dir is None:
        return None, None
    for d in (Path(run_dir), Path(run_dir) / "profile"):
        png, js = d / "profile.png", d / "profile.json"
        if png.is_file() or js.is_file():
            try:
                data = json.loads(js.read_text()) if js.is_file() else None
            except json.JSONDecodeError:
                data = None
            return (png if png.is_file() else None), data
    return None, None
