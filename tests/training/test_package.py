"""Packaging a run as a shippable, head-only model with its card."""

from __future__ import annotations

import json

import pytest
import torch

from emolens.errors import ModelError
from emolens.inference import EmotionRecognizer
from emolens.models.fusion import FusionNet
from emolens.models.io import save_model
from emolens.models.yamnet import load_yamnet_file
from emolens.resources import packaged_yamnet
from emolens.training.package import evaluation_rows, package_model

CONFIG = {"emolens_model": 1, "model": "yamnet", "streams": ["yamnet"], "classes": ["angry", "sad"],
          "frontend": {"name": "vggish16k"}, "patches": {"patch_frames": 96, "hop_frames": 48},
          "head": {"hidden": 16, "layer_dim": 256, "dropout": 0.3}, "train": {"finetune": "head"},
          "gds": {"enabled": False}}
CARD = {"title": "test model", "training_data": [{"corpus": "ravdess", "files": 10, "speakers": 2}],
        "evaluations": [{"title": "Leave one corpus out", "columns": [["corpus", "corpus"], ["UAR", "UAR"]],
                         "rows": evaluation_rows({"per_corpus": {"ravdess": {"uar": 0.61, "accuracy": 0.6, "n": 10}}}),
                         "command": "emolens train --folds locorpus"}]}


def test_package_writes_head_only_model_with_card(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("EMOLENS_WEIGHTS", raising=False)
    torch.manual_seed(0)
    model = FusionNet(2, ("yamnet",), yamnet=load_yamnet_file(packaged_yamnet()), hidden=16)
    save_model(tmp_path / "run", model, CONFIG)
    dest = package_model(tmp_path / "run", tmp_path / "ship", CARD)
    assert (tmp_path / "ship" / "model.safetensors").stat().st_size < (tmp_path / "run" / "model.safetensors").stat().st_size / 50
    card = (dest / "MODEL_CARD.md").read_text()
    assert "| ravdess | 0.610 |" in card and "CC BY-NC-SA 4.0" in card and "What it is not for" in card
    assert json.loads((dest / "model.json").read_text())["card"]["title"] == "test model"
    rec = EmotionRecognizer.from_dir(dest)
    x = torch.randn(3, 1, 96, 64)
    with torch.no_grad():
        torch.testing.assert_close(rec.model(x), model.eval()(x))


def test_package_refuses_foreign_backbones(tmp_path) -> None:
    yam = load_yamnet_file(packaged_yamnet())
    with torch.no_grad():
        yam.layers[3].pointwise.weight[0, 0] += 1.0
    save_model(tmp_path / "run", FusionNet(2, ("yamnet",), yamnet=yam, hidden=16), CONFIG)
    with pytest.raises(ModelError, match="other YAMNet weights"):
        package_model(tmp_path / "run", tmp_path / "ship", CARD)
    save_model(tmp_path / "run2", FusionNet(2, ("vggish",), hidden=16), CONFIG | {"streams": ["vggish"]})
    with pytest.raises(ModelError, match="VGGish"):
        package_model(tmp_path / "run2", tmp_path / "ship", CARD)
