"""How much of a decision each input stream carries: exact Shapley values over the streams.

The region maps perturb the spectrogram and hold the rest of the decision at the recording's
value: the prosody functionals, and with the Whisper model (``--model whisper``) the pooled
Whisper stream. A user looking at a map should know how much of the decision it can show.
For a model whose head reads ``logits = W_z mu + W_p s(q_p) + W_w s(q_w) + b``
(:class:`~emolens.models.decision.ProsodyPooling`) the streams are the players of a small
cooperative game whose value is the explained score (the target's log-probability, before
calibration; minus the contrast class's when given), and each stream's Shapley value is
computed exactly from the ``2 ** S`` coalitions (S <= 3: at most 8 evaluations of a linear
head). A stream out of a coalition sits at its baseline:

* ``spectrogram`` (what the map shows): the voting patches' mean embedding of the log-mel
  filled with its mean value, the state a region explanation deletes every region to;
* ``whisper``: the Whisper stream of the clip's Whisper log-mel filled with its mean value
  (the same deletion in the encoder's own front end);
* ``prosody``: the training average (``s(q_p) = 0``), the reference of the prosody lines.

The values sum to the score's change from all baselines to the recording (efficiency), so
``share`` says which part of the evidence the map can show at all.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import combinations
from math import factorial

import numpy as np

__all__ = ["STREAM_LABELS", "StreamInputs", "StreamShares", "shapley_values", "stream_shares", "explain_streams"]

#: how each stream is named to a user (the map shows the spectrogram's part only)
STREAM_LABELS = {
    "spectrogram": "spectrogram (the map)",
    "prosody": "prosody functionals",
    "whisper": "Whisper stream (not on the map)",
}


@dataclass(frozen=True)
class StreamInputs:
    """What a recognizer exposes for one recording: the stream names, and ``logits_fn``:
    a coalition ``(S,)`` of booleans (True: the recording's value, False: the baseline)
    -> the decision's logits ``(C,)``."""

    names: Sequence[str]
    logits_fn: Callable[[tuple[bool, ...]], np.ndarray]


@dataclass(frozen=True)
class StreamShares:
    """Shapley values ``(S,)`` of the explained score per stream (natural-log units),
    ``full`` the score of the recording and ``base`` with every stream at its baseline
    (``values.sum() == full - base``)."""

    names: tuple[str, ...]
    values: np.ndarray
    full: float
    base: float
    target: str

    @property
    def shares(self) -> np.ndarray:
        """``(S,)`` each stream's |value| over the sum of |values| (0 when all are 0)."""
        a = np.abs(self.values)
        return a / a.sum() if a.sum() > 0 else np.zeros_like(a)

    @property
    def text(self) -> str:
        parts = ", ".join(f"{STREAM_LABELS.get(n, n)} {v:+.2f} ({s:.0%})"
                          for n, v, s in zip(self.names, self.values, self.shares))
        return f"evidence for {self.target} by stream (log-probability, Shapley values): {parts}"

    def as_dict(self) -> dict:
        return {"names": list(self.names), "values": [float(v) for v in self.values],
                "shares": [float(s) for s in self.shares], "full": self.full, "base": self.base,
                "target": self.target, "text": self.text}


def shapley_values(value: Callable[[tuple[bool, ...]], float], n: int) -> np.ndarray:
    """Exact Shapley values ``(n,)`` of the game ``value`` (a coalition as a tuple of ``n``
    booleans -> a number), from all ``2 ** n`` coalitions."""
    cache: dict[tuple[bool, ...], float] = {}

    def v(members: frozenset) -> float:
        key = tuple(i in members for i in range(n))
        if key not in cache:
            cache[key] = float(value(key))
        return cache[key]

    out = np.zeros(n)
    for i in range(n):
        others = [j for j in range(n) if j != i]
        for k in range(n):
            w = factorial(k) * factorial(n - k - 1) / factorial(n)
            for c in combinations(others, k):
                out[i] += w * (v(frozenset(c) | {i}) - v(frozenset(c)))
    return out


def _log_softmax(z: np.ndarray) -> np.ndarray:
    z = np.asarray(z, np.float64)
    m = z.max()
    return z - m - np.log(np.exp(z - m).sum())


def stream_shares(inputs: StreamInputs, target: int, contrast: int | None = None,
                  target_label: str = "the target") -> StreamShares:
    """The streams' Shapley values for ``log P(target)`` (minus ``log P(contrast)``)."""

    def score(coalition: tuple[bool, ...]) -> float:
        lp = _log_softmax(inputs.logits_fn(coalition))
        return float(lp[target] - (lp[contrast] if contrast is not None else 0.0))

    n = len(inputs.names)
    values = shapley_values(score, n)
    return StreamShares(tuple(inputs.names), values, score((True,) * n), score((False,) * n), target_label)


def explain_streams(rec, analysis, target: int, contrast: int | None = None) -> StreamShares | None:
    """The streams' shares of ``analysis``'s decision when ``rec`` offers
    ``stream_inputs(analysis)`` (models with a prosody head), else None."""
    fn = getattr(rec, "stream_inputs", None)
    inputs = fn(analysis) if callable(fn) else None
    if inputs is None:
        return None
    what = rec.classes[target] + (f" rather than {rec.classes[contrast]}" if contrast is not None else "")
    return stream_shares(inputs, target, contrast, what)
