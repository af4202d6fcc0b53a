"""The decision in prosodic terms, for models with an interpretable prosody stream.

A model that feeds utterance functionals (eGeMAPS: pitch, loudness, jitter, ...)
into its decision can say which of them moved it: each functional's contribution is
its Integrated Gradients attribution (Captum) from the **training average** (the
baseline: a voice at the mean of the training data) to this recording's value, of
the target's log-probability (or of its difference to a contrast class). For a
linear head this is exactly ``w * (x - mean)``; in general the contributions sum to
the score change from the average voice (completeness).

Lines read e.g. ``"pitch range 9.0 semitones, above the training average of 5.0
(+0.31 for angry)"``.

The shipped model has a prosody stream (``pooling="mean+prosody"``,
:mod:`emolens.features.prosody`); a recognizer that offers ``prosody_inputs(analysis)``
returning :class:`ProsodyInputs` gets the lines in the CLI, the JSON, the HTML report and
the app (the vote and statistics heads offer none). With ``--adapt --neutral`` the
reference is the training average moved by the voice's enrolment offset ("this voice's
expected value"), and the values stay the recording's own.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch
from captum.attr import IntegratedGradients

__all__ = ["ProsodyInputs", "ProsodyLine", "prosody_contributions", "prosody_lines", "explain_prosody"]


@dataclass(frozen=True)
class ProsodyInputs:
    """What a model with a prosody stream exposes for one recording.

    ``values`` ``(D,)`` functionals of this recording; ``names`` / ``units`` ``(D,)``
    (e.g. "pitch range", "semitones"); ``train_mean`` ``(D,)`` their training
    average; ``score_fn``: functionals ``(B, D)`` -> class log-probabilities ``(B, C)``
    with the rest of the model's input held fixed; ``reference``: what ``train_mean`` is,
    in words (the IG baseline; the training average, or a voice's expected value)."""

    values: np.ndarray
    names: Sequence[str]
    units: Sequence[str]
    train_mean: np.ndarray
    score_fn: Callable[[torch.Tensor], torch.Tensor]
    reference: str = "the training average"


@dataclass(frozen=True)
class ProsodyLine:
    """One functional that moved the decision: its value and reference (the training
    average, or the voice's expected value; in ``unit``), and its contribution to the
    explained score (signed)."""

    name: str
    unit: str
    value: float
    mean: float
    contribution: float
    target: str
    reference: str = "the training average"

    @property
    def text(self) -> str:
        side = "above" if self.value > self.mean else "below" if self.value < self.mean else "at"
        u = f" {self.unit}" if self.unit else ""
        sign = "for" if self.contribution >= 0 else "against"
        return (f"{self.name} {self.value:.1f}{u}, {side} {self.reference} of {self.mean:.1f} "
                f"({self.contribution:+.2f} {sign} {self.target})")

    def as_dict(self) -> dict:
        return {**asdict(self), "text": self.text}


def prosody_contributions(p: ProsodyInputs, target: int, contrast: int | None = None, n_steps: int = 32) -> np.ndarray:
    """``(D,)`` Integrated Gradients (Captum) of the target's log-probability (minus
    the contrast class's) from ``train_mean`` to ``values``."""
    x = torch.as_tensor(np.asarray(p.values, np.float32))[None]
    base = torch.as_tensor(np.asarray(p.train_mean, np.float32))[None]

    def f(z):
        out = p.score_fn(z)
        return out - out[:, contrast:contrast + 1] if contrast is not None else out

    a = IntegratedGradients(f).attribute(x, baselines=base, target=int(target), n_steps=int(n_steps))
    return a[0].detach().numpy().astype(np.float64)


def prosody_lines(p: ProsodyInputs, contributions: np.ndarray, target_label: str, top: int = 3) -> list[ProsodyLine]:
    """The ``top`` functionals with the largest |contribution|, largest first."""
    c = np.asarray(contributions, np.float64)
    order = np.argsort(-np.abs(c), kind="stable")[:top]
    return [ProsodyLine(str(p.names[i]), str(p.units[i]), float(p.values[i]), float(p.train_mean[i]), float(c[i]), target_label,
                        p.reference)
            for i in order if c[i] != 0]


def explain_prosody(rec, analysis, target: int, contrast: int | None = None, top: int = 3) -> list[ProsodyLine]:
    """Prosody lines of ``analysis`` when ``rec`` offers ``prosody_inputs(analysis)``, else ``[]``."""
    fn = getattr(rec, "prosody_inputs", None)
    if not callable(fn):
        return []
    p = fn(analysis)
    if p is None:
        return []
    what = rec.classes[target] + (f" rather than {rec.classes[contrast]}" if contrast is not None else "")
    return prosody_lines(p, prosody_contributions(p, target, contrast), what, top)
