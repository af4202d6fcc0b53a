"""Batch inference on Ray Data: an archive of recordings -> Parquet (or JSON-lines) shards.

The job is one Ray Data pipeline (no scheduler of our own)::

    read_parquet(OUT/_emolens/inputs)          the file list (id, file, size, mtime)
      -> CheckpointFilter                      Ray Data drops the ids already committed
      -> repartition(files_per_task rows)      so decoding spreads over tasks
      -> map_batches(decode_rows)              Ray *tasks*: read, mix, resample, mel, GDS
      -> map_batches(Classifier, ActorPool)    one ONNX Runtime session per actor, loaded once
      -> write_parquet(OUT) / JSON lines       shards of >= files_per_batch rows

**Exactly once** is Ray Data's own checkpointing (``DataContext.checkpoint_config`` with
``id_column="id"``): before a shard is written its ids are recorded as a *pending*
checkpoint, after it is written they are committed; a re-run first deletes the shards
of pending (killed) commits, then filters the committed ids out of the input, so every
file is recorded once however often the job is killed. The id is the file's absolute
path, size and mtime (:func:`emolens.batch.file_key`), so a file changed since is
classified again (its older row stays).

A corrupt, unreadable or missing file becomes an *error row* (``error``: the one-line
message ``emolens predict`` prints), never a failed job.

Rows carry the fields of ``emolens predict --json`` (:meth:`emolens.inference.Analysis.as_dict`)
plus ``id``, ``error``, ``size_bytes``, ``mtime_ns`` and, for recordings at least
``segments_over`` seconds long, ``segments``: the :mod:`emolens.timeline` segments
(start, end, label or "no speech", probabilities, patches). Recordings longer than
``stream_over`` seconds are decoded in blocks (:func:`emolens.features.stream.stream_mel`,
constant memory while decoding); there is no length limit unless ``max_seconds`` is set.

What travels from the decoding tasks to the actors is the *linear mel* ``(frames, 64)``
float32 (25.6 kB per second of audio): the actor cuts it into patches with the same
:func:`log_mel_patches` as ``predict``, so results are identical to it, and the
object store carries half the bytes of the 50%-overlapping patches.

``ray`` is imported only in this module (``pip install emolens[ray]``).
"""

from __future__ import annotations

import csv
import json
import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from emolens.errors import EmolensError

log = logging.getLogger("emolens")

#: Ray Data schedules by logical CPUs: besides the model actors, one decoding task and
#: Ray Data's checkpoint-filter actor (and its file-listing task) each hold one.
EXTRA_CPUS = 2
#: Logical memory reserved per model actor (Ray worker, ONNX session, a batch of patches:
#: 490-540 MB peak RSS measured by benchmarks/ray_batch.py).
ACTOR_MEMORY = 768 * 2**20
META_DIR = "_emolens"  # under OUT: inputs, checkpoints, run.json (ignored by Parquet readers: "_" prefix)
FORMATS = ("parquet", "jsonl")


@dataclass(frozen=True)
class RayBatchConfig:
    """How a Ray batch job runs.

    Attributes:
        workers: model actors (one ONNX Runtime session each; default 1).
        threads: ONNX Runtime intra-op threads per actor = its logical CPUs (default 1).
        files_per_batch: files whose patches share the model's forward passes; also the
            least rows per output shard, the unit of checkpointing (default 16).
        files_per_task: files per decoding task (default 8).
        max_seconds: recordings longer than this become error rows (default None: any length).
        stream_over: recordings longer than this (s) are decoded in blocks (default 600).
        segments_over: recordings at least this long (s) also get timeline segments (default 60).
        smooth: moving average of patch probabilities over N patches for the segments (default 1).
        block_seconds: block length (s) when streaming (default 60).
        format: ``parquet`` (default) or ``jsonl`` shards.
        address: Ray cluster to join (default: ``$RAY_ADDRESS``, else a local Ray started here).
        progress: Ray Data progress bars.
    """

    workers: int = 1
    threads: int = 1
    files_per_batch: int = 16
    files_per_task: int = 8
    max_seconds: float | None = None
    stream_over: float = 600.0
    segments_over: float = 60.0
    smooth: int = 1
    block_seconds: float = 60.0
    format: str = "parquet"
    address: str | None = None
    progress: bool = True

    def __post_init__(self) -> None:
        if self.workers < 1 or self.threads < 1 or self.files_per_batch < 1 or self.files_per_task < 1:
            raise EmolensError("--workers, --threads and --batch-files must be >= 1")
        if self.format not in FORMATS:
            raise EmolensError(f"--format {self.format}: use {' or '.join(FORMATS)}")
        if self.smooth < 1 or self.block_seconds <= 0:
            raise EmolensError("--smooth must be >= 1 and the block length > 0")


