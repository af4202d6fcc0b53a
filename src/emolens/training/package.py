"""Turn a trained run into a shippable model folder: head-only weights on the packaged
YAMNet (a few MB instead of ~17), the fitted selector, ``model.json`` with a ``card``
section, ``MODEL_CARD.md`` rendered from it, and ``model.onnx``: the whole model exported
from those weights (keyed to them by :func:`~emolens.models.run_files.run_fingerprint`),
so that inference needs only ONNX Runtime (``scripts/train_default`` uses this to write
``emolens/data/default_model``; ``tests/cli/test_default_model.py`` fails when the
shipped ONNX file does not match the shipped weights)."""

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


def package_model(run_dir: str | Path, dest: str | Path, card: dict, extra: dict | None = None, onnx: bool = True) -> Path:
    """Write ``run_dir``'s final model head-only into ``dest`` with ``card`` (see
    :func:`emolens.report.model_card.model_card` for its keys). The run's YAMNet must be
    the packaged one (checked weight by weight), since that is what loading will use.
    ``extra``: more ``model.json`` sections (e.g. ``{"calibration": ...}``), on the card too;
    ``onnx``: write ``model.onnx`` beside it (else the first ONNX run exports it to the cache)."""
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
    if onnx:
        write_onnx(dest, model)
    return dest


#: Corpora no packaged (shipped or published) model may be trained on, and why. CASIA:
#: provenance unclear. TurEV-DB: CC BY-NC-ND 4.0 forbids sharing adapted material, and
#: whether trained weights are adapted material is unsettled, so conservatively no.
NOT_SHIPPABLE: dict[str, str] = {
    **{c: "evaluate-only (unclear provenance)" for c in EVALUATE_ONLY_CORPORA},
    "turev": "CC BY-NC-ND 4.0 (no derivatives: weights trained on it are conservatively treated as adapted material)",
}


def check_shippable(config: dict) -> None:
    """Refuse a model whose training data includes a corpus of :data:`NOT_SHIPPABLE`."""
    bad = sorted(set(config.get("training_corpora") or []) & set(NOT_SHIPPABLE))
    if bad:
        why = "; ".join(f"{c}: {NOT_SHIPPABLE[c]}" for c in bad)
        raise ModelError(f"this model was trained on {', '.join(bad)}, which no packaged model may be trained on ({why}); "
                         "prepare the training work dir without it")


def write_onnx(model_dir: str | Path, model=None) -> Path:
    """Export ``model_dir``'s model (loaded from there unless given) to
    ``model_dir/model.onnx``, recording the fingerprint of its weights; returns the path."""
    from emolens.models.onnx_export import export_onnx
    from emolens.models.run_files import ONNX_FILE, run_fingerprint

    model_dir = Path(model_dir)
    if model is None:
        model = load_model(model_dir)[0]
    return export_onnx(model, model_dir / ONNX_FILE, run_fingerprint(model_dir))


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


__all__ = ["NOT_SHIPPABLE", "check_shippable", "evaluation_rows", "package_model", "read_metrics", "write_onnx"]
