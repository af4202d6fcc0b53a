"""A prepared corpus on disk (``emolens prepare`` writes it, ``train`` reads it).

Layout of ``WORKDIR``::

    manifest.csv        one row per utterance (path, label, speaker, corpus, ...)
    prepare.json        summary + the front-end, patch and GDS parameters
    features/           linear-mel cache (see emolens.features.cache)
    embeddings/         cached backbone features per weights (see training.data)
    gds_scores.csv      per patch: utterance, patch index, GDS score, kept
    gds.png             what GDS drops (counts per class, score histogram, examples)
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from emolens.corpora.manifest import Manifest
from emolens.errors import CorpusError
from emolens.features.cache import FeatureCache
from emolens.features.mel import FrontEndConfig, frontend_from_dict
from emolens.features.patches import PatchConfig
from emolens.training.data import PatchSet, patchset_from_mels


@dataclass
class WorkDir:
    """Read access to a prepared work directory."""

    root: Path
    manifest: Manifest
    info: dict
    classes: list[str] = field(default_factory=list)

    @classmethod
    def open(cls, root: str | Path) -> "WorkDir":
        root = Path(root)
        if not (root / "manifest.csv").exists() or not (root / "prepare.json").exists():
            raise CorpusError(f"{root}: not a prepared work directory; run `emolens prepare --out {root}` first")
        info = json.loads((root / "prepare.json").read_text())
        return cls(root, Manifest.from_csv(root / "manifest.csv"), info, list(info["classes"]))

    @property
    def frontend(self) -> FrontEndConfig:
        fe = self.info["frontend"]
        return frontend_from_dict(fe)

    @property
    def patch_config(self) -> PatchConfig:
        return PatchConfig(**self.info["patches"])

    @property
    def cache(self) -> FeatureCache:
        return FeatureCache(self.root / "features", self.frontend)

    def labels(self) -> np.ndarray:
        """``(U,)`` class index of each utterance."""
        return self.manifest.label_array(self.classes)

    def patchset(self, progress: bool = True) -> PatchSet:
        """All patches (mels from the cache, computed where missing)."""
        res = self.cache.compute(self.manifest.paths(), progress=progress)
        if res.errors:
            first = next(iter(res.errors.values()))
            raise CorpusError(f"{len(res.errors)} files of the manifest cannot be read (first: {first}); re-run prepare")
        return patchset_from_mels(res.mels, self.labels(), self.patch_config)
