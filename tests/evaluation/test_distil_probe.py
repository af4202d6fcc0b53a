"""``benchmarks/whisper/distil_probe.py``: the student regressors and their cross-fitting."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

_root = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(_root))
spec = importlib.util.spec_from_file_location("distil_probe", _root / "whisper" / "distil_probe.py")
dp = importlib.util.module_from_spec(spec)
spec.loader.exec_module(dp)


def test_ridge_equals_sklearn_on_standardised_inputs() -> None:
    from sklearn.linear_model import Ridge

    rng = np.random.default_rng(0)
    A = rng.normal(2.0, 3.0, (200, 6))
    T = A @ rng.normal(size=(6, 3)) + rng.normal(0, 0.1, (200, 3))
    f = dp.fit_regressor("ridge:5", A, T, seed=0)
    Z = (A - A.mean(0)) / (A.std(0) + 1e-6)
    ref = Ridge(alpha=5.0).fit(Z, T)
    Anew = rng.normal(2.0, 3.0, (20, 6))
    np.testing.assert_allclose(f(Anew), ref.predict((Anew - A.mean(0)) / (A.std(0) + 1e-6)), atol=1e-6)


def test_mlp_regressor_learns_a_nonlinear_map() -> None:
    rng = np.random.default_rng(1)
    A = rng.normal(size=(3000, 4))
    T = np.stack([np.abs(A[:, 0]), A[:, 1] * (A[:, 1] > 0)], 1)  # not linear in A
    lin = dp.fit_regressor("ridge:1", A, T, seed=0)
    mlp = dp.fit_regressor("mlp:64", A, T, seed=0)
    mse = lambda f: float(np.mean((f(A) - T) ** 2))  # noqa: E731
    assert mse(mlp) < 0.5 * mse(lin)


def test_training_corpora_get_cross_fitted_predictions() -> None:
    """A training corpus's stream comes from the regressor fitted on the *other* training
    corpora: a corpus whose map differs from the rest is predicted badly, unlike in-sample."""
    rng = np.random.default_rng(2)
    B = rng.normal(size=(5, 8))

    def corpus(sign: float, n: int = 150) -> dict:
        X = rng.normal(size=(n, 5)).astype(np.float32)
        return {"X": X, "P": np.zeros((n, 0), np.float32), "W": (sign * X @ B).astype(np.float32)}

    rows = {"a": corpus(1.0), "b": corpus(1.0), "c": corpus(1.0), "odd": corpus(-1.0), "test": corpus(1.0)}
    out, cos = dp.student_streams(rows, ["a", "b", "c", "odd"], "test", "ridge:1", seed=0)
    assert set(out) == {"a", "b", "c", "odd", "test"} and out["test"].shape == (150, 8)
    c = lambda p, t: float(np.mean((p * t).sum(1) / (np.linalg.norm(p, axis=1) * np.linalg.norm(t, axis=1))))  # noqa: E731
    assert c(out["a"], rows["a"]["W"]) > 0.8  # fitted on b, c (and odd): the map points the same way
    assert c(out["odd"], rows["odd"]["W"]) < -0.8  # fitted on a, b, c only: the opposite map, never its own
    assert cos == pytest.approx(c(out["test"], rows["test"]["W"]), abs=1e-6) and cos > 0.8


def test_the_test_corpus_is_scaled_with_the_training_corpora_statistics() -> None:
    """The functionals reach the regressor scaled with the training corpora's statistics: a test
    corpus whose functionals are all shifted gets another prediction (a per-corpus z-score, which
    used the test corpus's own statistics, would have hidden the shift)."""
    rng = np.random.default_rng(3)

    def corpus(n: int = 120) -> dict:
        X, P = rng.normal(size=(n, 4)).astype(np.float32), rng.normal(size=(n, 3)).astype(np.float32)
        return {"X": X, "P": P, "W": np.concatenate([X, P], 1).astype(np.float32)}

    rows = {"a": corpus(), "b": corpus(), "test": corpus()}
    base, _ = dp.student_streams(rows, ["a", "b"], "test", "ridge:1", seed=0)
    shifted, _ = dp.student_streams(dict(rows, test=dict(rows["test"], P=rows["test"]["P"] + 2.0)), ["a", "b"], "test",
                                    "ridge:1", seed=0)
    np.testing.assert_allclose(shifted["a"], base["a"])  # the training corpora's predictions do not move
    assert np.abs(shifted["test"][:, 4:] - base["test"][:, 4:]).mean() > 1.0  # the shift reaches the prediction
