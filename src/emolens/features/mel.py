"""The log-mel front end shared by VGGish and YAMNet (librosa-style pure functions).

Exactly the upstream VGGish/YAMNet front end (``mel_features.py`` in
tensorflow/models/research/audioset) at 16 kHz:

* frames of ``win_length`` = 400 samples (25 ms), hop 160 (10 ms), no centring
  (``n_frames = 1 + (n_samples - win_length) // hop_length``);
* periodic Hann window ``0.5 - 0.5 cos(2 pi n / N)``;
* ``|rfft|`` with ``n_fft`` = 512 (257 bins), magnitude (not power);
* 64 triangular HTK-mel bands between 125 and 7500 Hz, computed in the mel domain,
  with the DC bin's weights set to zero;
* ``log(mel + offset)``: 0.01 for VGGish, 0.001 for YAMNet. The linear mel is
  computed once (:func:`mel_spectrogram`); :func:`log_mel` applies each backbone's
  offset.

:data:`THESIS_48K` is the thesis's profile (48 kHz, window 1200, overlap 720, FFT
1200, 64 bands) which gives the same 10 ms frames; its frequency range is not stated
in the thesis, so it uses the upstream 125-7500 Hz.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

#: log offsets the pretrained backbones were trained with.
LOG_OFFSETS: dict[str, float] = {"vggish": 0.01, "yamnet": 0.001}


@dataclass(frozen=True)
class FrontEndConfig:
    """Parameters of the STFT + mel front end. Lengths in samples, frequencies in Hz."""

    name: str = "vggish16k"
    sample_rate: int = 16000
    win_length: int = 400
    hop_length: int = 160
    n_fft: int = 512
    n_mels: int = 64
    fmin: float = 125.0
    fmax: float = 7500.0

    @property
    def frame_seconds(self) -> float:
        """Hop between frames in seconds (0.01 for both profiles)."""
        return self.hop_length / self.sample_rate

    def to_dict(self) -> dict:
        return asdict(self)


#: Upstream VGGish/YAMNet front end (the default).
VGGISH_16K = FrontEndConfig()
#: The thesis's MATLAB settings (tables 1-2): same 25 ms / 10 ms frames at 48 kHz.
THESIS_48K = FrontEndConfig(
    name="thesis48k", sample_rate=48000, win_length=1200, hop_length=480, n_fft=1200
)
PROFILES: dict[str, FrontEndConfig] = {VGGISH_16K.name: VGGISH_16K, THESIS_48K.name: THESIS_48K}


def frontend_from_dict(d: dict) -> FrontEndConfig:
    """The configuration saved by :meth:`FrontEndConfig.to_dict` (a named profile
    when only its name is given)."""
    return PROFILES[d["name"]] if set(d) <= {"name"} else FrontEndConfig(**d)


def hz_to_mel(hz: np.ndarray | float) -> np.ndarray:
    """HTK mel scale: ``1127 ln(1 + f / 700)``."""
    return 1127.0 * np.log1p(np.asarray(hz, dtype=np.float64) / 700.0)


def mel_to_hz(mel: np.ndarray | float) -> np.ndarray:
    """Inverse of :func:`hz_to_mel`."""
    return 700.0 * np.expm1(np.asarray(mel, dtype=np.float64) / 1127.0)


def periodic_hann(n: int) -> np.ndarray:
    """Periodic Hann window of length ``n`` (as ``scipy.signal.get_window('hann', n)``)."""
    return 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n) / n)


def mel_filterbank(cfg: FrontEndConfig = VGGISH_16K) -> np.ndarray:
    """HTK mel weights, shape ``(n_fft // 2 + 1, n_mels)``; row 0 (DC) is zero."""
    n_bins = cfg.n_fft // 2 + 1
    bin_hz = np.linspace(0.0, cfg.sample_rate / 2.0, n_bins)
    bin_mel = hz_to_mel(bin_hz)
    edges = np.linspace(hz_to_mel(cfg.fmin), hz_to_mel(cfg.fmax), cfg.n_mels + 2)
    lower, center, upper = edges[:-2], edges[1:-1], edges[2:]
    up = (bin_mel[:, None] - lower[None, :]) / (center - lower)[None, :]
    down = (upper[None, :] - bin_mel[:, None]) / (upper - center)[None, :]
    weights = np.maximum(0.0, np.minimum(up, down))
    weights[0, :] = 0.0
    return weights


def mel_band_centers(cfg: FrontEndConfig = VGGISH_16K) -> np.ndarray:
    """Centre frequency of each mel band in Hz, shape ``(n_mels,)``."""
    edges = np.linspace(hz_to_mel(cfg.fmin), hz_to_mel(cfg.fmax), cfg.n_mels + 2)
    return mel_to_hz(edges[1:-1])


def num_frames(n_samples: int, cfg: FrontEndConfig = VGGISH_16K) -> int:
    """Frames for ``n_samples`` (clips shorter than one window give one padded frame)."""
    return 1 + max(0, n_samples - cfg.win_length) // cfg.hop_length


def frame_signal(samples: np.ndarray, cfg: FrontEndConfig = VGGISH_16K) -> np.ndarray:
    """Overlapping frames, shape ``(n_frames, win_length)``; short input is zero-padded."""
    x = np.asarray(samples, dtype=np.float64)
    if x.shape[0] < cfg.win_length:
        x = np.pad(x, (0, cfg.win_length - x.shape[0]))
    n = num_frames(x.shape[0], cfg)
    return np.lib.stride_tricks.sliding_window_view(x, cfg.win_length)[:: cfg.hop_length][:n]


#: Frames transformed per block (keeps the working set in cache; ~1.6x faster on long audio).
_BLOCK_FRAMES = 1024


def _magnitude_blocks(samples: np.ndarray, cfg: FrontEndConfig):
    """Yield ``(start_frame, |rfft| block (<= _BLOCK_FRAMES, n_fft // 2 + 1))`` in float64."""
    frames = frame_signal(samples, cfg)
    window = periodic_hann(cfg.win_length)
    for s in range(0, frames.shape[0], _BLOCK_FRAMES):
        yield s, np.abs(np.fft.rfft(frames[s : s + _BLOCK_FRAMES] * window, n=cfg.n_fft, axis=1))


def stft_magnitude(samples: np.ndarray, cfg: FrontEndConfig = VGGISH_16K) -> np.ndarray:
    """``|STFT|`` with a periodic Hann window, float64, shape ``(n_frames, n_fft // 2 + 1)``."""
    return np.concatenate([block for _, block in _magnitude_blocks(samples, cfg)])


def mel_spectrogram(samples: np.ndarray, cfg: FrontEndConfig = VGGISH_16K) -> np.ndarray:
    """Linear mel magnitude, float32, shape ``(n_frames, n_mels)``.

    ``samples`` is a mono waveform at ``cfg.sample_rate``. Computed in float64 over
    blocks of frames (cache-friendly on long recordings).
    """
    weights = mel_filterbank(cfg)
    out = np.empty((num_frames(len(samples), cfg), cfg.n_mels), dtype=np.float32)
    for s, block in _magnitude_blocks(samples, cfg):
        out[s : s + len(block)] = block @ weights
    return out


def mel_from_magnitude(magnitude: np.ndarray, cfg: FrontEndConfig = VGGISH_16K) -> np.ndarray:
    """:func:`mel_spectrogram` from an already computed :func:`stft_magnitude` ``(n_frames,
    n_fft // 2 + 1)`` (bit-identical: the same blocks of frames through the same weights),
    for callers that need the ``|STFT|`` too (the prosody descriptors)."""
    weights = mel_filterbank(cfg)
    out = np.empty((magnitude.shape[0], cfg.n_mels), dtype=np.float32)
    for s in range(0, magnitude.shape[0], _BLOCK_FRAMES):
        out[s : s + _BLOCK_FRAMES] = magnitude[s : s + _BLOCK_FRAMES] @ weights
    return out


def log_mel(mel: np.ndarray, offset: float | str = "vggish") -> np.ndarray:
    """``log(mel + offset)``; ``offset`` is a number or a backbone name in :data:`LOG_OFFSETS`."""
    off = LOG_OFFSETS[offset] if isinstance(offset, str) else float(offset)
    return np.log(np.asarray(mel, dtype=np.float32) + np.float32(off))
