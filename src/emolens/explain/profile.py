"""Per-emotion frequency profile of explanation maps (METHOD.md s.6, thesis figure 24).

Each recording's utterance map ``(n_frames, 64)`` is clipped at 0 (Grad-CAM already
is >= 0), **summed over time and normalised to sum 1**, so every recording counts
equally whatever its length or overall activation; maps that are all zero carry no
profile and are skipped (not counted in ``n``). Per emotion: the mean and standard
deviation over its recordings of that 64-band distribution.

To say whether an emotion "leans higher": :func:`centroid_hz` (the profile-weighted
mean band frequency, ``sum(p * hz) / sum(p)``; no split to choose) and
:func:`high_low_ratio` (mass above / below ``split_hz`` = 1000 Hz, roughly where
voiced speech's formant energy gives way to the higher formants and fricatives).
The thesis found angry/happy higher than neutral/sad: :func:`leans_higher`.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np

__all__ = [
    "BandProfile",
    "frequency_profile",
    "write_profile_csv",
    "centroid_hz",
    "high_low_ratio",
    "profile_summary",
    "leans_higher",
]


class BandProfile(NamedTuple):
    """Mean and std ``(n_mels,)`` of the normalised band distributions of ``n`` maps."""

    mean: np.ndarray
    std: np.ndarray
    n: int


def _band_distribution(utt_map: np.ndarray) -> np.ndarray | None:
    """Clipped map summed over time, normalised to sum 1; ``None`` if it is all 0."""
    m = np.asarray(utt_map, dtype=np.float64)
    if m.ndim != 2:
        raise ValueError(f"map must be (n_frames, n_mels), got shape {m.shape}")
    per_band = np.clip(m, 0.0, None).sum(axis=0)
    total = per_band.sum()
    return per_band / total if total > 0 else None


def frequency_profile(maps: Sequence[np.ndarray], labels: Sequence[str]) -> dict[str, BandProfile]:
    """``label -> BandProfile`` over the recordings of each label (sorted by label)."""
    if len(maps) != len(labels):
        raise ValueError(f"{len(maps)} maps but {len(labels)} labels")
    groups: dict[str, list[np.ndarray]] = {}
    n_mels = None
    for m, label in zip(maps, labels):
        d = _band_distribution(m)
        if n_mels is None:
            n_mels = np.shape(m)[1]
        elif np.shape(m)[1] != n_mels:
            raise ValueError(f"maps have {n_mels} and {np.shape(m)[1]} bands")
        if d is not None:
            groups.setdefault(str(label), []).append(d)
    out: dict[str, BandProfile] = {}
    for label in sorted(groups):
        stack = np.stack(groups[label])
        out[label] = BandProfile(stack.mean(axis=0), stack.std(axis=0), len(stack))
    return out


def centroid_hz(profile_mean: np.ndarray, band_hz: np.ndarray) -> float:
    """Profile-weighted mean band frequency in Hz (NaN for an all-zero profile)."""
    p = np.clip(np.asarray(profile_mean, dtype=np.float64), 0.0, None)
    total = p.sum()
    return float((p * np.asarray(band_hz)).sum() / total) if total > 0 else float("nan")


def high_low_ratio(profile_mean: np.ndarray, band_hz: np.ndarray, split_hz: float = 1000.0) -> float:
    """Profile mass in bands centred above ``split_hz`` over the mass below."""
    p = np.clip(np.asarray(profile_mean, dtype=np.float64), 0.0, None)
    hz = np.asarray(band_hz)
    low = p[hz < split_hz].sum()
    high = p[hz >= split_hz].sum()
    return float(high / low) if low > 0 else float("inf")


def profile_summary(
    profile: dict[str, BandProfile], band_hz: np.ndarray, split_hz: float = 1000.0
) -> dict[str, dict[str, float]]:
    """``label -> {centroid_hz, high_low_ratio, n}``."""
    return {
        label: {
            "centroid_hz": centroid_hz(p.mean, band_hz),
            "high_low_ratio": high_low_ratio(p.mean, band_hz, split_hz),
            "n": p.n,
        }
        for label, p in profile.items()
    }


def leans_higher(
    summary: dict[str, dict[str, float]],
    high: Sequence[str] = ("angry", "happy"),
    low: Sequence[str] = ("neutral", "sad"),
) -> bool | None:
    """Whether every ``high`` emotion's centroid is above every ``low`` one's (the
    thesis's finding); ``None`` if some of them are missing."""
    hi = [summary[k]["centroid_hz"] for k in high if k in summary]
    lo = [summary[k]["centroid_hz"] for k in low if k in summary]
    if len(hi) != len(high) or len(lo) != len(low):
        return None
    return bool(min(hi) > max(lo))


def write_profile_csv(path: str | Path, profile: dict[str, BandProfile], band_hz: np.ndarray) -> Path:
    """Long-format CSV: ``label, band, hz, mean, std, n`` (one row per label and band)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    hz = np.asarray(band_hz, dtype=np.float64)
    with p.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["label", "band", "hz", "mean", "std", "n"])
        for label, prof in profile.items():
            if prof.mean.shape != hz.shape:
                raise ValueError(f"{label}: profile has {prof.mean.size} bands, band_hz {hz.size}")
            for b in range(hz.size):
                w.writerow([label, b, f"{hz[b]:.1f}", f"{prof.mean[b]:.6g}", f"{prof.std[b]:.6g}", prof.n])
    return p
