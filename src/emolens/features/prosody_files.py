"""Prosody functionals of audio files, cached on disk (the I/O edge of :mod:`emolens.features.prosody`)."""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from emolens.audio import load_audio
from emolens.errors import AudioError
from emolens.features.prosody import (
    DEFAULT_PROSODY,
    N_PROSODY,
    ProsodyConfig,
    prosody_features,
)

__all__ = ["extract_prosody", "prosody_cache_tag"]

#: bump when the computation changes without a config change
_VERSION = 5


def prosody_cache_tag(cfg: ProsodyConfig = DEFAULT_PROSODY) -> str:
    """Sub-folder name of the cache: the recipe version and a hash of ``cfg``."""
    from dataclasses import asdict

    h = hashlib.sha1(json.dumps(asdict(cfg), sort_keys=True).encode()).hexdigest()[:10]
    return f"prosody-v{_VERSION}-{h}"


def _sha1(path: Path) -> str:
    try:
        return hashlib.sha1(path.read_bytes()).hexdigest()
    except OSError as exc:
        raise AudioError(f"{path}: cannot read ({exc.strerror or exc}); check the path") from None


def extract_prosody(paths: Sequence[str | Path], cache_dir: str | Path | None = None, progress: bool = False,
                    cfg: ProsodyConfig = DEFAULT_PROSODY) -> np.ndarray:
    """Prosody functionals ``(N, N_PROSODY)`` float32 of each file (mono, 16 kHz via
    :func:`emolens.audio.load_audio`). With ``cache_dir``, one ``.npy`` per file under the
    sha1 of its bytes (renamed files hit, edited files miss; written atomically)."""
    cache = None
    if cache_dir is not None:
        cache = Path(cache_dir) / prosody_cache_tag(cfg)
        cache.mkdir(parents=True, exist_ok=True)
    items = list(paths)
    if progress:
        try:
            from tqdm import tqdm

            items = tqdm(items, desc="prosody", unit="file", file=sys.stderr)
        except ImportError:
            pass
    out = np.empty((len(paths), N_PROSODY), np.float32)
    for i, raw in enumerate(items):
        p = Path(raw)
        f = None
        if cache is not None:
            f = cache / f"{_sha1(p)}.npy"
            try:
                v = np.load(f)
                if v.shape == (N_PROSODY,):
                    out[i] = v
                    continue
            except (OSError, ValueError):
                pass
        v = prosody_features(load_audio(p, sample_rate=cfg.sample_rate, max_seconds=None).samples, cfg)
        out[i] = v
        if f is not None:
            fd, tmp = tempfile.mkstemp(dir=cache, suffix=".npy.tmp")
            with os.fdopen(fd, "wb") as h:
                np.save(h, v)
            os.replace(tmp, f)
    return out