@dataclass(frozen=True)
class ModelSpec:
    """What the decoding tasks and model actors need of a model (picklable, no torch).

    Attributes:
        classes: emotion names, the order of the probabilities.
        frontend / patch_config: the model's front end and patching.
        selector: fitted GDS selector (None when GDS is off).
        speech_gate: the speech-gate settings.
        fingerprint: sha256 of the model weights (output folders are tied to one model).
        temperature: calibration temperature on the utterance probabilities (1.0: none).
        uncertain_threshold: top probability below which a clip is "uncertain" (None: never).
        decision: how a clip is decided from its patches' outputs
            (:mod:`emolens.models.decision`; default the vote).
        context: patches per decision window of a statistics-pooling model's segments
            (as ``timeline --context``).
        whisper: a Whisper model's stream (model.json ``head.whisper``: layer, pooling, ...):
            the decoding tasks append it to the clip's functionals, as ``predict`` does; None
            for other models.
    """

    classes: tuple[str, ...]
    frontend: Any
    patch_config: Any
    selector: Any
    speech_gate: Any
    fingerprint: str
    temperature: float = 1.0
    uncertain_threshold: float | None = None
    decision: Any = None
    context: int = 5
    whisper: dict | None = None


@dataclass
class RunSummary:
    """Outcome of :func:`run_ray_batch` (counts of distinct input files)."""

    out: Path
    files: int
    skipped: int
    classified: int
    errors: int
    seconds: float
    format: str

    @property
    def files_per_second(self) -> float:
        return self.classified / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict:
        return {"out": str(self.out), "files": self.files, "skipped": self.skipped, "classified": self.classified,
                "errors": self.errors, "seconds": round(self.seconds, 3), "files_per_s": round(self.files_per_second, 3),
                "format": self.format}


# --------------------------------------------------------------------------- schema
def result_schema(classes: Iterable[str]):
    """Arrow schema of a result row (error rows: ``id, file, error, size_bytes, mtime_ns``, rest null)."""
    import pyarrow as pa

    prob = pa.struct([(c, pa.float64()) for c in classes])
    seg = pa.struct([("start_s", pa.float64()), ("end_s", pa.float64()), ("label", pa.string()),
                     ("probabilities", prob), ("patches", pa.int64())])
    return pa.schema([
        ("id", pa.string()), ("file", pa.string()), ("label", pa.string()), ("probability", pa.float64()),
        ("speech", pa.bool_()), ("speech_fraction", pa.float64()), ("emotion", pa.string()), ("uncertain", pa.bool_()), ("adapted", pa.bool_()),
        ("probabilities", prob), ("probabilities_meaningful", pa.bool_()), ("patches", pa.int64()),
        ("patches_kept", pa.int64()), ("patches_voting", pa.int64()), ("duration_s", pa.float64()),
        ("notes", pa.list_(pa.string())), ("segments", pa.list_(seg)), ("error", pa.string()),
        ("size_bytes", pa.int64()), ("mtime_ns", pa.int64()),
    ])


def _decoded_schema():
    import pyarrow as pa

    return pa.schema([("id", pa.string()), ("file", pa.string()), ("size_bytes", pa.int64()), ("mtime_ns", pa.int64()),
                      ("error", pa.string()), ("duration_s", pa.float64()), ("notes", pa.list_(pa.string())),
                      ("n_frames", pa.int64()), ("mel", pa.large_binary()), ("keep", pa.binary()),
                      ("prosody", pa.binary()), ("prosody_windows", pa.large_binary())])


# --------------------------------------------------------------------------- inputs
def file_id(path: str | Path) -> tuple[str, dict]:
    """``(id, row)`` of an input file: the id joins absolute path, size and mtime."""
    from emolens.batch import file_key

    key = file_key(path)
    return f"{key[0]}|{key[1]}|{key[2]}", {"file": str(path), "size_bytes": key[1], "mtime_ns": key[2]}


def _manifest_paths(manifest: Path) -> list[Path]:
    """Paths in a CSV/Parquet manifest's ``path`` (or ``file``) column, relative ones
    taken from the manifest's folder."""
    if manifest.suffix.lower() == ".parquet":
        import pyarrow.parquet as pq

        names = pq.read_schema(manifest).names
        col = next((c for c in ("path", "file") if c in names), None)
        values = pq.read_table(manifest, columns=[col]).column(col).to_pylist() if col else None
    else:
        with open(manifest, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            col = next((c for c in ("path", "file") if c in (reader.fieldnames or [])), None)
            values = [r[col] for r in reader] if col else None
    if values is None:
        raise EmolensError(f"{manifest}: a manifest needs a 'path' (or 'file') column naming the audio files")
    return [p if p.is_absolute() else manifest.parent / p for p in (Path(str(v)) for v in values if v)]


def collect_inputs(inputs: Iterable[str | Path]) -> list[Path]:
    """Audio files named by ``inputs``: folders (walked recursively), ``.txt``/``.lst``
    file lists (one path a line, ``#`` comments), ``.csv``/``.parquet`` manifests
    (column ``path`` or ``file``) and audio files. Missing files are kept (they become
    error rows); duplicates are dropped."""
    from emolens.corpora.parsers import AUDIO_EXTENSIONS

    files: list[Path] = []
    for raw in inputs:
        p = Path(raw)
        suffix = p.suffix.lower()
        if p.is_dir():
            files += sorted(q for q in p.rglob("*") if q.suffix.lower() in AUDIO_EXTENSIONS and q.is_file())
        elif suffix in (".csv", ".parquet") and p.is_file():
            files += _manifest_paths(p)
        elif suffix in (".txt", ".lst") and p.is_file():
            lines = [ln.strip() for ln in p.read_text(encoding="utf-8").splitlines()]
            files += [q if q.is_absolute() else p.parent / q for q in (Path(ln) for ln in lines if ln and not ln.startswith("#"))]
        else:
            files.append(p)
    if not files:
        raise EmolensError("no audio files found in the given folders, lists or manifests (wav, flac, ogg, mp3)")
    return list(dict.fromkeys(files))


# --------------------------------------------------------------------------- decoding (Ray tasks)
def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:200]}" if text else type(exc).__name__


