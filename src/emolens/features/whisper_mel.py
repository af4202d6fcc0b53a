"""Whisper's log-mel front end in numpy (no librosa, no torch).

OpenAI Whisper (``whisper/audio.py``) computes, at 16 kHz:

* a centred STFT: the signal reflect-padded by ``n_fft // 2`` = 200 samples each side,
  frames of 400 samples (25 ms) every 160 (10 ms), periodic Hann window, ``|rfft|**2``
  (power, 201 bins); the last frame is dropped, so ``n_frames = n_samples // 160``;
* 80 Slaney-style mel bands between 0 and 8000 Hz (librosa's ``filters.mel`` defaults:
  Slaney mel scale, area-normalised triangles);
* ``log10(max(mel, 1e-10))``, floored at ``max - 8`` (80 dB below the loudest bin of the
  clip), then ``(x + 4) / 4``.

The clip-level floor makes the features depend on the loudest moment of the input, as in
Whisper itself: a chunk is always computed over the whole chunk (see
:mod:`emolens.models.whisper`).
"""

from __future__ import annotations

import numpy as np

SAMPLE_RATE = 16000
N_FFT = 400
HOP_LENGTH = 160
N_MELS = 80
#: Slaney's mel scale: 200/3 Hz a mel up to 1 kHz (= 15 mel), then log steps of ln(6.4) / 27
_F_SP, _MIN_LOG_HZ, _MIN_LOG_MEL, _LOGSTEP = 200.0 / 3, 1000.0, 15.0, np.log(6.4) / 27.0


def hz_to_mel_slaney(hz: np.ndarray | float) -> np.ndarray:
    """Slaney's mel scale (librosa ``htk=False``): linear below 1 kHz, logarithmic above."""
    hz = np.asarray(hz, dtype=np.float64)
    log = _MIN_LOG_MEL + np.log(np.maximum(hz, _MIN_LOG_HZ) / _MIN_LOG_HZ) / _LOGSTEP
    return np.where(hz >= _MIN_LOG_HZ, log, hz / _F_SP)


def mel_to_hz_slaney(mel: np.ndarray | float) -> np.ndarray:
    """Inverse of :func:`hz_to_mel_slaney`."""
    mel = np.asarray(mel, dtype=np.float64)
    return np.where(mel >= _MIN_LOG_MEL, _MIN_LOG_HZ * np.exp(_LOGSTEP * (mel - _MIN_LOG_MEL)), _F_SP * mel)


def slaney_mel_filterbank(
    sample_rate: int = SAMPLE_RATE, n_fft: int = N_FFT, n_mels: int = N_MELS,
    fmin: float = 0.0, fmax: float | None = None,
) -> np.ndarray:
    """Triangular mel filters, ``(n_mels, 1 + n_fft // 2)`` float32, each divided by its
    bandwidth in Hz / 2 (Slaney's area normalisation), as librosa ``filters.mel`` makes them."""
    fmax = sample_rate / 2 if fmax is None else fmax
    fft_hz = np.linspace(0.0, sample_rate / 2, 1 + n_fft // 2)
    edges = mel_to_hz_slaney(np.linspace(hz_to_mel_slaney(fmin), hz_to_mel_slaney(fmax), n_mels + 2))
    width = np.diff(edges)
    ramps = edges[:, None] - fft_hz[None, :]
    lower = -ramps[:-2] / width[:-1, None]
    upper = ramps[2:] / width[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    weights *= (2.0 / (edges[2:] - edges[:-2]))[:, None]
    return weights.astype(np.float32)


_FILTERS = slaney_mel_filterbank()


def whisper_log_mel(audio: np.ndarray) -> np.ndarray:
    """Whisper's normalised log-mel of a mono 16 kHz clip: ``(80, n_samples // 160)`` float32.

    ``audio`` must hold at least 201 samples (the reflect padding needs them)."""
    x = np.asarray(audio, dtype=np.float32)
    if x.ndim != 1 or x.size <= N_FFT // 2:
        raise ValueError(f"whisper_log_mel needs a 1-D clip of more than {N_FFT // 2} samples, got shape {x.shape}")
    x = np.pad(x, N_FFT // 2, mode="reflect")
    n_frames = 1 + (x.size - N_FFT) // HOP_LENGTH
    frames = np.lib.stride_tricks.as_strided(
        x, shape=(n_frames, N_FFT), strides=(x.strides[0] * HOP_LENGTH, x.strides[0]), writeable=False
    )[:-1]
    window = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(N_FFT) / N_FFT)).astype(np.float32)
    power = np.abs(np.fft.rfft(frames * window, axis=1)) ** 2  # (frames, 201)
    mel = np.log10(np.maximum(power.astype(np.float32) @ _FILTERS.T, 1e-10))
    mel = np.maximum(mel, mel.max() - 8.0)
    return ((mel + 4.0) / 4.0).T.astype(np.float32)
