"""Sanity checks (Adebayo et al. 2018): similarity scores, randomised heads, pass/fail."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from emolens.explain.methods import run_method
from emolens.explain.sanity import (
    SanityConfig,
    label_randomized_head,
    map_similarity,
    randomized_head,
    sanity_check,
    spearman,
)


class HeadNet(nn.Module):
    """A frozen random conv 'backbone' + a trainable head taking ``{"f": (B, 8)}``."""

    def __init__(self) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.backbone = nn.Sequential(nn.Conv2d(1, 8, 5, stride=4), nn.ReLU())
        with torch.no_grad():
            for p in self.backbone.parameters():
                p.copy_(torch.randn(p.shape, generator=g))
        self.head = _Head()

    def features(self, x):
        return self.backbone(x).mean(dim=(2, 3))

    def forward(self, x):
        return self.head({"f": self.features(x)})


class _Head(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3))

    def forward(self, feats):
        return self.fc(feats["f"])


def test_spearman_known_values():
    a = np.arange(12.0).reshape(3, 4)
    assert spearman(a, a) == pytest.approx(1.0)
    assert spearman(a, -a) == pytest.approx(-1.0)
    assert spearman(a, a**3) == pytest.approx(1.0)  # ranks only
    assert spearman(a, np.ones_like(a)) == 0.0
    assert map_similarity(a - 5.5, -(a - 5.5)) == pytest.approx(
        spearman(np.abs(a - 5.5), np.abs(a - 5.5)))  # the absolute variant counts
    with pytest.raises(ValueError):
        spearman(a, a[:2])


def test_randomized_head_changes_only_the_head():
    m = HeadNet()
    r = randomized_head(m, seed=1)
    for (k, p), q in zip(m.backbone.state_dict().items(), r.backbone.state_dict().values()):
        assert torch.equal(p, q), k
    assert not torch.equal(m.head.fc[0].weight, r.head.fc[0].weight)
    assert r is not m and not r.training


def test_label_randomized_head_learns_the_shuffled_labels():
    m = HeadNet()
    rng = np.random.default_rng(0)
    n_utt, per = 60, 4
    feats = rng.normal(size=(n_utt * per, 8)).astype(np.float32)
    utt = np.repeat(np.arange(n_utt), per)
    labels = rng.integers(0, 3, n_utt)
    feats[:, :3] += 3 * np.eye(3)[labels[utt]]  # the true labels are easy to learn
    cfg = SanityConfig(label_epochs=30, label_lr=1e-2)
    r = label_randomized_head(m, {"f": feats}, utt, labels, 3, cfg)
    shuffled = np.random.default_rng(cfg.seed).permutation(labels)
    with torch.no_grad():
        pred = r.head({"f": torch.from_numpy(feats)}).argmax(1).numpy()
    # it fits the shuffled labels (memorises) rather than the true ones
    assert (pred == shuffled[utt]).mean() > (pred == labels[utt]).mean()
    assert torch.equal(m.backbone[0].weight, r.backbone[0].weight)


def test_sanity_check_fails_a_model_blind_map_and_passes_a_gradient_map():
    m = HeadNet()
    x = torch.randn(3, 1, 96, 64, generator=torch.Generator().manual_seed(2))
    clips = [x[i : i + 1] for i in range(3)]
    randomized = {"model": randomized_head(m, seed=5)}
    # an "explanation" that is the input itself ignores the model: similarity 1 -> fail
    blind = sanity_check("input", lambda model, c: c[0, 0].numpy(), m, randomized, clips)
    assert blind.similarity["model"] == pytest.approx(1.0)
    assert blind.passed == {"model": False} and not blind.all_passed
    grad = sanity_check("gxi", lambda model, c: run_method("gxi", model, c, 0).maps[0], m, randomized, clips)
    assert len(grad.per_clip["model"]) == 3
    assert grad.similarity["model"] < blind.similarity["model"]
