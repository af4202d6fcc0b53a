"""Prosody functionals of audio files, cached on disk (the I/O edge of :mod:`emolens.features.prosody`)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from emolens.audio import load_audio
from emolens.features.cache import cached_file_vectors
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


def extract_prosody(paths: Sequence[str | Path], cache_dir: str | Path | None = None, progress: bool = False,
                    cfg: ProsodyConfig = DEFAULT_PROSODY) -> np.ndarray:
    """Prosody functionals ``(N, N_PROSODY)`` float32 of each file (mono, 16 kHz via
    :func:`emolens.audio.load_audio`). With ``cache_dir``, one ``.npy`` per file under
    ``<cache_dir>/<prosody_cache_tag(cfg)>/``, keyed by the sha1 of its bytes
    (:func:`emolens.features.cache.cached_file_vectors`)."""

    def compute(p: Path) -> np.ndarray:
        return prosody_features(load_audio(p, sample_rate=cfg.sample_rate, max_seconds=None).samples, cfg)

    cache = Path(cache_dir) / prosody_cache_tag(cfg) if cache_dir is not None else None
    return cached_file_vectors(paths, compute, N_PROSODY, cache, desc="prosody", progress=progress)