def decode_file(path: str, spec: ModelSpec, cfg: RayBatchConfig) -> dict:
    """Linear mel ``(n_frames, n_mels)``, GDS keep mask ``(n_patches,)``, duration (s) and
    notes of one file, or ``{"error": one-line message}``. Up to ``cfg.stream_over``
    seconds exactly as ``predict`` decodes (:func:`load_audio`); longer in blocks."""
    import soundfile as sf

    from emolens.audio.io import load_audio
    from emolens.features.mel import mel_spectrogram
    from emolens.features.patches import log_mel_patches, num_patches
    from emolens.features.stream import StreamInfo, new_samples, stream_mel

    fe, pcfg = spec.frontend, spec.patch_config
    needs_prosody = getattr(spec.decision, "pooling", "mean") == "mean+prosody"
    llds: list | None = [] if needs_prosody else None
    if needs_prosody:
        from emolens.features.prosody import ProsodyConfig, prosody_llds

        prc = ProsodyConfig(sample_rate=fe.sample_rate)
    whisper = clip_stream = None  # a Whisper model: the encoder's sums per patch hop; the clip's stream as predict's
    if needs_prosody and spec.whisper:
        from emolens.models.whisper import (
            WhisperStreamConfig,
            patch_hop_stats,
            shared_encoder,
            whisper_stream,
        )

        wcfg = WhisperStreamConfig.from_spec(spec.whisper)
        whisper = patch_hop_stats(shared_encoder(wcfg.layer), wcfg.layers, pcfg.hop_frames)
    try:
        try:
            seconds = sf.info(path).duration
        except Exception:  # noqa: BLE001 - load_audio gives the proper message below
            seconds = 0.0
        if seconds <= cfg.stream_over:
            clip = load_audio(path, sample_rate=fe.sample_rate, max_seconds=cfg.max_seconds)
            duration, notes = clip.duration, list(clip.notes)
            if llds is not None:  # one |STFT| for the log-mel and the prosody descriptors, as predict
                from emolens.features.mel import mel_from_magnitude, stft_magnitude

                mag = stft_magnitude(clip.samples, fe)
                mel = mel_from_magnitude(mag, fe)
                llds.append(prosody_llds(clip.samples, prc, mag))
                if whisper is not None:  # the clip's stream as predict computes it; its windows' as the timeline's
                    # (a recording that gets segments is encoded twice, so both equal theirs exactly: the
                    # timeline encodes 30-s pieces of the streamed samples, predict the whole clip)
                    clip_stream = whisper_stream(clip.samples, wcfg, whisper.encoder)
                    if duration >= cfg.segments_over:
                        whisper.add(new_samples(clip.samples, fe))
            else:
                mel = mel_spectrogram(clip.samples, fe)
        else:
            if cfg.max_seconds is not None and seconds > cfg.max_seconds:
                raise EmolensError(f"{path}: {seconds:.1f} s is longer than the {cfg.max_seconds:g} s limit; "
                                   "cut it into shorter clips or raise the limit (--max-seconds)")
            info = StreamInfo()
            def on(x: np.ndarray) -> None:
                llds.append(prosody_llds(x, prc))
                if whisper is not None:
                    whisper.add(new_samples(x, fe))

            mel = np.concatenate(list(stream_mel(path, fe, cfg.block_seconds, info, None if llds is None else on)))
            duration, notes = info.duration(fe.sample_rate), list(info.notes)
        short = f"shorter than one patch ({pcfg.patch_frames * fe.frame_seconds:.2f} s): padded with silence"
        if mel.shape[0] < pcfg.patch_frames and short not in notes:
            notes.append(short)
        if spec.selector is not None:
            patches = log_mel_patches(mel, pcfg)
            keep = spec.selector.select(patches, np.zeros(len(patches), int)).keep
        else:
            keep = np.ones(num_patches(mel.shape[0], pcfg), bool)
        out = {"mel": np.ascontiguousarray(mel, np.float32), "keep": np.asarray(keep, bool),
               "duration_s": float(duration), "notes": notes}
        if llds is not None:  # the prosody head: the clip's functionals, and its windows' when it gets segments
            from emolens.features.prosody import (
                concat_llds,
                prosody_functionals,
                window_prosody,
            )

            ll = concat_llds(llds)
            out["prosody"] = prosody_functionals(ll, prc)
            if duration >= cfg.segments_over:
                out["prosody_windows"] = window_prosody(ll, len(keep), pcfg.patch_frames, pcfg.hop_frames, spec.context, prc)
            if whisper is not None:  # the stream after the functionals, pooled over the clip and over each window
                from emolens.models.whisper import patch_windows, window_stats

                pooling = wcfg.pooling
                if clip_stream is None or "prosody_windows" in out:
                    stats = whisper.finish()
                if clip_stream is None:  # a recording decoded in blocks: every segment's frames
                    clip_stream = window_stats(*stats, [0], [len(stats[2])], pooling)[0]
                out["prosody"] = np.concatenate([out["prosody"], clip_stream])
                if "prosody_windows" in out:
                    w = patch_windows(stats, len(keep), spec.context, pcfg.patch_frames, pcfg.hop_frames, pooling)
                    out["prosody_windows"] = np.concatenate([out["prosody_windows"], w], 1)
        return out
    except EmolensError as exc:
        return {"error": str(exc)}
    except Exception as exc:  # noqa: BLE001 - one bad file never fails the job
        return {"error": f"{path}: could not be processed ({_one_line(exc)})"}


