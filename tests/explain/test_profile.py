"""Per-emotion frequency profiles of explanation maps."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from emolens.explain.profile import (
    centroid_hz,
    frequency_profile,
    high_low_ratio,
    leans_higher,
    profile_summary,
    write_profile_csv,
)
from emolens.features.mel import mel_band_centers

HZ = mel_band_centers()


def _band_map(band: int, n_frames: int = 50, scale: float = 1.0) -> np.ndarray:
    m = np.zeros((n_frames, 64))
    m[:, band] = scale
    return m


def test_profiles_are_normalised_per_recording():
    maps = [_band_map(50, 30, 1.0), _band_map(50, 300, 7.0), _band_map(10), np.zeros((40, 64))]
    labels = ["angry", "angry", "sad", "sad"]
    prof = frequency_profile(maps, labels)
    assert list(prof) == ["angry", "sad"]
    for p in prof.values():
        assert p.mean.shape == (64,) and p.mean.sum() == pytest.approx(1.0)
    # length and scale do not matter; the all-zero map is skipped
    assert prof["angry"].n == 2 and prof["angry"].mean[50] == pytest.approx(1.0)
    assert np.all(prof["angry"].std == 0.0)
    assert prof["sad"].n == 1 and prof["sad"].mean[10] == pytest.approx(1.0)


def test_std_over_recordings():
    prof = frequency_profile([_band_map(5), _band_map(6)], ["x", "x"])["x"]
    assert prof.mean[5] == pytest.approx(0.5) and prof.std[5] == pytest.approx(0.5)


def test_negative_values_are_clipped():
    m = _band_map(20)
    m[:, 3] = -5.0
    prof = frequency_profile([m], ["a"])["a"]
    assert prof.mean[20] == pytest.approx(1.0) and prof.mean[3] == 0.0


def test_centroid_ratio_and_leaning():
    assert centroid_hz(np.eye(64)[40], HZ) == pytest.approx(HZ[40])
    half = np.zeros(64)
    half[[5, 60]] = 0.5
    assert centroid_hz(half, HZ) == pytest.approx((HZ[5] + HZ[60]) / 2)
    assert high_low_ratio(half, HZ, split_hz=1000.0) == pytest.approx(1.0)
    prof = frequency_profile(
        [_band_map(50), _band_map(45), _band_map(12), _band_map(8)], ["angry", "happy", "neutral", "sad"]
    )
    summary = profile_summary(prof, HZ)
    assert summary["angry"]["centroid_hz"] == pytest.approx(HZ[50])
    assert summary["sad"]["high_low_ratio"] == 0.0 and summary["angry"]["high_low_ratio"] == float("inf")
    assert leans_higher(summary) is True
    assert leans_higher(summary, high=("sad", "happy"), low=("neutral", "angry")) is False
    assert leans_higher({k: v for k, v in summary.items() if k != "sad"}) is None


def test_write_profile_csv(tmp_path):
    prof = frequency_profile([_band_map(3), _band_map(9)], ["angry", "sad"])
    path = write_profile_csv(tmp_path / "p" / "profile.csv", prof, HZ)
    with path.open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 * 64
    row = rows[3]
    assert row["label"] == "angry" and row["band"] == "3" and float(row["mean"]) == 1.0 and row["n"] == "1"
    assert float(row["hz"]) == pytest.approx(HZ[3], abs=0.1)


def test_mismatched_inputs_are_refused():
    with pytest.raises(ValueError):
        frequency_profile([_band_map(1)], ["a", "b"])
    with pytest.raises(ValueError):
        frequency_profile([_band_map(1), np.zeros((5, 32))], ["a", "b"])
