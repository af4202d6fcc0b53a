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


def test_em_prior_follows_the_group_s_class_mix() -> None:
    """EM on posteriors that lean to class 0 concentrates the prior there; on a mix that is
    already uniform it changes nothing."""
    P = np.array([[0.6, 0.4], [0.7, 0.3], [0.55, 0.45], [0.45, 0.55]])
    Q = ag.em_prior(P)
    np.testing.assert_allclose(Q.sum(1), 1.0)
    assert Q[:, 0].mean() > P[:, 0].mean() + 0.1 and Q[3].argmax() == 0  # the doubtful clip joins the majority
    U = np.array([[0.8, 0.2], [0.2, 0.8]])
    np.testing.assert_allclose(ag.em_prior(U), U, atol=1e-12)


def test_sinkhorn_spreads_a_group_evenly_over_the_classes() -> None:
    P = np.array([[0.9, 0.1], [0.8, 0.2], [0.7, 0.3], [0.6, 0.4]])
    Q = ag.sinkhorn(P, iterations=200)
    np.testing.assert_allclose(Q.sum(1), 1.0)
    np.testing.assert_allclose(Q.sum(0), [2.0, 2.0], atol=1e-6)
    assert list(Q.argmax(1)) == [0, 0, 1, 1]  # the order of the clips kept, the split balanced


def test_per_group_and_zscore_touch_only_firing_groups_with_enough_clips() -> None:
    rng = np.random.default_rng(1)
    groups = np.array(["a"] * 4 + ["b"] * 4 + ["c"] * 2)
    fire = np.array([True] * 4 + [False] * 4 + [True] * 2)
    P = rng.dirichlet([1, 1, 1], 10)
    out = ag.per_group(P, groups, fire, lambda p: np.full_like(p, 1 / 3))
    np.testing.assert_allclose(out[:4], 1 / 3)
    np.testing.assert_array_equal(out[4:], P[4:])  # b does not fire; c has two clips
    Z = rng.normal(3.0, 2.0, (10, 5))
    m0, s0 = np.zeros(5), np.ones(5)
    z = ag.zscore_groups(Z, groups, m0, s0, fire, shrink=1.0)
    np.testing.assert_allclose(z[:4].mean(0), m0, atol=1e-12)
    np.testing.assert_allclose(z[:4].std(0), s0, rtol=1e-5)
    np.testing.assert_array_equal(z[4:], Z[4:])
