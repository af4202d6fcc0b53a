"""The model card (``emolens.report.model_card``): evaluation commands and the shipped cards."""

from __future__ import annotations

import json

import pytest

from emolens.report.model_card import model_card
from emolens.resources import PACKAGED_MODELS


def _card_with(evaluation: dict) -> str:
    config = {"classes": ["angry", "sad"], "card": {"evaluations": [
        {"title": "LOCO", "columns": [["corpus", "corpus"], ["uar", "UAR"]], "rows": [{"corpus": "a", "uar": 0.5}],
         **evaluation}]}}
    return model_card(config)


def test_command_and_its_companion_are_each_code() -> None:
    md = _card_with({"command": "scripts/train_default", "also": {"what": "more rows", "command": "python benchmarks/generalisation.py"}})
    assert "Command: `scripts/train_default` (more rows: `python benchmarks/generalisation.py`)" in md.splitlines()
    assert "Command: `scripts/train_default`" in _card_with({"command": "scripts/train_default"}).splitlines()


@pytest.mark.parametrize("name", sorted(PACKAGED_MODELS))
def test_shipped_card_is_what_its_model_json_renders(name: str) -> None:
    d = PACKAGED_MODELS[name]
    config = json.loads((d / "model.json").read_text())
    assert model_card(config, name=config["card"].get("title", "emolens model")) == (d / "MODEL_CARD.md").read_text()
