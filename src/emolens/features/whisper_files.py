"""Whisper streams of audio files, cached on disk (the I/O edge of :mod:`emolens.models.whisper`)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np

from emolens.audio import load_audio
from emolens.features.cache import cached_file_vectors

__all__ = ["extract_whisper", "whisper_cache_tag"]

#: bump when the computation changes without a config change
_VERSION = 1


def whisper_cache_tag(cfg=None) -> str:
    """Sub-folder name of the cache: the recipe version, the weights' digest and a hash of ``cfg``
    (a one-state config hashes as ``{"layer", "pooling"}``, as before stop 25's ``layers``, so its
    caches and the models trained on it keep their tag)."""
    from emolens.models.whisper import WHISPER_BASE_SHA256, WhisperStreamConfig

    cfg = cfg if cfg is not None else WhisperStreamConfig()
    fields = {"layer": cfg.layer, "pooling": cfg.pooling} if len(cfg.layers) == 1 else asdict(cfg)
    h = hashlib.sha1(json.dumps(fields, sort_keys=True).encode() + WHISPER_BASE_SHA256.encode()).hexdigest()[:10]
    return f"whisper-v{_VERSION}-{h}"


def extract_whisper(paths: Sequence[str | Path], cache_dir: str | Path | None = None, progress: bool = False,
                    cfg=None) -> np.ndarray:
    """Whisper streams ``(N, cfg.dim)`` float32 of each file (mono, 16 kHz, whole length via
    :func:`emolens.audio.load_audio`; :func:`emolens.models.whisper.whisper_stream`). With
    ``cache_dir``, one ``.npy`` per file under ``<cache_dir>/<whisper_cache_tag(cfg)>/``, keyed
    by the sha1 of its bytes (:func:`emolens.features.cache.cached_file_vectors`)."""
    from emolens.models.whisper import (
        WhisperStreamConfig,
        shared_encoder,
        whisper_stream,
    )

    cfg = cfg if cfg is not None else WhisperStreamConfig()
    encoder = shared_encoder(cfg.layer)

    def compute(p: Path) -> np.ndarray:
        return whisper_stream(load_audio(p, sample_rate=16000, max_seconds=None).samples, cfg, encoder)

    cache = Path(cache_dir) / whisper_cache_tag(cfg) if cache_dir is not None else None
    return cached_file_vectors(paths, compute, cfg.dim, cache, desc="Whisper", progress=progress)
