"""Regions (time units x mel-band groups), their attribution, words and faithfulness."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from emolens.explain.faithfulness import beats_random, region_faithfulness, utterance_predictor
from emolens.explain.region_attribution import RegionAttribution, UtteranceScore, region_attribution, runner_up
from emolens.explain.region_summary import box_mask, box_time_mask, region_sentence, top_boxes
from emolens.explain.regions import RegionConfig, band_groups, fixed_units, make_regions, syllable_units
from emolens.features.mel import VGGISH_16K, mel_band_centers


def _linear(n_classes=3, seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(96 * 64, n_classes)).eval()


def test_band_groups_are_contiguous_and_labelled_in_hz():
    edges, hz = band_groups(6)
    assert edges.tolist() == [0, 11, 21, 32, 43, 53, 64]
    assert hz.shape == (6, 2)
    np.testing.assert_allclose(hz[1:, 0], hz[:-1, 1])  # no gap, no overlap
    centres = mel_band_centers(VGGISH_16K)
    for g in range(6):  # every band centre of a group lies inside its Hz range
        c = centres[edges[g]:edges[g + 1]]
        assert hz[g, 0] < c.min() and c.max() < hz[g, 1]
    assert 125 < hz[0, 0] < 150 and 7300 < hz[-1, 1] < 7500


def test_fixed_units_merge_a_short_tail():
    assert fixed_units(372, 0.2).tolist() == list(range(0, 361, 20)) + [372]  # 12-frame tail kept (>= half)
    assert fixed_units(365, 0.2).tolist()[-2:] == [340, 365]  # 5-frame tail merged
    assert fixed_units(7, 0.2).tolist() == [0, 7]


def test_make_regions_ids_times_and_paint_round_trip():
    lm = np.random.default_rng(0).normal(size=(372, 64)).astype(np.float32)
    r = make_regions(lm, RegionConfig(time_unit="fixed", block_seconds=0.25, n_bands=4))
    assert r.n_units == 15 and r.n_groups == 4 and r.n == 60
    assert r.ids.shape == (372, 64) and r.ids.min() == 0 and r.ids.max() == 59
    # region 4*3 + 2 = unit 3, band group 2: frames 75-100, bands 32-48
    np.testing.assert_array_equal(np.argwhere(r.mask(14))[[0, -1]], [[75, 32], [99, 47]])
    np.testing.assert_allclose(r.times_s[14], [0.75, 1.0])
    np.testing.assert_allclose(r.hz[14], r.band_hz[2])
    scores = np.arange(60, dtype=float)
    np.testing.assert_allclose(r.sum_map(r.paint(scores, per_cell=True)), scores, rtol=1e-5)
    assert r.masks().sum() == 372 * 64


def _bursts(n=150, gap=(40, 55, 95, 110)):
    """Log-mel with three loud, low-frequency (voiced-like) bursts separated by silence."""
    lm = np.full((n, 64), np.log(0.01), dtype=np.float32)
    hz = mel_band_centers(VGGISH_16K)
    for a, b in ((0, gap[0]), (gap[1], gap[2]), (gap[3], n)):
        lm[a:b, hz < 800] = 3.0
        lm[a:b, hz >= 800] = 0.0
    return lm


def test_syllable_units_cut_at_pauses_within_length_bounds():
    cfg = RegionConfig(time_unit="syllable", min_unit_seconds=0.1, max_unit_seconds=0.4)
    u = syllable_units(_bursts(), cfg)
    assert u[0] == 0 and u[-1] == 150
    lens = np.diff(u)
    assert lens.min() >= 10 and lens.max() <= 40
    for edge in (40, 55, 95, 110):  # every burst on/offset is a boundary (within 3 frames)
        assert np.min(np.abs(u - edge)) <= 3, (edge, u.tolist())
    r = make_regions(_bursts(), cfg)
    assert r.time_unit == "syllable" and r.n == (len(u) - 1) * 6


def test_utterance_score_is_the_voting_mean_of_the_patch_softmax():
    model = _linear()
    lm = np.random.default_rng(1).normal(size=(240, 64)).astype(np.float32)
    voting = np.array([True, False, True, True])  # 240 frames -> 4 patches
    f = UtteranceScore(model, 240, voting, score="prob")
    ref = utterance_predictor(model, voting=voting)(lm[None])
    with torch.no_grad():
        out = f(torch.from_numpy(lm)[None, None]).numpy()
    np.testing.assert_allclose(out, ref, rtol=1e-5)
    g = UtteranceScore(model, 240, voting, contrast=2)
    with torch.no_grad():
        d = g(torch.from_numpy(lm)[None, None]).numpy()[0]
    np.testing.assert_allclose(d, np.log(ref[0]) - np.log(ref[0, 2]), rtol=1e-4, atol=1e-6)


def test_occlusion_is_the_exact_drop_and_skips_non_voting_patches():
    model = _linear()
    rng = np.random.default_rng(2)
    lm = rng.normal(size=(240, 64)).astype(np.float32)
    voting = np.array([False, True, True, False])  # frames 48-191 vote
    r = make_regions(lm, RegionConfig(time_unit="fixed", block_seconds=0.2, n_bands=4))
    ra = region_attribution(model, lm, r, 1, voting=voting, method="occlusion")
    f = UtteranceScore(model, 240, voting)
    with torch.no_grad():
        full = f(torch.from_numpy(lm)[None, None])[0, 1].item()
        for k in (0, 13, 30, 41):
            x = lm.copy()
            x[r.mask(k)] = lm.mean()
            ref = full - f(torch.from_numpy(x)[None, None])[0, 1].item()
            assert ra.scores[k] == pytest.approx(ref, abs=1e-5)
    outside = [k for k in range(r.n) if r.frames[k][1] <= 48]  # frames 0-47: only in patch 0, which does not vote
    assert outside and np.allclose(ra.scores[outside], 0.0)
    assert ra.patch_calls < (r.n + 1) * 2  # unchanged patches are not re-run
    g = region_attribution(model, lm, r, 1, voting=voting, method="gxi")
    assert np.allclose(g.scores[outside], 0.0) and np.abs(g.scores).sum() > 0


def test_gxi_regions_of_a_linear_decision_match_occlusion_sum():
    """For one voting patch and a logit score the decision is linear in the input,
    so Gradient x Input from the mean equals removing each region (completeness)."""
    model = _linear(2)
    lm = np.random.default_rng(3).normal(size=(96, 64)).astype(np.float32)
    r = make_regions(lm, RegionConfig(time_unit="fixed", block_seconds=0.24, n_bands=4))

    class Logit(nn.Module):  # exp(logit) so that log of the "softmax mean" is the logit difference
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, x):
            z = self.m(x)
            return torch.stack([z[:, 0] - z[:, 1], torch.zeros_like(z[:, 0])], dim=1)

    m = Logit(model)
    occ = region_attribution(m, lm, r, 0, method="occlusion", contrast=1)
    gxi = region_attribution(m, lm, r, 0, method="gxi", contrast=1)
    np.testing.assert_allclose(gxi.scores, occ.scores, rtol=1e-3, atol=1e-4)
    assert runner_up(np.array([0.5, 0.1, 0.4]), 0) == 2


def test_region_faithfulness_ranks_the_informative_region_first():
    lm = np.zeros((100, 64), np.float32)
    lm[20:40, 0:16] = 5.0
    r = make_regions(lm, RegionConfig(time_unit="fixed", block_seconds=0.2, n_bands=4))
    hot = int(r.ids[25, 5])

    def predict(x):  # probability of class 0 = how much of the hot region is left
        v = np.asarray(x)[:, 20:40, 0:16].mean(axis=(1, 2)) / 5.0
        return np.stack([v, 1 - v], axis=1)

    good = np.zeros(r.n)
    good[hot] = 1.0
    res = region_faithfulness(predict, lm, r.ids, {"good": good, "bad": -good}, 0, steps=10, n_orders=4)
    assert res["good"]["deletion_auc"] < res["random"]["deletion_auc"] < res["bad"]["deletion_auc"]
    assert beats_random(res["good"]) and not beats_random(res["bad"])


def _attribution(scores, n_frames=100):
    r = make_regions(np.zeros((n_frames, 64), np.float32), RegionConfig(time_unit="fixed", block_seconds=0.2, n_bands=4))
    return RegionAttribution("occlusion", np.asarray(scores, float), r, 0)


def test_top_boxes_merge_neighbours_in_time_and_word_them():
    s = np.zeros(20)  # 5 units x 4 band groups
    s[1 * 4 + 2] = 0.30  # unit 1, group 2
    s[2 * 4 + 2] = 0.10  # unit 2, group 2: merges with the one above
    s[4 * 4 + 0] = 0.20  # unit 4, group 0
    s[0 * 4 + 3] = -0.25  # counter-evidence
    ra = _attribution(s)
    boxes = top_boxes(ra, cover=0.99, max_boxes=4)
    pos = [b for b in boxes if b.sign > 0]
    assert [(b.start_s, b.end_s) for b in pos] == [(0.2, 0.6), (0.8, 1.0)]
    assert pos[0].share == pytest.approx(0.4 / 0.6) and pos[1].share == pytest.approx(0.2 / 0.6)
    assert pos[0].bands == (32, 48) and pos[0].frames == (20, 60)
    neg = [b for b in boxes if b.sign < 0]
    assert len(neg) == 1 and neg[0].share == pytest.approx(1.0) and neg[0].frames == (0, 20)
    lo, hi = ra.regions.band_hz[2]
    text = region_sentence(ra, boxes, ["angry", "happy"])
    assert text.startswith(f"0.20-0.60 s, {lo / 1000:.1f}-{hi / 1000:.1f} kHz: 67% of the evidence for angry; then 0.80-1.00 s")
    assert ": 33%" in text and "Most evidence against angry: 0.00-0.20 s" in text
    contrast = RegionAttribution("occlusion", s, ra.regions, 0, contrast=1)
    assert "for angry rather than happy" in region_sentence(contrast, top_boxes(contrast), ["angry", "happy"])
    m = box_mask(boxes, (100, 64))
    assert m.sum() == 40 * 16 + 20 * 16
    assert box_time_mask(boxes, 16000).sum() == int(0.6 * 16000)


def test_no_positive_evidence_says_so():
    ra = _attribution(-np.ones(20))
    assert region_sentence(ra, top_boxes(ra), ["angry", "happy"]) == "No region carries evidence for angry."


def test_decision_predictor_matches_utterance_predictor():
    from emolens.explain.region_attribution import decision_predictor

    model = _linear()
    rng = np.random.default_rng(4)
    lm = rng.normal(size=(240, 64)).astype(np.float32)
    voting = np.array([True, True, False, True])
    batch = np.stack([lm, np.full_like(lm, lm.mean()), lm + rng.normal(size=lm.shape).astype(np.float32)])
    fast = decision_predictor(model, lm, voting)
    np.testing.assert_allclose(fast(batch), utterance_predictor(model, voting=voting)(batch), rtol=1e-5, atol=1e-7)
    calls = fast.scorer.patch_calls
    fast(batch[:2])  # the original and the baseline are cached
    assert fast.scorer.patch_calls == calls

    def probs_fn(p):  # the same model through numpy, as ONNX Runtime would run it
        with torch.no_grad():
            return torch.softmax(model(torch.from_numpy(p)[:, None]), dim=1).numpy()

    np_pred = decision_predictor(None, lm, voting, probs_fn=probs_fn)
    np.testing.assert_allclose(np_pred(batch), fast(batch), rtol=1e-5, atol=1e-7)
    assert np_pred.counter["patches"] == 3  # only the noisy copy's 3 voting patches ran


def test_occlusion_through_a_numpy_backend_equals_torch():
    model = _linear()
    lm = np.random.default_rng(5).normal(size=(240, 64)).astype(np.float32)
    r = make_regions(lm, RegionConfig(time_unit="fixed", block_seconds=0.2, n_bands=4))

    def probs_fn(p):
        with torch.no_grad():
            return torch.softmax(model(torch.from_numpy(p)[:, None]), dim=1).numpy()

    a = region_attribution(model, lm, r, 0, method="occlusion")
    b = region_attribution(model, lm, r, 0, method="occlusion", probs_fn=probs_fn)
    np.testing.assert_allclose(a.scores, b.scores, rtol=1e-4, atol=1e-6)
