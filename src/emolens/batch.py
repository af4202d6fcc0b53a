"""Classifying many files: parallel decoding, batched inference, results in input order.

:func:`iter_file_results` decodes files (read, mix to mono, resample) and computes their
front end and GDS in a thread pool - libsndfile, soxr, the FFTs and numpy release the
GIL - while the model classifies earlier files, with a bounded look-ahead, so memory
stays flat over thousands of files, and classifies them ``files_per_batch`` at a time
(their patches share forward passes of the backend). Each file gives one
:class:`FileResult`: an :class:`Analysis` or a one-line error; a bad file never stops
the run. :func:`file_key` identifies a file for resuming (absolute path, size, mtime).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from emolens.audio.io import DEFAULT_MAX_SECONDS, load_audio
from emolens.errors import AudioError, EmolensError
from emolens.inference import Analysis, EmotionRecognizer
from emolens.threads import one_blas_thread

#: Added to the over-long error of ``predict`` (long recordings go through ``timeline``).
TIMELINE_HINT = "for long recordings use `emolens timeline FILE`, which streams them"


@dataclass(frozen=True)
class BatchConfig:
    """How a folder run is parallelised.

    Attributes:
        workers: decoding threads (default 2; each decodes, resamples and runs the
            front end and GDS of a file while the model classifies earlier ones;
            :func:`split_threads` gives the CLI's split between these and the model's
            threads).
        files_per_batch: files whose patches share the backend's forward passes (8:
            small batches keep the decoding threads and the model busy together, down
            to the last files; 8 against 32 measured +5 % on 300 EmoDB files, 2 cores).
        lookahead: files decoded ahead of the model, in batches (bounds memory).
        max_seconds: recordings longer than this are reported as errors.
    """

    workers: int = 2
    files_per_batch: int = 8
    lookahead: int = 2
    max_seconds: float | None = DEFAULT_MAX_SECONDS


@dataclass
class FileResult:
    """One input file's outcome: ``analysis`` or ``error`` (a one-line message)."""

    path: Path
    key: tuple[str, int, int]
    analysis: Analysis | None = None
    error: str | None = None


def file_key(path: str | Path) -> tuple[str, int, int]:
    """``(absolute path, size in bytes, mtime in ns)``; ``-1`` sizes for missing files."""
    p = Path(path)
    try:
        st = p.stat()
        return str(p.resolve()), int(st.st_size), int(st.st_mtime_ns)
    except OSError:
        return str(p.absolute()), -1, -1


def _decode(rec: EmotionRecognizer, path: Path, max_seconds: float | None):
    """``(clip, prepared front end + GDS)`` or a one-line error message."""
    try:
        clip = load_audio(path, sample_rate=rec.frontend.sample_rate, max_seconds=max_seconds)
        return clip, rec.prepare_clip(clip)
    except AudioError as exc:
        msg = str(exc)
        return msg + f"; {TIMELINE_HINT}" if "limit" in msg and "longer than" in msg else msg
    except EmolensError as exc:
        return str(exc)


def iter_file_results(rec: EmotionRecognizer, paths: Iterable[str | Path],
                      cfg: BatchConfig = BatchConfig()) -> Iterator[FileResult]:
    """Classify ``paths`` and yield one :class:`FileResult` per file, in input order,
    as soon as its batch is done."""
    window = max(1, cfg.files_per_batch) * max(1, cfg.lookahead + 1)
    it = iter(paths)
    # BLAS threads off: the front end's small matrix products are ~4x slower with
    # OpenBLAS's thread hand-offs, and the cores are busy with the model and decoding.
    with one_blas_thread(), \
            ThreadPoolExecutor(max_workers=max(1, cfg.workers), thread_name_prefix="emolens-decode") as pool:
        pending: deque = deque()

        def fill() -> None:
            while len(pending) < window:
                try:
                    p = Path(next(it))
                except StopIteration:
                    return
                pending.append((p, pool.submit(_decode, rec, p, cfg.max_seconds)))

        fill()
        try:
            while pending:
                batch = [pending.popleft() for _ in range(min(cfg.files_per_batch, len(pending)))]
                fill()
                decoded = [(p, f.result()) for p, f in batch]
                good = [d for _, d in decoded if not isinstance(d, str)]
                analyses = iter(rec.analyze_clips([c for c, _ in good], prepared=[q for _, q in good]) if good else ())
                for p, d in decoded:
                    if isinstance(d, str):
                        yield FileResult(p, file_key(p), error=d)
                    else:
                        yield FileResult(p, file_key(p), analysis=next(analyses))
        finally:  # stopped early (Ctrl-C, closed generator): do not decode the look-ahead
            for _, f in pending:
                f.cancel()


#: Share of a file's CPU time spent in the decoding threads (decode, resample, front end,
#: GDS, prosody and, for a model with one, the Whisper stream), the rest being the model's
#: ONNX Runtime forward passes; the stage profile of ``benchmarks/inference_speed.py``
#: (2 cores): about half for the default model, about 0.85 for the Whisper model.
DECODE_SHARE = {"default": 0.5, "whisper": 0.85}


def decode_share(config: dict) -> float:
    """:data:`DECODE_SHARE` of a model from its ``model.json`` (a Whisper stream or not)."""
    return DECODE_SHARE["whisper" if (config.get("head") or {}).get("whisper") else "default"]


def split_threads(cores: int, decode_share: float = DECODE_SHARE["default"],
                  threads: int | None = None, workers: int | None = None) -> tuple[int, int]:
    """``(model threads, decoding workers)`` for ``cores`` CPU cores, each side sized by its
    share of the work (``threads`` / ``workers``: the user's choice, kept; the other side
    gets the remaining cores, at least 1).

    Giving every side all the cores (the old default: 2 ONNX Runtime threads and 2 decoding
    threads on 2 cores) oversubscribes them: on 300 EmoDB files the default model ran at a
    median 313x real time that way and 337x with 1 + 1 (5 interleaved rounds). The Whisper
    model keeps 2 decoding threads on 2 cores (its stream is most of the work: 68x against
    59x with 1 + 1), so ``workers`` may exceed ``cores - threads``; ``threads`` never does.
    """
    cores = max(1, int(cores))
    if workers is None:
        workers = max(1, round(cores * decode_share)) if threads is None else max(1, cores - threads)
    if threads is None:
        threads = max(1, cores - workers)
    return max(1, int(threads)), max(1, int(workers))


def predict_threads(config: dict, backend: str = "auto", threads: int | None = None, workers: int | None = None,
                    cores: int | None = None) -> tuple[int | None, int]:
    """``(model threads, decoding workers)`` as ``emolens predict`` runs a model (``config``:
    its ``model.json``) on ``cores`` (default: the usable ones): :func:`split_threads` for
    ONNX Runtime; the torch backend (``--adapt``'s path) keeps all cores for the model
    (``None``) and 2 decoding threads, which measured 4 % faster there than the split."""
    from emolens.models.backends import resolve_backend, usable_cores

    if resolve_backend(backend) == "torch":
        return threads, max(1, workers or 2)
    return split_threads(cores or usable_cores(), decode_share(config), threads, workers)


__all__ = ["DECODE_SHARE", "TIMELINE_HINT", "BatchConfig", "FileResult", "decode_share", "file_key", "iter_file_results", "predict_threads", "split_threads"]
