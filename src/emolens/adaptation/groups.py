"""Voice groups for ``predict --adapt``: which of the user's files are one voice.

Rule: files in the same folder are one voice, unless ``--speakers FILE.csv`` (columns
``path,speaker``; paths relative to the CSV's folder or absolute) names the speaker of a
file. A group is adapted when it has at least ``min_clips`` clips and
``min_speech_seconds`` of speech (:class:`emolens.adaptation.AdaptConfig`); otherwise its
clips are classified one by one and a one-line note says so.

``--neutral FILE`` (neutral enrolment), or a ``neutral`` column (1/true/yes) in the
``--speakers`` CSV: recordings of a voice speaking neutrally, not classified. With one voice among the inputs they are all its; otherwise each belongs to
the voice the same rule gives it (its folder, or its ``--speakers`` row). A voice with a
neutral clip is enrolled with it; with ``--neutral``, a voice without one is classified
clip by clip.
"""

from __future__ import annotations

import csv
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Iterable, Iterator

from emolens.errors import EmolensError


TRUE = {"1", "true", "yes", "y"}


def read_neutral(path: str | Path) -> list[Path]:
    """The files a ``--speakers`` CSV marks as neutral enrolment clips (optional column
    ``neutral``: 1/true/yes), resolved as :func:`read_speakers` resolves paths."""
    path = Path(path)
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    if not rows or "neutral" not in rows[0]:
        return []
    out = []
    for r in rows:
        if str(r.get("neutral") or "").strip().lower() in TRUE:
            p = Path(r["path"])
            out.append((p if p.is_absolute() else path.parent / p).resolve())
    return out


def read_speakers(path: str | Path) -> dict[str, str]:
    """``{resolved file path: speaker}`` from a CSV with ``path`` and ``speaker`` columns
    (and optionally ``neutral``, :func:`read_neutral`)."""
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


def neutral_groups(neutral: Iterable[Path], groups: dict[str, list[Path]],
                   speakers: dict[str, str] | None = None) -> dict[str, list[Path]]:
    """``{group key: neutral files}`` for the voice groups of the inputs (module doc)."""
    neutral = list(neutral)
    if len(groups) == 1:
        return {next(iter(groups)): neutral}
    out: dict[str, list[Path]] = {}
    for key, files in voice_groups(neutral, speakers).items():
        if key not in groups:
            raise EmolensError(f"--neutral {files[0]}: its voice ({key}) has no clips to classify; put it in the folder "
                               "of that voice's clips or name its speaker in --speakers")
        out[key] = files
    return out


def iter_adapted_results(rec, paths: list[Path], speakers: dict[str, str] | None = None,  # noqa: ANN001
                         workers: int = 2, max_seconds: float | None = None,
                         on_group: Callable[[str], None] | None = None,
                         skip: Callable[[Path], bool] | None = None,
                         neutral: list[Path] | None = None) -> Iterator:
    """Classify ``paths`` voice group by voice group with ``adapt=True``; yields
    :class:`emolens.batch.FileResult` per file (files for which ``skip(path)`` is True are
    used for the group's statistics but not yielded). ``on_group(message)`` gets one line
    per group saying whether and how it was adapted. ``neutral``: neutral enrolment
    files (module doc)."""
    from emolens.batch import FileResult, _decode, file_key

    groups = voice_groups(paths, speakers)
    enrol = neutral_groups(neutral, groups, speakers) if neutral else None
    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="emolens-decode") as pool:
        for key, files in groups.items():
            if skip is not None and all(skip(f) for f in files):
                continue
            decoded = list(pool.map(lambda f: _decode(rec, f, max_seconds), files))
            good = [(f, d) for f, d in zip(files, decoded) if not isinstance(d, str)]
            analyses = {}
            if good:
                ref = None
                if enrol is not None:
                    ref = []
                    for f, d in zip(enrol.get(key, []), pool.map(lambda f: _decode(rec, f, max_seconds), enrol.get(key, []))):
                        if isinstance(d, str):
                            raise EmolensError(f"--neutral: {d}")
                        ref.append(d[0])
                res = rec.analyze_clips([d[0] for _, d in good], prepared=[d[1] for _, d in good],
                                        groups=[key] * len(good), adapt=True,
                                        neutral=None if ref is None else {key: ref})
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


__all__ = ["read_neutral", "read_speakers", "voice_groups", "neutral_groups", "iter_adapted_results"]
