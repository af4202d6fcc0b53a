"""Tiny CNNs with known answers for the explanation tests.

* :class:`RegionNet`: its class-0 logit is exactly the mean of the input over frames
  0-31 x bands 0-15 (for inputs > 0). A fixed 4x4/stride-4 averaging conv, ReLU, and
  a fixed spatial gate that zeroes the conv grid outside that region (the Grad-CAM
  layer), then the mean over the gate's cells. Class 1 is its negative.
* :class:`SmallCNN`: a random 2-conv net (3 classes) to check Grad-CAM against a
  manual hooks + autograd computation.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

REGION_FRAMES = (0, 32)
REGION_BANDS = (0, 16)


class Gate(nn.Module):
    """Multiply a ``(B, C, 24, 16)`` map by a fixed 0/1 spatial mask."""

    def __init__(self) -> None:
        super().__init__()
        mask = torch.zeros(1, 1, 24, 16)
        mask[..., REGION_FRAMES[0] // 4 : REGION_FRAMES[1] // 4, REGION_BANDS[0] // 4 : REGION_BANDS[1] // 4] = 1.0
        self.register_buffer("mask", mask)

    def forward(self, a: torch.Tensor) -> torch.Tensor:
        return a * self.mask


class RegionNet(nn.Module):
    """``(B, 1, 96, 64)`` -> logits ``(B, 2)`` = ``[s, -s]``, ``s`` = region mean."""

    def __init__(self) -> None:
        super().__init__()
        conv = nn.Conv2d(1, 2, kernel_size=4, stride=4)
        with torch.no_grad():
            conv.weight.zero_()
            conv.weight[0] = 1.0 / 16.0  # channel 0: 4x4 block mean
            conv.weight[1] = -1.0 / 16.0  # channel 1: unused by the head
            conv.bias.zero_()
        self.features = nn.Sequential(conv, nn.ReLU(), Gate())
        for p in self.parameters():
            p.requires_grad_(False)  # frozen, like a frozen backbone

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.features(x)
        n_cells = float(self.features[2].mask.sum())
        s = a[:, 0].sum(dim=(1, 2)) / n_cells
        return torch.stack([s, -s], dim=1)


class SmallCNN(nn.Module):
    """Random 2-conv net, ``(B, 1, 96, 64)`` -> ``(B, 3)``; Grad-CAM layer: ``act2``."""

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.conv1 = nn.Conv2d(1, 4, 3, padding=1)
        self.pool = nn.MaxPool2d(4)
        self.conv2 = nn.Conv2d(4, 8, 3, padding=1)
        self.act2 = nn.ReLU()
        self.fc = nn.Linear(8, 3)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g) * 0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.pool(torch.relu(self.conv1(x)))
        h = self.act2(self.conv2(h))
        return self.fc(h.mean(dim=(2, 3)))


def region_patches(n: int = 2, seed: int = 0, level: float = 3.0) -> torch.Tensor:
    """Patches ``(n, 1, 96, 64)``: uniform(0.5, 1.5) with ``level`` added in the region."""
    g = torch.Generator().manual_seed(seed)
    x = 0.5 + torch.rand(n, 1, 96, 64, generator=g)
    x[:, :, slice(*REGION_FRAMES), slice(*REGION_BANDS)] += level
    return x


@pytest.fixture
def region_net() -> RegionNet:
    return RegionNet()


@pytest.fixture
def small_cnn() -> SmallCNN:
    return SmallCNN()


@pytest.fixture
def region_mask() -> np.ndarray:
    """Bool ``(96, 64)``: the cells RegionNet's class-0 score depends on."""
    m = np.zeros((96, 64), dtype=bool)
    m[slice(*REGION_FRAMES), slice(*REGION_BANDS)] = True
    return m


@pytest.fixture
def make_region_patches():
    return region_patches
