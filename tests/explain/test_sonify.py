"""Turning an utterance map into audio: frames -> samples, smoothing, masks, STFT masking."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from emolens.explain.sonify import (
    focus_activation,
    focus_audio,
    focus_mask,
    focus_regions,
    frame_importance,
    frames_to_samples,
    mel_to_stft_bins,
    smooth,
    stft_keep_mask,
    tf_masked_audio,
    write_wav,
)
from emolens.features.mel import mel_band_centers, num_frames
from emolens.features.patches import frame_sample_span

SR = 16000


def test_frame_importance_sums_over_frequency():
    m = np.arange(12, dtype=float).reshape(3, 4)
    np.testing.assert_array_equal(frame_importance(m), [6.0, 22.0, 38.0])


def test_one_hot_frame_covers_exactly_its_sample_span():
    imp = np.zeros(20)
    imp[5] = 1.0
    out = frames_to_samples(imp, n_samples=4000)
    s0, s1 = frame_sample_span(5)
    assert (s0, s1) == (800, 1200)
    np.testing.assert_array_equal(np.flatnonzero(out), np.arange(s0, s1))
    # (win 400, hop 160) samples 800-879 lie under frames 3, 4, 5; 880-959 under 4, 5
    assert out[800] == pytest.approx(1 / 3) and out[900] == pytest.approx(1 / 2)


def test_constant_importance_stays_constant_where_frames_reach():
    n = 16123
    out = frames_to_samples(np.full(num_frames(n), 2.0), n)
    last = frame_sample_span(num_frames(n) - 1)[1]
    np.testing.assert_allclose(out[:last], 2.0)
    assert np.all(out[last:] == 0.0) and last > n - 160


def test_smoothing_ones_keeps_the_interior():
    out = smooth(np.ones(1000), 101)
    np.testing.assert_allclose(out[50:950], 1.0)
    assert out[0] == pytest.approx(51 / 101)
    np.testing.assert_array_equal(smooth(np.arange(5.0), 1), np.arange(5.0))


def _speech_like_map(n_frames: int, hot: slice) -> np.ndarray:
    m = np.full((n_frames, 64), 0.05)
    m[hot] = 1.0
    return m


def test_focus_mask_keeps_the_hot_frames():
    n = 2 * SR
    nf = num_frames(n)
    mask = focus_mask(_speech_like_map(nf, slice(50, 90)), n)  # frames 50-89 = 0.5-0.9 s
    regions = focus_regions(mask, SR)
    assert len(regions) == 1
    start, end = regions[0]
    assert start == pytest.approx(0.5, abs=0.06) and end == pytest.approx(0.9 + 0.025, abs=0.06)
    # the thesis's literal rule (activation > 0) keeps everything the frames reach
    everything = focus_mask(_speech_like_map(nf, slice(50, 90)), n, threshold=0.0)
    assert everything[: n - 200].all()
    assert not focus_mask(np.zeros((nf, 64)), n).any()
    with pytest.raises(ValueError):
        focus_mask(np.ones((nf, 64)), n, threshold="max")


def test_focus_activation_is_smoothed_per_sample_importance():
    n = SR
    act = focus_activation(_speech_like_map(num_frames(n), slice(40, 60)), n)
    assert act.shape == (n,)
    # hot frames 40-59 span samples 6400-9840; the excess activation is centred there
    excess = np.clip(act - np.median(act), 0, None)
    assert (excess * np.arange(n)).sum() / excess.sum() == pytest.approx((6400 + 9840) / 2, abs=100)
    assert act[8000] == pytest.approx(1.0 * 64, rel=0.01) and act[3000] == pytest.approx(0.05 * 64, rel=0.01)


def test_focus_audio_zeroes_outside_the_mask_and_fades():
    rng = np.random.default_rng(0)
    wave = rng.uniform(0.5, 1.0, size=SR).astype(np.float32)
    mask = np.zeros(SR, dtype=bool)
    mask[4000:8000] = True
    mask[12000:12004] = True  # shorter than two fades
    out = focus_audio(wave, mask, SR)
    assert out.dtype == np.float32 and np.all(out[~mask] == 0.0)
    np.testing.assert_array_equal(out[4080:7920], wave[4080:7920])  # beyond the 5 ms fades
    assert 0 < out[4000] < 0.05 * wave[4000] and 0 < out[7999] < 0.05 * wave[7999]
    assert np.all(np.abs(np.diff(out[4000:4080] / wave[4000:4080])) < 0.02)  # ramp, no jump
    assert focus_regions(mask, SR) == [(0.25, 0.5), (0.75, 12004 / SR)]


def test_mel_to_stft_bins_keeps_constants_and_band_positions():
    np.testing.assert_allclose(mel_to_stft_bins(np.full((3, 64), 4.0)), 4.0)
    one = np.zeros((1, 64))
    one[0, 40] = 1.0
    bins = mel_to_stft_bins(one)[0]
    peak_hz = bins.argmax() * SR / 512
    assert peak_hz == pytest.approx(mel_band_centers()[40], rel=0.05)
    assert bins.min() >= 0.0 and bins.max() <= 1.0


def test_tf_masking_with_everything_kept_reconstructs_the_input():
    rng = np.random.default_rng(1)
    n = 24011
    wave = (0.3 * rng.standard_normal(n)).astype(np.float32)
    m = rng.random((num_frames(n), 64))
    out = tf_masked_audio(wave, m, keep_fraction=1.0)
    assert out.shape == (n,) and out.dtype == np.float32
    core = slice(400, n - 560)
    err = out[core] - wave[core]
    snr = 10 * np.log10(np.sum(wave[core].astype(np.float64) ** 2) / (np.sum(err.astype(np.float64) ** 2) + 1e-30))
    assert snr > 40.0
    assert np.all(tf_masked_audio(wave, m, keep_fraction=0.0) == 0.0)


def test_tf_masking_keeps_the_important_band():
    t = np.arange(SR) / SR
    wave = (0.3 * np.sin(2 * np.pi * 300 * t) + 0.3 * np.sin(2 * np.pi * 3000 * t)).astype(np.float32)
    hz = mel_band_centers()
    m = np.tile(np.exp(-0.5 * ((hz - 3000.0) / 300.0) ** 2), (num_frames(SR), 1))
    assert stft_keep_mask(m, 0.3).mean() == pytest.approx(0.3, abs=0.01)
    out = tf_masked_audio(wave, m, keep_fraction=0.3)
    spec = np.abs(np.fft.rfft(out[2000:14000]))
    f = np.fft.rfftfreq(12000, 1 / SR)
    e3000 = spec[np.abs(f - 3000) < 20].sum()
    e300 = spec[np.abs(f - 300) < 20].sum()
    assert e3000 > 20 * e300
    with pytest.raises(ValueError):
        tf_masked_audio(wave, m[:-3], 0.3)


def test_write_wav_round_trips(tmp_path):
    wave = (0.5 * np.sin(np.linspace(0, 100, SR))).astype(np.float32)
    path = write_wav(tmp_path / "focus" / "a.wav", wave)
    back, sr = sf.read(str(path), dtype="float32")
    assert sr == SR and back.shape == wave.shape
    np.testing.assert_allclose(back, wave, atol=1 / 32768 + 1e-6)
