"""Waveform augmentation for channel and speaker robustness (issue 12's lever).

Pure functions on 16 kHz mono float32 waveforms ``(samples,)``; each returns a new
array. The building blocks lean on well-kept libraries: speed perturbation is a soxr
resampling (as Kaldi's 0.9/1.0/1.1 speed perturbation), the codec is libsndfile's
Ogg/Opus encoder through soundfile, reverberation an FFT convolution (SciPy, imported
lazily) with a synthetic room impulse response in Polack's statistical model
(exponentially decaying Gaussian noise; ``rt60`` seconds to -60 dB).

:func:`augment` applies one random chain drawn from an :class:`AugmentConfig`
(policies ``speed``: speed only, ``channel``: gain, reverb, noise, codec, ``mix``:
both) and says what it applied. Measured on the leave-one-corpus-out yardstick
(``benchmarks/generalisation.py --rows utt-mixup-aug-mix,utt-mixup-aug-speed``): neither
policy paid, so the shipped model trains without augmentation.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import soundfile as sf
import soxr

#: Sample rate the functions assume (Hz).
SR = 16000
#: Accepted :class:`AugmentConfig` policies.
POLICIES = ("speed", "channel", "mix")


def speed_perturb(x: np.ndarray, factor: float, sr: int = SR) -> np.ndarray:
    """Play ``x`` ``factor`` times faster (tempo and pitch together): ``len(x) / factor``
    samples. ``factor`` 1 returns a copy."""
    if factor <= 0:
        raise ValueError(f"speed factor must be positive, got {factor}")
    if factor == 1.0:
        return np.array(x, np.float32)
    return soxr.resample(np.asarray(x, np.float32), sr * factor, sr).astype(np.float32)


def apply_gain(x: np.ndarray, db: float) -> np.ndarray:
    """``x`` scaled by ``db`` decibels (amplitude), clipped to [-1, 1]."""
    return np.clip(np.asarray(x, np.float32) * np.float32(10 ** (db / 20)), -1, 1)


def add_noise(x: np.ndarray, snr_db: float, rng: np.random.Generator, colour: str = "white") -> np.ndarray:
    """``x`` plus Gaussian noise at ``snr_db`` dB signal-to-noise ratio (mean power over the
    clip). ``colour``: ``white`` or ``brown`` (integrated white noise, high-passed by
    removing a 200-sample moving average: rumble-like, energy at low frequencies)."""
    x = np.asarray(x, np.float32)
    n = rng.standard_normal(len(x)).astype(np.float64)
    if colour == "brown":
        n = np.cumsum(n)
        n -= np.convolve(n, np.ones(200) / 200, "same")
    elif colour != "white":
        raise ValueError(f"noise colour {colour!r}: use white or brown")
    ps = float(np.mean(x.astype(np.float64) ** 2))
    pn = float(np.mean(n ** 2)) + 1e-20
    return (x + n * np.sqrt(ps / pn / 10 ** (snr_db / 10))).astype(np.float32)


def synthetic_rir(rt60: float, rng: np.random.Generator, sr: int = SR) -> np.ndarray:
    """A room impulse response ``(round(rt60 * sr),)`` with unit energy: a direct path
    followed by Gaussian noise decaying 60 dB over ``rt60`` seconds (Polack's model)."""
    t = np.arange(max(1, round(rt60 * sr))) / sr
    h = rng.standard_normal(len(t)) * np.exp(-np.log(1000.0) * t / rt60)
    h[0] = 1.0
    return (h / np.sqrt(np.sum(h ** 2))).astype(np.float32)


def reverberate(x: np.ndarray, rir: np.ndarray) -> np.ndarray:
    """``x`` convolved with ``rir``, cut to ``len(x)`` samples."""
    from scipy.signal import fftconvolve

    return fftconvolve(np.asarray(x, np.float32), rir)[: len(x)].astype(np.float32)


def opus_roundtrip(x: np.ndarray, compression_level: float = 0.8, sr: int = SR) -> np.ndarray:
    """``x`` encoded as Ogg/Opus by libsndfile and decoded again (``compression_level`` in
    [0, 1]: higher = lower bitrate). Same length as ``x``."""
    buf = io.BytesIO()
    sf.write(buf, np.clip(np.asarray(x, np.float32), -1, 1), sr, format="OGG", subtype="OPUS",
             compression_level=float(compression_level))
    buf.seek(0)
    y = sf.read(buf, dtype="float32")[0]
    if len(y) < len(x):
        y = np.pad(y, (0, len(x) - len(y)))
    return y[: len(x)].astype(np.float32)


@dataclass(frozen=True)
class AugmentConfig:
    """One random chain per call of :func:`augment`.

    policy: ``speed`` (speed factor only), ``channel`` (gain, reverb, noise, codec) or
    ``mix`` (both). speeds: factors drawn uniformly (1.0 = unchanged). gain_db: range of
    the gain. p_reverb / rt60: probability and range (s) of reverberation. p_noise /
    snr_db: probability and range (dB) of additive noise (white or brown, even odds).
    p_codec / codec_level: probability and range of the Opus round trip's compression level.
    """

    policy: str = "mix"
    speeds: tuple[float, ...] = (0.9, 1.0, 1.1)
    gain_db: tuple[float, float] = (-10.0, 10.0)
    p_reverb: float = 0.3
    rt60: tuple[float, float] = (0.2, 0.8)
    p_noise: float = 0.5
    snr_db: tuple[float, float] = (10.0, 30.0)
    p_codec: float = 0.5
    codec_level: tuple[float, float] = (0.5, 1.0)

    def __post_init__(self) -> None:
        if self.policy not in POLICIES:
            raise ValueError(f"augment policy {self.policy!r}: use one of {', '.join(POLICIES)}")


def augment(x: np.ndarray, cfg: AugmentConfig, rng: np.random.Generator, sr: int = SR
            ) -> tuple[np.ndarray, list[str]]:
    """One random augmentation chain of ``cfg`` on ``x``: the new waveform (clipped to
    [-1, 1]) and what was applied, e.g. ``['speed 1.1', 'gain -3.2 dB', 'opus 0.71']``."""
    y = np.asarray(x, np.float32)
    done: list[str] = []
    if cfg.policy in ("speed", "mix"):
        f = float(rng.choice(cfg.speeds))
        if f != 1.0:
            y = speed_perturb(y, f, sr)
            done.append(f"speed {f:g}")
    if cfg.policy in ("channel", "mix"):
        g = float(rng.uniform(*cfg.gain_db))
        y = np.asarray(y, np.float32) * np.float32(10 ** (g / 20))
        done.append(f"gain {g:+.1f} dB")
        if rng.random() < cfg.p_reverb:
            rt = float(rng.uniform(*cfg.rt60))
            y = reverberate(y, synthetic_rir(rt, rng, sr))
            done.append(f"reverb rt60 {rt:.2f} s")
        if rng.random() < cfg.p_noise:
            snr, colour = float(rng.uniform(*cfg.snr_db)), ("white", "brown")[int(rng.random() < 0.5)]
            y = add_noise(y, snr, rng, colour)
            done.append(f"{colour} noise {snr:.0f} dB SNR")
        if rng.random() < cfg.p_codec:
            lvl = float(rng.uniform(*cfg.codec_level))
            y = opus_roundtrip(y, lvl, sr)
            done.append(f"opus {lvl:.2f}")
    return np.clip(y, -1, 1).astype(np.float32), done


__all__ = ["POLICIES", "AugmentConfig", "add_noise", "apply_gain", "augment", "opus_roundtrip", "reverberate",
           "speed_perturb", "synthetic_rir"]
