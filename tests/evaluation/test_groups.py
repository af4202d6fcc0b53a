"""Per-group (per-corpus) metrics agree with scoring each group alone."""

import numpy as np

from emolens.evaluation.groups import format_group_table, per_corpus_from_folds, per_group_report
from emolens.evaluation.metrics import classification_report_dict

LABELS = ["angry", "happy", "neutral", "sad"]


def test_per_group_matches_subsets():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 60)
    p = np.where(rng.random(60) < 0.6, y, rng.integers(0, 4, 60))
    g = np.array(["a"] * 25 + ["b"] * 35)
    rep = per_group_report(y, p, g, LABELS)
    assert list(rep) == ["a", "b"] and rep["a"]["n"] == 25 and rep["b"]["n"] == 35
    ref = classification_report_dict(y[25:], p[25:], LABELS)
    assert rep["b"]["uar"] == ref["uar"] and rep["b"]["confusion"] == ref["confusion"]
    assert sum(np.trace(np.array(r["confusion"])) for r in rep.values()) == int(np.sum(y == p))
    assert "b" in format_group_table(rep).splitlines()[2]


def test_per_corpus_from_folds_pools_folds():
    y_utt = np.array([0, 1, 2, 3, 0, 1])
    corpora = np.array(["x", "x", "x", "y", "y", "y"])
    folds = [{"utterances": [0, 3], "predicted": [0, 3]}, {"utterances": [1, 2, 4, 5], "predicted": [1, 0, 0, 0]}]
    rep = per_corpus_from_folds(folds, corpora, y_utt, LABELS)
    assert rep["x"]["n"] == 3 and rep["x"]["accuracy"] == 2 / 3
    assert rep["y"]["accuracy"] == 2 / 3 and rep["y"]["uar"] == (1 + 1 + 0) / 3
