"""Saving and loading trained emolens models: ``model.safetensors`` (all weights,
backbones included) + ``model.json`` (everything needed to rebuild and reproduce:
front-end profile, patches, classes, model kind/streams, head sizes, which backbones
were pretrained, GDS parameters) + ``gds.safetensors`` (the fitted selector's
reference, so prediction applies the same selection as training). Nothing is
unpickled."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file as load_np, save_file as save_np
from safetensors.torch import load_file, save_file

from emolens.errors import ModelError
from emolens.models.fusion import FusionNet
from emolens.models.vggish import VGGish
from emolens.models.yamnet import YAMNet

MODEL_FILE, CONFIG_FILE, GDS_FILE = "model.safetensors", "model.json", "gds.safetensors"


def save_model(run_dir: str | Path, model: FusionNet, config: dict,
               gds_state: dict[str, np.ndarray] | None = None) -> Path:
    """Write the model's weights and JSON config into ``run_dir``."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(run_dir / MODEL_FILE))
    (run_dir / CONFIG_FILE).write_text(json.dumps(config, indent=2))
    if gds_state:
        save_np({k: np.ascontiguousarray(v) for k, v in gds_state.items()}, str(run_dir / GDS_FILE))
    return run_dir


def load_model(run_dir: str | Path) -> tuple[FusionNet, dict, dict[str, np.ndarray] | None]:
    """Rebuild a saved model: ``(model in eval mode, config, gds_state or None)``."""
    run_dir = Path(run_dir)
    cfg_path, w_path = run_dir / CONFIG_FILE, run_dir / MODEL_FILE
    if not cfg_path.exists() or not w_path.exists():
        raise ModelError(f"{run_dir}: no trained model here ({CONFIG_FILE} + {MODEL_FILE}); train one with `emolens train --out {run_dir}`")
    try:
        config = json.loads(cfg_path.read_text())
        head = config["head"]
        streams = tuple(config["streams"])
        vgg = VGGish(final_relu=config.get("vggish_final_relu", True)) if any(s.startswith("vggish") for s in streams) else None
        model = FusionNet(len(config["classes"]), streams, vggish=vgg,
                          yamnet=YAMNet() if any(s.startswith("yamnet") for s in streams) else None, **head)
        model.load_state_dict(load_file(str(w_path)))
    except (KeyError, RuntimeError, json.JSONDecodeError, OSError) as exc:
        raise ModelError(f"{run_dir}: the saved model is incomplete or corrupt ({str(exc).splitlines()[0][:120]}); retrain it") from None
    model.eval()
    gds = load_np(str(run_dir / GDS_FILE)) if (run_dir / GDS_FILE).exists() else None
    return model, config, gds


__all__ = ["save_model", "load_model"]
