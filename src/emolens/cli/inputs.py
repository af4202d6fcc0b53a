"""Command-line inputs: files and folders -> the audio files to process."""

from __future__ import annotations

from pathlib import Path

from emolens.corpora.parsers import AUDIO_EXTENSIONS  # what a folder is searched for (the parsers' list)
from emolens.errors import AudioError


def expand_inputs(inputs: list[Path]) -> list[Path]:
    """``inputs`` with each folder replaced by its audio files (recursive, sorted);
    files are kept as given. Raises :class:`AudioError` when nothing is left."""
    files: list[Path] = []
    for p in inputs:
        if p.is_dir():
            files += sorted(q for q in p.rglob("*") if q.suffix.lower() in AUDIO_EXTENSIONS and q.is_file())
        else:
            files.append(p)
    if not files:
        raise AudioError("no audio files found in the given folders (wav, flac, ogg, mp3)")
    return files


__all__ = ["expand_inputs"]
