"""The files of a saved model (a run directory), read without PyTorch.

``model.json`` (configuration), ``model.safetensors`` (weights; only hashed here),
``gds.safetensors`` (the fitted GDS selector, read with ``safetensors.numpy``) and
``model.onnx`` (an ONNX export of those weights, when present). The ONNX inference path
(:meth:`emolens.EmotionRecognizer.from_dir` with ``backend="onnx"``) needs only these
functions; :mod:`emolens.models.io` rebuilds the PyTorch model from the same files.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from emolens.errors import ModelError

MODEL_FILE, CONFIG_FILE, GDS_FILE, ONNX_FILE = "model.safetensors", "model.json", "gds.safetensors", "model.onnx"


def _missing(run_dir: Path) -> ModelError:
    return ModelError(f"{run_dir}: no trained model here ({CONFIG_FILE} + {MODEL_FILE}); "
                      f"train one with `emolens train --out {run_dir}`")


def read_config(run_dir: str | Path) -> dict:
    """``model.json`` of a run directory (raises :class:`ModelError` when absent or corrupt)."""
    run_dir = Path(run_dir)
    if not (run_dir / CONFIG_FILE).is_file() or not (run_dir / MODEL_FILE).is_file():
        raise _missing(run_dir)
    try:
        config = json.loads((run_dir / CONFIG_FILE).read_text())
        config["classes"], config["frontend"], config["patches"]  # noqa: B018 - the keys inference needs
    except (KeyError, TypeError, json.JSONDecodeError, OSError) as exc:
        raise ModelError(f"{run_dir}: the saved model is incomplete or corrupt ({str(exc).splitlines()[0][:120]}); retrain it") from None
    return config


def read_gds_state(run_dir: str | Path) -> dict[str, np.ndarray] | None:
    """The fitted GDS selector's arrays (``gds.safetensors``), or None when the run has none."""
    p = Path(run_dir) / GDS_FILE
    if not p.exists():
        return None
    from safetensors.numpy import load_file

    return load_file(str(p))


def run_fingerprint(run_dir: str | Path) -> str:
    """sha256 (hex) of a run's ``model.safetensors`` and ``model.json`` (an ONNX export
    records it, so an export is only used for the weights it was made from)."""
    run_dir = Path(run_dir)
    h = hashlib.sha256()
    for name in (MODEL_FILE, CONFIG_FILE):
        p = run_dir / name
        if not p.exists():
            raise _missing(run_dir)
        with open(p, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


__all__ = ["MODEL_FILE", "CONFIG_FILE", "GDS_FILE", "ONNX_FILE", "read_config", "read_gds_state", "run_fingerprint"]
