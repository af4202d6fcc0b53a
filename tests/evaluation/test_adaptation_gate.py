"""``benchmarks/adaptation_gate.py``: the pooled-row shift the probe scores the spread gate with."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np

_root = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(_root))
spec = importlib.util.spec_from_file_location("adaptation_gate", _root / "adaptation_gate.py")
ag = importlib.util.module_from_spec(spec)
spec.loader.exec_module(ag)


def test_shift_moves_each_large_group_to_the_reference_and_leaves_small_ones() -> None:
    rng = np.random.default_rng(0)
    Z = rng.normal(size=(9, 4))
    groups = np.array(["a"] * 4 + ["b"] * 3 + ["c"] * 2)
    m0 = np.array([1.0, -1.0, 0.5, 2.0])
    out = ag.shift_groups(Z, groups, m0, np.ones(9))
    np.testing.assert_allclose(out[:4].mean(0), m0, atol=1e-12)
    np.testing.assert_allclose(out[4:7].mean(0), m0, atol=1e-12)
    np.testing.assert_array_equal(out[7:], Z[7:])  # two clips: below MIN_CLIPS
    np.testing.assert_allclose(out[:4] - out[:4].mean(0), Z[:4] - Z[:4].mean(0), atol=1e-12)  # spread kept
    half = ag.shift_groups(Z, groups, m0, np.full(9, 0.5))
    np.testing.assert_allclose(half[:4].mean(0), (Z[:4].mean(0) + m0) / 2, atol=1e-12)
    np.testing.assert_array_equal(ag.shift_groups(Z, groups, m0, np.zeros(9)), Z)


def test_voice_probabilities_are_the_gate_s_per_group() -> None:
    class Gate:  # the probability a voice's rows get: here their count / 10
        def probability(self, rows):
            return len(rows) / 10

    groups = np.array(["a"] * 4 + ["b"] * 3 + ["c"])
    p = ag.voice_probabilities(Gate(), np.zeros((8, 2)), groups)
    np.testing.assert_allclose(p, [0.4] * 4 + [0.3] * 3 + [0.1])


def test_one_emotion_keeps_one_label_per_group() -> None:
    y = np.tile(np.repeat(np.arange(4), 3), 5)
    g = np.repeat([f"s{i}" for i in range(5)], 12)
    k = ag.one_emotion(y, g, np.random.default_rng(0))
    assert sorted(set(g[k])) == sorted(set(g))
    assert all(len(set(y[k][g[k] == s])) == 1 for s in set(g)) and len(k) == 15
