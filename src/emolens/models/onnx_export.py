"""Exporting a trained emolens model to ONNX (for the ONNX Runtime backend).

The graph takes log-mel patches ``patches`` ``(n, 1, 96, 64)`` (``log(mel + 0.01)``,
float32, dynamic batch axis ``n``) and returns

* ``probs`` ``(n, C)``: the emotion softmax per patch (a voting head), or ``embedding``
  ``(n, D)``: the normalised stream vector per patch (a statistics-pooling head, whose
  tiny classifier runs in numpy on the utterance statistics: :mod:`emolens.models.decision`);
* ``audioset`` ``(n, 521)``: YAMNet's AudioSet sigmoid scores (speech gating), only for
  models with a YAMNet branch.

Both come from :meth:`FusionNet.patch_outputs` (one pass through YAMNet). The
file records which weights it was made from (``emolens_weights_sha256`` in the ONNX
metadata, the sha256 of ``model.safetensors`` + ``model.json``) so a stale export is
never used for a retrained model.
"""

from __future__ import annotations

import copy
import logging
import os
import re
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from emolens.errors import ModelError
from emolens.models.fusion import FusionNet
from emolens.models.run_files import run_fingerprint  # noqa: F401 - re-exported (it lived here)
from emolens.models.yamnet import Conv2dSame, same_padding

log = logging.getLogger("emolens")

#: ONNX opset the exporter writes (supported by onnxruntime >= 1.13).
OPSET = 17
#: Metadata key holding :func:`run_fingerprint` of the source run.
FINGERPRINT_KEY = "emolens_weights_sha256"
INPUT_NAME = "patches"


class _StaticPadConv(nn.Module):
    """A :class:`Conv2dSame` with its TF 'SAME' pads fixed for one input size, so the
    exported graph has constant pads (ONNX Runtime then fuses Pad into Conv and keeps
    its blocked NCHWc layout through the network; the shape-derived pads of the eager
    module export as ~10 shape ops per conv and break that fusion)."""

    def __init__(self, conv: Conv2dSame, pads: tuple[int, int, int, int]):
        super().__init__()
        self.conv, self.pads = conv, pads

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if any(self.pads):
            x = F.pad(x, self.pads)
        c = self.conv
        return F.conv2d(x, c.weight, c.bias, c.stride, 0, c.dilation, c.groups)


def static_padding_copy(model: FusionNet, patch_shape: tuple[int, int] = (96, 64)) -> FusionNet:
    """A copy of ``model`` whose 'SAME' convolutions pad by constants computed for
    ``patch_shape`` input (same outputs for that shape, checked by the parity test)."""
    model = copy.deepcopy(model).eval()
    pads: dict[str, tuple[int, int, int, int]] = {}
    hooks = []
    for name, m in model.named_modules():
        if isinstance(m, Conv2dSame):
            def hook(mod, inp, name=name):  # noqa: ANN001, ANN202
                h, w = inp[0].shape[-2:]
                top, bottom = same_padding(h, mod.kernel_size[0], mod.stride[0], mod.dilation[0])
                left, right = same_padding(w, mod.kernel_size[1], mod.stride[1], mod.dilation[1])
                pads[name] = (left, right, top, bottom)
            hooks.append(m.register_forward_pre_hook(hook))
    with torch.no_grad():
        model(torch.zeros(1, 1, *patch_shape))
    for h in hooks:
        h.remove()
    for name, p in pads.items():
        parent_name, _, attr = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, attr, _StaticPadConv(getattr(parent, attr), p))
    return model


class _ExportWrapper(nn.Module):
    """``patches (n,1,96,64) -> (probs (n,C)[, audioset (n,521)])`` for the exporter."""

    def __init__(self, model: FusionNet):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor):  # noqa: ANN201 - one or two tensors
        out, scores = self.model.patch_outputs(x)
        return (out, scores) if scores is not None else out


def output_names(model: FusionNet) -> list[str]:
    first = "probs" if model.head.pooling == "mean" else "embedding"
    return [first, "audioset"] if model.yamnet is not None else [first]


def export_onnx(model: FusionNet, path: str | Path, fingerprint: str = "",
                patch_shape: tuple[int, int] = (96, 64)) -> Path:
    """Write ``model`` (eval mode, CPU) as an ONNX graph to ``path``; returns ``path``.

    Uses TorchScript-based ``torch.onnx.export(dynamo=False)`` (no onnxscript needed)
    with a dynamic batch axis; ``fingerprint`` is stored in the metadata."""
    import onnx

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = static_padding_copy(model.eval().cpu(), patch_shape)
    names = output_names(model)
    x = torch.zeros(2, 1, *patch_shape)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.part")  # per process: two exporting the same model at once
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # tracer warnings about Python-side shape arithmetic (constant here)
        torch.onnx.export(_ExportWrapper(model), (x,), str(tmp), input_names=[INPUT_NAME], output_names=names,
                          dynamic_axes={n: {0: "n"} for n in [INPUT_NAME, *names]},
                          opset_version=OPSET, dynamo=False)
    proto = fold_pads_into_convs(_constant_folded(tmp))
    meta = proto.metadata_props.add()
    meta.key, meta.value = FINGERPRINT_KEY, fingerprint
    onnx.save(proto, str(tmp))
    tmp.replace(path)
    return path


