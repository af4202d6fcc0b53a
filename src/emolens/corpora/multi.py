"""Several corpora in one manifest (``emolens prepare --corpus NAME:DIR ...``).

Each corpus is parsed by its own parser; with more than one corpus every speaker id
is namespaced by its corpus (``ravdess/01``) so that speakers of different corpora
never collide in speaker-grouped splits, and the ``corpus`` column tells them apart.
A single corpus keeps its plain speaker ids (so existing ``holdout:03,08`` specs work).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from emolens.corpora.manifest import UNKNOWN_SPEAKER, Manifest, Utterance
from emolens.corpora.parsers import build_manifest, list_corpora
from emolens.errors import CorpusError


@dataclass(frozen=True)
class CorpusSpec:
    """One corpus to read: parser ``name``, its ``root`` folder, optional metadata ``csv``."""

    name: str
    root: Path
    csv: Path | None = None


def parse_corpus_specs(values: list[str], root: Path | None = None, csv: Path | None = None) -> list[CorpusSpec]:
    """``--corpus`` values (``NAME:DIR`` repeatable, or one ``NAME`` with ``--root``) -> specs.

    ``--csv`` is only accepted with a single corpus (it would be ambiguous otherwise)."""
    if not values:
        raise CorpusError("give at least one --corpus NAME:DIR (or --corpus NAME --root DIR)")
    specs: list[CorpusSpec] = []
    for v in values:
        name, sep, folder = v.partition(":")
        name = name.strip().lower()
        if name not in list_corpora():
            raise CorpusError(f"unknown corpus {name!r} in --corpus {v!r}; choose one of {', '.join(list_corpora())}")
        if sep:
            if not folder.strip():
                raise CorpusError(f"--corpus {v!r} names no folder; use NAME:DIR")
            specs.append(CorpusSpec(name, Path(folder.strip()).expanduser()))
        elif root is not None and len(values) == 1:
            specs.append(CorpusSpec(name, Path(root)))
        else:
            raise CorpusError(f"--corpus {v!r} has no folder: use --corpus {name}:DIR (or a single --corpus with --root)")
    if root is not None and (len(specs) > 1 or ":" in values[0]):
        raise CorpusError("--root goes with a single --corpus NAME; with NAME:DIR values leave --root out")
    if csv is not None:
        if len(specs) > 1:
            raise CorpusError("--csv applies to one corpus; prepare corpora that need a table separately or merge the tables")
        specs[0] = CorpusSpec(specs[0].name, specs[0].root, Path(csv))
    names = [s.name for s in specs]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise CorpusError(f"corpus {', '.join(dup)} given more than once; one work dir holds each corpus once")
    return specs


def namespace_speaker(corpus: str, speaker: str) -> str:
    """``corpus/speaker`` (``unknown`` stays ``unknown`` so the splits still refuse it)."""
    return speaker if speaker == UNKNOWN_SPEAKER else f"{corpus}/{speaker}"


def build_multi_manifest(specs: list[CorpusSpec], *, allow_unknown_speakers: bool = False
                         ) -> tuple[Manifest, list[tuple[str, str]]]:
    """Parse every corpus and concatenate (in the given order); namespaced speakers when
    there is more than one. Returns ``(manifest, skipped (path, reason))``."""
    utts: list[Utterance] = []
    skipped: list[tuple[str, str]] = []
    multi = len(specs) > 1
    for spec in specs:
        m, sk = build_manifest(spec.name, spec.root, csv=spec.csv, allow_unknown_speakers=allow_unknown_speakers)
        skipped += sk
        for u in m:
            if multi:
                u = Utterance(u.path, u.label, namespace_speaker(spec.name, u.speaker), spec.name,
                              u.duration, u.gender, u.text)
            utts.append(u)
    return Manifest(utts), skipped


def corpus_array(manifest: Manifest) -> np.ndarray:
    """``(U,)`` corpus name of every utterance (str array)."""
    return np.asarray([u.corpus for u in manifest], dtype=str)


def per_corpus_counts(manifest: Manifest, patch_utt: np.ndarray, keep: np.ndarray) -> dict[str, dict]:
    """Per corpus: files, speakers, labels, patches before/after selection, dropped fraction.

    ``patch_utt (P,)`` is each patch's utterance index, ``keep (P,)`` the GDS decision."""
    corp = corpus_array(manifest)
    out: dict[str, dict] = {}
    for c in manifest.corpora:
        sub = manifest[corp == c]
        in_c = corp[patch_utt] == c
        before, after = int(in_c.sum()), int((in_c & keep).sum())
        out[c] = {"files": len(sub), "speakers": len(sub.speakers), "labels": sub.label_counts(),
                  "patches_before": before, "patches_after": after,
                  "dropped_fraction": round(1 - after / max(before, 1), 4)}
    return out


__all__ = ["CorpusSpec", "parse_corpus_specs", "namespace_speaker", "build_multi_manifest", "corpus_array", "per_corpus_counts"]
