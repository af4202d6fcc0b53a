"""Exact Shapley values over a model's input streams (emolens.explain.streams), against a
brute-force average over orderings and on linear heads with known answers."""

from __future__ import annotations

from itertools import permutations

import numpy as np
import pytest

from emolens.explain.streams import StreamInputs, shapley_values, stream_shares


def _by_orderings(value, n: int) -> np.ndarray:
    """The textbook definition: each player's marginal gain averaged over all n! orderings."""
    out = np.zeros(n)
    orders = list(permutations(range(n)))
    for order in orders:
        members: set[int] = set()
        for i in order:
            before = value(tuple(j in members for j in range(n)))
            members.add(i)
            out[i] += value(tuple(j in members for j in range(n))) - before
    return out / len(orders)


@pytest.mark.parametrize("n", [1, 2, 3, 4])
def test_shapley_values_equal_the_average_over_orderings(n):
    rng = np.random.default_rng(n)
    table = {c: float(rng.normal()) for c in np.ndindex(*(2,) * n)}  # any game, interactions included
    value = lambda c: table[tuple(int(b) for b in c)]  # noqa: E731
    phi = shapley_values(value, n)
    np.testing.assert_allclose(phi, _by_orderings(value, n), atol=1e-12)
    assert phi.sum() == pytest.approx(value((True,) * n) - value((False,) * n))  # efficiency


def test_dummy_and_symmetric_players():
    value = lambda c: 2.0 * c[0] + 2.0 * c[2] + 3.0 * c[0] * c[2]  # noqa: E731 - player 1 never matters
    phi = shapley_values(value, 3)
    np.testing.assert_allclose(phi, [3.5, 0.0, 3.5])


def _linear_inputs(rng, sizes=(5, 3, 4), classes=4):
    W = rng.normal(size=(classes, sum(sizes)))
    b = rng.normal(size=classes)
    x = [rng.normal(size=k) for k in sizes]
    base = [rng.normal(size=k) for k in sizes]

    def logits(c):
        return W @ np.concatenate([xi if keep else bi for xi, bi, keep in zip(x, base, c)]) + b

    return StreamInputs(["spectrogram", "prosody", "whisper"], logits), logits


def test_stream_shares_of_a_linear_head():
    rng = np.random.default_rng(0)
    inputs, logits = _linear_inputs(rng)
    lsm = lambda z: z - np.log(np.exp(z).sum())  # noqa: E731
    s = stream_shares(inputs, 2, target_label="angry")
    assert s.full == pytest.approx(lsm(logits((True,) * 3))[2])
    assert s.base == pytest.approx(lsm(logits((False,) * 3))[2])
    assert s.values.sum() == pytest.approx(s.full - s.base)
    assert s.shares.sum() == pytest.approx(1.0) and np.all(s.shares >= 0)
    c = stream_shares(inputs, 2, contrast=0, target_label="angry rather than sad")
    assert c.values.sum() == pytest.approx((lsm(logits((True,) * 3))[2] - lsm(logits((True,) * 3))[0])
                                           - (lsm(logits((False,) * 3))[2] - lsm(logits((False,) * 3))[0]))
    # a contrast of log-probabilities is a difference of logits: no interactions, each stream's
    # value is its own logit difference change
    z = lambda c: logits(c)[2] - logits(c)[0]  # noqa: E731
    only = [z(tuple(j == i for j in range(3))) - z((False,) * 3) for i in range(3)]
    np.testing.assert_allclose(c.values, only, atol=1e-10)
    assert "Whisper stream (not on the map)" in s.text and s.text.count("%") == 3
    d = s.as_dict()
    assert d["names"] == ["spectrogram", "prosody", "whisper"] and len(d["values"]) == 3


def test_a_stream_at_its_baseline_gets_nothing():
    rng = np.random.default_rng(1)
    W, x = rng.normal(size=(3, 6)), rng.normal(size=6)

    def logits(c):  # the second stream's value equals its baseline
        return W @ np.concatenate([x[:3] if c[0] else np.zeros(3), x[3:]])

    s = stream_shares(StreamInputs(["spectrogram", "prosody"], logits), 1)
    assert s.values[1] == pytest.approx(0.0, abs=1e-12) and s.shares[0] == pytest.approx(1.0)
