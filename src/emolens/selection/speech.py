"""Speech gating: which patches contain a human voice, from YAMNet's own AudioSet head.

YAMNet's 521 sigmoid scores per patch (``FusionNet.forward_with_audioset`` or
:func:`audioset_scores`) become one speech probability per patch: the **maximum** over
the human-voice classes :data:`VOICE_CLASSES` (``yamnet_class_map.csv`` indices: 0-5
speech, narration, babbling, synthesizer; 6-11 shout, bellow, whoop, yell, screaming;
12 whispering; 13-18 laughter; 19-22 crying, whimper, wail; 23 sigh; 24 singing;
29 child singing; 32 humming; 33 groan; 34 grunt). A patch is speech when that
probability is ``>= threshold`` (0.2). A recording has speech when at least
``min_speech_fraction`` (0.1) of its patches, and at least one, are speech.

Why these choices (``benchmarks/speech_gate.py`` prints the figures):

* "Speech" alone misses emotional speech: on ASED 19-20% of the loud happy and sad
  patches (no frame 40 dB under the utterance peak, level above -15 dB) score under 0.5
  on "Speech"; YAMNet hears singing, laughter, whimpering, crying there. The voice-class
  maximum at 0.2 misses 6.4% of the worst class there (sad; happy 5.7%, angry 0.8%,
  neutral 0%) and at most 1.4% of a class's loud patches on EmoDB and RAVDESS.
* Synthesised non-speech (digital silence, dither, white/pink/brown noise at -60 to
  -20 dB, 220 Hz and 1 kHz tones, 50 Hz hum with harmonics, a chord, clicks, an FM
  sweep, amplitude-modulated noise) scores at most 0.06 on the voice maximum, so 0.2
  leaves a margin; every patch of them is non-speech.
* A noisy-OR over the set misses less on ASED (3.1%) but lifts the synthetic maximum
  to 0.20, the threshold itself; the maximum keeps a 3x margin.
* Against GDS: the gate drops every patch of every synthetic signal; GDS fitted on
  EmoDB keeps at least one patch of each (thesis preset, 88% dropped) or drops at most
  the 25% cap (default; tones and hum not at all), so it cannot reject a recording.
* Every utterance of the four corpora has at least 14% speech patches (RAVDESS and ASED
  have about 1 s of silence around short sentences), so ``min_speech_fraction`` 0.1
  calls none of them "no speech" while a silent or noise-only file has 0.

:func:`voting_mask` combines the gate with GDS: the patches that vote for the utterance
decision are speech AND kept by GDS; when that leaves none, the speech patches vote;
when there is no speech patch at all, the GDS-kept patches give the (flagged)
probabilities.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Mapping

import numpy as np

from emolens.errors import SelectionError

__all__ = [
    "AGGREGATIONS",
    "NO_SPEECH",
    "NUM_AUDIOSET_CLASSES",
    "SpeechDecision",
    "SpeechGateConfig",
    "VOICE_CLASSES",
    "audioset_scores",
    "decide",
    "speech_probability",
    "voting_mask",
    "voting_masks",
]

#: Label of a recording without speech (instead of an emotion).
NO_SPEECH: str = "no speech"
#: YAMNet's AudioSet classes.
NUM_AUDIOSET_CLASSES: int = 521
#: Human-voice classes of YAMNet's class map (indices; see the module docstring).
VOICE_CLASSES: tuple[int, ...] = tuple(range(25)) + (29, 32, 33, 34)
#: How the class scores become one probability per patch.
AGGREGATIONS: tuple[str, ...] = ("max", "noisy_or")


@dataclass(frozen=True)
class SpeechGateConfig:
    """Speech gate settings (stored as ``speech_gate`` in model.json).

    Attributes:
        enabled: gate on (default; also for model.json files written before the gate).
        threshold: a patch is speech when its speech probability is ``>=`` this (0.2).
        classes: YAMNet class indices that count as voice (:data:`VOICE_CLASSES`).
        aggregation: "max" (default) or "noisy_or" (``1 - prod(1 - p)``) over ``classes``.
        min_speech_fraction: a recording has speech when at least this fraction of its
            patches (and at least one) are speech (0.1).
    """

    enabled: bool = True
    threshold: float = 0.2
    classes: tuple[int, ...] = VOICE_CLASSES
    aggregation: str = "max"
    min_speech_fraction: float = 0.1

    def __post_init__(self) -> None:
        object.__setattr__(self, "classes", tuple(int(c) for c in self.classes))
        if self.aggregation not in AGGREGATIONS:
            raise SelectionError(f"speech gate aggregation {self.aggregation!r} is unknown; use one of {', '.join(AGGREGATIONS)}")
        if not 0.0 <= self.threshold <= 1.0 or not 0.0 <= self.min_speech_fraction <= 1.0:
            raise SelectionError("speech gate threshold and min_speech_fraction must lie in [0, 1]")
        if not self.classes or min(self.classes) < 0 or max(self.classes) >= NUM_AUDIOSET_CLASSES:
            raise SelectionError(f"speech gate classes must be YAMNet class indices 0-{NUM_AUDIOSET_CLASSES - 1}")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["classes"] = list(self.classes)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> SpeechGateConfig:
        """From model.json's ``speech_gate`` (``None``/absent: the defaults, gate on)."""
        if d is None:
            return cls()
        try:
            return cls(**dict(d))
        except TypeError as exc:
            raise SelectionError(f"model.json speech_gate is not valid ({exc})") from None


