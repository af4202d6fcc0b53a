"""Reading audio files into 16 kHz mono float32 waveforms.

Thin I/O at the edge of the pipeline: :func:`load_audio` reads wav/flac/ogg/mp3 with
soundfile, mixes to mono (mean of channels), resamples with soxr (quality ``"HQ"``) and
checks the result. Every failure raises :class:`emolens.errors.AudioError` with a
one-line message; odd-but-valid input (stereo, other sample rates, silence, very short
clips) is processed and described in :attr:`AudioClip.notes`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from emolens.errors import AudioError

#: Default upper limit on a recording's length, in seconds (10 minutes).
DEFAULT_MAX_SECONDS: float = 600.0
#: Sample rate every backbone expects, in Hz.
TARGET_SR: int = 16000
#: Peak amplitude under which a clip is reported as silent.
SILENCE_PEAK: float = 1e-4


@dataclass
class AudioClip:
    """A decoded recording.

    Attributes:
        samples: mono waveform, float32, shape ``(n_samples,)`` at ``sample_rate``.
        sample_rate: Hz (the target rate after resampling).
        source_rate: Hz of the file as stored.
        source_channels: number of channels in the file.
        path: where it came from (``None`` for in-memory audio).
        notes: human-readable remarks about odd but valid input.
    """

    samples: np.ndarray
    sample_rate: int
    source_rate: int
    source_channels: int
    path: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return len(self.samples) / float(self.sample_rate)


def validate_waveform(
    samples: np.ndarray,
    sample_rate: int,
    *,
    name: str = "audio",
    max_seconds: float | None = DEFAULT_MAX_SECONDS,
) -> list[str]:
    """Check a waveform and return notes about odd-but-valid content.

    Raises :class:`AudioError` for zero samples, non-finite samples or a length over
    ``max_seconds``. Returns notes such as "silent".
    """
    if samples.size == 0:
        raise AudioError(f"{name}: the recording has zero samples; give a file that contains audio")
    if not np.all(np.isfinite(samples)):
        bad = int(np.size(samples) - np.count_nonzero(np.isfinite(samples)))
        raise AudioError(f"{name}: {bad} samples are NaN or infinite; re-export the file as ordinary PCM audio")
    n = samples.shape[0]
    if max_seconds is not None and n / sample_rate > max_seconds:
        raise AudioError(
            f"{name}: {n / sample_rate:.1f} s is longer than the {max_seconds:g} s limit; "
            "cut it into shorter clips or raise the limit (--max-seconds)"
        )
    notes: list[str] = []
    if float(np.max(np.abs(samples))) < SILENCE_PEAK:
        notes.append("silent (peak below 1e-4): processed, but predictions carry no information")
    return notes


def check_audio_path(path: str | Path) -> None:
    """Raise :class:`AudioError` (one line) when ``path`` is missing, a folder or an empty
    (0-byte) file: the checks before any decoder sees it."""
    p = Path(path)
    if not p.exists():
        raise AudioError(f"{p}: no such file; check the path")
    if p.is_dir():
        raise AudioError(f"{p}: is a folder, not an audio file")
    if p.stat().st_size == 0:
        raise AudioError(f"{p}: the file is empty (0 bytes); record or export it again")


def load_audio(
    path: str | Path,
    *,
    sample_rate: int = TARGET_SR,
    max_seconds: float | None = DEFAULT_MAX_SECONDS,
) -> AudioClip:
    """Read an audio file as mono float32 at ``sample_rate`` Hz.

    Args:
        path: wav, flac, ogg or mp3 file (anything libsndfile decodes).
        sample_rate: output rate in Hz (16 kHz for VGGish/YAMNet).
        max_seconds: reject recordings longer than this (``None``: no limit).

    Raises:
        AudioError: missing, undecodable, empty, non-finite or too long.
    """
    p = Path(path)
    name = str(p)
    check_audio_path(p)
    try:
        info = sf.info(str(p))
    except Exception as exc:  # libsndfile raises its own error types
        raise AudioError(
            f"{name}: cannot decode ({_short(exc)}); use wav, flac, ogg or mp3"
        ) from None
    if max_seconds is not None and info.samplerate > 0 and info.frames / info.samplerate > max_seconds:
        raise AudioError(
            f"{name}: {info.frames / info.samplerate:.1f} s is longer than the {max_seconds:g} s limit; "
            "cut it into shorter clips or raise the limit (--max-seconds)"
        )
    try:
        data, sr = sf.read(str(p), dtype="float32", always_2d=True)
    except Exception as exc:
        raise AudioError(f"{name}: cannot decode ({_short(exc)}); the file may be corrupt") from None
    notes: list[str] = []
    channels = data.shape[1]
    if data.shape[0] == 0:
        raise AudioError(f"{name}: the recording has zero samples; give a file that contains audio")
    if channels > 1:
        notes.append(f"{channels} channels mixed to mono")
    mono = data.mean(axis=1, dtype=np.float64).astype(np.float32)
    if not np.all(np.isfinite(mono)):
        validate_waveform(mono, sr, name=name, max_seconds=None)
    if sr != sample_rate:
        notes.append(f"resampled {sr} Hz -> {sample_rate} Hz")
        mono = soxr.resample(mono, sr, sample_rate, quality="HQ").astype(np.float32)
    notes += validate_waveform(mono, sample_rate, name=name, max_seconds=max_seconds)
    return AudioClip(mono, sample_rate, int(sr), int(channels), name, notes)


def _short(exc: Exception) -> str:
    msg = str(exc).strip().splitlines()
    return (msg[-1] if msg else type(exc).__name__)[:160]