def decode_rows(batch, spec: ModelSpec, cfg: RayBatchConfig):
    """Ray Data task: input rows (``pyarrow.Table``: id, file, size_bytes, mtime_ns) ->
    decoded rows (mel bytes, keep mask, duration, notes or error)."""
    import pyarrow as pa

    _one_blas_thread()
    rows = []
    for r in batch.to_pylist():
        d = decode_file(r["file"], spec, cfg)
        mel = d.get("mel")
        rows.append({**r, "error": d.get("error"), "duration_s": d.get("duration_s"), "notes": d.get("notes"),
                     "n_frames": None if mel is None else int(mel.shape[0]),
                     "mel": None if mel is None else mel.tobytes(),
                     "keep": None if mel is None else np.packbits(d["keep"]).tobytes(),
                     "prosody": None if d.get("prosody") is None else np.asarray(d["prosody"], np.float32).tobytes(),
                     "prosody_windows": (None if d.get("prosody_windows") is None
                                         else np.asarray(d["prosody_windows"], np.float32).tobytes())})
    return pa.Table.from_pylist(rows, schema=_decoded_schema())


_BLAS_LIMITED = False


def _one_blas_thread() -> None:
    """One BLAS thread in this Ray worker process, set once (as :mod:`emolens.batch` does
    per run: the front end's small matrix products are slower with thread hand-offs;
    threadpoolctl's library scan costs ~10 ms, too much per task)."""
    global _BLAS_LIMITED
    if not _BLAS_LIMITED:
        from threadpoolctl import threadpool_limits

        threadpool_limits(1, user_api="blas")
        _BLAS_LIMITED = True


# --------------------------------------------------------------------------- the model (Ray actors)
def file_record(row: dict, pp: np.ndarray, audioset: np.ndarray | None, keep: np.ndarray,
                spec: ModelSpec, cfg: RayBatchConfig, windows: np.ndarray | None = None) -> dict:
    """Result row of one file from its patch outputs ``pp (n, K)`` (the backend's; a
    prosody head's with the clip's functionals appended), AudioSet scores ``(n, 521)``
    (None without a speech gate) and GDS mask ``(n,)``: the decision of
    :meth:`emolens.inference.EmotionRecognizer.analyze_clips`, fields of ``predict --json``.
    ``windows``: the rows the segments are decided on when they differ from ``pp`` (a
    prosody head's, each with its window's functionals)."""
    from emolens.selection.speech import NO_SPEECH, decide, voting_mask

    classes, gate, notes = list(spec.classes), spec.speech_gate, list(row["notes"] or [])
    speech = None
    if gate.enabled:
        d = decide(audioset, gate)
        voting, has_speech, frac, speech = voting_mask(d.is_speech, keep), d.has_speech, d.speech_fraction, d.is_speech
        if not has_speech:
            note = (f"no speech: {frac:.0%} of patches are speech (< {gate.min_speech_fraction:.0%});"
                    " the emotion probabilities are not meaningful")
            if note not in notes:
                notes.append(note)
    else:
        voting, has_speech, frac = keep, True, 1.0
    from emolens.evaluation.calibration import apply_temperature
    from emolens.models.decision import PatchVote

    decision = spec.decision or PatchVote()
    probs = apply_temperature(decision.decide(pp, voting).probs, spec.temperature)  # as EmotionRecognizer does
    emotion = classes[int(np.argmax(probs))]
    uncertain = bool(has_speech and spec.uncertain_threshold is not None and float(np.max(probs)) < spec.uncertain_threshold)
    rec = {"id": row["id"], "file": row["file"], "label": emotion if has_speech else NO_SPEECH,
           "probability": float(np.max(probs)) if has_speech else 1.0 - frac,
           "speech": bool(has_speech), "speech_fraction": round(float(frac), 4), "emotion": emotion,
           "uncertain": uncertain, "adapted": False,
           "probabilities": {c: float(p) for c, p in zip(classes, probs)}, "probabilities_meaningful": bool(has_speech),
           "patches": int(len(keep)), "patches_kept": int(keep.sum()), "patches_voting": int(np.sum(voting)),
           "duration_s": round(float(row["duration_s"]), 3), "notes": notes, "segments": None, "error": None,
           "size_bytes": row["size_bytes"], "mtime_ns": row["mtime_ns"]}
    if row["duration_s"] >= cfg.segments_over:
        carries = keep if speech is None else keep & speech
        rows = pp if windows is None else windows
        rec["segments"] = file_segments(decision.windows(rows, carries, spec.context), carries, row["duration_s"], spec, cfg.smooth)
    return rec


