"""On-disk cache of linear mel spectrograms, keyed by file content and front-end
parameters, filled in parallel with a progress bar.

Each entry is ``<root>/<sha1(file bytes)[:20]>-<sha1(front-end params)[:8]>.npy``
holding the linear mel ``(n_frames, n_mels)`` float32. Entries are written to a
temporary file and renamed, so an interrupted run leaves only complete entries and a
re-run computes just the missing ones (safe to interrupt and resume).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from emolens.audio.io import DEFAULT_MAX_SECONDS, load_audio
from emolens.errors import AudioError
from emolens.features.mel import VGGISH_16K, FrontEndConfig, mel_spectrogram


def file_digest(path: str | Path, chunk: int = 1 << 20) -> str:
    """sha1 of a file's bytes (hex)."""
    h = hashlib.sha1()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def readable_digest(path: str | Path) -> str:
    """:func:`file_digest`, with an unreadable file as a one-line :class:`AudioError`."""
    try:
        return file_digest(path)
    except OSError as exc:
        raise AudioError(f"{path}: cannot read ({exc.strerror or exc}); check the path") from None


def cached_file_vectors(paths: Sequence[str | Path], compute: Callable[[Path], np.ndarray], width: int,
                        cache_dir: str | Path | None = None, desc: str = "features",
                        progress: bool = False) -> np.ndarray:
    """``(N, width)`` float32: ``compute(path)`` (a ``(width,)`` vector) of each file, with
    ``cache_dir`` stored as ``<cache_dir>/<sha1 of the file's bytes>.npy`` (renamed or moved
    files hit, edited files miss). Entries are written to a temporary file and renamed, so
    parallel or interrupted runs never leave halves; a corrupt or mis-shaped entry counts
    as missing and is recomputed. The per-file feature caches (eGeMAPS, prosody) share it."""
    cache = None
    if cache_dir is not None:
        cache = Path(cache_dir)
        cache.mkdir(parents=True, exist_ok=True)
    items = list(paths)
    out = np.empty((len(items), width), np.float32)
    for i, raw in enumerate(tqdm(items, desc=desc, unit="file", disable=not progress)):
        path = Path(raw)
        entry = cache / f"{readable_digest(path)}.npy" if cache is not None else None
        if entry is not None:
            try:
                v = np.load(entry)
                if v.shape == (width,):
                    out[i] = v
                    continue
            except (OSError, ValueError):
                pass
        v = np.asarray(compute(path), np.float32)
        out[i] = v
        if entry is not None:
            fd, tmp = tempfile.mkstemp(dir=cache, suffix=".npy.tmp")
            try:
                with os.fdopen(fd, "wb") as handle:
                    np.save(handle, v)
                os.replace(tmp, entry)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
    return out


def config_digest(cfg: FrontEndConfig) -> str:
    """Short hash of the front-end parameters."""
    return hashlib.sha1(json.dumps(cfg.to_dict(), sort_keys=True).encode()).hexdigest()[:8]


@dataclass
class CacheResult:
    """Outcome of :meth:`FeatureCache.compute`: mels in input order (``None`` where the
    file failed), the per-file errors, notes, and how many entries were computed now."""

    mels: list[np.ndarray | None]
    errors: dict[str, str]
    notes: dict[str, list[str]]
    computed: int


def _compute_one(args: tuple[str, str, FrontEndConfig, float | None]) -> tuple[str, list[str] | str]:
    path, out, cfg, max_seconds = args
    try:
        clip = load_audio(path, sample_rate=cfg.sample_rate, max_seconds=max_seconds)
    except AudioError as exc:
        return path, str(exc)
    mel = mel_spectrogram(clip.samples, cfg)
    tmp = f"{out}.{os.getpid()}.tmp.npy"
    np.save(tmp, mel)
    os.replace(tmp, out)
    notes = list(clip.notes)
    if len(clip.samples) < cfg.win_length + 95 * cfg.hop_length:
        notes.append("shorter than one patch (0.975 s): padded with silence")
    return path, notes


class FeatureCache:
    """Linear-mel cache under ``root`` for one front-end configuration."""

    def __init__(self, root: str | Path, cfg: FrontEndConfig = VGGISH_16K):
        self.root = Path(root)
        self.cfg = cfg
        self.root.mkdir(parents=True, exist_ok=True)
        self._digests: dict[str, str] = {}

    def key(self, path: str | Path) -> Path:
        """Cache file for ``path`` (hashes the file's content once per process)."""
        p = str(path)
        if p not in self._digests:
            self._digests[p] = file_digest(p)[:20]
        return self.root / f"{self._digests[p]}-{config_digest(self.cfg)}.npy"

    def load(self, path: str | Path) -> np.ndarray:
        """The cached mel of ``path`` ``(n_frames, n_mels)``; computes it if missing."""
        k = self.key(path)
        if not k.exists():
            _, res = _compute_one((str(path), str(k), self.cfg, None))
            if isinstance(res, str):
                raise AudioError(res)
        return np.load(k)

    def compute(
        self,
        paths: Sequence[str | Path],
        *,
        workers: int | None = None,
        progress: bool = True,
        max_seconds: float | None = DEFAULT_MAX_SECONDS,
    ) -> CacheResult:
        """Make sure every file has an entry (in parallel), then load them all."""
        paths = [str(p) for p in paths]
        keys = [self.key(p) for p in tqdm(paths, desc="hashing", disable=not progress, leave=False)]
        todo = [(p, str(k), self.cfg, max_seconds) for p, k in zip(paths, keys) if not k.exists()]
        errors: dict[str, str] = {}
        notes: dict[str, list[str]] = {}
        workers = workers or min(len(todo), os.cpu_count() or 1, 8)
        if todo:
            bar = tqdm(total=len(todo), desc="log-mel", unit="file", disable=not progress)
            if workers <= 1 or len(todo) < 8:
                results = map(_compute_one, todo)
                for path, res in results:
                    _record(path, res, errors, notes)
                    bar.update()
            else:
                with ProcessPoolExecutor(max_workers=workers) as pool:
                    for path, res in pool.map(_compute_one, todo, chunksize=4):
                        _record(path, res, errors, notes)
                        bar.update()
            bar.close()
        mels = [np.load(k) if k.exists() else None for k in keys]
        return CacheResult(mels, errors, notes, len(todo) - len(errors))


def _record(path: str, res: list[str] | str, errors: dict, notes: dict) -> None:
    if isinstance(res, str):
        errors[path] = res
    elif res:
        notes[path] = res
