"""Patches <-> utterance for explanation maps."""

from __future__ import annotations

import numpy as np
import pytest

from emolens.explain.stitch import (
    SILENCE_LOG_MEL,
    band_axis,
    time_axis,
    time_extent,
    utterance_map,
    utterance_patches,
)


def test_constant_maps_stitch_to_a_constant():
    out = utterance_map(np.full((4, 96, 64), 2.5), n_frames=230)
    assert out.shape == (230, 64)
    np.testing.assert_allclose(out, 2.5, rtol=1e-6)


def test_overlapping_frames_get_the_mean_of_their_patches():
    maps = np.stack([np.full((96, 64), float(p)) for p in range(3)])  # patch p has value p
    out = utterance_map(maps[:, None], n_frames=192)  # (N, 1, 96, 64) is accepted too
    assert out[0, 0] == 0.0 and out[47, 0] == 0.0  # patch 0 only
    assert out[48, 0] == pytest.approx(0.5)  # patches 0 and 1
    assert out[96, 0] == pytest.approx(1.5)  # patches 1 and 2
    assert out[191, 0] == pytest.approx(2.0)  # patch 2 only


def test_utterance_patches_round_trip_and_pad_with_silence():
    spec = np.random.default_rng(0).normal(size=(150, 64)).astype(np.float32)
    x = utterance_patches(spec)
    assert tuple(x.shape) == (3, 1, 96, 64)
    np.testing.assert_array_equal(x[1, 0, :, :].numpy(), spec[48:144])
    assert np.all(x[2, 0, 150 - 96 :, :].numpy() == np.float32(SILENCE_LOG_MEL))
    np.testing.assert_allclose(utterance_map(x.numpy(), 150), spec, atol=1e-6)
    with pytest.raises(ValueError):
        utterance_patches(spec[None])


def test_axes_are_in_seconds_and_hz():
    t = time_axis(100)
    assert t[0] == pytest.approx(0.0125) and t[1] - t[0] == pytest.approx(0.01)
    assert time_extent(100) == (0.0, pytest.approx(1.0))
    hz = band_axis()
    assert hz.shape == (64,) and 125 < hz[0] < hz[-1] < 7500 and np.all(np.diff(hz) > 0)


def test_weighted_stitch_leaves_out_non_voting_patches() -> None:
    # 3 patches (hop 48) over 192 frames; patch p is filled with p + 1
    maps = np.stack([np.full((96, 64), p + 1.0) for p in range(3)])
    plain = utterance_map(maps, 192)
    np.testing.assert_allclose(plain[:48, 0], 1.0)
    np.testing.assert_allclose(plain[48:96, 0], 1.5)  # mean of patches 1 and 2 where they overlap
    voted = utterance_map(maps, 192, weights=np.array([0.0, 1.0, 1.0]))
    np.testing.assert_allclose(voted[:48], 0.0)       # only the non-voting patch covers these frames
    np.testing.assert_allclose(voted[48:96, 0], 2.0)  # patch 1 alone (patch 0 does not vote)
    np.testing.assert_allclose(voted[96:144, 0], 2.5)
    np.testing.assert_allclose(voted[144:, 0], 3.0)
    np.testing.assert_allclose(utterance_map(maps, 192, weights=np.ones(3)), plain, rtol=1e-6)
    with pytest.raises(ValueError, match="weights"):
        utterance_map(maps, 192, weights=np.ones(2))
