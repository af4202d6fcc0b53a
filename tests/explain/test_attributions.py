"""Grad-CAM, LIME and Occlusion on tiny CNNs whose answers are known (see conftest)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from emolens.errors import LabelError
from emolens.explain.attributions import gradcam, grid_segments, lime, occlusion, target_index, tqdm_progress


# -- Grad-CAM ------------------------------------------------------------------------
def test_gradcam_puts_its_mass_on_the_region(region_net, make_region_patches, region_mask):
    x = make_region_patches(3)
    res = gradcam(region_net, region_net.features, x, target=0, batch_size=None)
    assert res.maps.shape == (3, 96, 64) and res.maps.dtype == np.float32
    assert res.maps.min() >= 0.0
    inside = res.maps[:, region_mask].sum() / res.maps.sum()
    assert inside > 0.95  # only bilinear upsampling leaks past the region's edge
    assert res.maps[:, 34:, :].max() == 0.0 and res.maps[:, :, 18:].max() == 0.0
    # one forward and one backward for the whole batch
    assert (res.forward_calls, res.patches_evaluated, res.backward_calls) == (1, 3, 1)


def test_gradcam_of_the_opposite_class_is_zero(region_net, make_region_patches):
    # class 1 = -region mean: every channel weight is <= 0, so ReLU leaves nothing
    res = gradcam(region_net, region_net.features, make_region_patches(2), target=1)
    assert np.all(res.maps == 0.0)


def _manual_gradcam(model, layer, x, target):
    store = {}

    def hook(_m, _i, out):
        out.retain_grad()
        store["a"] = out

    h = layer.register_forward_hook(hook)
    try:
        x = x.clone().requires_grad_(True)
        model(x)[:, target].sum().backward()
    finally:
        h.remove()
    a = store["a"]
    weights = a.grad.mean(dim=(2, 3), keepdim=True)
    cam = torch.relu((weights * a).sum(dim=1, keepdim=True))
    return F.interpolate(cam, size=(96, 64), mode="bilinear", align_corners=False)[:, 0].detach().numpy()


@pytest.mark.parametrize("target", [0, 2])
def test_gradcam_equals_manual_hooks_and_autograd(small_cnn, target):
    x = torch.randn(4, 1, 96, 64, generator=torch.Generator().manual_seed(1))
    expected = _manual_gradcam(small_cnn, small_cnn.act2, x, target)
    got = gradcam(small_cnn, small_cnn.act2, x, target, batch_size=3)
    assert expected.max() > 0  # not a trivially empty map
    np.testing.assert_allclose(got.maps, expected, rtol=1e-5, atol=1e-6)
    assert (got.forward_calls, got.backward_calls) == (2, 2)  # two batches: 3 + 1


def test_gradcam_restores_training_mode_and_leaves_no_grads(small_cnn):
    small_cnn.train()
    gradcam(small_cnn, small_cnn.act2, torch.randn(2, 1, 96, 64), 1)
    assert small_cnn.training and small_cnn.conv1.training
    assert all(p.grad is None for p in small_cnn.parameters())


def test_bad_inputs_are_refused(small_cnn):
    with pytest.raises(ValueError):
        gradcam(small_cnn, small_cnn.act2, torch.zeros(2, 96, 64), 0)
    with pytest.raises(LabelError):
        gradcam(small_cnn, small_cnn.act2, torch.zeros(1, 1, 96, 64), 3)
    with pytest.raises(LabelError):
        occlusion(small_cnn, torch.zeros(1, 1, 96, 64), 5)
    assert target_index(["angry", "sad"], "sad") == 1
    with pytest.raises(LabelError):
        target_index(["angry", "sad"], "happy")


# -- Occlusion -----------------------------------------------------------------------
def test_occlusion_highlights_the_region(region_net, make_region_patches, region_mask):
    x = make_region_patches(3)
    res = occlusion(region_net, x, target=0)
    maps = res.maps
    assert maps.shape == (3, 96, 64)
    # windows (16 x 8) touching the region reach at most one window past it
    assert np.abs(maps[:, 48:, :]).max() == 0.0 and np.abs(maps[:, :, 24:]).max() == 0.0
    assert np.abs(maps[:, region_mask]).sum() / np.abs(maps).sum() > 0.85
    assert maps[:, region_mask].min() > 0.0
    # cell (0, 0) is covered by one window only: its value is the exact score drop
    with torch.no_grad():
        occluded = x.clone()
        occluded[:, :, :16, :8] = x.mean(dim=(1, 2, 3), keepdim=True)
        drop = (region_net(x)[:, 0] - region_net(occluded)[:, 0]).numpy()
    np.testing.assert_allclose(maps[:, 0, 0], drop, rtol=1e-5)
    # 11 x 15 = 165 window positions, 32 per call, plus the unperturbed pass
    assert res.forward_calls == 1 + math.ceil(165 / 32)
    assert res.patches_evaluated == 3 * (1 + 165)


def test_occlusion_constant_baseline_and_prob_score(region_net, make_region_patches):
    x = make_region_patches(1)
    res = occlusion(region_net, x, 0, baseline=0.0, score="prob", patches_per_call=1)
    assert res.maps[0, :32, :16].min() > 0.0 and res.maps[0, :32, :16].max() <= 1.0


# -- LIME ----------------------------------------------------------------------------
def test_grid_segments_are_64_regions_of_12_by_8():
    seg = grid_segments((12, 8))
    assert seg.shape == (96, 64)
    assert np.array_equal(np.bincount(seg.ravel()), np.full(64, 96))
    assert seg[0, 0] == 0 and seg[0, 8] == 1 and seg[12, 0] == 8 and seg[95, 63] == 63


def test_lime_recovers_the_region_weights(region_net, make_region_patches):
    x = make_region_patches(2)
    res = lime(region_net, x, target=0, seed=3)  # captum's Lasso(alpha=0.01)
    cells = res.maps[:, ::12, ::8]  # one value per grid region, (2, 8, 8)
    # the logit is linear in the regions: switching region r to the patch mean
    # changes it by sum over r's cells inside the region of (x - mean) / 512
    xn = x[:, 0].numpy().astype(np.float64)
    inside = np.zeros((96, 64))
    inside[:32, :16] = 1.0
    contrib = (xn - xn.mean(axis=(1, 2), keepdims=True)) * inside / 512.0
    expected = contrib.reshape(2, 8, 12, 8, 8).sum(axis=(2, 4))
    # almost unpenalised, the surrogate is exact; alpha = 0.01 shrinks a little
    exact = lime(region_net, x, target=0, seed=3, alpha=1e-5).maps[:, ::12, ::8]
    np.testing.assert_allclose(exact, expected, atol=0.005)
    assert np.all(cells <= expected + 1e-3) and np.abs(cells - expected).max() < 0.1
    for p in range(2):
        top4 = set(np.argsort(cells[p].ravel())[-4:])
        assert top4 == {0, 1, 8, 9}  # the four grid cells fully inside the region
    assert np.abs(cells[:, 3:, :]).max() < 0.02 and np.abs(cells[:, :, 2:]).max() < 0.02
    assert (res.forward_calls, res.patches_evaluated) == (2 * 4, 2 * 200)  # 200 / 50 per patch


def test_lime_is_seeded_and_leaves_the_global_rng_alone(region_net, make_region_patches):
    x = make_region_patches(1)
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    a = lime(region_net, x, 0, n_samples=60, perturbations_per_eval=60, seed=7)
    after = torch.rand(1)
    b = lime(region_net, x, 0, n_samples=60, perturbations_per_eval=60, seed=7)
    c = lime(region_net, x, 0, n_samples=60, perturbations_per_eval=60, seed=8)
    assert torch.equal(before, after)
    np.testing.assert_array_equal(a.maps, b.maps)
    assert not np.array_equal(a.maps, c.maps)
    assert a.forward_calls == 1


def test_progress_callbacks_are_called(region_net, make_region_patches):
    x = make_region_patches(3)
    seen = []
    lime(region_net, x, 0, n_samples=20, perturbations_per_eval=20, progress=lambda d, t: seen.append((d, t)))
    assert seen == [(1, 3), (2, 3), (3, 3)]
    seen.clear()
    occlusion(region_net, x, 0, patches_per_call=2, progress=lambda d, t: seen.append((d, t)))
    assert seen == [(1, 2), (2, 2)]
    res = gradcam(region_net, region_net.features, x, 0, batch_size=1, progress=tqdm_progress("Grad-CAM"))
    assert res.forward_calls == 3
