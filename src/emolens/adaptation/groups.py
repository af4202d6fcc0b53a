"""Voice groups for ``predict --adapt``: which of the user's files are one voice.

Rule: files in the same folder are one voice, unless ``--speakers FILE.csv`` (columns
``path,speaker``; paths relative to the CSV's folder or absolute) names the speaker of a
file. A group is adapted when it has at least ``min_clips`` clips and
``min_speech_seconds`` of speech (:class:`emolens.adaptation.AdaptConfig`); otherwise its
clips are classified one by one and a one-line note says so.
"""

from __future__ import annotations

import csv
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Iterable, Iterator

from emolens.errors import EmolensError


def read_speakers(path: str | Path) -> dict[str, str]:
    """``{resolved file path: speaker}`` from a CSV with ``path`` and ``speaker`` columns."""
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    except OSError as exc:
        raise EmolensError(f"--speakers {path}: cannot read it ({exc.strerror})") from None
    if not rows or not {"path", "speaker"} <= set(rows[0]):
        raise EmolensError(f"--speakers {path}: needs a header with 'path' and 'speaker' columns")
    out = {}
    for r in rows:
        p = Path(r["path"])
        p = p if p.is_absolute() else path.parent / p
        out[str(p.resolve())] = str(r["speaker"]).strip()
    return out


def voice_groups(paths: Iterable[Path], speakers: dict[str, str] | None = None) -> dict[str, list[Path]]:
    """``{group key: files}`` in input order: the CSV's speaker, else the file's folder."""
    groups: dict[str, list[Path]] = {}
    for p in paths:
        key = (speakers or {}).get(str(Path(p).resolve()))
        key = f"speaker {key}" if key is not None else str(Path(p).parent)
        groups.setdefault(key, []).append(Path(p))
    return groups


def iter_adapted_results(rec, paths: list[Path], speakers: dict[str, str] | None = None,  # noqa: ANN001
                         workers: int = 2, max_seconds: float | None = None,
                         on_group: Callable[[str], None] | None = None,
                         skip: Callable[[Path], bool] | None = None) -> Iterator:
    """Classify ``paths`` voice group by voice group with ``adapt=True``; yields
    :class:`emolens.batch.FileResult` per file (files for which ``skip(path)`` is True are
    used for the group's statistics but not yielded). ``on_group(message)`` gets one line
    per group saying whether and how it was adapted."""
    from emolens.batch import FileResult, _decode, file_key

    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="emolens-decode") as pool:
        for key, files in voice_groups(paths, speakers).items():
            if skip is not None and all(skip(f) for f in files):
                continue
            decoded = list(pool.map(lambda f: _decode(rec, f, max_seconds), files))
            good = [(f, d) for f, d in zip(files, decoded) if not isinstance(d, str)]
            analyses = {}
            if good:
                res = rec.analyze_clips([d[0] for _, d in good], prepared=[d[1] for _, d in good],
                                        groups=[key] * len(good), adapt=True)
                analyses = {f: a for (f, _), a in zip(good, res)}
                if on_group is not None:
                    for g in rec.last_adaptation:
                        on_group(g.message())
            for f, d in zip(files, decoded):
                if skip is not None and skip(f):
                    continue
                if isinstance(d, str):
                    yield FileResult(f, file_key(f), error=d)
                else:
                    a = analyses[f]
                    if not a.adapted:
                        note = "not adapted: " + rec.last_adaptation[0].reason if rec.last_adaptation else "not adapted"
                        if note not in a.clip.notes:
                            a.clip.notes.append(note)
                    yield FileResult(f, file_key(f), analysis=a)


__all__ = ["read_speakers", "voice_groups", "iter_adapted_results"]
