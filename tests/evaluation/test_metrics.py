"""Metrics against hand-computed values, utterance averaging, confusion CSV, figures."""

from __future__ import annotations

import json

import matplotlib.image as mpimg
import numpy as np
import pytest

from emolens.errors import EmolensError, LabelError
from emolens.evaluation.metrics import (
    aggregate_folds,
    classification_report_dict,
    read_confusion_csv,
    utterance_predictions,
    utterance_scores,
    write_confusion_csv,
)
from emolens.report.metrics_figures import plot_confusion, plot_training_curves, read_log_records

LABELS = ["a", "b", "c"]
# Imbalanced toy set: 6 a, 2 b, 2 c. By hand:
#   true a -> a a a a a b   (5/6 right)
#   true b -> b a           (1/2)
#   true c -> c b           (1/2)
Y_TRUE = ["a"] * 6 + ["b", "b", "c", "c"]
Y_PRED = ["a"] * 5 + ["b"] + ["b", "a"] + ["c", "b"]
CONFUSION = [[5, 1, 0], [1, 1, 0], [0, 1, 1]]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_report_matches_hand_computed_values() -> None:
    r = classification_report_dict(Y_TRUE, Y_PRED, LABELS)
    assert r["labels"] == LABELS and r["n"] == 10
    assert r["confusion"] == CONFUSION
    assert r["accuracy"] == pytest.approx(7 / 10)
    # UAR = mean(5/6, 1/2, 1/2) = 11/18, below WA because the big class is the easy one.
    assert r["uar"] == pytest.approx(11 / 18)
    assert r["uar"] != pytest.approx(r["accuracy"])
    # precision: a 5/6, b 1/3, c 1/1; F1: a 5/6, b 2/5, c 2/3 -> macro 19/30
    assert r["f1_macro"] == pytest.approx(19 / 30)
    pc = r["per_class"]
    assert [pc[k]["precision"] for k in LABELS] == pytest.approx([5 / 6, 1 / 3, 1.0])
    assert [pc[k]["recall"] for k in LABELS] == pytest.approx([5 / 6, 1 / 2, 1 / 2])
    assert [pc[k]["f1"] for k in LABELS] == pytest.approx([5 / 6, 2 / 5, 2 / 3])
    assert [pc[k]["support"] for k in LABELS] == [6, 2, 2]
    json.dumps(r)  # plain Python numbers only


def test_report_accepts_integer_indices() -> None:
    idx = {k: i for i, k in enumerate(LABELS)}
    r = classification_report_dict([idx[v] for v in Y_TRUE], np.array([idx[v] for v in Y_PRED]), LABELS)
    assert r["confusion"] == CONFUSION
    assert r["uar"] == pytest.approx(11 / 18)


