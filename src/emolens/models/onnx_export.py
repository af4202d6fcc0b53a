"""Exporting a trained emolens model to ONNX (for the ONNX Runtime backend).

The graph takes log-mel patches ``patches`` ``(n, 1, 96, 64)`` (``log(mel + 0.01)``,
float32, dynamic batch axis ``n``) and returns

* ``probs`` ``(n, C)``: the emotion softmax per patch;
* ``audioset`` ``(n, 521)``: YAMNet's AudioSet sigmoid scores (speech gating), only for
  models with a YAMNet branch.

Both come from :meth:`FusionNet.forward_with_audioset` (one pass through YAMNet). The
file records which weights it was made from (``emolens_weights_sha256`` in the ONNX
metadata, the sha256 of ``model.safetensors`` + ``model.json``) so a stale export is
never used for a retrained model.
"""

from __future__ import annotations

import hashlib
import logging
import warnings
from pathlib import Path

import torch
from torch import nn

from emolens.errors import ModelError
from emolens.models.fusion import FusionNet
from emolens.models.io import CONFIG_FILE, MODEL_FILE

log = logging.getLogger("emolens")

#: ONNX opset the exporter writes (supported by onnxruntime >= 1.13).
OPSET = 17
#: Metadata key holding :func:`run_fingerprint` of the source run.
FINGERPRINT_KEY = "emolens_weights_sha256"
INPUT_NAME = "patches"


class _ExportWrapper(nn.Module):
    """``patches (n,1,96,64) -> (probs (n,C)[, audioset (n,521)])`` for the exporter."""

    def __init__(self, model: FusionNet):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor):  # noqa: ANN201 - one or two tensors
        if self.model.yamnet is not None:
            logits, scores = self.model.forward_with_audioset(x)
            return torch.softmax(logits, 1), scores
        return torch.softmax(self.model(x), 1)


def run_fingerprint(run_dir: str | Path) -> str:
    """sha256 (hex) of a run's ``model.safetensors`` and ``model.json``."""
    run_dir = Path(run_dir)
    h = hashlib.sha256()
    for name in (MODEL_FILE, CONFIG_FILE):
        p = run_dir / name
        if not p.exists():
            raise ModelError(f"{run_dir}: no trained model here ({CONFIG_FILE} + {MODEL_FILE}); train one with `emolens train --out {run_dir}`")
        with open(p, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def output_names(model: FusionNet) -> list[str]:
    return ["probs", "audioset"] if model.yamnet is not None else ["probs"]


def export_onnx(model: FusionNet, path: str | Path, fingerprint: str = "",
                patch_shape: tuple[int, int] = (96, 64)) -> Path:
    """Write ``model`` (eval mode, CPU) as an ONNX graph to ``path``; returns ``path``.

    Uses TorchScript-based ``torch.onnx.export(dynamo=False)`` (no onnxscript needed)
    with a dynamic batch axis; ``fingerprint`` is stored in the metadata."""
    import onnx

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = model.eval().cpu()
    names = output_names(model)
    x = torch.zeros(2, 1, *patch_shape)
    tmp = path.with_name(path.name + ".part")
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # tracer warnings about Python-side shape arithmetic (constant here)
        torch.onnx.export(_ExportWrapper(model), (x,), str(tmp), input_names=[INPUT_NAME], output_names=names,
                          dynamic_axes={n: {0: "n"} for n in [INPUT_NAME, *names]},
                          opset_version=OPSET, dynamo=False)
    proto = onnx.load(str(tmp))
    meta = proto.metadata_props.add()
    meta.key, meta.value = FINGERPRINT_KEY, fingerprint
    onnx.save(proto, str(tmp))
    tmp.replace(path)
    return path


def onnx_fingerprint(path: str | Path) -> str | None:
    """The :data:`FINGERPRINT_KEY` stored in an exported file (``None`` if absent/unreadable)."""
    import onnxruntime as ort

    try:
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception:  # noqa: BLE001 - any unreadable file means "export again"
        return None
    return sess.get_modelmeta().custom_metadata_map.get(FINGERPRINT_KEY)


__all__ = ["export_onnx", "run_fingerprint", "onnx_fingerprint", "OPSET", "FINGERPRINT_KEY"]