@dataclass
class SpeechDecision:
    """Speech gate outcome for one recording of ``n`` patches.

    Attributes:
        speech: ``(n,)`` speech probability per patch, in [0, 1].
        is_speech: ``(n,)`` bool, ``speech >= threshold``.
        speech_fraction: fraction of patches that are speech.
        has_speech: the recording has speech (see :class:`SpeechGateConfig`).
    """

    speech: np.ndarray
    is_speech: np.ndarray
    speech_fraction: float
    has_speech: bool
    config: SpeechGateConfig = field(default_factory=SpeechGateConfig)


def speech_probability(audioset: np.ndarray, config: SpeechGateConfig | None = None) -> np.ndarray:
    """AudioSet sigmoid scores ``(n, 521)`` -> speech probability ``(n,)``."""
    cfg = config or SpeechGateConfig()
    a = np.asarray(audioset, dtype=np.float64)
    if a.ndim != 2 or a.shape[1] != NUM_AUDIOSET_CLASSES:
        raise SelectionError(f"speech gating needs YAMNet's AudioSet scores shaped (n, {NUM_AUDIOSET_CLASSES}), got {a.shape}")
    v = a[:, list(cfg.classes)]
    if cfg.aggregation == "max":
        return v.max(axis=1)
    return 1.0 - np.prod(1.0 - np.clip(v, 0.0, 1.0), axis=1)


def decide(audioset: np.ndarray, config: SpeechGateConfig | None = None) -> SpeechDecision:
    """Speech gate of one recording from its patches' AudioSet scores ``(n, 521)``."""
    cfg = config or SpeechGateConfig()
    p = speech_probability(audioset, cfg)
    is_speech = p >= cfg.threshold
    frac = float(is_speech.mean()) if p.size else 0.0
    has = bool(is_speech.any()) and frac >= cfg.min_speech_fraction
    return SpeechDecision(p, is_speech, frac, has, cfg)


def voting_mask(is_speech: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """Patches that vote for the utterance decision: bool ``(n,)``, never empty for ``n > 0``.

    ``is_speech & keep``; if empty, the speech patches; if there are none, the
    GDS-kept patches; if those are empty too, all patches.
    """
    is_speech = np.asarray(is_speech, dtype=bool)
    keep = np.asarray(keep, dtype=bool)
    if is_speech.shape != keep.shape:
        raise SelectionError(f"speech mask {is_speech.shape} and GDS keep mask {keep.shape} differ in shape")
    for cand in (is_speech & keep, is_speech, keep):
        if cand.any():
            return cand
    return np.ones_like(keep)


def voting_masks(is_speech: np.ndarray, keep: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """:func:`voting_mask` applied to each group (utterance) of a batch: bool ``(N,)``."""
    is_speech = np.asarray(is_speech, dtype=bool)
    keep = np.asarray(keep, dtype=bool)
    if is_speech.shape != keep.shape or keep.shape != np.shape(groups):
        raise SelectionError("speech mask, GDS keep mask and utterance ids differ in shape")
    if keep.size == 0:
        return keep.copy()
    _, inv = np.unique(groups, return_inverse=True)
    out = np.ones_like(keep)
    for cand in (keep, is_speech, is_speech & keep):  # later (preferred) candidates win where non-empty
        has = np.bincount(inv, weights=cand.astype(np.float64), minlength=inv.max() + 1) > 0
        out = np.where(has[inv], cand, out)
    return out


def audioset_scores(yamnet, patches: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """YAMNet's AudioSet scores ``(n, 521)`` for VGGish log-mel patches ``(n, 96, 64)``
    (``log(mel + 0.01)``; converted to YAMNet's offset), for models without a YAMNet branch."""
    import torch

    from emolens.models.fusion import vggish_to_yamnet_input

    out = []
    with torch.no_grad():
        for s in range(0, len(patches), batch_size):
            x = torch.from_numpy(np.ascontiguousarray(patches[s : s + batch_size], dtype=np.float32)).unsqueeze(1)
            out.append(yamnet.scores(vggish_to_yamnet_input(x)).numpy())
    return np.concatenate(out) if out else np.zeros((0, NUM_AUDIOSET_CLASSES), np.float32)