def file_segments(pp: np.ndarray, voting: np.ndarray, duration: float, spec: ModelSpec, smooth: int) -> list[dict]:
    """The segments ``emolens timeline`` writes, from patch probabilities ``(n, C)`` and
    the patches that carry an emotion ``(n,)`` (speech and GDS-kept)."""
    from emolens.timeline import (
        NO_SPEECH,
        merge_segments,
        moving_average,
        patch_intervals,
    )

    fs = spec.frontend.frame_seconds
    p = moving_average(pp, smooth)
    starts, ends = patch_intervals(len(p), duration, spec.patch_config.hop_frames * fs, spec.patch_config.patch_frames * fs)
    labels = [spec.classes[int(i)] if v else NO_SPEECH for i, v in zip(p.argmax(1), voting)]
    return [s.as_dict(list(spec.classes)) for s in merge_segments(labels, p, starts, ends)]


def _error_record(row: dict, message: str) -> dict:
    return {"id": row["id"], "file": row["file"], "error": message, "size_bytes": row["size_bytes"], "mtime_ns": row["mtime_ns"]}


class Classifier:
    """Ray Data actor: one ONNX Runtime session, loaded once, classifying decoded rows
    (a ``pyarrow.Table`` batch; their patches share forward passes) into result rows."""

    def __init__(self, onnx, spec: ModelSpec, cfg: RayBatchConfig):
        from emolens.models.backends import OnnxBackend

        if not isinstance(onnx, (bytes, bytearray)):  # an ObjectRef of the model bytes
            import ray

            onnx = ray.get(onnx)
        self._dir = tempfile.mkdtemp(prefix="emolens-actor-")
        path = Path(self._dir) / "model.onnx"
        path.write_bytes(onnx)
        self.backend = OnnxBackend(path, threads=cfg.threads)
        self.spec, self.cfg = spec, cfg
        self.schema = result_schema(spec.classes)

    def __call__(self, batch):
        import pyarrow as pa

        from emolens.features.patches import log_mel_patches

        _one_blas_thread()

        rows = batch.to_pylist()
        out: list[dict] = []
        good, patches = [], []
        for r in rows:
            if r["error"] is not None:
                out.append(_error_record(r, r["error"]))
                continue
            mel = np.frombuffer(r["mel"], np.float32).reshape(r["n_frames"], self.spec.frontend.n_mels)
            p = log_mel_patches(mel, self.spec.patch_config)
            keep = np.unpackbits(np.frombuffer(r["keep"], np.uint8), count=len(p)).astype(bool)
            good.append((r, keep))
            patches.append(p)
        if good:
            try:
                probs, audioset = self.backend.run(np.concatenate(patches))
                if self.spec.speech_gate.enabled and audioset is None:
                    raise EmolensError("this model has no YAMNet branch for the speech gate")
                start = 0
                for (r, keep), p in zip(good, patches):
                    sl = slice(start, start + len(p))
                    start += len(p)
                    try:
                        pp, win = probs[sl], None
                        if r.get("prosody") is not None:  # the prosody head: rows [z, q]
                            q = np.frombuffer(r["prosody"], np.float32)
                            pp = np.concatenate([pp, np.broadcast_to(q, (len(pp), len(q)))], 1)
                            if r.get("prosody_windows") is not None:
                                win = np.concatenate([probs[sl], np.frombuffer(r["prosody_windows"], np.float32)
                                                      .reshape(len(pp), len(q))], 1)
                        out.append(file_record(r, pp, None if audioset is None else audioset[sl], keep, self.spec,
                                               self.cfg, win))
                    except Exception as exc:  # noqa: BLE001 - an error row, not a failed job
                        out.append(_error_record(r, f"{r['file']}: could not be classified ({_one_line(exc)})"))
            except Exception as exc:  # noqa: BLE001
                out += [_error_record(r, f"{r['file']}: could not be classified ({_one_line(exc)})") for r, _ in good]
        return pa.Table.from_pylist(out, schema=self.schema)

    def __del__(self):
        shutil.rmtree(getattr(self, "_dir", ""), ignore_errors=True)


