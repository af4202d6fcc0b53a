"""Metrics of a trained model on labelled recordings it was not trained on (another
corpus), through the same inference path users get (:class:`EmotionRecognizer`).

The recordings come from a prepared work dir's manifest or from files with a labels
table (``path,label[,speaker,corpus]``). Labels the model does not know raise a
:class:`LabelError` naming them, unless ``drop_unknown`` (then those files are left out
and counted). A model trained with stream normalisation is evaluated with its own
groups: ``speaker``/``corpus`` use the test group's statistics (all clips of a group
pass through the recognizer together), ``utterance`` each clip's own.
"""

from __future__ import annotations

import csv
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from emolens.audio.io import load_audio
from emolens.corpora.labels import normalize_label
from emolens.corpora.manifest import UNKNOWN_SPEAKER, Manifest, Utterance
from emolens.errors import AudioError, CorpusError, LabelError
from emolens.evaluation.groups import per_group_report
from emolens.evaluation.metrics import classification_report_dict, write_confusion_csv
from emolens.report.metrics_figures import plot_confusion


@dataclass
class Evaluation:
    """Result of :func:`evaluate_recognizer`: predictions per utterance + metrics."""

    manifest: Manifest  # the utterances scored (known labels, readable audio)
    y_true: np.ndarray  # (U,) class index into classes
    y_pred: np.ndarray  # (U,)
    probs: np.ndarray  # (U, C) utterance probabilities
    classes: list[str]
    dropped_labels: dict[str, int]
    unreadable: dict[str, str]
    seconds: float

    def metrics(self) -> dict:
        """metrics.json content: overall report + ``per_corpus`` breakdown."""
        rep = classification_report_dict(self.y_true, self.y_pred, self.classes)
        corpora = np.asarray([u.corpus for u in self.manifest], dtype=str)
        return {"labels": self.classes, "n": int(len(self.y_true)), **rep,
                "per_corpus": per_group_report(self.y_true, self.y_pred, corpora, self.classes),
                "dropped_labels": self.dropped_labels, "unreadable": len(self.unreadable),
                "seconds": round(self.seconds, 2)}


def manifest_from_labels(table: str | Path, inputs: list[Path] | None = None) -> Manifest:
    """A manifest from a ``path,label[,speaker,corpus]`` CSV (relative paths resolve
    against the table's folder); with ``inputs`` (files/folders) only those files."""
    table = Path(table)
    if not table.is_file():
        raise CorpusError(f"labels table {table} not found; give a CSV with columns path,label[,speaker,corpus]")
    with table.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        header = [h.strip().lower() for h in (reader.fieldnames or [])]
        if "path" not in header or "label" not in header:
            raise CorpusError(f"labels table {table} needs columns path,label (optional speaker,corpus); it has {','.join(header)}")
        reader.fieldnames = header
        rows = list(reader)
    utts = []
    for n, r in enumerate(rows, start=2):
        path = Path((r.get("path") or "").strip())
        if not str(path):
            raise CorpusError(f"labels table {table} line {n}: empty path")
        if not path.is_absolute():
            path = (table.resolve().parent / path).resolve()
        try:
            label = normalize_label((r.get("label") or "").strip())
        except LabelError as exc:
            raise LabelError(f"labels table {table} line {n}: {exc}") from None
        utts.append(Utterance(str(path), label, (r.get("speaker") or "").strip() or UNKNOWN_SPEAKER,
                              (r.get("corpus") or "").strip() or table.stem))
    m = Manifest(utts)
    if inputs:
        wanted = set()
        for p in inputs:
            p = Path(p).resolve()
            wanted |= {str(q.resolve()) for q in p.rglob("*")} if p.is_dir() else {str(p)}
        m = Manifest(u for u in m if u.path in wanted)
        if len(m) == 0:
            raise CorpusError(f"none of the given files is listed in {table}; check the paths in its path column")
    return m


