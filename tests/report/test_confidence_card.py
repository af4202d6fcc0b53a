"""The card's calibration and adaptation lines (``emolens.report.confidence_card``)."""

from __future__ import annotations

import json

from emolens.adaptation.transform import AdaptConfig
from emolens.report.confidence_card import confidence_lines


def _adaptation_text(method: str) -> str:
    return "\n".join(confidence_lines({"adaptation": {**AdaptConfig(method=method).to_dict(), "fitted_on": ["a", "b"]}}))


def test_card_describes_the_method_the_model_adapts_with() -> None:
    gated = _adaptation_text("gated")
    assert "Method `gated`" in gated and "spread gate" in gated and "2-s stretches" in gated
    assert "projected on the" not in gated and "Statistics learned from: a, b." in gated
    nap = _adaptation_text("nap")
    assert "Method `nap`" in nap and "projected on the 16 directions" in nap and "spread gate" not in nap


def test_shipped_card_and_config_agree_on_the_method() -> None:
    from emolens.resources import default_model_dir

    d = default_model_dir()
    config = json.loads((d / "model.json").read_text())
    assert config["adaptation"]["method"] == "gated" and "gated" in config["card"]["adaptation_loco"]
    assert "Method `gated`" in (d / "MODEL_CARD.md").read_text()
