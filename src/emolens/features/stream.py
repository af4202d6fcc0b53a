"""Streaming a recording of any length into model patches with constant memory.

:func:`stream_patches` reads an audio file in blocks (soundfile), mixes each block to
mono, resamples it with soxr's streaming resampler (one continuous ``ResampleStream``,
so block edges are seamless), and turns the samples into the linear mel and 96-frame
patches exactly as a whole-file computation would: frames are cut only where all
their samples are present (the ``win_length - hop_length`` overlap is carried to the
next block), patches only where all their frames are present (``patch_frames -
hop_frames`` frames carried), and the end is padded like
:func:`emolens.features.patches.frame_patches` (``tests/features/test_stream.py``
checks patches == whole-file patches). Memory: one block of audio plus the carry-over.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np
import soundfile as sf
import soxr

from emolens.audio.io import SILENCE_PEAK, check_audio_path
from emolens.errors import AudioError
from emolens.features.mel import (
    VGGISH_16K,
    FrontEndConfig,
    log_mel,
    mel_spectrogram,
    num_frames,
)
from emolens.features.patches import (
    DEFAULT_PATCHES,
    PatchConfig,
    frame_patches,
    log_mel_patches,
    num_patches,
)


@dataclass
class StreamInfo:
    """Facts gathered while streaming (complete once the iterator is exhausted).

    Attributes:
        source_rate / channels: of the file as stored.
        samples: mono samples at the target rate seen so far.
        peak: largest absolute sample value.
        notes: odd-but-valid input remarks (resampled, channels mixed, silent).
    """

    source_rate: int = 0
    channels: int = 0
    samples: int = 0
    peak: float = 0.0
    notes: list[str] = field(default_factory=list)

    def duration(self, sample_rate: int) -> float:
        return self.samples / float(sample_rate)


def _audio_blocks(path: Path, sample_rate: int, block_seconds: float, info: StreamInfo) -> Iterator[np.ndarray]:
    """Mono float32 blocks at ``sample_rate`` (the resampler's tail flushed at the end)."""
    name = str(path)
    check_audio_path(path)
    try:
        f = sf.SoundFile(str(path))
    except Exception as exc:  # noqa: BLE001 - libsndfile raises its own types
        msg = str(exc).strip().splitlines()
        raise AudioError(f"{name}: cannot decode ({(msg[-1] if msg else type(exc).__name__)[:160]}); use wav, flac, ogg or mp3") from None
    with f:
        info.source_rate, info.channels = int(f.samplerate), int(f.channels)
        if info.channels > 1:
            info.notes.append(f"{info.channels} channels mixed to mono")
        rs = None
        if info.source_rate != sample_rate:
            info.notes.append(f"resampled {info.source_rate} Hz -> {sample_rate} Hz")
            rs = soxr.ResampleStream(info.source_rate, sample_rate, 1, dtype="float32", quality="HQ")
        n_block = max(1, int(round(block_seconds * info.source_rate)))
        while True:
            try:
                data = f.read(n_block, dtype="float32", always_2d=True)
            except Exception as exc:  # noqa: BLE001
                raise AudioError(f"{name}: cannot decode after {info.samples / sample_rate:.1f} s ({str(exc)[:120]}); the file may be corrupt") from None
            last = len(data) < n_block
            mono = data.mean(axis=1, dtype=np.float64).astype(np.float32) if len(data) else np.zeros(0, np.float32)
            if not np.all(np.isfinite(mono)):
                raise AudioError(f"{name}: samples near {info.samples / sample_rate:.1f} s are NaN or infinite; re-export the file as ordinary PCM audio")
            if rs is not None:
                mono = rs.resample_chunk(mono, last=last)
            if len(mono):
                info.samples += len(mono)
                info.peak = max(info.peak, float(np.max(np.abs(mono))))
                yield mono
            if last:
                break
    if info.samples == 0:
        raise AudioError(f"{name}: the recording has zero samples; give a file that contains audio")
    if info.peak < SILENCE_PEAK:
        info.notes.append("silent (peak below 1e-4): processed, but predictions carry no information")


def stream_mel(path: str | Path, cfg: FrontEndConfig = VGGISH_16K, block_seconds: float = 60.0,
               info: StreamInfo | None = None, on_samples=None) -> Iterator[np.ndarray]:  # noqa: ANN001
    """Linear mel ``(n, n_mels)`` chunks of a file whose concatenation equals
    :func:`mel_spectrogram` of the whole (decoded, resampled) recording. ``on_samples``
    (optional): called with each chunk's samples, exactly the ones its ``n`` frames
    cover (frame-aligned analyses, e.g. the prosody LLDs, run on them)."""
    info = info if info is not None else StreamInfo()
    buf = np.zeros(0, np.float32)
    frames_done = 0
    for block in _audio_blocks(Path(path), cfg.sample_rate, block_seconds, info):
        buf = np.concatenate([buf, block])
        if len(buf) < cfg.win_length:
            continue
        n = num_frames(len(buf), cfg)
        used = buf[: (n - 1) * cfg.hop_length + cfg.win_length]
        if on_samples is not None:
            on_samples(used)
        yield mel_spectrogram(used, cfg)
        frames_done += n
        buf = buf[n * cfg.hop_length :]
    if frames_done == 0:  # shorter than one window: one zero-padded frame, as the whole-file front end
        if on_samples is not None:
            on_samples(buf)
        yield mel_spectrogram(buf, cfg)


def new_samples(chunk: np.ndarray, cfg: FrontEndConfig = VGGISH_16K) -> np.ndarray:
    """The samples a :func:`stream_mel` chunk (as ``on_samples`` gets it) adds to the ones before:
    consecutive chunks overlap by a window less a hop, so its first ``n * hop_length`` samples
    for its ``n`` frames (all of a chunk shorter than one window, the zero-padded tail).
    Concatenated over the chunks they are the recording, less its last partial frame."""
    n = num_frames(len(chunk), cfg) if len(chunk) >= cfg.win_length else 0
    return chunk[: n * cfg.hop_length] if n else chunk


def stream_patches(path: str | Path, cfg: FrontEndConfig = VGGISH_16K, pcfg: PatchConfig = DEFAULT_PATCHES,
                   block_seconds: float = 60.0, info: StreamInfo | None = None,
                   on_samples=None) -> Iterator[tuple[int, np.ndarray]]:  # noqa: ANN001
    """``(index of the first patch, log-mel patches (n, patch_frames, n_mels))`` chunks
    whose concatenation equals :func:`log_mel_patches` of the whole recording's mel
    (``on_samples``: see :func:`stream_mel`)."""
    mel = np.zeros((0, cfg.n_mels), np.float32)
    first = 0  # patch index of mel[0] (mel[0] is frame first * hop_frames)
    total_frames = 0
    for chunk in stream_mel(path, cfg, block_seconds, info, on_samples):
        mel = np.concatenate([mel, chunk])
        total_frames += len(chunk)
        if len(mel) < pcfg.patch_frames:
            continue
        n = 1 + (len(mel) - pcfg.patch_frames) // pcfg.hop_frames
        yield first, log_mel(frame_patches(mel[: (n - 1) * pcfg.hop_frames + pcfg.patch_frames], pcfg))
        first += n
        mel = mel[n * pcfg.hop_frames :]
    remaining = num_patches(total_frames, pcfg) - first
    if remaining > 0:
        yield first, log_mel_patches(mel, pcfg)[:remaining]




__all__ = ["stream_mel", "stream_patches", "StreamInfo"]