def check_labels(manifest: Manifest, classes: list[str], drop_unknown: bool) -> tuple[Manifest, dict[str, int]]:
    """Keep the utterances whose label is a model class; unknown labels raise unless dropped."""
    unknown: dict[str, int] = {}
    for u in manifest:
        if u.label not in classes:
            unknown[u.label] = unknown.get(u.label, 0) + 1
    if unknown and not drop_unknown:
        names = ", ".join(f"{k} ({v} files)" for k, v in sorted(unknown.items()))
        raise LabelError(f"labels {names} are not classes of this model ({', '.join(classes)}); "
                         "pass --drop-unknown to leave those files out")
    kept = Manifest(u for u in manifest if u.label in classes)
    if len(kept) == 0:
        raise LabelError(f"no file has a label among the model's classes ({', '.join(classes)})")
    return kept, unknown


def evaluate_recognizer(rec, manifest: Manifest, *, drop_unknown: bool = False, chunk: int = 16,
                        progress: bool = True) -> Evaluation:
    """Run ``rec`` (an :class:`EmotionRecognizer`) over ``manifest`` and score it."""
    from tqdm.auto import tqdm

    t0 = time.perf_counter()
    manifest, dropped = check_labels(manifest, rec.classes, drop_unknown)
    mode = rec.normalize
    if mode == "speaker" and any(u.speaker == UNKNOWN_SPEAKER for u in manifest):
        raise CorpusError("this model normalises per speaker: give a speaker column in the labels table")
    key = {"speaker": lambda u: f"{u.corpus}|{u.speaker}", "corpus": lambda u: u.corpus}.get(mode)
    # batches: whole groups for speaker/corpus normalisation, else chunks of files
    order = list(range(len(manifest)))
    if key is not None:
        groups: dict[str, list[int]] = {}
        for i, u in enumerate(manifest):
            groups.setdefault(key(u), []).append(i)
        batches = list(groups.values())
    else:
        batches = [order[s : s + chunk] for s in range(0, len(order), chunk)]
    probs: dict[int, np.ndarray] = {}
    unreadable: dict[str, str] = {}
    for b in tqdm(batches, desc="evaluate", unit="batch", disable=not progress):
        clips, idx = [], []
        for i in b:
            try:
                clips.append(load_audio(manifest[i].path, sample_rate=rec.frontend.sample_rate))
                idx.append(i)
            except AudioError as exc:
                unreadable[manifest[i].path] = str(exc)
        keys = [key(manifest[i]) for i in idx] if key is not None else None
        for i, a in zip(idx, rec.analyze_clips(clips, groups=keys)):
            probs[i] = a.probs
    if not probs:
        raise AudioError(f"none of the {len(manifest)} files could be read (first: {next(iter(unreadable.values()))})")
    done = sorted(probs)
    scored = manifest[np.array(done, int)]
    P = np.stack([probs[i] for i in done])
    y_true = scored.label_array(rec.classes)
    return Evaluation(scored, y_true, P.argmax(1), P, list(rec.classes), dropped, unreadable,
                      time.perf_counter() - t0)


def write_evaluation(ev: Evaluation, out: str | Path, model_dir: str | Path) -> dict:
    """metrics.json, confusion.csv, confusion.png and predictions.csv into ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    m = {"model_dir": str(Path(model_dir).resolve()), **ev.metrics()}
    (out / "metrics.json").write_text(json.dumps(m, indent=2))
    write_confusion_csv(out / "confusion.csv", m["confusion"], ev.classes)
    plot_confusion(np.array(m["confusion"]), ev.classes, out / "confusion.png",
                   title=f"{Path(model_dir).name} on {', '.join(m['per_corpus'])}: UAR {m['uar']:.3f}")
    with open(out / "predictions.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "corpus", "speaker", "label", "predicted", *[f"p_{c}" for c in ev.classes]])
        for u, yp, p in zip(ev.manifest, ev.y_pred, ev.probs):
            w.writerow([u.path, u.corpus, u.speaker, u.label, ev.classes[int(yp)], *[f"{v:.4f}" for v in p]])
    return m


__all__ = ["Evaluation", "manifest_from_labels", "check_labels", "evaluate_recognizer", "write_evaluation"]
