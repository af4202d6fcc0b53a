"""The one manifest type every corpus parser produces: a list of :class:`Utterance`."""

from __future__ import annotations

import csv
import os
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import soundfile as sf

from emolens.corpora.labels import normalize_label, resolve_class_set
from emolens.errors import AudioError, CorpusError, LabelError

#: Speaker id for utterances whose speaker is not known; splits refuse it.
UNKNOWN_SPEAKER = "unknown"

#: Column order of a manifest CSV; the first four are required.
CSV_COLUMNS: tuple[str, ...] = ("path", "label", "speaker", "corpus", "duration", "gender", "text")
REQUIRED_COLUMNS: tuple[str, ...] = CSV_COLUMNS[:4]


@dataclass(frozen=True)
class Utterance:
    """One labelled recording. ``path`` is absolute; ``label`` is in the vocabulary."""

    path: str
    label: str
    speaker: str
    corpus: str
    duration: float | None = None
    gender: str | None = None
    text: str | None = None

    def __post_init__(self) -> None:
        if not os.path.isabs(self.path):
            raise CorpusError(f"utterance path {self.path!r} is not absolute; resolve it first")


def probe_duration(path: str | Path) -> float:
    """Duration in seconds from the file header (no decoding); AudioError if unreadable."""
    try:
        info = sf.info(str(path))
    except Exception as exc:  # soundfile raises RuntimeError/LibsndfileError/OSError
        raise AudioError(f"cannot read audio header of {path}: {exc}; check the file") from exc
    if info.samplerate <= 0:
        raise AudioError(f"{path} reports sample rate {info.samplerate}; check the file")
    return info.frames / info.samplerate


def _with_duration(utt: Utterance) -> Utterance:
    if utt.duration is not None:
        return utt
    return Utterance(**{**_as_dict(utt), "duration": probe_duration(utt.path)})


def _as_dict(utt: Utterance) -> dict[str, object]:
    return {f.name: getattr(utt, f.name) for f in fields(Utterance)}


def _sorted_counts(values: Iterable[str]) -> dict[str, int]:
    """Counts, largest first, ties alphabetical."""
    counts = Counter(values)
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


