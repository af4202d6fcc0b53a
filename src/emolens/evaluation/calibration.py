"""Confidence that means something: temperature scaling, expected calibration error and
the "uncertain" threshold with its coverage/accuracy trade-off.

Temperature scaling (Guo et al., 2017) here acts on the model's *final utterance
probabilities* ``p`` (the mean of the voting patches' softmax):
``p_T = softmax(log(p) / T)``. ``T > 1`` flattens over-confident outputs, ``T < 1``
sharpens; the arg-max (the label) never changes. Acting on the final probabilities
keeps one rule for the torch and ONNX paths. ``T`` is fitted by minimising the negative
log-likelihood on leave-one-corpus-out *out-of-fold* predictions (every row predicted
by a model that never saw its corpus), never on a test fold of the figure it reports.

ECE (:func:`expected_calibration_error`): 15 equal-width confidence bins on
``(0, 1]``; confidence = the top probability; ``ECE = sum_b |B_b|/N * |acc(B_b) -
conf(B_b)|`` (empty bins contribute 0). A clip is *uncertain* when its calibrated top
probability is below ``uncertain_threshold``; :func:`coverage_table` measures, per
threshold, the share of clips that stay confident (coverage) and the accuracy / UAR
on them.

No torch: this module is imported by the ONNX inference path.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

#: Bins of the ECE (equal width on the top probability).
N_BINS = 15
#: Probability floor before taking logs (probabilities of exactly 0 stay finite).
P_FLOOR = 1e-12
#: Thresholds reported in the coverage table.
THRESHOLDS = (0.0, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.7, 0.8, 0.9)
#: Used when a model has no measured threshold (documented in the README).
DEFAULT_UNCERTAIN_THRESHOLD = 0.5
#: Default rule for choosing the threshold: the lowest one whose covered clips reach
#: this accuracy while keeping at least ``MIN_COVERAGE`` of the clips.
TARGET_ACCURACY = 0.70
MIN_COVERAGE = 0.5


def apply_temperature(probs: np.ndarray, temperature: float) -> np.ndarray:
    """``(N, C)`` (or ``(C,)``) probabilities -> ``softmax(log(p) / T)``, same shape, float64."""
    p = np.asarray(probs, dtype=np.float64)
    if temperature == 1.0:
        return p
    z = np.log(np.clip(p, P_FLOOR, None)) / float(temperature)
    z -= z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def softmax_logits(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """``softmax(logits / T)`` over the last axis (for tests and logit-level callers)."""
    z = np.asarray(logits, dtype=np.float64) / float(temperature)
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def nll(probs: np.ndarray, labels: np.ndarray) -> float:
    """Mean negative log-likelihood of ``labels (N,)`` under ``probs (N, C)``."""
    p = np.asarray(probs, dtype=np.float64)
    y = np.asarray(labels, dtype=int)
    return float(-np.mean(np.log(np.clip(p[np.arange(len(y)), y], P_FLOOR, None))))


def fit_temperature(probs: np.ndarray, labels: np.ndarray, bounds: tuple[float, float] = (0.05, 20.0)) -> float:
    """The temperature minimising the NLL of ``labels (N,)`` under ``apply_temperature(probs, T)``
    (bounded 1-D search over ``log T``)."""
    p = np.asarray(probs, dtype=np.float64)
    y = np.asarray(labels, dtype=int)
    if p.ndim != 2 or len(p) != len(y) or len(y) == 0:
        raise ValueError(f"probs must be (N, C) and labels (N,) with N > 0, got {p.shape} and {y.shape}")
    logp = np.log(np.clip(p, P_FLOOR, None))

    def loss(log_t: float) -> float:
        z = logp / np.exp(log_t)
        z = z - z.max(1, keepdims=True)
        return float(-np.mean(z[np.arange(len(y)), y] - np.log(np.exp(z).sum(1))))

    from scipy.optimize import minimize_scalar  # fitting only: predict imports no scipy

    res = minimize_scalar(loss, bounds=(np.log(bounds[0]), np.log(bounds[1])), method="bounded",
                          options={"xatol": 1e-5})
    return float(np.exp(res.x))


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, n_bins: int = N_BINS) -> float:
    """Top-label ECE with ``n_bins`` equal-width bins on ``(0, 1]`` (see module doc)."""
    p = np.asarray(probs, dtype=np.float64)
    y = np.asarray(labels, dtype=int)
    if len(y) == 0:
        return float("nan")
    conf = p.max(1)
    correct = (p.argmax(1) == y).astype(np.float64)
    # bin b holds conf in (b/n, (b+1)/n]; conf == 0 goes to bin 0
    b = np.clip(np.ceil(conf * n_bins).astype(int) - 1, 0, n_bins - 1)
    ece = 0.0
    for k in range(n_bins):
        m = b == k
        if m.any():
            ece += m.mean() * abs(correct[m].mean() - conf[m].mean())
    return float(ece)


def _uar(y: np.ndarray, pred: np.ndarray) -> float:
    classes = np.unique(y)
    return float(np.mean([np.mean(pred[y == c] == c) for c in classes])) if len(classes) else float("nan")


def coverage_table(probs: np.ndarray, labels: np.ndarray, thresholds=THRESHOLDS) -> list[dict]:
    """Per threshold: the share of clips with top probability >= threshold (coverage) and
    accuracy / UAR on those clips (NaN when none is covered)."""
    p = np.asarray(probs, dtype=np.float64)
    y = np.asarray(labels, dtype=int)
    conf, pred = p.max(1), p.argmax(1)
    rows = []
    for t in thresholds:
        m = conf >= t
        rows.append({"threshold": float(t), "coverage": float(m.mean()) if len(m) else float("nan"),
                     "accuracy": float(np.mean(pred[m] == y[m])) if m.any() else float("nan"),
                     "uar": _uar(y[m], pred[m]) if m.any() else float("nan"), "n": int(m.sum())})
    return rows


def choose_threshold(table: list[dict], target_accuracy: float = TARGET_ACCURACY,
                     min_coverage: float = MIN_COVERAGE) -> float:
    """The lowest threshold whose covered clips reach ``target_accuracy`` with coverage >=
    ``min_coverage``; if none does, the threshold with the best accuracy at that coverage
    (``DEFAULT_UNCERTAIN_THRESHOLD`` when no row keeps ``min_coverage``)."""
    ok = [r for r in table if r["coverage"] >= min_coverage and r["threshold"] > 0]
    if not ok:
        return DEFAULT_UNCERTAIN_THRESHOLD
    good = [r for r in ok if r["accuracy"] >= target_accuracy]
    if good:
        return float(min(r["threshold"] for r in good))
    return float(max(ok, key=lambda r: (r["accuracy"], -r["threshold"]))["threshold"])


def _rule_applied(table: list[dict]) -> str:
    """Which branch of :func:`choose_threshold` picked the threshold, in words."""
    ok = [r for r in table if r["coverage"] >= MIN_COVERAGE and r["threshold"] > 0]
    if not ok:
        return f"no threshold keeps coverage >= {MIN_COVERAGE}: the default {DEFAULT_UNCERTAIN_THRESHOLD}"
    if any(r["accuracy"] >= TARGET_ACCURACY for r in ok):
        return f"lowest threshold with accuracy >= {TARGET_ACCURACY} on covered clips and coverage >= {MIN_COVERAGE}"
    return (f"no threshold reaches accuracy {TARGET_ACCURACY} at coverage >= {MIN_COVERAGE}: the most accurate "
            f"threshold that still covers >= {MIN_COVERAGE} of clips")


def calibrate_oof(probs: np.ndarray, labels: np.ndarray, classes: list[str], *,
                  folds: np.ndarray | None = None, n_bins: int = N_BINS) -> dict:
    """Fit the temperature on out-of-fold utterance probabilities ``(N, C)`` with true
    ``labels (N,)`` and return the JSON-ready ``model.json["calibration"]`` section:
    temperature, ECE and NLL before/after, the coverage table (calibrated) and the
    chosen ``uncertain_threshold``. ``folds (N,)``: test-fold name of each row, for a
    per-fold ECE."""
    p = np.asarray(probs, dtype=np.float64)
    y = np.asarray(labels, dtype=int)
    t = fit_temperature(p, y)
    q = apply_temperature(p, t)
    table = coverage_table(q, y)
    out = {
        "method": "temperature", "applies_to": "utterance probabilities: softmax(log(p) / T)",
        "fitted_on": "leave-one-corpus-out out-of-fold predictions", "classes": list(classes),
        "temperature": round(t, 6), "n": int(len(y)), "n_bins": n_bins,
        "ece_before": expected_calibration_error(p, y, n_bins), "ece_after": expected_calibration_error(q, y, n_bins),
        "nll_before": nll(p, y), "nll_after": nll(q, y),
        "uncertain_threshold": choose_threshold(table),
        "threshold_rule": _rule_applied(table),
        "coverage": table,
    }
    if folds is not None:
        folds = np.asarray(folds)
        out["per_fold"] = {str(f): {"n": int((folds == f).sum()),
                                    "ece_before": expected_calibration_error(p[folds == f], y[folds == f], n_bins),
                                    "ece_after": expected_calibration_error(q[folds == f], y[folds == f], n_bins)}
                           for f in np.unique(folds)}
    return out


def crossfit_calibration(probs: np.ndarray, labels: np.ndarray, folds: np.ndarray, n_bins: int = N_BINS) -> dict:
    """Honest ECE after scaling: for each fold, ``T`` is fitted on the *other* folds'
    out-of-fold rows and applied to this fold. Returns ECE before/after (pooled) and the
    per-fold temperatures."""
    p = np.asarray(probs, dtype=np.float64)
    y = np.asarray(labels, dtype=int)
    folds = np.asarray(folds)
    q = np.empty_like(p)
    temps = {}
    for f in np.unique(folds):
        m = folds == f
        temps[str(f)] = fit_temperature(p[~m], y[~m]) if (~m).any() else 1.0
        q[m] = apply_temperature(p[m], temps[str(f)])
    return {"ece_before": expected_calibration_error(p, y, n_bins), "ece_after": expected_calibration_error(q, y, n_bins),
            "temperatures": temps, "probs": q}


def oof_from_run(run_dir: str | Path, y_utt: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(probs (N, C), labels (N,), fold names (N,))`` from the fold reports of a
    cross-validation run (``run_dir/folds/*/metrics.json`` with ``utterances`` and
    ``probabilities``); ``y_utt (U,)``: the work dir's utterance labels."""
    from emolens.errors import EmolensError

    probs, labels, folds = [], [], []
    for f in sorted((Path(run_dir) / "folds").glob("*/metrics.json")):
        rep = json.loads(f.read_text())
        if "probabilities" not in rep:
            raise EmolensError(f"{f}: no out-of-fold probabilities (written since calibration support); "
                               "delete the fold folder and re-run it")
        probs.append(np.asarray(rep["probabilities"], np.float64))
        labels.append(np.asarray(y_utt)[np.asarray(rep["utterances"], int)])
        folds += [rep.get("fold", f.parent.name)] * len(rep["utterances"])
    if not probs:
        raise EmolensError(f"{run_dir}: no finished folds to calibrate on")
    return np.concatenate(probs), np.concatenate(labels), np.asarray(folds)


def calibration_of(config: dict) -> tuple[float, float]:
    """``(temperature, uncertain_threshold)`` of a model.json dict (``(1.0, default)`` without one)."""
    cal = config.get("calibration") or {}
    return float(cal.get("temperature", 1.0)), float(cal.get("uncertain_threshold", DEFAULT_UNCERTAIN_THRESHOLD))


def write_calibration(model_dir: str | Path, calibration: dict) -> Path:
    """Add ``calibration`` to ``model_dir/model.json`` (other keys untouched)."""
    path = Path(model_dir) / "model.json"
    config = json.loads(path.read_text())
    config["calibration"] = calibration
    path.write_text(json.dumps(config, indent=2))
    return path


__all__ = ["N_BINS", "DEFAULT_UNCERTAIN_THRESHOLD", "apply_temperature", "softmax_logits", "nll", "fit_temperature",
           "expected_calibration_error", "coverage_table", "choose_threshold", "calibrate_oof",
           "crossfit_calibration", "oof_from_run", "calibration_of", "write_calibration"]
