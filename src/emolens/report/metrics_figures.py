"""Figures for evaluation results: annotated confusion matrix and training curves (PNG).

Uses :class:`matplotlib.figure.Figure` directly (no pyplot state, Agg rendering), so it
works headless and in threads.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from emolens.errors import EmolensError, LabelError

__all__ = ["plot_confusion", "plot_training_curves", "read_log_records"]

_MARGIN_COLOR = "#e8e8e8"


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """Element-wise ``num / den`` with NaN where ``den`` is 0."""
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    out = np.full(np.broadcast(num, den).shape, np.nan)
    np.divide(num, den, out=out, where=den > 0)
    return out


def _pct(value: float) -> str:
    return "–" if np.isnan(value) else f"{100.0 * value:.1f}%"


def plot_confusion(
    confusion: np.ndarray | list,
    labels: Sequence[str],
    path: str | Path,
    title: str | None = None,
) -> Path:
    """Save a confusion matrix (rows true, columns predicted) as a PNG.

    Each cell shows the count and its row-normalised percentage (colour = percentage);
    an extra column on the right gives each class's recall, an extra row below each
    predicted class's precision, and the corner the overall accuracy and UAR.
    """
    matrix = np.asarray(confusion, dtype=np.int64)
    labels = [str(label) for label in labels]
    n = len(labels)
    if n == 0 or matrix.shape != (n, n):
        raise LabelError(f"confusion of shape {matrix.shape} does not match {n} labels")
    row_sums = matrix.sum(axis=1)
    col_sums = matrix.sum(axis=0)
    row_pct = _ratio(matrix, row_sums[:, None])
    recall = _ratio(np.diag(matrix), row_sums)
    precision = _ratio(np.diag(matrix), col_sums)
    accuracy = float(_ratio(np.trace(matrix), matrix.sum()))
    uar = float(np.nanmean(recall)) if np.any(row_sums > 0) else float("nan")

    size = 1.1 * (n + 1) + 1.6
    fig = Figure(figsize=(size, size * 0.9), layout="constrained")
    ax = fig.add_subplot()
    image = ax.imshow(
        np.nan_to_num(row_pct), cmap="Blues", vmin=0.0, vmax=1.0,
        extent=(-0.5, n - 0.5, n - 0.5, -0.5),
    )
    for i in range(n):
        for j in range(n):
            dark = not np.isnan(row_pct[i, j]) and row_pct[i, j] > 0.55
            ax.text(j, i, f"{matrix[i, j]}\n{_pct(row_pct[i, j])}", ha="center", va="center",
                    fontsize=9, color="white" if dark else "black")
    for k in range(n):
        ax.add_patch(_margin_cell(n, k))
        ax.text(n, k, _pct(recall[k]), ha="center", va="center", fontsize=9, weight="bold")
        ax.add_patch(_margin_cell(k, n))
        ax.text(k, n, _pct(precision[k]), ha="center", va="center", fontsize=9, weight="bold")
    ax.add_patch(_margin_cell(n, n))
    ax.text(n, n, f"acc {_pct(accuracy)}\nUAR {_pct(uar)}", ha="center", va="center", fontsize=8, weight="bold")
    ax.set_xlim(-0.5, n + 0.5)
    ax.set_ylim(n + 0.5, -0.5)
    ax.set_xticks(range(n + 1), [*labels, "recall"], rotation=30, ha="right")
    ax.set_yticks(range(n + 1), [*labels, "precision"])
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.tick_params(length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="row-normalised share")
    if title:
        ax.set_title(title)
    return _save(fig, path)


def _margin_cell(x: int, y: int) -> Rectangle:
    """A grey square centred at (x, y) for the recall/precision margins."""
    return Rectangle((x - 0.5, y - 0.5), 1.0, 1.0, facecolor=_MARGIN_COLOR, edgecolor="white")


def _save(fig: Figure, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=120, bbox_inches="tight")
    return path


def _column(records: Sequence[dict], key: str) -> np.ndarray:
    """Values of ``key`` per record as floats, NaN where missing or null."""
    return np.array([np.nan if r.get(key) is None else float(r[key]) for r in records])


def plot_training_curves(log_records: Sequence[dict], path: str | Path) -> Path:
    """Save epoch vs train/val loss (left) and val UAR/accuracy (right) as a PNG.

    ``log_records`` are the lines of a training JSONL log with keys ``epoch``,
    ``train_loss``, ``val_loss``, ``val_uar``, ``val_accuracy``; missing values are gaps.
    """
    records = [r for r in log_records if r.get("epoch") is not None]
    if not records:
        raise EmolensError("the training log has no epoch records; train first or check the log path")
    records.sort(key=lambda r: r["epoch"])
    epoch = _column(records, "epoch")
    fig = Figure(figsize=(10, 4), layout="constrained")
    loss_ax, score_ax = fig.subplots(1, 2)
    for key, style in (("train_loss", "-o"), ("val_loss", "-s")):
        loss_ax.plot(epoch, _column(records, key), style, markersize=3, label=key.replace("_", " "))
    loss_ax.set(xlabel="epoch", ylabel="loss", title="loss")
    loss_ax.legend()
    for key, style in (("val_uar", "-o"), ("val_accuracy", "--s")):
        score_ax.plot(epoch, _column(records, key), style, markersize=3, label=key.replace("_", " "))
    score_ax.set(xlabel="epoch", ylabel="score", title="validation", ylim=(0.0, 1.0))
    score_ax.legend()
    for ax in (loss_ax, score_ax):
        ax.grid(alpha=0.3)
    return _save(fig, path)


def read_log_records(path: str | Path) -> list[dict]:
    """Read a JSONL training log (one JSON object per non-empty line)."""
    path = Path(path)
    if not path.is_file():
        raise EmolensError(f"training log not found: {path}")
    records = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if line.strip():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise EmolensError(f"{path}:{number} is not valid JSON ({exc.msg})") from None
    return records