def test_report_uar_ignores_classes_absent_from_truth() -> None:
    r = classification_report_dict(["a", "a", "b"], ["a", "c", "b"], LABELS)
    assert r["uar"] == pytest.approx((1 / 2 + 1) / 2)
    assert r["per_class"]["c"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    assert r["confusion"] == [[1, 0, 1], [0, 1, 0], [0, 0, 0]]


@pytest.mark.parametrize(
    ("y_true", "y_pred", "labels"),
    [(["a", "x"], ["a", "a"], LABELS), ([0, 3], [0, 0], LABELS), ([], [], LABELS), (["a"], ["a"], ["a", "a"])],
)
def test_report_rejects_bad_labels(y_true, y_pred, labels) -> None:
    with pytest.raises(LabelError):
        classification_report_dict(y_true, y_pred, labels)


def test_aggregate_folds_mean_std_and_summed_confusion() -> None:
    fold1 = classification_report_dict(Y_TRUE, Y_PRED, LABELS)
    fold2 = classification_report_dict(["a", "b", "c", "c"], ["a", "b", "c", "c"], LABELS)  # perfect
    agg = aggregate_folds([fold1, fold2])
    assert agg["n_folds"] == 2 and agg["labels"] == LABELS
    assert agg["accuracy"]["mean"] == pytest.approx(0.85)
    assert agg["accuracy"]["std"] == pytest.approx(0.15)  # ddof=0
    assert agg["accuracy"]["per_fold"] == pytest.approx([0.7, 1.0])
    assert agg["uar"]["mean"] == pytest.approx((11 / 18 + 1) / 2)
    assert agg["uar"]["std"] == pytest.approx((1 - 11 / 18) / 2)
    assert agg["f1_macro"]["mean"] == pytest.approx((19 / 30 + 1) / 2)
    assert agg["per_class_recall"]["a"]["mean"] == pytest.approx((5 / 6 + 1) / 2)
    assert agg["confusion"] == [[6, 1, 0], [1, 2, 0], [0, 1, 3]]
    assert agg["pooled"]["accuracy"] == pytest.approx(11 / 14)
    assert agg["pooled"]["uar"] == pytest.approx((6 / 7 + 2 / 3 + 3 / 4) / 3)
    pc = agg["pooled"]["per_class"]
    assert pc["b"]["precision"] == pytest.approx(2 / 4) and pc["b"]["recall"] == pytest.approx(2 / 3)
    assert pc["c"]["precision"] == pytest.approx(1.0) and pc["c"]["support"] == 4


def test_aggregate_folds_skips_absent_class_in_recall_mean() -> None:
    fold1 = classification_report_dict(["a", "c"], ["a", "a"], LABELS)  # no b in truth
    fold2 = classification_report_dict(["a", "b", "b", "c"], ["a", "b", "a", "c"], LABELS)
    agg = aggregate_folds([fold1, fold2])
    b = agg["per_class_recall"]["b"]
    assert np.isnan(b["per_fold"][0]) and b["per_fold"][1] == pytest.approx(0.5)
    assert b["mean"] == pytest.approx(0.5) and b["std"] == pytest.approx(0.0)


def test_aggregate_folds_rejects_mixed_labels_and_empty() -> None:
    f1 = classification_report_dict(["a"], ["a"], ["a", "b"])
    f2 = classification_report_dict(["a"], ["a"], ["b", "a"])
    with pytest.raises(LabelError):
        aggregate_folds([f1, f2])
    with pytest.raises(EmolensError):
        aggregate_folds([])


def test_utterance_scores_average_kept_patches() -> None:
    probs = np.array([[0.2, 0.8], [0.9, 0.1], [0.6, 0.4], [0.5, 0.5], [0.7, 0.3]])
    ids = np.array(["u2", "u1", "u2", "u3", "u1"])
    out_ids, scores = utterance_scores(probs, ids)
    assert out_ids.tolist() == ["u1", "u2", "u3"]
    np.testing.assert_allclose(scores, [[0.8, 0.2], [0.4, 0.6], [0.5, 0.5]])
    assert utterance_predictions(scores, ["x", "y"]).tolist() == ["x", "y", "x"]


def test_utterance_scores_nan_row_for_utterance_without_patches() -> None:
    probs = np.array([[0.2, 0.8], [0.6, 0.4]])
    out_ids, scores = utterance_scores(probs, np.array([3, 1]), all_ids=[1, 2, 3])
    assert out_ids.tolist() == [1, 2, 3]
    np.testing.assert_allclose(scores[[0, 2]], [[0.6, 0.4], [0.2, 0.8]])
    assert np.isnan(scores[1]).all()
    with pytest.raises(EmolensError):
        utterance_predictions(scores, ["x", "y"])
    with pytest.raises(LabelError):
        utterance_scores(probs, np.array([3, 9]), all_ids=[1, 2, 3])


def test_confusion_csv_round_trip(tmp_path) -> None:
    path = write_confusion_csv(tmp_path / "sub" / "confusion.csv", np.array(CONFUSION), LABELS)
    assert path.read_text().splitlines()[:2] == ["true\\predicted,a,b,c", "a,5,1,0"]
    matrix, labels = read_confusion_csv(path)
    assert labels == LABELS
    np.testing.assert_array_equal(matrix, CONFUSION)
    with pytest.raises(LabelError):
        write_confusion_csv(tmp_path / "bad.csv", [[1, 2]], LABELS)


def _assert_png(path, min_side: int = 100) -> None:
    assert path.is_file() and path.stat().st_size > 0
    assert path.read_bytes()[:8] == PNG_MAGIC
    image = mpimg.imread(path)
    assert min(image.shape[:2]) >= min_side


def test_plot_confusion_writes_png(tmp_path) -> None:
    thesis = [[975, 37, 35, 50], [75, 924, 32, 68], [47, 39, 925, 89], [29, 34, 33, 1000]]
    path = plot_confusion(thesis, ["angry", "happy", "neutral", "sad"], tmp_path / "cm.png", title="4-class")
    _assert_png(path)
    # a class never seen nor predicted must not crash the figure
    _assert_png(plot_confusion([[3, 0], [0, 0]], ["x", "y"], tmp_path / "cm0.png"))
    with pytest.raises(LabelError):
        plot_confusion(thesis, ["angry", "happy"], tmp_path / "bad.png")


def test_plot_training_curves_from_jsonl(tmp_path) -> None:
    log = tmp_path / "log.jsonl"
    lines = [
        {"epoch": e, "train_loss": 1.0 / e, "val_loss": 1.2 / e, "val_uar": 0.5 + 0.1 * e, "val_accuracy": 0.55 + 0.1 * e}
        for e in (1, 2, 3)
    ]
    lines[1]["val_loss"] = None
    log.write_text("\n".join(json.dumps(r) for r in lines) + "\n\n")
    records = read_log_records(log)
    assert records == lines
    _assert_png(plot_training_curves(records, tmp_path / "curves.png"))
    with pytest.raises(EmolensError):
        plot_training_curves([], tmp_path / "empty.png")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"epoch": 1}\nnot json\n')
    with pytest.raises(EmolensError, match=":2 "):
        read_log_records(bad)
