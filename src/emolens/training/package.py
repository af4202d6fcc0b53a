"""Turn a trained run into a shippable model folder: head-only weights on the packaged
YAMNet (a few MB instead of ~17), the fitted selector, ``model.json`` with a ``card``
section, and ``MODEL_CARD.md`` rendered from it (``scripts/train_default`` uses this to
write ``emolens/data/default_model``)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch

from emolens.corpora.parsers import EVALUATE_ONLY_CORPORA
from emolens.errors import ModelError
from emolens.models.io import load_model, save_model
from emolens.models.yamnet import load_yamnet_file
from emolens.report.model_card import model_card
from emolens.resources import packaged_yamnet


def package_model(run_dir: str | Path, dest: str | Path, card: dict, extra: dict | None = None) -> Path:
    """Write ``run_dir``'s final model head-only into ``dest`` with ``card`` (see
    :func:`emolens.report.model_card.model_card` for its keys). The run's YAMNet must be
    the packaged one (checked weight by weight), since that is what loading will use.
    ``extra``: more ``model.json`` sections (e.g. ``{"calibration": ...}``), on the card too."""
    model, config, gds = load_model(run_dir)
    check_shippable(config)
    if model.vggish is not None:
        raise ModelError("a shipped model must not carry a VGGish branch (its weights are not shippable here)")
    yam = packaged_yamnet()
    if yam is None:
        raise ModelError("this install has no packaged yamnet.tflite to reference")
    ref = load_yamnet_file(yam).state_dict()
    if any(not torch.equal(v, ref[k]) for k, v in model.yamnet.state_dict().items()):
        raise ModelError(f"{run_dir} was trained on other YAMNet weights than the packaged {yam.name}")
    dest = Path(dest)
    if dest.exists():
        shutil.rmtree(dest)
    config = {k: v for k, v in config.items() if k != "backbones"} | (extra or {}) | {"card": card}
    save_model(dest, model, config, gds, embed_backbones=False, backbone_files={"yamnet": yam})
    (dest / "MODEL_CARD.md").write_text(model_card(config, name=card.get("title", "emolens model")))
    return dest


def check_shippable(config: dict) -> None:
    """Refuse a model whose training data includes an evaluate-only corpus (CASIA: its
    provenance is unclear, so no shipped or published weights may be trained on it)."""
    bad = sorted(set(config.get("training_corpora") or []) & EVALUATE_ONLY_CORPORA)
    if bad:
        raise ModelError(f"this model was trained on {', '.join(bad)}, which is evaluate-only (unclear provenance); "
                         "it cannot be packaged or shipped: prepare the training work dir without it")


def evaluation_rows(metrics: dict, baseline: dict | None = None) -> list[dict]:
    """Per-corpus rows ``{corpus, n, uar, accuracy[, egemaps_uar]}`` of a ``metrics.json``
    (its ``per_corpus`` section, else the whole run as one row)."""
    per = metrics.get("per_corpus") or {metrics.get("corpus", "all"): metrics}
    base = (baseline or {}).get("per_corpus") or ({} if baseline is None else {next(iter(per)): baseline})
    rows = []
    for name, m in per.items():
        row = {"corpus": name, "utterances": m.get("n", m.get("utterances", "")), "UAR": float(m["uar"]),
               "accuracy": float(m["accuracy"])}
        if name in base:
            row["eGeMAPS+SVM UAR"] = float(base[name]["uar"])
        rows.append(row)
    return rows


def read_metrics(path: str | Path) -> dict:
    return json.loads((Path(path) / "metrics.json").read_text()) if Path(path).is_dir() else json.loads(Path(path).read_text())


__all__ = ["package_model", "check_shippable", "evaluation_rows", "read_metrics"]
