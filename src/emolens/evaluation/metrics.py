"""Utterance decisions and classification metrics (accuracy/WA, UAR, F1, confusion).

All numbers come from :mod:`sklearn.metrics`; this module only arranges them into
plain, JSON-serialisable dicts and aggregates them over cross-validation folds.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    f1_score,
    precision_recall_fscore_support,
    recall_score,
)

from emolens.errors import EmolensError, LabelError

__all__ = [
    "utterance_scores",
    "utterance_predictions",
    "classification_report_dict",
    "aggregate_folds",
    "write_confusion_csv",
    "read_confusion_csv",
]

_SUMMARY_KEYS = ("accuracy", "uar", "f1_macro")
_CSV_CORNER = "true\\predicted"


def utterance_scores(
    patch_probs: np.ndarray,
    utterance_ids: np.ndarray,
    all_ids: Sequence | np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Average patch probabilities per utterance.

    ``patch_probs`` is (P, C) and ``utterance_ids`` (P,) names the utterance of each kept
    patch. Returns ``(ids, scores)``: the sorted unique ids and their (U, C) mean
    probabilities. If ``all_ids`` is given, the output covers ``np.unique(all_ids)``
    instead, and an utterance with no kept patch (e.g. all removed by data selection)
    gets a row of NaN that the caller must fill with its fallback (for instance the
    mean over all of its patches before selection); ids of patches that are not in
    ``all_ids`` raise :class:`LabelError`.
    """
    probs = np.asarray(patch_probs, dtype=np.float64)
    ids = np.asarray(utterance_ids)
    if probs.ndim != 2:
        raise ValueError(f"patch_probs must be 2-D (P, C), got shape {probs.shape}")
    if ids.shape != (probs.shape[0],):
        raise ValueError(f"utterance_ids must have shape ({probs.shape[0]},), got {ids.shape}")
    out_ids = np.unique(ids) if all_ids is None else np.unique(np.asarray(all_ids))
    if ids.size == 0:
        return out_ids, np.full((out_ids.size, probs.shape[1]), np.nan)
    row = np.searchsorted(out_ids, ids)
    row_clipped = np.minimum(row, max(out_ids.size - 1, 0))
    if out_ids.size == 0 or np.any(out_ids[row_clipped] != ids):
        raise LabelError("some patch utterance ids are not in all_ids; pass every utterance id")
    sums = np.zeros((out_ids.size, probs.shape[1]))
    np.add.at(sums, row, probs)
    counts = np.bincount(row, minlength=out_ids.size).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = sums / counts[:, None]
    means[counts == 0] = np.nan
    return out_ids, means


def utterance_predictions(scores: np.ndarray, labels: Sequence[str]) -> np.ndarray:
    """The emotion with the highest averaged score per row of (U, C) ``scores``."""
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 2 or scores.shape[1] != len(labels):
        raise LabelError(f"scores of shape {scores.shape} do not match {len(labels)} labels")
    if np.isnan(scores).any():
        raise EmolensError("utterance scores contain NaN rows; fill utterances without patches first")
    return np.asarray(labels, dtype=object)[np.argmax(scores, axis=1)]


def _as_label_array(values: np.ndarray | Sequence, labels: list[str], name: str) -> np.ndarray:
    """Return ``values`` as label strings; integer arrays are indices into ``labels``."""
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    if arr.size and np.issubdtype(arr.dtype, np.integer):
        if arr.min() < 0 or arr.max() >= len(labels):
            raise LabelError(f"{name} has class indices outside 0..{len(labels) - 1}")
        return np.asarray(labels, dtype=object)[arr]
    arr = arr.astype(str).astype(object)
    unknown = sorted(set(arr) - set(labels))
    if unknown:
        raise LabelError(f"{name} has labels not in {labels}: {unknown}")
    return arr


def _check_labels(labels: Sequence[str]) -> list[str]:
    labels = [str(label) for label in labels]
    if not labels or len(set(labels)) != len(labels):
        raise LabelError(f"labels must be a non-empty list without duplicates, got {labels}")
    return labels


