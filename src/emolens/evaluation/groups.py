"""Metrics broken down by a grouping of the utterances (corpus, speaker, ...).

The breakdown pools every tested utterance of a group (over all folds it was tested
in, each utterance once) and scores it with
:func:`~emolens.evaluation.metrics.classification_report_dict`, so a group's accuracy,
UAR and macro F1 are those of its summed confusion matrix.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from emolens.evaluation.metrics import classification_report_dict

#: Keys of each group's entry (besides ``per_class``).
GROUP_KEYS = ("n", "accuracy", "uar", "f1_macro", "confusion")


def per_group_report(y_true: np.ndarray, y_pred: np.ndarray, groups: Sequence[str] | np.ndarray,
                     labels: Sequence[str]) -> dict[str, dict]:
    """``{group: {n, accuracy, uar, f1_macro, confusion, per_class}}`` (groups sorted).

    ``y_true``/``y_pred`` are ``(U,)`` class indices into ``labels`` (or label strings),
    ``groups (U,)`` the group name of each utterance."""
    y_true, y_pred, groups = np.asarray(y_true), np.asarray(y_pred), np.asarray(groups, dtype=str)
    if not (len(y_true) == len(y_pred) == len(groups)):
        raise ValueError(f"lengths differ: y_true {len(y_true)}, y_pred {len(y_pred)}, groups {len(groups)}")
    out: dict[str, dict] = {}
    for g in sorted(set(groups.tolist())):
        m = groups == g
        rep = classification_report_dict(y_true[m], y_pred[m], labels)
        out[g] = {"n": int(m.sum()), "accuracy": rep["accuracy"], "uar": rep["uar"], "f1_macro": rep["f1_macro"],
                  "confusion": rep["confusion"], "per_class": rep["per_class"]}
    return out


def per_corpus_from_folds(fold_reports: Sequence[dict], corpora: np.ndarray, y_utt: np.ndarray,
                          labels: Sequence[str]) -> dict[str, dict]:
    """Per-corpus breakdown of cross-validation folds whose reports carry ``utterances``
    (manifest indices) and ``predicted`` (class indices); ``corpora (U,)`` and
    ``y_utt (U,)`` give each manifest utterance's corpus and true class index."""
    utt = np.concatenate([np.asarray(r["utterances"], int) for r in fold_reports])
    pred = np.concatenate([np.asarray(r["predicted"], int) for r in fold_reports])
    return per_group_report(np.asarray(y_utt)[utt], pred, np.asarray(corpora)[utt], labels)


def format_group_table(per_group: dict[str, dict], title: str = "corpus") -> str:
    """A plain-text table: one row per group with n, accuracy, UAR, macro F1."""
    w = max([len(title)] + [len(g) for g in per_group]) + 2
    lines = [f"{title:<{w}}{'n':>6}{'accuracy':>10}{'UAR':>8}{'macro F1':>10}"]
    for g, d in per_group.items():
        lines.append(f"{g:<{w}}{d['n']:>6}{d['accuracy']:>10.3f}{d['uar']:>8.3f}{d['f1_macro']:>10.3f}")
    return "\n".join(lines)


__all__ = ["per_group_report", "per_corpus_from_folds", "format_group_table", "GROUP_KEYS"]
