"""Saving and loading trained emolens models: ``model.safetensors`` (all weights,
backbones included) + ``model.json`` (everything needed to rebuild and reproduce:
front-end profile, patches, classes, model kind/streams, head sizes, which backbones
were pretrained, GDS parameters) + ``gds.safetensors`` (the fitted selector's
reference, so prediction applies the same selection as training). Nothing is
unpickled.

A model can also be saved **head-only** (``embed_backbones=False``, how the shipped
default model is stored): ``model.safetensors`` then holds just the trained layers and
``model.json`` names each frozen backbone's weights file with its sha256
(``"backbones": {"yamnet": {"file": "yamnet.tflite", "sha256": ...}}``). Loading resolves
the file like training does (``$EMOLENS_WEIGHTS``, cache, the packaged YAMNet) and refuses
one whose digest differs, so the head always sits on the backbone it was trained with."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file as load_np, save_file as save_np
from safetensors.torch import load_file, save_file

from emolens.errors import EmolensError, ModelError
from emolens.models.fusion import FusionNet
from emolens.models.vggish import VGGish
from emolens.models.yamnet import YAMNet

from emolens.models.run_files import CONFIG_FILE, GDS_FILE, MODEL_FILE  # noqa: F401 - names kept here too


BACKBONES = ("vggish", "yamnet")


def save_model(run_dir: str | Path, model: FusionNet, config: dict,
               gds_state: dict[str, np.ndarray] | None = None, *,
               embed_backbones: bool = True, backbone_files: dict[str, str | Path] | None = None) -> Path:
    """Write the model's weights and JSON config into ``run_dir``.

    ``embed_backbones=False`` leaves the frozen backbones out of ``model.safetensors``;
    ``backbone_files`` then maps each backbone (``yamnet``) to the weights file it was
    built from, recorded by name and sha256 in ``model.json``."""
    from emolens.models.weights import sha256_file

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    if not embed_backbones:
        used = [b for b in BACKBONES if getattr(model, b) is not None]
        files = backbone_files or {}
        missing = [b for b in used if b not in files]
        if missing:
            raise ModelError(f"head-only save needs the weights file of {', '.join(missing)} (backbone_files=)")
        state = {k: v for k, v in state.items() if k.split(".")[0] not in BACKBONES}
        config = {**config, "backbones": {b: {"file": Path(files[b]).name, "sha256": sha256_file(Path(files[b]))}
                                          for b in used}}
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
        yam = YAMNet() if any(s.startswith("yamnet") for s in streams) else None
        refs = config.get("backbones") or {}
        if "yamnet" in refs and yam is not None:
            yam = _referenced_yamnet(refs["yamnet"], run_dir)
        if "vggish" in refs:
            raise ModelError(f"{run_dir}: head-only models with a VGGish branch are not supported; save with embedded backbones")
        model = FusionNet(len(config["classes"]), streams, vggish=vgg, yamnet=yam, **head)
        state = load_file(str(w_path))
        if refs:
            missing, unexpected = model.load_state_dict(state, strict=False)
            bad = [k for k in missing if k.split(".")[0] not in refs] + list(unexpected)
            if bad:
                raise RuntimeError(f"weights do not fit the model: {bad[0]}")
        else:
            model.load_state_dict(state)
    except (KeyError, RuntimeError, json.JSONDecodeError, OSError) as exc:
        raise ModelError(f"{run_dir}: the saved model is incomplete or corrupt ({str(exc).splitlines()[0][:120]}); retrain it") from None
    model.eval()
    gds = load_np(str(run_dir / GDS_FILE)) if (run_dir / GDS_FILE).exists() else None
    return model, config, gds


def _referenced_yamnet(ref: dict, run_dir: Path) -> YAMNet:
    """The YAMNet a head-only model was trained on, found and sha256-checked."""
    from emolens.models.weights import resolve_weights, sha256_file
    from emolens.models.yamnet import load_yamnet_file
    from emolens.resources import packaged_yamnet

    candidates = []
    try:
        candidates.append(resolve_weights("yamnet"))
    except EmolensError:
        pass
    if packaged_yamnet() is not None:
        candidates.append(packaged_yamnet())
    candidates = list(dict.fromkeys(candidates))  # the resolved file is often the packaged one: hash it once
    for path in candidates:
        if sha256_file(path) == ref["sha256"]:
            return load_yamnet_file(path)
    raise ModelError(f"{run_dir}: this model needs YAMNet weights {ref['file']} with sha256 {ref['sha256'][:12]}..., "
                     f"not found (looked at {', '.join(map(str, candidates)) or 'nothing'}); set EMOLENS_WEIGHTS to that file")


__all__ = ["save_model", "load_model"]
