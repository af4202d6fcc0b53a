"""Evaluation: utterance decisions, metrics over folds, and the eGeMAPS+SVM baseline."""

from emolens.evaluation.egemaps import (
    EGEMAPS_SAMPLE_RATE,
    N_EGEMAPS_FEATURES,
    EgemapsSVM,
    cross_validate_egemaps,
    extract_egemaps,
)
from emolens.evaluation.metrics import (
    aggregate_folds,
    classification_report_dict,
    read_confusion_csv,
    utterance_predictions,
    utterance_scores,
    write_confusion_csv,
)

__all__ = [
    "EGEMAPS_SAMPLE_RATE",
    "N_EGEMAPS_FEATURES",
    "EgemapsSVM",
    "aggregate_folds",
    "classification_report_dict",
    "cross_validate_egemaps",
    "extract_egemaps",
    "read_confusion_csv",
    "utterance_predictions",
    "utterance_scores",
    "write_confusion_csv",
]
