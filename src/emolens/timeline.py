"""Emotion over time in a recording of any length (``emolens timeline``).

:func:`compute_timeline` streams the file (:func:`emolens.features.stream.stream_patches`:
the audio never held whole, no length limit), classifies each block's patches with the
recognizer's backend (a pooled head decides every patch as the clip of the centred
``context`` patches around it would be decided, :meth:`StatisticsPooling.windows
<emolens.models.decision.StatisticsPooling.windows>`; the prosody head with the
prosody functionals of that window's frames, whose descriptors are computed block by
block as the file streams: each block's voicing floor is relative to its own loudest
frame, and the last frames of a block see no samples of the next), smooths the patch probabilities with a centred moving average
over ``smooth`` patches, labels every patch (``"no speech"`` when the recognizer's
speech gate finds no voice in it, or its GDS drops it), and merges
consecutive patches with the same label into :class:`Segment` s.

Threads: the blocks are read, resampled, framed and described (prosody, the Whisper stream)
in a thread of their own, up to two blocks ahead (:func:`emolens.threads.prefetch`), and each
patch's window functionals are computed there as soon as their frames are in
(:class:`emolens.features.prosody.WindowProsody`), while the model classifies the current
block on the other cores (:func:`timeline_threads`).

Time axis: patch ``p`` (0.96 s, hop 0.48 s) owns the hop-long interval around its
centre, ``[p*hop + (patch-hop)/2, (p+1)*hop + (patch-hop)/2)``; the first starts at 0
and the last ends at the end of the recording, so segments tile the recording.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np

from emolens.errors import SelectionError
from emolens.features.stream import StreamInfo, stream_patches
from emolens.inference import EmotionRecognizer
from emolens.selection.speech import NO_SPEECH, decide
from emolens.threads import one_blas_thread, prefetch


@dataclass(frozen=True)
class TimelineConfig:
    """Attributes:
        smooth: patches in the centred moving average of probabilities (1 = none;
            5 = 2.4 s at the default 0.48 s hop).
        block_seconds: audio read, resampled and classified per step (memory ~ this).
        adapt: adapt to the recording's voice (one speaker assumed) with the statistics
            of all its speech patches (:mod:`emolens.adaptation`); needs the model's
            adaptation statistics and ``min_speech_seconds`` of speech, else the
            recording is classified unadapted and a note says so. Keeps the stream
            features of every patch until the end (about 10 kB per 0.48-s patch, 77 MB
            per hour with the shipped model) instead of constant memory.
        neutral: with ``adapt``, recordings of the voice speaking neutrally (paths) to
            enrol it with instead of the recording's own statistics (cannot erase a
            steady emotion; :mod:`emolens.adaptation.transform`).
        context: patches in the centred window each patch is decided in by a pooled
            head (statistics or prosody; 5 = 2.88 s, about one training utterance; its
            statistics need more than one patch); such a model keeps each patch's
            embedding until the end (7 kB per patch with the shipped model, and 80 bytes
            per 10-ms frame of prosody descriptors). Voting models decide every patch
            alone and ignore it.
    """

    smooth: int = 1
    context: int = 5
    neutral: tuple[str, ...] = ()
    block_seconds: float = 60.0
    adapt: bool = False

    def __post_init__(self) -> None:
        if self.smooth < 1:
            raise ValueError("smooth must be >= 1 patch")
        if self.context < 1:
            raise ValueError("context must be >= 1 patch")
        if self.block_seconds <= 0:
            raise ValueError("block_seconds must be > 0")


@dataclass
class Segment:
    """Consecutive patches with one label: ``[start, end)`` seconds, mean probabilities."""

    start: float
    end: float
    label: str
    probs: np.ndarray
    patches: int

    def as_dict(self, classes: list[str]) -> dict:
        return {"start_s": round(self.start, 3), "end_s": round(self.end, 3), "label": self.label,
                "probabilities": {c: round(float(p), 6) for c, p in zip(classes, self.probs)},
                "patches": self.patches}


@dataclass
class Timeline:
    """Per-patch results and segments of one recording.

    Attributes:
        patch_probs: ``(n_patches, C)`` smoothed probabilities.
        voting: ``(n_patches,)`` bool, patches that carry an emotion (others: no speech).
        starts / ends: ``(n_patches,)`` seconds each patch owns on the time axis.
        seconds: wall time of the computation.
    """

    path: str
    duration: float
    classes: list[str]
    patch_probs: np.ndarray
    voting: np.ndarray
    starts: np.ndarray
    ends: np.ndarray
    segments: list[Segment]
    config: TimelineConfig
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def labels(self) -> list[str]:
        """Label of every patch."""
        return [self.classes[int(i)] if v else NO_SPEECH for i, v in zip(self.patch_probs.argmax(1), self.voting)]

    def seconds_per_label(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for s in self.segments:
            out[s.label] = round(out.get(s.label, 0.0) + s.end - s.start, 3)
        return out

    def as_dict(self) -> dict:
        return {"file": self.path, "duration_s": round(self.duration, 3), "classes": self.classes,
                "smooth_patches": self.config.smooth, "context_patches": self.config.context, "block_seconds": self.config.block_seconds,
                "seconds_per_label": self.seconds_per_label(), "notes": self.notes,
                "segments": [s.as_dict(self.classes) for s in self.segments]}


def moving_average(x: np.ndarray, n: int) -> np.ndarray:
    """Centred mean over ``n`` rows of ``x (T, C)``, shrinking at the edges."""
    if n <= 1 or len(x) == 0:
        return x
    c = np.cumsum(np.vstack([np.zeros((1, x.shape[1])), x.astype(np.float64)]), axis=0)
    i = np.arange(len(x))
    lo, hi = np.maximum(0, i - (n - 1) // 2), np.minimum(len(x), i + n // 2 + 1)
    return ((c[hi] - c[lo]) / (hi - lo)[:, None]).astype(np.float32)


def patch_intervals(n: int, duration: float, hop_s: float, patch_s: float) -> tuple[np.ndarray, np.ndarray]:
    """``(starts, ends)`` ``(n,)`` seconds each patch owns (tiling ``[0, duration)``)."""
    edges = np.arange(n + 1) * hop_s + (patch_s - hop_s) / 2
    edges[0], edges[-1] = 0.0, max(duration, edges[-2] if n > 1 else 0.0)
    edges = np.minimum(edges, edges[-1])
    return edges[:-1], edges[1:]


def merge_segments(labels: list[str], probs: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> list[Segment]:
    """Runs of equal labels -> segments with their mean probabilities."""
    segs: list[Segment] = []
    i = 0
    while i < len(labels):
        j = i
        while j + 1 < len(labels) and labels[j + 1] == labels[i]:
            j += 1
        segs.append(Segment(float(starts[i]), float(ends[j]), labels[i], probs[i : j + 1].mean(0), j - i + 1))
        i = j + 1
    return segs


def _voting(rec: EmotionRecognizer, patches: np.ndarray, audioset: np.ndarray | None) -> np.ndarray:
    """Patches that carry an emotion: speech by the recognizer's speech gate (all, with
    the gate off) and kept by its GDS (all without GDS). The others are "no speech"."""
    keep = np.ones(len(patches), bool)
    if rec.selector is not None:
        try:
            keep = rec.selector.select(patches).keep
        except SelectionError:  # a scope that needs groups: the block is one group
            keep = rec.selector.select(patches, np.zeros(len(patches), int)).keep
    if not rec.speech_gate.enabled:
        return keep
    if audioset is None:
        audioset = rec.gate_audioset(patches)
    return keep & decide(audioset, rec.speech_gate).is_speech


def timeline_threads(config: dict, backend: str = "auto") -> int | None:
    """The model's threads for :func:`compute_timeline` (``config``: the model's ``model.json``):
    the usable cores but the one that reads and describes the next blocks
    (:func:`emolens.threads.prefetch`; :func:`emolens.batch.split_threads` with one worker), or
    None (all cores) when the model runs in torch (``--adapt``), which measured faster with both
    cores. On 2 cores 1 ONNX Runtime thread: 252x real time against 197x with 2, on 15 minutes."""
    from emolens.batch import decode_share, split_threads
    from emolens.models.backends import resolve_backend, usable_cores

    if resolve_backend(backend) == "torch":
        return None
    return split_threads(usable_cores(), decode_share(config), workers=1)[0]


def compute_timeline(rec: EmotionRecognizer, path: str | Path, cfg: TimelineConfig = TimelineConfig()) -> Timeline:
    """Stream ``path`` through ``rec`` block by block; see the module docstring."""
    t0 = time.perf_counter()
    info = StreamInfo()
    probs, voting, feats = [], [], []
    windows = None  # a prosody head: each patch's window functionals, computed while the recording streams
    on_samples = None
    pc, fe = rec.patch_config, rec.frontend
    whisper = None  # a head with a Whisper stream: its encoder's sums per patch hop, block by block
    if rec.whisper_spec:
        from emolens.models.whisper import patch_hop_stats

        whisper = patch_hop_stats(rec.whisper_encoder(), rec.whisper_config.layers, pc.hop_frames)
    if rec.needs_prosody:
        from emolens.features.prosody import ProsodyConfig, WindowProsody, prosody_llds
        from emolens.features.stream import new_samples

        pcfg = ProsodyConfig(sample_rate=fe.sample_rate)
        windows = WindowProsody(pc.patch_frames, pc.hop_frames, cfg.context, pcfg)

        def on_samples(x: np.ndarray) -> None:
            windows.add(prosody_llds(x, pcfg))
            if whisper is not None:  # the encoder takes each sample once
                whisper.add(new_samples(x, fe))
    if cfg.adapt:
        from emolens.adaptation.runtime import require_adapter, stream_features

        require_adapter(rec, unlabelled=not cfg.neutral)
    with one_blas_thread():  # see emolens.batch: faster front end, cores left to the model
        # the next blocks are decoded, resampled, framed and described (prosody, Whisper) in a
        # thread of their own while the model classifies this one
        def analysed(blocks: Iterator[tuple[int, np.ndarray]]) -> Iterator[tuple[int, np.ndarray]]:
            seen = 0
            for first, patches in blocks:
                seen += len(patches)
                if windows is not None:  # the windows this block completes, in the same thread
                    windows.advance(seen)
                yield first, patches

        blocks = stream_patches(path, rec.frontend, rec.patch_config, cfg.block_seconds, info, on_samples)
        for _, patches in prefetch(analysed(blocks), depth=2):
            if cfg.adapt:
                f, audioset = stream_features(rec, patches)
                feats.append(f)
            else:
                pp, audioset = rec.patch_outputs(patches)
                probs.append(pp)
            voting.append(_voting(rec, patches, audioset))
    v = np.concatenate(voting)
    q_shift = None  # --adapt --neutral on a prosody head: the offset of the voice's functionals
    if cfg.adapt:
        from emolens.adaptation.timeline import adapt_recording
        from emolens.audio.io import load_audio

        ref = [load_audio(p, sample_rate=rec.frontend.sample_rate) for p in cfg.neutral] or None
        raw, note, q_shift = adapt_recording(rec, feats, v, neutral=ref)
        probs = [raw]
        info.notes.append(note)
    outputs = np.concatenate(probs)
    del probs, feats  # the blocks' copies: the concatenation is all the decision needs
    if windows is not None:  # each patch row carries the functionals of its window of cfg.context patches
        q = windows.finish(len(outputs))
        if whisper is not None:  # and the Whisper stream of the same window (segments = patch hops)
            from emolens.models.whisper import patch_windows

            w = patch_windows(whisper.finish(), len(outputs), cfg.context, pc.patch_frames, pc.hop_frames,
                              rec.whisper_config.pooling)
            q = np.concatenate([q, w], 1)
        if q_shift is not None:  # --adapt --neutral: the voice's functionals shifted as its streams
            q = q - rec.pad_shift(q_shift)
        outputs = np.concatenate([np.asarray(outputs, np.float32), q], axis=1)
    p = moving_average(rec.decision.windows(outputs, v, cfg.context), cfg.smooth)
    fs = rec.frontend.frame_seconds
    duration = info.duration(rec.frontend.sample_rate)
    starts, ends = patch_intervals(len(p), duration, rec.patch_config.hop_frames * fs, rec.patch_config.patch_frames * fs)
    tl = Timeline(str(path), duration, list(rec.classes), p, v, starts, ends, [], cfg, list(info.notes))
    tl.segments = merge_segments(tl.labels, p, starts, ends)
    tl.seconds = time.perf_counter() - t0
    return tl


__all__ = [
    "NO_SPEECH",
    "Segment",
    "Timeline",
    "TimelineConfig",
    "compute_timeline",
    "merge_segments",
    "moving_average",
    "patch_intervals",
    "timeline_threads",
]
