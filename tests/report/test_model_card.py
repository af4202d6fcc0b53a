"""The model card (``emolens.report.model_card``): evaluation commands and the shipped cards."""

from __future__ import annotations

import json

import pytest

from emolens.report.model_card import model_card


def _card_with(evaluation: dict) -> str:
    config = {"classes": ["angry", "sad"], "card": {"evaluations": [
        {"title": "LOCO", "columns": [["corpus", "corpus"], ["uar", "UAR"]], "rows": [{"corpus": "a", "uar": 0.5}],
         **evaluation}]}}
    return model_card(config)


def test_command_and_its_companion_are_each_code() -> None:
    md = _card_with({"command": "scripts/train_default", "also": ["more rows", "python benchmarks/generalisation.py"]})
    assert "Command: `scripts/train_default` (more rows: `python benchmarks/generalisation.py`)" in md.splitlines()
    assert "Command: `scripts/train_default`" in _card_with({"command": "scripts/train_default"}).splitlines()


@pytest.mark.parametrize("name", ["default_model", "whisper_model"])
def test_shipped_card_is_what_its_model_json_renders(name: str) -> None:
    from emolens.resources import default_model_dir

    d = default_model_dir().parent / name
    config = json.loads((d / "model.json").read_text())
    assert model_card(config, name=config["card"].get("title", "emolens model")) == (d / "MODEL_CARD.md").read_text()
