"""The explanation of one recording as one data object.

:func:`emolens.explain.pipeline.explain` computes an :class:`Explanation`; the CLI
writes it to files (:func:`emolens.report.explanation_files.write_explanation`), the
HTML report embeds it and the web app displays it. Nothing here renders or writes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from emolens.explain.sonify import focus_regions
from emolens.selection.speech import NO_SPEECH

#: Display names of the attribution methods (any other name is shown as given).
def _titles() -> dict[str, str]:
    from emolens.explain.methods import METHODS

    return {k: m.title for k, m in METHODS.items()}


TITLES = _titles()


def method_title(name: str) -> str:
    return TITLES.get(name, name)


@dataclass
class Explanation:
    """Everything ``emolens explain`` knows about one recording.

    Attributes:
        file: source path (``None`` for an in-memory clip).
        classes: class names ``(C,)``.
        probs: ``(C,)`` utterance probabilities (mean over the kept patches).
        patch_probs: ``(n_patches, C)`` softmax per patch.
        keep: ``(n_patches,)`` bool, GDS decision.
        voting: ``(n_patches,)`` bool, patches that entered the utterance decision
            (``keep``, and speech where speech gating is available).
        speech: ``(n_patches,)`` bool speech flag per patch, ``None`` when the model
            does not gate on speech.
        patch_times: ``(n_patches, 2)`` start/end of each patch in seconds.
        target: index of the class explained (the prediction unless asked otherwise).
        log_mel: ``(n_frames, 64)`` log-mel spectrogram (10 ms frames).
        maps: ``{method: (n_frames, 64)}`` attribution per method, stitched over the
            whole recording.
        wave: ``(n_samples,)`` float32 16 kHz mono audio; ``sample_rate`` in Hz.
        focus_method: the method whose map drove the focus audio (``None``: no map).
        focus_mask: ``(n_samples,)`` bool, samples the focus keeps.
        focus_activation: ``(n_samples,)`` smoothed activation behind ``focus_mask``.
        focus_audio: ``(n_samples,)`` float32, the audio outside the focus silenced.
        tf_audio: ``(n_samples,)`` float32, only the top time-frequency cells kept.
        faithfulness: ``{method|"random": curves}`` from
            :func:`emolens.explain.faithfulness.faithfulness` (empty when skipped).
        cost: ``{method: {forward_calls, backward_calls, patches_evaluated, seconds}}``.
        layer: Grad-CAM layer used; ``true_label``: label known from a manifest.
        notes: remarks about the input (resampled, padded, ...).
        regions: the decision attributed to regions (time units x mel-band groups,
            :class:`~emolens.explain.region_attribution.RegionAttribution`), or ``None``.
        boxes: the top regions as boxes (:class:`~emolens.explain.region_summary.RegionBox`),
            evidence first, then counter-evidence; ``sentence``: them in words.
        region_faithfulness: region-level deletion/insertion of ``regions`` against
            random region orders (``{"regions": curves, "random": curves}``).
        prosody: lines explaining the decision in prosodic terms (models with an
            eGeMAPS stream, :mod:`emolens.explain.prosody`), else empty.
        streams: the decision split between the model's input streams (spectrogram, the
            map's; prosody; Whisper) by exact Shapley values
            (:class:`~emolens.explain.streams.StreamShares`), or ``None`` (a vote head).
    """

    file: str | None
    classes: list[str]
    probs: np.ndarray
    patch_probs: np.ndarray
    keep: np.ndarray
    voting: np.ndarray
    speech: np.ndarray | None
    patch_times: np.ndarray
    target: int
    log_mel: np.ndarray
    maps: dict[str, np.ndarray]
    wave: np.ndarray
    sample_rate: int
    focus_method: str | None = None
    focus_mask: np.ndarray | None = None
    focus_activation: np.ndarray | None = None
    focus_audio: np.ndarray | None = None
    tf_audio: np.ndarray | None = None
    faithfulness: dict[str, dict] = field(default_factory=dict)
    cost: dict[str, dict] = field(default_factory=dict)
    layer: str | None = None
    true_label: str | None = None
    target_given: bool = False
    notes: list[str] = field(default_factory=list)
    extra: dict = field(default_factory=dict)
    #: False when the speech gate found no speech: the label is then "no speech"
    has_speech: bool = True
    regions: object | None = None
    boxes: list = field(default_factory=list)
    sentence: str = ""
    region_faithfulness: dict[str, dict] = field(default_factory=dict)
    prosody: list = field(default_factory=list)
    streams: object | None = None

    @property
    def contrast_label(self) -> str | None:
        """The class the target is explained against (``None``: no contrast)."""
        c = getattr(self.regions, "contrast", None)
        return None if c is None else self.classes[c]

    @property
    def label(self) -> str:
        """Predicted class, or ``"no speech"`` when the recording has none."""
        return self.emotion if self.has_speech else NO_SPEECH

    @property
    def emotion(self) -> str:
        """The most probable emotion (also without speech)."""
        return self.classes[int(np.argmax(self.probs))]

    @property
    def confidence(self) -> float:
        return float(np.max(self.probs))

    @property
    def target_label(self) -> str:
        return self.classes[self.target]

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return len(self.wave) / float(self.sample_rate)

    @property
    def patch_labels(self) -> list[str]:
        """Arg-max class of each patch."""
        return [self.classes[i] for i in np.argmax(self.patch_probs, axis=1)]

    def title(self) -> str:
        t = (f"true: {self.true_label} | " if self.true_label else "") + f"predicted: {self.label} ({self.confidence:.2f})"
        if self.target_given:
            t += f" | explaining: {self.target_label}"
        return t

    def faithfulness_table(self) -> dict[str, dict[str, float]]:
        """``{method: {deletion_auc, insertion_auc[, deletion_gain, insertion_gain]}}``."""
        keys = ("deletion_auc", "insertion_auc", "deletion_gain", "insertion_gain")
        return {k: {kk: float(v[kk]) for kk in keys if kk in v} for k, v in self.faithfulness.items()}

    def as_dict(self) -> dict:
        """The JSON summary (explanation.json): no arrays except per-patch lists."""
        info = {"file": self.file, "label": self.label, "probability": self.confidence,
                "probabilities": {c: float(p) for c, p in zip(self.classes, self.probs)},
                "patches": int(len(self.keep)), "patches_kept": int(self.keep.sum()),
                "patches_voting": int(self.voting.sum()),
                "duration_s": round(self.duration, 3), "notes": list(self.notes),
                "true_label": self.true_label, "target": self.target_label, "methods": list(self.maps),
                "gradcam_layer": self.layer, "cost": self.cost, "focus_method": self.focus_method,
                "patch_timeline": [{"start_s": round(float(s), 3), "end_s": round(float(e), 3),
                                    "label": lab, "kept": bool(k), "voting": bool(v),
                                    "speech": None if self.speech is None else bool(self.speech[i]),
                                    "probabilities": {c: round(float(p), 4) for c, p in zip(self.classes, pp)}}
                                   for i, ((s, e), lab, k, v, pp) in enumerate(zip(self.patch_times, self.patch_labels, self.keep,
                                                                                  self.voting, self.patch_probs))],
                **self.extra}
        if self.focus_mask is not None:
            info["focus_regions_s"] = [[round(s0, 3), round(s1, 3)] for s0, s1 in focus_regions(self.focus_mask, self.sample_rate)]
            info["focus_fraction"] = float(self.focus_mask.mean()) if self.focus_mask.size else 0.0
        if self.faithfulness:
            info["faithfulness"] = self.faithfulness_table()
        if self.regions is not None:
            reg = self.regions.regions
            info["region_method"] = self.regions.method
            info["contrast"] = self.contrast_label
            info["region_grid"] = {"time_unit": reg.time_unit, "units": reg.n_units, "band_groups": reg.n_groups,
                                   "band_hz": [[round(float(a), 1), round(float(b), 1)] for a, b in reg.band_hz]}
            info["regions"] = [{k: v for k, v in b.as_dict().items() if k in ("start_s", "end_s", "low_hz", "high_hz", "share", "sign", "score")}
                               for b in self.boxes]
            info["sentence"] = self.sentence
            if self.region_faithfulness:
                rf = self.region_faithfulness
                info["region_faithfulness"] = {k: {kk: float(v[kk]) for kk in ("deletion_auc", "insertion_auc", "deletion_gain", "insertion_gain") if kk in v}
                                               for k, v in rf.items()}
        if self.prosody:
            info["prosody"] = [p.as_dict() if hasattr(p, "as_dict") else p for p in self.prosody]
        if self.streams is not None:
            info["streams"] = self.streams.as_dict()
        return info
