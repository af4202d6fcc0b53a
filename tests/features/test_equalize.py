"""Per-utterance spectral equalisation: a channel gain is undone, the reference is reached."""

from __future__ import annotations

import numpy as np
import pytest

from emolens.features.equalize import (
    LOG_OFFSET,
    equalize_patches,
    loud_frame_profile,
    utterance_profiles,
)


def _patches(lin: np.ndarray) -> np.ndarray:
    """Linear mel (n, 96, 64) -> VGGish log patches."""
    return np.log(lin + LOG_OFFSET).astype(np.float32)


def _clip(rng) -> np.ndarray:
    """A separable linear mel: frame loudness x a fixed spectrum, well above the log offset."""
    loud = rng.uniform(1, 50, size=(2, 96, 1))
    spec = rng.uniform(5, 100, size=(1, 1, 64))
    return loud * spec


def test_band_eq_undoes_a_channel_and_reaches_the_reference() -> None:
    rng = np.random.default_rng(0)
    lin = _clip(rng)
    channel = np.exp(rng.normal(0, 1, 64))  # a per-band gain (microphone, room, codec EQ)
    p = np.concatenate([_patches(lin), _patches(lin * channel)])
    utt = np.array([0, 0, 1, 1])
    prof = utterance_profiles(p, utt, 2)
    assert prof.shape == (2, 64)
    ref = np.full(64, 2.0)
    eq = equalize_patches(p, utt, prof, ref, "band")
    np.testing.assert_allclose(eq[:2], eq[2:], atol=2e-3)  # the channel is gone
    np.testing.assert_allclose(loud_frame_profile(eq[:2]), ref, atol=2e-3)


def test_gain_eq_removes_loudness_only() -> None:
    rng = np.random.default_rng(1)
    lin = _clip(rng)
    p = np.concatenate([_patches(lin), _patches(lin * 10.0)])
    utt = np.array([0, 0, 1, 1])
    prof = utterance_profiles(p, utt, 2)
    ref = prof[0] + rng.normal(1.0, 0.3, 64)  # louder, another shape
    eq = equalize_patches(p, utt, prof, ref, "gain")
    np.testing.assert_allclose(eq[:2], eq[2:], atol=2e-3)
    # the spectral shape is kept: only the mean level moves onto the reference's
    shape = loud_frame_profile(eq[:2]) - loud_frame_profile(p[:2])
    assert np.ptp(shape) < 1e-3 and loud_frame_profile(eq[:2]).mean() == pytest.approx(ref.mean(), abs=2e-3)
    with pytest.raises(ValueError, match="mode"):
        equalize_patches(p, utt, prof, ref, "tilt")
