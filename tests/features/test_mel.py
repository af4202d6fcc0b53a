"""The front end against the published VGGish formulas, computed here independently."""

import math

import numpy as np
import pytest
import scipy.signal

from emolens.features import mel as M


def _htk(hz: float) -> float:
    return 1127.0 * math.log(1.0 + hz / 700.0)


def test_filterbank_matches_scalar_formula():
    cfg = M.VGGISH_16K
    W = M.mel_filterbank(cfg)
    assert W.shape == (257, 64)
    lo, hi = _htk(125.0), _htk(7500.0)
    step = (hi - lo) / 65
    rng = np.random.default_rng(0)
    for _ in range(200):
        k, m = int(rng.integers(1, 257)), int(rng.integers(0, 64))
        f_mel = _htk(k * 8000.0 / 256)
        left, center, right = lo + m * step, lo + (m + 1) * step, lo + (m + 2) * step
        expected = max(0.0, min((f_mel - left) / (center - left), (right - f_mel) / (right - center)))
        assert W[k, m] == pytest.approx(expected, abs=1e-12)
    assert np.all(W[0] == 0.0)  # DC bin dropped


def test_periodic_hann_is_scipy_periodic():
    np.testing.assert_allclose(M.periodic_hann(400), scipy.signal.get_window("hann", 400), atol=1e-12)


def test_stft_against_direct_dft():
    rng = np.random.default_rng(1)
    x = rng.standard_normal(4000)
    S = M.stft_magnitude(x)
    assert S.shape == (1 + (4000 - 400) // 160, 257)
    w = scipy.signal.get_window("hann", 400)
    t = 7
    frame = np.zeros(512)
    frame[:400] = x[t * 160 : t * 160 + 400] * w
    k = np.arange(257)[:, None]
    dft = np.abs(np.exp(-2j * np.pi * k * np.arange(512)[None, :] / 512) @ frame)
    np.testing.assert_allclose(S[t], dft, rtol=1e-9, atol=1e-9)


def test_tone_lands_in_the_right_band(tone):
    mel = M.mel_spectrogram(tone)
    band = int(np.argmax(mel.mean(axis=0)))
    centers = M.mel_band_centers()
    assert band == int(np.argmin(np.abs(centers - 1000.0)))
    assert 900 < centers[band] < 1100


def test_log_offsets_per_backbone(tone):
    mel = M.mel_spectrogram(tone)
    np.testing.assert_allclose(M.log_mel(mel, "vggish"), np.log(mel + 0.01), rtol=1e-6)
    np.testing.assert_allclose(M.log_mel(mel, "yamnet"), np.log(mel + 0.001), rtol=1e-6)
    silence = M.log_mel(M.mel_spectrogram(np.zeros(1600)), "yamnet")
    assert np.allclose(silence, math.log(0.001))


def test_thesis_profile_same_frames():
    sr48 = M.THESIS_48K
    assert sr48.frame_seconds == M.VGGISH_16K.frame_seconds == 0.01
    t = np.arange(48000) / 48000
    x = np.sin(2 * np.pi * 1000 * t)
    mel48 = M.mel_spectrogram(x, sr48)
    assert mel48.shape == (M.num_frames(48000, sr48), 64) == (98, 64)
    centers = M.mel_band_centers(sr48)
    assert abs(centers[int(np.argmax(mel48.mean(0)))] - 1000) < 100


def test_short_clip_gives_one_frame():
    assert M.mel_spectrogram(np.ones(100)).shape == (1, 64)
