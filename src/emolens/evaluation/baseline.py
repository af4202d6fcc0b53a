"""The eGeMAPS + SVM reference (``--model egemaps-svm``), run on exactly the folds
the neural models use (same :func:`make_folds` spec and seed), with the same metrics."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from emolens.corpora.multi import corpus_array
from emolens.corpora.splits import make_folds
from emolens.evaluation.groups import per_corpus_from_folds
from emolens.evaluation.egemaps import EgemapsSVM, extract_egemaps
from emolens.evaluation.metrics import aggregate_folds, classification_report_dict, write_confusion_csv
from emolens.report.metrics_figures import plot_confusion


def run_egemaps_cv(work, folds: str, out: str | Path, *, seed: int = 0, progress: bool = True,
                   allow_speaker_overlap: bool = False) -> dict:
    """Speaker-independent CV of eGeMAPSv02 functionals + RBF SVM; writes metrics.json."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    classes = work.classes
    folds_list = make_folds(work.manifest, folds, seed=seed, allow_speaker_overlap=allow_speaker_overlap)  # fail fast
    X = extract_egemaps(work.manifest.paths(), cache_dir=work.root / "egemaps", progress=progress)
    y = work.labels()
    spk = work.manifest.speaker_array()
    reports = []
    for fold in folds_list:
        train = fold.train if fold.val is None else np.union1d(fold.train, fold.val)
        t0 = time.perf_counter()
        clf = EgemapsSVM().fit(X[train], y[train], groups=spk[train])
        secs = time.perf_counter() - t0
        pred = clf.predict(X[fold.test])
        rep = classification_report_dict(y[fold.test], pred, classes)
        rep["utterances"] = [int(i) for i in fold.test]
        rep["predicted"] = [int(p) for p in pred]
        rep.update(fold=fold.name, train_seconds=secs, best_epoch=None, C=float(clf.C_),
                   patches={"train_before": 0, "train_after": 0, "test_before": 0, "test_after": 0})
        reports.append(rep)
    agg = aggregate_folds(reports)
    metrics = {
        "model": "egemaps-svm", "gds": False, "labels": classes,
        "accuracy": agg["accuracy"]["mean"], "uar": agg["uar"]["mean"], "f1_macro": agg["f1_macro"]["mean"],
        "accuracy_std": agg["accuracy"]["std"], "uar_std": agg["uar"]["std"], "f1_macro_std": agg["f1_macro"]["std"],
        "confusion": agg["confusion"], "per_class": agg["pooled"]["per_class"], "train_seconds": float(sum(r["train_seconds"] for r in reports)),
        "patches": None, "n_folds": len(reports), "fold_spec": folds,
        "folds": [{k: r[k] for k in ("fold", "accuracy", "uar", "f1_macro", "train_seconds", "C")} for r in reports],
        "per_corpus": per_corpus_from_folds(reports, corpus_array(work.manifest), y, classes),
        "aggregate": agg,
    }
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    write_confusion_csv(out / "confusion.csv", agg["confusion"], classes)
    plot_confusion(np.array(agg["confusion"]), classes, out / "confusion.png",
                   title=f"eGeMAPS + SVM ({len(reports)} folds): UAR {metrics['uar']:.3f}")
    return metrics
