"""Evaluation: utterance decisions, metrics over folds, calibration, and the eGeMAPS+SVM baseline.

Names are imported lazily (PEP 562): ``emolens.evaluation.calibration`` is on the
prediction path, which must not import scikit-learn (the eGeMAPS baseline does)."""

from __future__ import annotations

import importlib

_LAZY = {
    **dict.fromkeys(["EGEMAPS_SAMPLE_RATE", "N_EGEMAPS_FEATURES", "EgemapsSVM", "cross_validate_egemaps",
                     "extract_egemaps"], "egemaps"),
    **dict.fromkeys(["aggregate_folds", "classification_report_dict", "read_confusion_csv", "utterance_predictions",
                     "utterance_scores", "write_confusion_csv"], "metrics"),
}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(f"emolens.evaluation.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'emolens.evaluation' has no attribute {name!r}")


__all__ = sorted(_LAZY)
