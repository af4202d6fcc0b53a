"""Temperature scaling, ECE and the coverage table, on synthetic predictions with known answers."""

from __future__ import annotations

import json

import numpy as np
import pytest

from emolens.evaluation.calibration import (apply_temperature, calibrate_oof, calibration_of, choose_threshold,
                                            coverage_table, crossfit_calibration, expected_calibration_error,
                                            fit_temperature, nll, softmax_logits, write_calibration)


def _sample(true_t: float, n: int = 20000, c: int = 4, seed: int = 0):
    """Logits whose labels are drawn from softmax(z / true_t): the calibrated temperature is true_t."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0, 2.0, (n, c))
    p_true = softmax_logits(z, true_t)
    y = (rng.random(n)[:, None] > np.cumsum(p_true, 1)).sum(1)
    return z, y


@pytest.mark.parametrize("true_t", [0.5, 1.0, 2.5])
def test_fit_temperature_recovers_known_temperature(true_t):
    z, y = _sample(true_t)
    t = fit_temperature(softmax_logits(z), y)  # probs at T=1; log(p) = z + const per row
    assert t == pytest.approx(true_t, rel=0.06)
    # the fitted temperature lowers the NLL and the ECE of over/under-confident outputs
    p, q = softmax_logits(z), apply_temperature(softmax_logits(z), t)
    assert nll(q, y) <= nll(p, y) + 1e-9
    if true_t != 1.0:
        assert expected_calibration_error(q, y) < 0.5 * expected_calibration_error(p, y)
        assert expected_calibration_error(q, y) < 0.02


def test_apply_temperature_matches_logit_scaling_and_keeps_argmax():
    z = np.random.default_rng(1).normal(0, 3, (50, 4))
    p = softmax_logits(z)
    for t in (0.3, 1.0, 4.0):
        np.testing.assert_allclose(apply_temperature(p, t), softmax_logits(z, t), atol=1e-10)
        np.testing.assert_array_equal(apply_temperature(p, t).argmax(1), p.argmax(1))
    np.testing.assert_allclose(apply_temperature(p[0], 2.0), softmax_logits(z[0], 2.0), atol=1e-10)


def test_ece_known_values():
    # all confident 0.9 and right 90% of the time -> 0
    p = np.tile([0.9, 0.1 / 3, 0.1 / 3, 0.1 / 3], (10, 1))
    y = np.array([0] * 9 + [1])
    assert expected_calibration_error(p, y) == pytest.approx(0.0, abs=1e-12)
    # all 0.9 and always wrong -> 0.9
    assert expected_calibration_error(p, np.ones(10, int)) == pytest.approx(0.9)
    # two bins: 4 clips at 0.6 (2 right: gap 0.1) + 4 at 0.95 (4 right: gap 0.05) -> 0.075
    a = np.array([[0.6, 0.4, 0, 0]] * 4 + [[0.95, 0.05, 0, 0]] * 4)
    y = np.array([0, 0, 1, 1, 0, 0, 0, 0])
    assert expected_calibration_error(a, y) == pytest.approx(0.5 * 0.1 + 0.5 * 0.05)
    # bin edges: 1/15 belongs to the first bin, 0.6 = 9/15 to bin 8 (right-closed bins)
    b = np.array([[1 / 15 + 0, 1 - 1 / 15]])
    assert expected_calibration_error(b, np.array([1])) == pytest.approx(abs(1 - (1 - 1 / 15)))


def test_coverage_table_and_threshold_choice():
    p = np.array([[0.9, 0.1, 0, 0], [0.8, 0.2, 0, 0], [0.4, 0.3, 0.3, 0], [0.35, 0.3, 0.35 - 1e-9, 0]])
    y = np.array([0, 1, 0, 2])
    rows = {r["threshold"]: r for r in coverage_table(p, y, thresholds=(0.0, 0.5, 0.85))}
    assert rows[0.0]["coverage"] == 1.0 and rows[0.0]["accuracy"] == pytest.approx(0.5)
    assert rows[0.5]["coverage"] == 0.5 and rows[0.5]["accuracy"] == 0.5 and rows[0.5]["n"] == 2
    assert rows[0.85]["coverage"] == 0.25 and rows[0.85]["accuracy"] == 1.0
    tab = [{"threshold": 0.3, "coverage": 1.0, "accuracy": 0.6}, {"threshold": 0.5, "coverage": 0.7, "accuracy": 0.72},
           {"threshold": 0.6, "coverage": 0.55, "accuracy": 0.8}, {"threshold": 0.8, "coverage": 0.2, "accuracy": 0.95}]
    assert choose_threshold(tab) == 0.5
    assert choose_threshold(tab, target_accuracy=0.9) == 0.6  # 0.8 keeps too few: best accuracy at >= 50% coverage


def test_calibrate_oof_section_and_model_json(tmp_path):
    z, y = _sample(2.0, n=4000)
    p = softmax_logits(z)
    folds = np.array(["a", "b"] * 2000)
    cal = calibrate_oof(p, y, ["angry", "happy", "neutral", "sad"], folds=folds)
    assert cal["temperature"] == pytest.approx(2.0, rel=0.1)
    assert cal["ece_after"] < cal["ece_before"] and set(cal["per_fold"]) == {"a", "b"}
    json.dumps(cal)  # JSON-ready
    cross = crossfit_calibration(p, y, folds)
    assert cross["ece_after"] < cross["ece_before"]
    (tmp_path / "model.json").write_text(json.dumps({"classes": ["a"]}))
    write_calibration(tmp_path, cal)
    cfg = json.loads((tmp_path / "model.json").read_text())
    assert cfg["classes"] == ["a"] and calibration_of(cfg) == (cal["temperature"], cal["uncertain_threshold"])
    assert calibration_of({}) == (1.0, 0.5)
