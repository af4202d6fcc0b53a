"""Streaming prediction results to JSON lines or CSV, and resuming from such a file.

One record per input file, written and flushed as soon as it is known, so a killed run
leaves every finished file on disk (at most the last line is cut short, and is dropped
on resume). Records carry ``size_bytes`` and ``mtime_ns``: on a re-run with the same
output, a file whose absolute path, size and mtime match a record is skipped; a changed
file is classified again (its old record stays, the newer one comes later).

JSON lines: :meth:`Analysis.as_dict` plus the key, or ``{"file", "error", ...}``.
CSV columns: ``file, label, probability, p_<class>..., uncertain, adapted, speech_fraction, patches,
patches_kept, duration_s, notes, error, size_bytes, mtime_ns`` (label ``no speech`` for a
recording without speech).
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from emolens.batch import FileResult
from emolens.errors import EmolensError

FORMATS = {".jsonl": "jsonl", ".json": "jsonl", ".ndjson": "jsonl", ".csv": "csv"}


def result_record(r: FileResult, classes: list[str]) -> dict:
    """The JSON-lines record of one file."""
    rec = r.analysis.as_dict() if r.analysis is not None else {"file": str(r.path), "error": r.error}
    rec["file"] = str(r.path)
    rec["size_bytes"], rec["mtime_ns"] = r.key[1], r.key[2]
    return rec


def csv_header(classes: list[str]) -> list[str]:
    return (["file", "label", "probability"] + [f"p_{c}" for c in classes] + ["uncertain", "adapted"]
            + ["speech_fraction", "patches", "patches_kept", "duration_s", "notes", "error", "size_bytes", "mtime_ns"])


def _csv_row(rec: dict, classes: list[str]) -> list:
    if "error" in rec:
        return [rec["file"], "", ""] + [""] * len(classes) + ["", "", "", "", "", "", "", rec["error"], rec["size_bytes"], rec["mtime_ns"]]
    return ([rec["file"], rec["label"], f"{rec['probability']:.6f}"]
            + [f"{rec['probabilities'][c]:.6f}" for c in classes]
            + [int(bool(rec.get("uncertain", False))), int(bool(rec.get("adapted", False)))]
            + [f"{rec.get('speech_fraction', 1.0):.3f}", rec["patches"], rec["patches_kept"], rec["duration_s"], "; ".join(rec["notes"]), "",
               rec["size_bytes"], rec["mtime_ns"]])


def _key(file: str, size, mtime) -> tuple[str, int, int]:
    return str(Path(file).resolve()), int(size), int(mtime)


class ResultsFile:
    """Append-only results file (``.jsonl`` or ``.csv``) that knows what it already holds.

    ``done``: keys (:func:`emolens.batch.file_key`) of the files recorded by earlier
    runs. Opening truncates a cut-short last line left by a kill."""

    def __init__(self, path: str | Path, classes: list[str]):
        self.path = Path(path)
        self.format = FORMATS.get(self.path.suffix.lower())
        if self.format is None:
            raise EmolensError(f"--out {self.path}: use a .jsonl or .csv file name")
        self.classes = list(classes)
        self.done: set[tuple[str, int, int]] = set()
        if self.path.exists():
            self._read_existing()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._f = open(self.path, "a", newline="", encoding="utf-8")
        if self.format == "csv" and self._f.tell() == 0:
            self._write_csv(csv_header(self.classes))

    def _read_existing(self) -> None:
        data = self.path.read_bytes()
        cut = data.rfind(b"\n") + 1
        if cut < len(data):  # a line cut short by a kill: drop it
            with open(self.path, "r+b") as f:
                f.truncate(cut)
            data = data[:cut]
        text = data.decode("utf-8", errors="replace")
        if self.format == "jsonl":
            for line in text.splitlines():
                try:
                    rec = json.loads(line)
                    self.done.add(_key(rec["file"], rec["size_bytes"], rec["mtime_ns"]))
                except (ValueError, KeyError, TypeError):
                    continue  # a foreign or damaged line: its file is simply redone
            return
        rows = list(csv.reader(io.StringIO(text)))
        if rows and rows[0] != csv_header(self.classes):
            raise EmolensError(f"--out {self.path} holds results of another model or format "
                               f"(columns {','.join(rows[0][:6])}...); choose a new file")
        for row in rows[1:]:
            try:
                self.done.add(_key(row[0], row[-2], row[-1]))
            except (ValueError, IndexError):
                continue

    def _write_csv(self, row: list) -> None:
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerow(row)
        self._f.write(buf.getvalue())
        self._f.flush()

    def is_done(self, key: tuple[str, int, int]) -> bool:
        return key in self.done

    def write(self, r: FileResult) -> dict:
        """Append (and flush) one result; returns its record."""
        rec = result_record(r, self.classes)
        if self.format == "jsonl":
            self._f.write(json.dumps(rec) + "\n")
            self._f.flush()
        else:
            self._write_csv(_csv_row(rec, self.classes))
        self.done.add(r.key)
        return rec

    def close(self) -> None:
        self._f.close()

    def __enter__(self) -> "ResultsFile":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


__all__ = ["ResultsFile", "result_record", "csv_header", "FORMATS"]
