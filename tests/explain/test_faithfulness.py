"""Deletion / insertion curves on a scorer whose evidence is a known region."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from emolens.explain.faithfulness import (
    block_ids,
    block_order,
    deletion_insertion,
    faithfulness,
    random_baseline,
    utterance_predictor,
)
from emolens.explain.stitch import utterance_patches

N_FRAMES, FRAMES, BANDS = 200, slice(50, 90), slice(10, 30)


class RegionScorer:
    """Utterance probability of class 0 = sigmoid(4 * region mean - 4); counts calls."""

    def __init__(self) -> None:
        self.calls = 0
        self.rows = 0

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        self.calls += 1
        self.rows += len(batch)
        logit = 4.0 * batch[:, FRAMES, BANDS].mean(axis=(1, 2)) - 4.0
        p = 1.0 / (1.0 + np.exp(-logit))
        return np.stack([p, 1.0 - p], axis=1)


@pytest.fixture
def utterance() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.normal(0.0, 0.3, size=(N_FRAMES, 64))
    x[FRAMES, BANDS] += 2.0
    truth = np.zeros((N_FRAMES, 64))
    truth[FRAMES, BANDS] = 1.0
    return x.astype(np.float32), truth


def test_block_order_ranks_by_mean_importance():
    ids, n = block_ids((10, 8), (4, 4))
    assert n == 3 * 2 and ids[9, 7] == 5 and ids[3, 3] == 0
    m = np.zeros((10, 8))
    m[8:, 4:] = 5.0  # partial last block, mean 5
    m[0, 0] = 4.0  # block 0, mean 0.25
    _, order = block_order(m, (4, 4))
    assert order[0] == 5 and order[1] == 0


def test_true_map_beats_random_and_reversed_map_is_worse(utterance):
    x, truth = utterance
    scorer = RegionScorer()
    res = deletion_insertion(scorer, x, truth, target=0, steps=20)
    assert scorer.calls == 1 and scorer.rows == 42  # all steps stacked in one call
    assert res["fractions"].shape == (21,) and res["fractions"][[0, -1]].tolist() == [0.0, 1.0]
    assert res["deletion"][0] == pytest.approx(res["insertion"][-1])  # the original input
    assert res["deletion"][-1] == pytest.approx(res["insertion"][0])  # all baseline
    assert res["deletion"][0] > 0.95 and res["deletion"][-1] < 0.05
    rand = random_baseline(scorer, x, target=0, steps=20, n_orders=5, seed=1)
    rev = deletion_insertion(scorer, x, -truth, target=0, steps=20)
    assert res["deletion_auc"] < 0.15 < rand["deletion_auc"] < rev["deletion_auc"]
    assert res["insertion_auc"] > 0.85 > rand["insertion_auc"] > rev["insertion_auc"]
    assert rand["n_orders"] == 5 and rand["deletion_auc_std"] > 0


def test_faithfulness_reports_gains_against_random(utterance):
    x, truth = utterance
    out = faithfulness(RegionScorer(), x, {"truth": truth, "reversed": -truth}, 0, n_orders=3, steps=10)
    assert set(out) == {"truth", "reversed", "random"}
    assert out["truth"]["deletion_gain"] > 0.2 and out["truth"]["insertion_gain"] > 0.2
    assert out["reversed"]["deletion_gain"] < 0 and out["reversed"]["insertion_gain"] < 0


def test_baselines_and_bad_shapes(utterance):
    x, truth = utterance
    zero = deletion_insertion(RegionScorer(), x, truth, 0, steps=4, baseline=0.0)
    # deleting everything with 0 leaves logit -4
    assert zero["deletion"][-1] == pytest.approx(1 / (1 + np.exp(4.0)))
    with pytest.raises(ValueError):
        deletion_insertion(RegionScorer(), x, truth[:-1], 0)
    with pytest.raises(ValueError):
        deletion_insertion(RegionScorer(), x, truth, 5)
    with pytest.raises(ValueError):
        deletion_insertion(RegionScorer(), x, truth, 0, baseline="median")


def test_utterance_predictor_averages_patch_softmax(small_cnn):
    rng = np.random.default_rng(0)
    utts = rng.normal(size=(3, 150, 64)).astype(np.float32)
    predict = utterance_predictor(small_cnn, batch_size=4)
    probs = predict(utts)
    assert probs.shape == (3, 3)
    with torch.no_grad():
        expected = torch.softmax(small_cnn(utterance_patches(utts[1])), dim=1).mean(0).numpy()
    np.testing.assert_allclose(probs[1], expected, rtol=1e-5)
    np.testing.assert_allclose(predict(utts[1]), probs[1:2], rtol=1e-6)


def test_utterance_predictor_averages_only_voting_patches(small_cnn):
    utt = np.random.default_rng(1).normal(size=(150, 64)).astype(np.float32)  # 3 patches, the last padded
    with torch.no_grad():
        per_patch = torch.softmax(small_cnn(utterance_patches(utt)), dim=1).numpy()
    assert per_patch.shape[0] == 3
    voted = utterance_predictor(small_cnn, voting=np.array([False, True, True]))(utt)
    np.testing.assert_allclose(voted[0], per_patch[1:].mean(0), rtol=1e-5)
    # no voting patch at all: the plain mean, as the recognizer's fallback
    np.testing.assert_allclose(utterance_predictor(small_cnn, voting=np.zeros(3, bool))(utt)[0],
                               per_patch.mean(0), rtol=1e-5)