# --------------------------------------------------------------------------- the driver
def model_spec(rec) -> tuple[ModelSpec, bytes]:  # noqa: ANN001 - EmotionRecognizer on the ONNX backend
    """The picklable :class:`ModelSpec` and the ONNX bytes of a recognizer loaded with
    ``backend="onnx"``; refuses models the ONNX graph alone cannot run."""
    if getattr(rec.backend, "name", None) != "onnx":
        raise EmolensError("the Ray engine runs the model in ONNX Runtime; install onnx and onnxruntime")
    if rec.normalize != "none":
        raise EmolensError(f"this model normalises features per {rec.normalize}, which runs in PyTorch; "
                           "use the local engine (emolens predict without --engine ray)")
    if rec.speech_gate.enabled and "audioset" not in rec.backend.outputs:
        raise EmolensError("this model has no YAMNet branch for the speech gate; use the local engine")
    spec = ModelSpec(tuple(rec.classes), rec.frontend, rec.patch_config, rec.selector, rec.speech_gate,
                     rec.backend.fingerprint or "", float(rec.temperature), rec.uncertain_threshold, rec.decision,
                     whisper=rec.whisper_spec)
    return spec, Path(rec.backend.path).read_bytes()


def init_ray(cfg: RayBatchConfig) -> None:
    """Join ``cfg.address`` / ``$RAY_ADDRESS``, else start a local Ray (a laptop needs no
    cluster) with at least ``workers * threads + EXTRA_CPUS`` logical CPUs; check the
    cluster can hold the job (one-line error otherwise)."""
    import ray

    if not ray.is_initialized():
        address = cfg.address or os.environ.get("RAY_ADDRESS")
        quiet = dict(logging_level=logging.WARNING, log_to_driver=False, configure_logging=True)
        try:
            if address:
                ray.init(address=address, **quiet)
            else:
                need = cfg.workers * cfg.threads + EXTRA_CPUS
                ray.init(num_cpus=max(os.cpu_count() or 1, need), include_dashboard=False, **quiet)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise EmolensError(f"cannot start or join Ray{f' at {address}' if address else ''} ({_one_line(exc)}); "
                               "check --address / RAY_ADDRESS (`ray status` on the head node)") from None
    cpus = float(ray.cluster_resources().get("CPU", 0))
    need = cfg.workers * cfg.threads + EXTRA_CPUS
    if cpus < need:
        raise EmolensError(f"the Ray cluster has {cpus:g} CPUs; --workers {cfg.workers} x --threads {cfg.threads} "
                           f"needs {need} ({EXTRA_CPUS} for decoding and Ray Data's checkpoint filter); lower --workers")


def _check_out(out: Path, spec: ModelSpec, cfg: RayBatchConfig) -> None:
    """``OUT/_emolens/run.json`` ties an output folder to one model and format."""
    meta = out / META_DIR
    meta.mkdir(parents=True, exist_ok=True)
    run = {"emolens_ray_batch": 1, "model_sha256": spec.fingerprint, "classes": list(spec.classes), "format": cfg.format}
    f = meta / "run.json"
    if f.exists():
        old = json.loads(f.read_text())
        if {k: old.get(k) for k in run} != run:
            raise EmolensError(f"--out {out} holds results of another model or format ({old.get('format')}, "
                               f"classes {','.join(old.get('classes') or [])}); choose a new folder")
    else:
        f.write_text(json.dumps(run, indent=1))


def _write_inputs(meta: Path, rows: list[dict]) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    d = meta / "inputs"
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir(parents=True)
    schema = pa.schema([("id", pa.string()), ("file", pa.string()), ("size_bytes", pa.int64()), ("mtime_ns", pa.int64())])
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), d / "inputs.parquet")
    return d


def _jsonl_sink(path: str, min_rows: int):
    """A Ray Data file datasink writing JSON lines (null fields left out, as
    ``predict --out x.jsonl``); a file datasink, so checkpointing covers it."""
    from ray.data.block import BlockAccessor
    from ray.data.datasource import BlockBasedFileDatasink

    class JsonLinesDatasink(BlockBasedFileDatasink):
        def __init__(self, path: str):
            super().__init__(path, file_format="jsonl", min_rows_per_file=min_rows)

        def write_block_to_file(self, block, file) -> None:  # noqa: ANN001 - Ray's types
            acc = block if hasattr(block, "to_arrow") else BlockAccessor.for_block(block)  # Ray passes an accessor
            for rec in acc.to_arrow().to_pylist():
                file.write((json.dumps({k: v for k, v in rec.items() if v is not None}) + "\n").encode())

    return JsonLinesDatasink(path)