@dataclass(frozen=True)
class Manifest:
    """An immutable, ordered collection of utterances (indices are stable)."""

    utterances: tuple[Utterance, ...]

    def __init__(self, utterances: Iterable[Utterance] = ()) -> None:
        object.__setattr__(self, "utterances", tuple(utterances))

    def __len__(self) -> int:
        return len(self.utterances)

    def __iter__(self) -> Iterator[Utterance]:
        return iter(self.utterances)

    def __getitem__(self, key: int | slice | Sequence[int] | np.ndarray) -> Utterance | Manifest:
        """An int gives an :class:`Utterance`; a slice, index array or bool mask a Manifest."""
        if isinstance(key, (int, np.integer)):
            return self.utterances[int(key)]
        if isinstance(key, slice):
            return Manifest(self.utterances[key])
        idx = np.asarray(key)
        if idx.dtype == bool:
            if idx.shape != (len(self),):
                raise IndexError(f"boolean mask of shape {idx.shape} for {len(self)} utterances")
            idx = np.flatnonzero(idx)
        elif idx.size == 0:
            idx = idx.astype(int)
        elif not np.issubdtype(idx.dtype, np.integer):
            raise TypeError(f"cannot index a Manifest with an array of {idx.dtype}")
        return Manifest(self.utterances[int(i)] for i in idx.ravel())

    def __repr__(self) -> str:
        return f"Manifest({len(self)} utterances, {len(self.speakers)} speakers, labels={list(self.labels)})"

    # --- summaries -----------------------------------------------------------------
    @property
    def labels(self) -> tuple[str, ...]:
        """Sorted unique labels."""
        return tuple(sorted({u.label for u in self.utterances}))

    @property
    def speakers(self) -> tuple[str, ...]:
        """Sorted unique speaker ids."""
        return tuple(sorted({u.speaker for u in self.utterances}))

    @property
    def corpora(self) -> tuple[str, ...]:
        """Sorted unique corpus names."""
        return tuple(sorted({u.corpus for u in self.utterances}))

    def label_counts(self) -> dict[str, int]:
        """Label → number of utterances, largest first."""
        return _sorted_counts(u.label for u in self.utterances)

    def speaker_counts(self) -> dict[str, int]:
        """Speaker → number of utterances, largest first."""
        return _sorted_counts(u.speaker for u in self.utterances)

    def total_duration(self) -> float:
        """Sum of known durations in seconds."""
        return float(sum(u.duration for u in self.utterances if u.duration is not None))

    # --- selection and arrays ------------------------------------------------------
    def filter_classes(self, class_set: str | Sequence[str]) -> Manifest:
        """Only the utterances whose label is in the class set (name, ``"a,b"`` or list)."""
        classes = set(resolve_class_set(class_set, self.labels))
        return Manifest(u for u in self.utterances if u.label in classes)

    def label_array(self, classes: Sequence[str] | None = None) -> np.ndarray:
        """Integer class index of every utterance; ``classes`` defaults to :attr:`labels`."""
        classes = tuple(self.labels if classes is None else classes)
        index = {c: i for i, c in enumerate(classes)}
        extra = sorted({u.label for u in self.utterances} - index.keys())
        if extra:
            raise LabelError(
                f"labels {', '.join(extra)} are not among classes {list(classes)}; "
                "call filter_classes first"
            )
        return np.fromiter((index[u.label] for u in self.utterances), dtype=np.int64, count=len(self))

    def speaker_array(self) -> np.ndarray:
        """Speaker id of every utterance (str array), for grouped splits."""
        return np.asarray([u.speaker for u in self.utterances], dtype=str)

    def paths(self) -> list[str]:
        """Absolute path of every utterance."""
        return [u.path for u in self.utterances]

    def fill_durations(self) -> Manifest:
        """Same manifest with missing durations read from the file headers (AudioError if unreadable)."""
        return Manifest(_with_duration(u) for u in self.utterances)

    # --- CSV -----------------------------------------------------------------------
    def to_csv(self, path: str | Path, *, relative: bool = False) -> Path:
        """Write the manifest as UTF-8 CSV; ``relative`` stores paths relative to its folder."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        base = path.resolve().parent
        with path.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=CSV_COLUMNS)
            writer.writeheader()
            for utt in self.utterances:
                row = {k: ("" if v is None else v) for k, v in _as_dict(utt).items()}
                if relative:
                    row["path"] = os.path.relpath(utt.path, base)
                if utt.duration is not None:
                    row["duration"] = repr(float(utt.duration))
                writer.writerow(row)
        return path

    @classmethod
    def from_csv(cls, path: str | Path) -> Manifest:
        """Read a CSV written by :meth:`to_csv`; relative paths resolve against its folder."""
        path = Path(path)
        if not path.is_file():
            raise CorpusError(f"manifest {path} not found; build one with build_manifest(...).to_csv")
        with path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            header = [h.strip() for h in (reader.fieldnames or [])]
            missing = [c for c in REQUIRED_COLUMNS if c not in header]
            if missing:
                raise CorpusError(
                    f"manifest {path} lacks column(s) {', '.join(missing)}; it needs "
                    f"{','.join(REQUIRED_COLUMNS)} (optional: duration,gender,text)"
                )
            reader.fieldnames = header
            rows = list(reader)
        return cls(_row_to_utterance(row, n, path) for n, row in enumerate(rows, start=2))


def _row_to_utterance(row: dict[str, str], line: int, csv_path: Path) -> Utterance:
    """One manifest CSV row → Utterance, with line-numbered errors."""

    def get(name: str) -> str | None:
        value = (row.get(name) or "").strip()
        return value or None

    where = f"manifest {csv_path} line {line}"
    for col in REQUIRED_COLUMNS:
        if get(col) is None:
            raise CorpusError(f"{where}: empty {col!r}; fill it in or drop the row")
    file_path = Path(get("path"))  # type: ignore[arg-type]
    if not file_path.is_absolute():
        file_path = csv_path.resolve().parent / file_path
    try:
        label = normalize_label(get("label"))  # type: ignore[arg-type]
    except LabelError as exc:
        raise LabelError(f"{where}: {exc}") from None
    duration = get("duration")
    try:
        seconds = None if duration is None else float(duration)
    except ValueError:
        raise CorpusError(f"{where}: duration {duration!r} is not a number; fix or empty it") from None
    return Utterance(
        path=str(file_path),
        label=label,
        speaker=get("speaker"),  # type: ignore[arg-type]
        corpus=get("corpus"),  # type: ignore[arg-type]
        duration=seconds,
        gender=get("gender"),
        text=get("text"),
    )