def _constant_folded(path: Path):  # noqa: ANN202 - onnx.ModelProto
    """The graph after ONNX Runtime's basic (hardware-independent, standard-op) passes:
    constant folding turns the exported pad arithmetic into initializers."""
    import onnx
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    so.log_severity_level = 3
    folded = path.with_name(path.name + ".basic")
    so.optimized_model_filepath = str(folded)
    ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    proto = onnx.load(str(folded))
    folded.unlink()
    return proto


def fold_pads_into_convs(proto):  # noqa: ANN001, ANN201 - onnx.ModelProto in and out
    """Remove every zero-valued constant ``Pad`` (spatial axes only) whose one consumer
    is a ``Conv`` by moving its pads into the Conv's own (possibly asymmetric) ``pads``
    attribute - the same arithmetic, one node less, and no layout break in between."""
    from onnx import helper, numpy_helper

    graph = proto.graph
    inits = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    consumers: dict[str, list] = {}
    for n in graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    drop = []
    for pad in [n for n in graph.node if n.op_type == "Pad"]:
        users = consumers.get(pad.output[0], [])
        mode = next((helper.get_attribute_value(a) for a in pad.attribute if a.name == "mode"), b"constant")
        if len(users) != 1 or users[0].op_type != "Conv" or mode != b"constant" or pad.input[1] not in inits:
            continue
        if len(pad.input) > 2 and pad.input[2] and (pad.input[2] not in inits or float(inits[pad.input[2]]) != 0.0):
            continue
        if len(pad.input) > 3 and pad.input[3]:
            continue  # axes input: leave alone
        p = [int(v) for v in inits[pad.input[1]]]
        if len(p) != 8 or p[0] or p[1] or p[4] or p[5] or min(p) < 0:
            continue
        conv = users[0]
        attrs = {a.name: a for a in conv.attribute}
        if "auto_pad" in attrs and helper.get_attribute_value(attrs["auto_pad"]) not in (b"NOTSET", b""):
            continue
        old = list(helper.get_attribute_value(attrs["pads"])) if "pads" in attrs else [0, 0, 0, 0]
        new = [old[0] + p[2], old[1] + p[3], old[2] + p[6], old[3] + p[7]]
        if "pads" in attrs:
            conv.attribute.remove(attrs["pads"])
        conv.attribute.append(helper.make_attribute("pads", new))
        conv.input[0] = pad.input[0]
        drop.append(pad)
    for n in drop:
        graph.node.remove(n)
    return proto


#: Metadata key marking a graph whose VGGish branch is int8 (:func:`quantize_vggish`).
QUANTIZED_KEY = "emolens_quantized"


def quantize_vggish(src: str | Path, dest: str | Path, calibration: np.ndarray) -> Path:
    """Static int8 quantisation (QDQ, per-channel weights, ONNX Runtime's MLAS int8
    kernels) of the **VGGish** convolutions and FC layers of an exported fusion graph;
    YAMNet (and so the AudioSet scores used for speech gating) and the head stay float.

    ``calibration``: representative log-mel patches ``(n, 96, 64)`` (activation ranges).

    Weights use 7 of the 8 bits (``reduce_range``, ONNX Runtime's remedy for CPUs without
    VNNI): there its u8 x s8 kernel (VPMADDUBSW) adds products in pairs into int16 and
    clamps; with weights in [-64, 64] a pair is at most 2 * 255 * 64 = 32640, so it never
    clamps and every x86 CPU computes what a VNNI one does. With 8-bit weights the tests'
    VGGish-like net lost up to 0.08 of probability on a non-VNNI CPU (0.005 with VNNI).
    Measured on EmoDB (8-bit weights, VNNI CPU): ~2.4x faster fusion inference, max |delta p| 0.03, 99% same
    patch argmax (YAMNet's depthwise layers gain nothing from int8 and lose accuracy,
    so they are left alone). Returns ``dest``; its metadata keeps the fingerprint."""
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    src, dest = Path(src), Path(dest)
    proto = onnx.load(str(src))
    meta = {m.key: m.value for m in proto.metadata_props}
    vggish = re.compile(r"(^|/)(features|embeddings)[./]")  # VGGish's module names in the exported node names
    nodes = [n.name for n in proto.graph.node if n.op_type in ("Conv", "Gemm", "MatMul") and vggish.search(n.name)]
    if not nodes:
        raise ModelError("int8 quantisation applies to the VGGish branch; this model has none (YAMNet models are fastest in float)")
    x = np.ascontiguousarray(calibration[:, None], dtype=np.float32)

    class _Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.i = 0

        def get_next(self):  # noqa: ANN202
            if self.i >= len(x):
                return None
            self.i += 32
            return {INPUT_NAME: x[self.i - 32 : self.i]}

    tmp = dest.with_name(f"{dest.name}.{os.getpid()}.part")
    logging.disable(logging.WARNING)  # the quantiser logs advice for every node
    try:
        quantize_static(str(src), str(tmp), _Reader(), quant_format=QuantFormat.QDQ, per_channel=True, reduce_range=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, nodes_to_quantize=nodes)
    finally:
        logging.disable(logging.NOTSET)
    q = onnx.load(str(tmp))
    del q.metadata_props[:]
    for k, v in {**meta, QUANTIZED_KEY: "int8-vggish"}.items():
        m = q.metadata_props.add()
        m.key, m.value = k, v
    onnx.save(q, str(tmp))
    tmp.replace(dest)
    return dest


__all__ = ["export_onnx", "quantize_vggish", "QUANTIZED_KEY", "run_fingerprint", "fold_pads_into_convs", "static_padding_copy", "OPSET", "FINGERPRINT_KEY"]
