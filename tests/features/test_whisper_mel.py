"""Whisper's log-mel front end against librosa (the filterbank Whisper ships was made with it)
and an STFT written out here with scipy's framing."""

import librosa
import numpy as np
import pytest
import scipy.signal

from emolens.features import whisper_mel as W


def test_filterbank_matches_librosa():
    ours = W.slaney_mel_filterbank()
    ref = librosa.filters.mel(sr=16000, n_fft=400, n_mels=80)
    assert ours.shape == (80, 201)
    np.testing.assert_allclose(ours, ref, atol=1e-8)
    for n_mels, fmax in ((40, 4000.0), (128, None)):  # other settings too
        np.testing.assert_allclose(
            W.slaney_mel_filterbank(n_mels=n_mels, fmax=fmax),
            librosa.filters.mel(sr=16000, n_fft=400, n_mels=n_mels, fmax=fmax), atol=1e-8)


def test_slaney_scale_round_trip_and_known_points():
    hz = np.array([0.0, 500.0, 1000.0, 4000.0, 8000.0])
    np.testing.assert_allclose(W.mel_to_hz_slaney(W.hz_to_mel_slaney(hz)), hz, atol=1e-9)
    np.testing.assert_allclose(W.hz_to_mel_slaney(hz), librosa.hz_to_mel(hz), atol=1e-9)
    assert W.hz_to_mel_slaney(1000.0) == pytest.approx(15.0)


def _reference_log_mel(audio: np.ndarray) -> np.ndarray:
    """Whisper's recipe with scipy's STFT (centred, reflect-padded, periodic Hann, power)."""
    padded = np.pad(audio.astype(np.float64), 200, mode="reflect")
    window = scipy.signal.get_window("hann", 400, fftbins=True)
    frames = np.stack([padded[i:i + 400] * window for i in range(0, padded.size - 400 + 1, 160)])[:-1]
    power = np.abs(np.fft.rfft(frames, axis=1)) ** 2
    mel = np.log10(np.maximum(power @ librosa.filters.mel(sr=16000, n_fft=400, n_mels=80).T, 1e-10))
    return ((np.maximum(mel, mel.max() - 8.0) + 4.0) / 4.0).T


@pytest.mark.parametrize("n_samples", [16000, 16160, 20001, 48000])
def test_log_mel_matches_reference_and_frame_count(n_samples):
    rng = np.random.default_rng(n_samples)
    t = np.arange(n_samples) / 16000
    audio = (0.3 * np.sin(2 * np.pi * 220 * t) + 0.05 * rng.standard_normal(n_samples)).astype(np.float32)
    ours = W.whisper_log_mel(audio)
    assert ours.shape == (80, n_samples // 160) and ours.dtype == np.float32
    np.testing.assert_allclose(ours, _reference_log_mel(audio), atol=2e-5)


def test_log_mel_floor_silence_and_scale():
    loud = W.whisper_log_mel(np.sin(np.arange(16000) * 0.3).astype(np.float32))
    assert loud.max() - loud.min() <= 8.0 / 4 + 1e-6  # floored 80 dB below the loudest bin
    silent = W.whisper_log_mel(np.zeros(8000, np.float32))
    np.testing.assert_allclose(silent, (-10.0 + 4.0) / 4.0, atol=1e-6)  # log10(1e-10), finite


def test_log_mel_rejects_too_short_or_2d():
    with pytest.raises(ValueError, match="more than 200 samples"):
        W.whisper_log_mel(np.zeros(200, np.float32))
    with pytest.raises(ValueError, match="1-D"):
        W.whisper_log_mel(np.zeros((2, 16000), np.float32))