def read_results(out: str | Path, format: str | None = None, columns: list[str] | None = None):
    """All result rows in ``out`` as a ``pyarrow.Table`` (``format``: from run.json;
    ``columns``: only these, for Parquet shards)."""
    import pyarrow as pa
    import pyarrow.dataset as pads

    out = Path(out)
    if format is None:
        f = out / META_DIR / "run.json"
        format = json.loads(f.read_text())["format"] if f.exists() else "parquet"
    if format == "parquet":
        files = _shard_files(out, "parquet")
        return (pads.dataset([str(f) for f in files], format="parquet").to_table(columns=columns) if files
                else pa.table({"id": pa.array([], pa.string())}))
    recs = [json.loads(ln) for f in _shard_files(out, "jsonl") for ln in f.read_text(encoding="utf-8").splitlines() if ln.strip()]
    if not recs:
        return pa.table({"id": pa.array([], pa.string())})
    keys = list(dict.fromkeys(k for r in recs for k in r))  # error rows lack most fields
    return pa.Table.from_pylist([{k: r.get(k) for k in keys} for r in recs])


def _shard_files(out: Path, format: str) -> list[Path]:
    """The result shards of ``out`` in name order (names starting with "_" are not shards)."""
    ext = "parquet" if format == "parquet" else "jsonl"
    return sorted(f for f in out.glob(f"*.{ext}") if not f.name.startswith("_"))


