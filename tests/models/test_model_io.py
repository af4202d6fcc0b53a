"""Head-only model files: the frozen YAMNet is referenced by sha256, not stored."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from emolens.errors import ModelError
from emolens.models.fusion import FusionNet
from emolens.models.io import load_model, save_model
from emolens.models.yamnet import load_yamnet_file
from emolens.resources import packaged_yamnet


def _config() -> dict:
    return {"emolens_model": 1, "model": "yamnet", "streams": ["yamnet", "yamnet_mid"], "classes": ["a", "b", "c"],
            "frontend": {"name": "vggish16k"}, "patches": {"patch_frames": 96, "hop_frames": 48},
            "head": {"hidden": 32, "layer_dim": 256, "dropout": 0.3}}


def test_head_only_round_trip(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("EMOLENS_WEIGHTS", raising=False)
    monkeypatch.setenv("EMOLENS_CACHE", str(tmp_path / "cache"))
    torch.manual_seed(0)
    model = FusionNet(3, ("yamnet", "yamnet_mid"), yamnet=load_yamnet_file(packaged_yamnet()), hidden=32).eval()
    save_model(tmp_path / "m", model, _config(), embed_backbones=False, backbone_files={"yamnet": packaged_yamnet()})
    cfg = json.loads((tmp_path / "m" / "model.json").read_text())
    assert cfg["backbones"]["yamnet"]["file"] == "yamnet.tflite"
    size = (tmp_path / "m" / "model.safetensors").stat().st_size
    n_head = sum(p.numel() for p in model.head.parameters())
    assert size < 4 * n_head + 20_000  # the 3.7 M YAMNet parameters are not in the file
    loaded, _, _ = load_model(tmp_path / "m")
    x = torch.randn(5, 1, 96, 64)
    with torch.no_grad():
        np.testing.assert_allclose(loaded(x).numpy(), model(x).numpy(), atol=1e-5)


def test_head_only_refuses_other_backbone_weights(tmp_path) -> None:
    model = FusionNet(3, ("yamnet",), yamnet=load_yamnet_file(packaged_yamnet()), hidden=32)
    save_model(tmp_path / "m", model, _config() | {"streams": ["yamnet"]}, embed_backbones=False,
               backbone_files={"yamnet": packaged_yamnet()})
    cfg_path = tmp_path / "m" / "model.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["backbones"]["yamnet"]["sha256"] = "0" * 64
    cfg_path.write_text(json.dumps(cfg))
    with pytest.raises(ModelError, match="needs YAMNet weights yamnet.tflite with sha256 000000000000"):
        load_model(tmp_path / "m")
    with pytest.raises(ModelError, match="backbone_files"):
        save_model(tmp_path / "n", model, _config(), embed_backbones=False)
