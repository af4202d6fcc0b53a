"""Top regions as boxes and in words (what the figure outlines and the page says).

:func:`top_boxes` takes the regions of a :class:`RegionAttribution` from most to
least evidence until they hold ``cover`` of the positive evidence (at most
``max_boxes``), merging regions of one band group that touch in time into one box;
the strongest counter-evidence gets boxes of its own (``sign = -1``).
:func:`region_sentence` words them, e.g. ``"0.42-0.88 s, 1.1-2.6 kHz: 38% of the
evidence for angry; then 1.9-2.3 s, 0.1-0.5 kHz: 17%"``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from emolens.explain.region_attribution import RegionAttribution

__all__ = ["RegionBox", "top_boxes", "region_sentence", "box_mask", "box_time_mask", "format_hz", "evidence_phrase"]


@dataclass(frozen=True)
class RegionBox:
    """One outlined box: ``start_s``-``end_s`` x ``low_hz``-``high_hz``.

    ``share``: its part of the positive (``sign = 1``) or negative (``sign = -1``)
    evidence, 0..1; ``score``: the summed region scores (output units);
    ``frames`` / ``bands``: its cells, ``[first, end)`` frame and mel band;
    ``regions``: the region ids it merges."""

    start_s: float
    end_s: float
    low_hz: float
    high_hz: float
    share: float
    score: float
    sign: int
    frames: tuple[int, int]
    bands: tuple[int, int]
    regions: tuple[int, ...]

    def as_dict(self) -> dict:
        d = asdict(self)
        for k in ("start_s", "end_s"):
            d[k] = round(float(d[k]), 3)
        for k in ("low_hz", "high_hz"):
            d[k] = round(float(d[k]), 1)
        d["share"] = round(float(d["share"]), 4)
        d["score"] = float(d["score"])
        d["frames"], d["bands"], d["regions"] = list(d["frames"]), list(d["bands"]), list(d["regions"])
        return d


def _pick(scores: np.ndarray, sign: int, cover: float, max_regions: int) -> list[int]:
    s = sign * np.asarray(scores, np.float64)
    pos = np.clip(s, 0.0, None)
    total = pos.sum()
    if total <= 0:
        return []
    out, acc = [], 0.0
    for r in np.argsort(-s, kind="stable"):
        if s[r] <= 0 or len(out) >= max_regions:
            break
        out.append(int(r))
        acc += pos[r]
        if acc >= cover * total:
            break
    return out


def _merge(ra: RegionAttribution, picked: list[int], sign: int, total: float) -> list[RegionBox]:
    reg = ra.regions
    fr, bd, ts, hz = reg.frames, reg.bands, reg.times_s, reg.hz
    g = reg.n_groups
    left = set(picked)
    boxes = []
    for r in picked:  # strongest first: grow each seed along time within its band group
        if r not in left:
            continue
        group = [r]
        left.discard(r)
        lo = hi = r
        while lo - g in left:
            lo -= g
            group.append(lo)
            left.discard(lo)
        while hi + g in left:
            hi += g
            group.append(hi)
            left.discard(hi)
        score = float(np.sum(np.asarray(ra.scores)[group]))
        boxes.append(RegionBox(float(ts[lo, 0]), float(ts[hi, 1]), float(hz[r, 0]), float(hz[r, 1]),
                               abs(score) / total if total > 0 else 0.0, score, sign,
                               (int(fr[lo, 0]), int(fr[hi, 1])), (int(bd[r, 0]), int(bd[r, 1])), tuple(sorted(group))))
    return sorted(boxes, key=lambda b: -b.share)


def top_boxes(ra: RegionAttribution, *, cover: float = 0.5, max_boxes: int = 4, max_against: int = 1) -> list[RegionBox]:
    """Boxes of the top evidence (``sign = 1``, first) and of the strongest
    counter-evidence (``sign = -1``, up to ``max_against`` boxes)."""
    s = np.asarray(ra.scores, np.float64)
    out = []
    for sign, k in ((1, max_boxes), (-1, max_against)):
        if k <= 0:
            continue
        total = float(np.clip(sign * s, 0.0, None).sum())
        picked = _pick(s, sign, cover if sign > 0 else 0.0, 3 * k)
        out += _merge(ra, picked, sign, total)[:k]
    return out


def format_hz(lo: float, hi: float) -> str:
    """``"1.1-2.6 kHz"`` (one decimal, kHz)."""
    return f"{lo / 1000:.1f}-{hi / 1000:.1f} kHz"


def evidence_phrase(classes: list[str], target: int, contrast: int | None) -> str:
    """``"for angry"`` or ``"for angry rather than happy"``."""
    s = f"for {classes[target]}"
    return s + (f" rather than {classes[contrast]}" if contrast is not None else "")


def region_sentence(ra: RegionAttribution, boxes: list[RegionBox], classes: list[str]) -> str:
    """The boxes in words: the positive ones in order, then the strongest counter-evidence."""
    pos = [b for b in boxes if b.sign > 0]
    neg = [b for b in boxes if b.sign < 0]
    if not pos:
        return f"No region carries evidence {evidence_phrase(classes, ra.target, ra.contrast)}."
    parts = []
    for i, b in enumerate(pos):
        where = f"{b.start_s:.2f}-{b.end_s:.2f} s, {format_hz(b.low_hz, b.high_hz)}"
        parts.append(f"{where}: {b.share:.0%} of the evidence {evidence_phrase(classes, ra.target, ra.contrast)}"
                     if i == 0 else f"then {where}: {b.share:.0%}")
    text = "; ".join(parts) + "."
    if neg:
        b = neg[0]
        against = classes[ra.contrast] if ra.contrast is not None else f"against {classes[ra.target]}"
        lead = f"Most evidence for {against}" if ra.contrast is not None else "Most evidence " + against
        text += f" {lead}: {b.start_s:.2f}-{b.end_s:.2f} s, {format_hz(b.low_hz, b.high_hz)} ({b.share:.0%})."
    return text


def box_mask(boxes: list[RegionBox], shape: tuple[int, int], sign: int = 1) -> np.ndarray:
    """Bool ``shape`` = (n_frames, n_mels): the cells inside the boxes of ``sign``."""
    m = np.zeros(shape, dtype=bool)
    for b in boxes:
        if b.sign == sign:
            m[b.frames[0]:b.frames[1], b.bands[0]:b.bands[1]] = True
    return m


def box_time_mask(boxes: list[RegionBox], n_samples: int, sr: int = 16000, sign: int = 1) -> np.ndarray:
    """Bool ``(n_samples,)``: the samples inside the time spans of the boxes of ``sign``."""
    m = np.zeros(n_samples, dtype=bool)
    for b in boxes:
        if b.sign == sign:
            m[int(round(b.start_s * sr)):int(round(b.end_s * sr))] = True
    return m