def dedupe_shards(out: str | Path, format: str = "parquet") -> int:
    """Rewrite the result shards of ``out`` so that every id is recorded once, and return
    how many rows were removed.

    Ray Data's two-phase commit keeps a job that is killed and run again to one row per
    file almost always, but under load the suite once found 8 of 24 files recorded twice
    after a kill and a re-run (32 rows). A write task that Ray retried, or a shard that the
    pending-commit cleanup missed, would both do this.
    The id is the file's path, size and mtime, so two rows with one id are the same file
    version classified twice, and the first one kept is as good as the other. Each shard
    that holds ids an earlier shard (name order) already holds is written again without
    them: to a temporary name, then renamed over the shard. A shard left with no rows is
    deleted. Readers never see a half-written shard."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    out = Path(out)
    for left in out.glob("_dedupe-*"):  # a rewrite a kill cut short: the shard itself is intact
        left.unlink()
    seen: set[str] = set()
    removed = 0
    for f in _shard_files(out, format):
        if format == "parquet":  # the id column only: the whole shard is read when it needs rewriting
            ids = pq.read_table(f, columns=["id"]).column("id").to_pylist()
        else:
            lines = [ln for ln in f.read_text(encoding="utf-8").splitlines() if ln.strip()]
            ids = [json.loads(ln)["id"] for ln in lines]
        keep, local = [], set()
        for i in ids:
            keep.append(i not in seen and i not in local)
            local.add(i)
        seen |= local
        if all(keep):
            continue
        removed += keep.count(False)
        if not any(keep):
            f.unlink()
            continue
        tmp = f.with_name(f"_dedupe-{f.name}")  # "_" prefix: Parquet readers skip it
        if format == "parquet":
            pq.write_table(pq.read_table(f).filter(pa.array(keep)), tmp)
        else:
            tmp.write_text("".join(ln + "\n" for ln, k in zip(lines, keep) if k), encoding="utf-8")
        os.replace(tmp, f)
    return removed


def _checkpoint(out: Path) -> tuple[set[str], bool]:
    """``(ids committed by Ray Data's checkpoint, whether a pending commit is left)``: the
    committed ids are the files recorded in complete shards; a pending one is a shard a
    kill cut short, which the next job deletes before redoing its files."""
    import pyarrow.parquet as pq

    d = out / META_DIR / "checkpoint"
    files = sorted(d.glob("*.parquet")) if d.is_dir() else []
    committed = [f for f in files if not f.name.endswith(".pending.parquet")]
    ids: set[str] = set()
    for f in committed:
        ids.update(pq.read_table(f, columns=["id"]).column("id").to_pylist())
    return ids, len(committed) < len(files)


def run_ray_batch(rec, inputs: Iterable[str | Path], out: str | Path, cfg: RayBatchConfig = RayBatchConfig()) -> RunSummary:  # noqa: ANN001
    """Classify every file named by ``inputs`` (:func:`collect_inputs`) with ``rec`` (an
    :class:`~emolens.inference.EmotionRecognizer` on the ONNX backend) on Ray, writing
    result shards to the folder ``out``; re-running with the same ``out`` skips the files
    already recorded there. See the module docstring."""
    import ray.data as rd
    from ray.data.checkpoint import CheckpointConfig

    t0 = time.perf_counter()
    spec, onnx_bytes = model_spec(rec)
    out = Path(out).resolve()
    if out.suffix.lower() in (".jsonl", ".csv", ".json", ".parquet") and not out.is_dir():
        raise EmolensError(f"--out {out}: with --engine ray, --out is a folder of result shards")
    _check_out(out, spec, cfg)
    rows = {}
    for p in collect_inputs(inputs):
        i, row = file_id(p)
        rows.setdefault(i, {"id": i, **row})
    done, pending = _checkpoint(out)
    skipped = sum(1 for i in rows if i in done)
    init_ray(cfg)
    import ray

    meta = out / META_DIR
    inputs_dir = _write_inputs(meta, list(rows.values()))
    ctx = rd.DataContext.get_current()
    ctx.checkpoint_config = CheckpointConfig(id_column="id", checkpoint_path=str(meta / "checkpoint"),
                                             delete_checkpoint_on_success=False)
    ctx.enable_progress_bars = cfg.progress
    if not cfg.progress:
        logging.getLogger("ray.data").setLevel(logging.WARNING)
    try:
        if skipped < len(rows) or pending:
            light = {"num_cpus": 0.25}  # bookkeeping tasks: reading the list, writing shards
            ds = rd.read_parquet(str(inputs_dir), num_cpus=light["num_cpus"])
            ds = ds.repartition(target_num_rows_per_block=cfg.files_per_task)
            ds = ds.map_batches(decode_rows, batch_format="pyarrow", batch_size=None, zero_copy_batch=True,
                                fn_kwargs={"spec": spec, "cfg": cfg}, num_cpus=1)
            ds = ds.map_batches(Classifier, batch_format="pyarrow", batch_size=cfg.files_per_batch,
                                fn_constructor_kwargs={"onnx": ray.put(onnx_bytes), "spec": spec, "cfg": cfg},
                                compute=rd.ActorPoolStrategy(size=cfg.workers), num_cpus=cfg.threads,
                                memory=ACTOR_MEMORY)
            if cfg.format == "parquet":
                ds.write_parquet(str(out), min_rows_per_file=cfg.files_per_batch, ray_remote_args=light)
            else:
                ds.write_datasink(_jsonl_sink(str(out), cfg.files_per_batch), ray_remote_args=light)
    except EmolensError:
        raise
    except Exception as exc:  # noqa: BLE001 - Ray's own errors (a lost node, a killed worker, ...)
        raise EmolensError(f"the Ray job stopped ({_one_line(exc)}); the shards written so far are kept: "
                           "run the same command again to finish it") from None
    finally:
        ctx.checkpoint_config = None
    dropped = dedupe_shards(out, cfg.format)  # exactly once even where Ray's commit was not (see there)
    if dropped:
        logging.getLogger(__name__).warning("%d result rows recorded twice by Ray were removed from %s", dropped, out)
    committed, _ = _checkpoint(out)
    now = {i for i in committed if i in rows and i not in done}
    t = read_results(out, cfg.format, columns=["id", "error"])  # complete now: the job cleaned up pending shards
    ids = t.column("id").to_pylist() if t.num_rows else []
    errs = t.column("error").to_pylist() if "error" in t.column_names else [None] * len(ids)
    errors = {i for i, e in zip(ids, errs) if i in now and e is not None}
    return RunSummary(out, len(rows), skipped, len(now), len(errors), time.perf_counter() - t0, cfg.format)


# --------------------------------------------------------------------------- CLI hook
def cmd_predict_ray(args) -> int:  # noqa: ANN001 - argparse namespace of `emolens predict`
    """``emolens predict --engine ray``: see :mod:`emolens.cli.predict`."""
    import sys

    try:
        import ray  # noqa: F401
        import ray.data  # noqa: F401
    except ImportError:
        raise EmolensError("--engine ray needs Ray Data: pip install 'emolens[ray]'") from None
    from emolens.inference import EmotionRecognizer, resolve_model

    if args.out is None:
        raise EmolensError("--engine ray writes result shards: give --out FOLDER")
    cfg = RayBatchConfig(workers=max(1, args.workers or 1), threads=max(1, args.threads or 1),
                         files_per_batch=max(1, args.batch_files), max_seconds=args.max_seconds,
                         segments_over=args.segments_over, format=args.format, address=args.address,
                         progress=not args.quiet)
    rec = EmotionRecognizer.from_dir(resolve_model(args.model), backend="onnx", threads=1)
    s = run_ray_batch(rec, args.inputs, args.out, cfg)
    if args.json:
        print(json.dumps(s.as_dict()))
    else:
        print(f"{s.files} files: {s.classified} recorded now ({s.errors} as error rows), {s.skipped} already in {s.out}; "
              f"{s.seconds:.1f} s ({s.files_per_second:.2f} files/s); results: {s.out}/*.{s.format}", file=sys.stderr)
    return 2 if s.classified and s.errors == s.classified else 0


__all__ = ["RayBatchConfig", "ModelSpec", "RunSummary", "run_ray_batch", "collect_inputs", "read_results", "dedupe_shards", "init_ray",
           "decode_file", "file_record", "file_segments", "result_schema", "cmd_predict_ray"]