def classification_report_dict(
    y_true: np.ndarray | Sequence, y_pred: np.ndarray | Sequence, labels: Sequence[str]
) -> dict:
    """Accuracy (WA), UAR, macro F1, per-class precision/recall/F1/support and confusion.

    ``y_true``/``y_pred`` are label strings or integer indices into ``labels``. UAR is
    the mean recall over the classes present in ``y_true`` (sklearn's balanced
    accuracy); ``f1_macro`` averages over the same classes. Absent classes report
    precision/recall/F1 of 0 and support 0. ``confusion`` has rows = true,
    columns = predicted, in ``labels`` order. All values are plain Python numbers.
    """
    labels = _check_labels(labels)
    yt = _as_label_array(y_true, labels, "y_true")
    yp = _as_label_array(y_pred, labels, "y_pred")
    if yt.shape != yp.shape:
        raise ValueError(f"y_true and y_pred differ in length: {yt.size} vs {yp.size}")
    if yt.size == 0:
        raise LabelError("cannot score an empty set of predictions")
    present = [label for label in labels if np.any(yt == label)]
    precision, recall, f1, support = precision_recall_fscore_support(
        yt, yp, labels=labels, zero_division=0
    )
    return {
        "labels": labels,
        "n": int(yt.size),
        "accuracy": float(accuracy_score(yt, yp)),
        "uar": float(recall_score(yt, yp, labels=present, average="macro", zero_division=0)),
        "f1_macro": float(f1_score(yt, yp, labels=present, average="macro", zero_division=0)),
        "per_class": {
            label: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i, label in enumerate(labels)
        },
        "confusion": confusion_matrix(yt, yp, labels=labels).astype(int).tolist(),
    }


def _summary(values: list[float]) -> dict:
    """Mean and population std (ddof=0, as sklearn's ``cv_results_``) ignoring NaN."""
    arr = np.asarray(values, dtype=np.float64)
    finite = arr[~np.isnan(arr)]
    mean = float(finite.mean()) if finite.size else float("nan")
    std = float(finite.std()) if finite.size else float("nan")
    return {"mean": mean, "std": std, "per_fold": [float(v) for v in arr]}


def aggregate_folds(folds: Sequence[dict]) -> dict:
    """Combine :func:`classification_report_dict` results of cross-validation folds.

    Returns ``{"labels", "n_folds", "accuracy", "uar", "f1_macro", "per_class_recall",
    "confusion", "pooled"}`` where each metric is ``{"mean", "std", "per_fold"}`` (std
    with ddof=0; a class absent from a fold's truth has recall NaN there and is left
    out of its mean/std), ``confusion`` is the sum over folds and ``pooled`` holds
    accuracy and UAR computed from that summed confusion matrix.
    """
    if not folds:
        raise EmolensError("no folds to aggregate")
    labels = list(folds[0]["labels"])
    if any(list(fold["labels"]) != labels for fold in folds):
        raise LabelError("folds have different label sets; evaluate all folds with the same labels")
    confusion = np.sum([np.asarray(fold["confusion"], dtype=np.int64) for fold in folds], axis=0)
    per_class_recall = {
        label: _summary(
            [
                fold["per_class"][label]["recall"] if fold["per_class"][label]["support"] else np.nan
                for fold in folds
            ]
        )
        for label in labels
    }
    row_sums = confusion.sum(axis=1)
    pooled_recall = np.diag(confusion)[row_sums > 0] / row_sums[row_sums > 0]
    result: dict = {"labels": labels, "n_folds": len(folds)}
    for key in _SUMMARY_KEYS:
        result[key] = _summary([fold[key] for fold in folds])
    result["per_class_recall"] = per_class_recall
    result["confusion"] = confusion.astype(int).tolist()
    col_sums = confusion.sum(axis=0)
    result["pooled"] = {
        "accuracy": float(np.trace(confusion) / confusion.sum()),
        "uar": float(pooled_recall.mean()),
        "per_class": {
            label: {
                "precision": float(confusion[i, i] / col_sums[i]) if col_sums[i] else 0.0,
                "recall": float(confusion[i, i] / row_sums[i]) if row_sums[i] else 0.0,
                "support": int(row_sums[i]),
            }
            for i, label in enumerate(labels)
        },
    }
    return result


def write_confusion_csv(path: str | Path, confusion: np.ndarray | list, labels: Sequence[str]) -> Path:
    """Write a confusion matrix as CSV: header ``true\\predicted,<labels>``, one row per true label."""
    labels = _check_labels(labels)
    matrix = np.asarray(confusion)
    if matrix.shape != (len(labels), len(labels)):
        raise LabelError(f"confusion of shape {matrix.shape} does not match {len(labels)} labels")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow([_CSV_CORNER, *labels])
        for label, row in zip(labels, matrix.tolist()):
            writer.writerow([label, *row])
    return path


def read_confusion_csv(path: str | Path) -> tuple[np.ndarray, list[str]]:
    """Read a CSV written by :func:`write_confusion_csv`; returns ``(confusion, labels)``."""
    path = Path(path)
    if not path.is_file():
        raise EmolensError(f"confusion CSV not found: {path}")
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    labels = rows[0][1:] if rows else []
    body = rows[1:]
    if not labels or [row[0] for row in body] != labels or any(len(r) != len(labels) + 1 for r in body):
        raise EmolensError(f"{path} is not a square confusion CSV with matching row/column labels")
    return np.array([[int(v) for v in row[1:]] for row in body], dtype=np.int64), labels
