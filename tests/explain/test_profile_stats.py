"""Bootstrap CIs, permutation tests and the thesis verdict on synthetic maps with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from emolens.explain.profile_stats import (
    ProfileStatsConfig,
    band_distributions,
    format_profile_stats,
    holm,
    profile_stats,
)

HZ = np.linspace(150, 7000, 64)
CFG = ProfileStatsConfig(n_boot=500, n_perm=500)


def _maps(center_band: float, n: int, rng, width: float = 6.0) -> list[np.ndarray]:
    """``n`` maps (50 frames x 64 bands) peaked near ``center_band``, jittered."""
    out = []
    for _ in range(n):
        c = center_band + rng.normal(0, 2)
        prof = np.exp(-0.5 * ((np.arange(64) - c) / width) ** 2)
        out.append(np.outer(rng.uniform(0.5, 1.5, 50), prof) + rng.uniform(0, 0.01, (50, 64)))
    return out


def _stats(centres: dict[str, float], n: int = 15, seed: int = 0):
    rng = np.random.default_rng(seed)
    maps, labels = [], []
    for lab, c in centres.items():
        m = _maps(c, n, rng)
        maps += m
        labels += [lab] * n
    return profile_stats(band_distributions(maps, labels), HZ, CFG)


def test_thesis_supported_when_angry_happy_are_higher():
    st = _stats({"angry": 40, "happy": 38, "neutral": 20, "sad": 18})
    assert st.verdict == "supported"
    assert all(d["significant"] and d["diff_hz"] > 0 for d in st.verdict_detail)
    a, s = st.emotions["angry"], st.emotions["sad"]
    assert a.centroid_ci[0] <= a.centroid_hz <= a.centroid_ci[1]
    assert s.centroid_ci[1] < a.centroid_ci[0]  # the intervals do not overlap
    assert a.high_low_ratio > s.high_low_ratio and a.ratio_ci[0] <= a.high_low_ratio <= a.ratio_ci[1]
    assert "SUPPORTED" in format_profile_stats(st)


def test_thesis_contradicted_when_reversed_and_not_shown_when_equal():
    assert _stats({"angry": 18, "happy": 20, "neutral": 40, "sad": 38}).verdict == "contradicted"
    same = _stats({"angry": 30, "happy": 30, "neutral": 30, "sad": 30}, seed=3)
    assert same.verdict == "not shown"
    assert all(p.p_value > 0.01 for p in same.pairs)


def test_centroid_ci_covers_the_truth_and_shrinks_with_n():
    rng = np.random.default_rng(1)
    d_small = band_distributions(_maps(30, 10, rng), ["x"] * 10)
    d_big = band_distributions(_maps(30, 160, rng), ["x"] * 160)
    small = profile_stats(d_small, HZ, CFG).emotions["x"]
    big = profile_stats(d_big, HZ, CFG).emotions["x"]
    true_c = float(np.interp(30, np.arange(64), HZ))
    assert big.centroid_ci[0] < true_c < big.centroid_ci[1] + 60  # band-edge truncation skews slightly
    assert (big.centroid_ci[1] - big.centroid_ci[0]) < 0.5 * (small.centroid_ci[1] - small.centroid_ci[0])


def test_permutation_p_value_of_a_perfect_split_is_the_smallest_possible():
    d = {"a": np.tile(np.eye(64)[50], (8, 1)), "b": np.tile(np.eye(64)[10], (8, 1))}
    st = profile_stats(d, HZ, CFG)
    (pair,) = st.pairs
    assert pair.diff_hz == pytest.approx(HZ[50] - HZ[10])
    # only relabellings that keep the split give |diff| >= the observed one (2 / C(16, 8) of them)
    assert pair.p_value < 0.01


def test_holm_known_values():
    np.testing.assert_allclose(holm([0.01, 0.04, 0.03]), [0.03, 0.06, 0.06])
    np.testing.assert_allclose(holm([0.5, 0.6]), [1.0, 1.0])


def test_all_zero_maps_are_skipped_and_missing_emotions_reported():
    d = band_distributions([np.zeros((5, 64)), np.ones((5, 64))], ["angry", "angry"])
    assert d["angry"].shape == (1, 64)
    st = profile_stats({"angry": d["angry"], "sad": d["angry"]}, HZ, CFG)
    assert st.verdict.startswith("not testable")
