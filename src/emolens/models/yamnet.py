"""YAMNet (Google, AudioSet, 521 classes) in PyTorch, plus loaders for the published weights.

Architecture (tensorflow/models ``research/audioset/yamnet/yamnet.py``): input log-mel
patches of 96 frames x 64 mel bands (``log(mel + 0.001)``, 10 ms hop), then

* ``layers[0]``: 3x3 conv, stride 2, 32 filters, + ReLU;
* ``layers[1..13]``: depthwise-separable blocks (3x3 depthwise + ReLU, then 1x1
  pointwise + ReLU) with (stride, filters) 1/64, 2/128, 1/128, 2/256, 1/256, 2/512,
  5 x 1/512, 2/1024, 1/1024;
* global average pooling -> 1024-d embedding -> ``classifier`` Dense 521 (logits;
  the published model applies a sigmoid).

Design decisions:

* **Batch norm is folded** into each convolution's weight and bias
  (``w' = w * g / sqrt(var + eps)``, ``b' = beta - mean * g / sqrt(var + eps)``, with
  ``g = 1`` because YAMNet's BN has ``scale=False``; ``eps = 1e-4``). That is exactly the
  form stored in the ``.tflite`` file, so both weight formats map onto plain
  ``Conv2d(bias=True)`` layers; fine-tuning trains the folded parameters.
* **TensorFlow "SAME" padding** is reproduced exactly: per spatial axis,
  ``out = ceil(in / stride)``, ``pad = max((out - 1) * stride + k - in, 0)``, split as
  ``pad // 2`` before and the rest after (so stride-2 layers on even inputs pad 0 on the
  top/left and 1 on the bottom/right). The pad is applied with ``F.pad`` and the conv
  runs with ``padding=0``. PyTorch's symmetric ``padding=1`` would shift every stride-2
  layer by one pixel and give different activations.

For (B, 1, 96, 64) input the last block's feature map is (B, 1024, 3, 2).
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from emolens.errors import WeightsError

NUM_CLASSES = 521
EMBEDDING_DIM = 1024
MEL_BANDS = 64
BN_EPSILON = 1e-4  # yamnet params.py: batchnorm_epsilon

# (stride, filters) of the 13 depthwise-separable blocks after the first conv.
SEPARABLE_DEFS: tuple[tuple[int, int], ...] = (
    (1, 64), (2, 128), (1, 128), (2, 256), (1, 256), (2, 512),
    (1, 512), (1, 512), (1, 512), (1, 512), (1, 512),
    (2, 1024), (1, 1024),
)  # fmt: skip
FIRST_CONV: tuple[int, int] = (2, 32)  # (stride, filters) of layers[0]


# --------------------------------------------------------------------------- model
def same_padding(size: int, kernel: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    """TF 'SAME' padding of one axis: (before, after) in pixels."""
    eff_k = (kernel - 1) * dilation + 1
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + eff_k - size, 0)
    return total // 2, total - total // 2


class Conv2dSame(nn.Conv2d):
    """``nn.Conv2d`` with TensorFlow 'SAME' padding (asymmetric when needed)."""

    def __init__(self, *args, **kwargs) -> None:  # noqa: ANN002, ANN003
        kwargs["padding"] = 0
        super().__init__(*args, **kwargs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        top, bottom = same_padding(x.shape[-2], self.kernel_size[0], self.stride[0], self.dilation[0])
        left, right = same_padding(x.shape[-1], self.kernel_size[1], self.stride[1], self.dilation[1])
        if top or bottom or left or right:
            x = F.pad(x, (left, right, top, bottom))
        return super().forward(x)


class ConvBlock(nn.Module):
    """3x3 conv (SAME, BN folded into bias) + ReLU: (B, Cin, H, W) -> (B, Cout, H/s, W/s)."""

    def __init__(self, in_ch: int, out_ch: int, stride: int) -> None:
        super().__init__()
        self.conv = Conv2dSame(in_ch, out_ch, 3, stride=stride, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.conv(x))


class SeparableConvBlock(nn.Module):
    """3x3 depthwise (SAME) + ReLU, then 1x1 pointwise + ReLU; BN folded into biases."""

    def __init__(self, in_ch: int, out_ch: int, stride: int) -> None:
        super().__init__()
        self.depthwise = Conv2dSame(in_ch, in_ch, 3, stride=stride, groups=in_ch, bias=True)
        self.pointwise = nn.Conv2d(in_ch, out_ch, 1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.pointwise(F.relu(self.depthwise(x))))


class YAMNet(nn.Module):
    """YAMNet on log-mel patches.

    Input: (B, 1, 96, 64) float32 ``log(mel + 0.001)`` patches (frames x mel bands).
    ``forward`` -> logits (B, 521); ``embed`` -> (B, 1024); ``feature_map`` ->
    (B, 1024, 3, 2). A forward hook on ``model.layers[i]`` sees block i's output.
    """

    def __init__(self, num_classes: int = NUM_CLASSES) -> None:
        super().__init__()
        blocks: list[nn.Module] = [ConvBlock(1, FIRST_CONV[1], FIRST_CONV[0])]
        in_ch = FIRST_CONV[1]
        for stride, out_ch in SEPARABLE_DEFS:
            blocks.append(SeparableConvBlock(in_ch, out_ch, stride))
            in_ch = out_ch
        self.layers = nn.ModuleList(blocks)
        self.classifier = nn.Linear(EMBEDDING_DIM, num_classes)

    @staticmethod
    def _check_input(x: torch.Tensor) -> None:
        if x.dim() != 4 or x.shape[1] != 1:
            raise ValueError(f"YAMNet expects (B, 1, frames, 64) log-mel patches, got {tuple(x.shape)}")

    def feature_map(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 1, 96, 64) -> last block's activations (B, 1024, 3, 2), after ReLU."""
        self._check_input(x)
        for block in self.layers:
            x = block(x)
        return x

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 1, 96, 64) -> (B, 1024) embedding (global average pool of the feature map)."""
        return self.feature_map(x).mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 1, 96, 64) -> (B, 521) logits (apply ``torch.sigmoid`` for AudioSet scores)."""
        return self.classifier(self.embed(x))

    def scores(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 1, 96, 64) -> (B, 521) sigmoid class scores, as published YAMNet outputs."""
        return torch.sigmoid(self.forward(x))


# --------------------------------------------------------------------- weight mapping
def conv_modules(model: YAMNet) -> list[tuple[str, nn.Conv2d]]:
    """The 27 convolutions in network order, with their kind: 'conv'|'depthwise'|'pointwise'."""
    out: list[tuple[str, nn.Conv2d]] = [("conv", model.layers[0].conv)]  # type: ignore[union-attr]
    for block in list(model.layers)[1:]:
        out.append(("depthwise", block.depthwise))  # type: ignore[union-attr]
        out.append(("pointwise", block.pointwise))  # type: ignore[union-attr]
    return out


def _assign(param: torch.Tensor, value: np.ndarray, what: str) -> None:
    if tuple(param.shape) != tuple(value.shape):
        raise WeightsError(
            f"{what}: weight shape {tuple(value.shape)} does not fit YAMNet's {tuple(param.shape)}; "
            "the file is not Google's YAMNet"
        )
    if not np.all(np.isfinite(value)):
        raise WeightsError(f"{what}: weights contain NaN/inf; the file is corrupt: download it again")
    with torch.no_grad():
        param.copy_(torch.from_numpy(np.ascontiguousarray(value, dtype=np.float32)))


def fold_batch_norm(
    weight: np.ndarray,
    beta: np.ndarray,
    mean: np.ndarray,
    var: np.ndarray,
    gamma: np.ndarray | None = None,
    eps: float = BN_EPSILON,
) -> tuple[np.ndarray, np.ndarray]:
    """Fold inference BN into a bias-free conv; weight (Cout, ...) in PyTorch layout.

    Returns (weight', bias') with ``conv'(x) == BN(conv(x))``; float64 math, float32 out.
    """
    g = np.ones_like(mean, dtype=np.float64) if gamma is None else gamma.astype(np.float64)
    scale = g / np.sqrt(var.astype(np.float64) + eps)
    w = weight.astype(np.float64) * scale.reshape((-1,) + (1,) * (weight.ndim - 1))
    b = beta.astype(np.float64) - mean.astype(np.float64) * scale
    return w.astype(np.float32), b.astype(np.float32)


# ------------------------------------------------------------------------- TFLite
def _tflite_to_torch(kind: str, w: np.ndarray) -> np.ndarray:
    """TFLite kernel layout -> PyTorch: conv OHWI -> OIHW; depthwise 1HWC -> C1HW."""
    if kind == "depthwise":
        return w.transpose(3, 0, 1, 2)
    return w.transpose(0, 3, 1, 2)


def yamnet_from_tflite(path: str | Path) -> YAMNet:
    """Build a :class:`YAMNet` from Google's ``yamnet.tflite`` (weights dequantized to float32).

    The 27 CONV_2D / DEPTHWISE_CONV_2D ops are mapped in execution order onto
    ``layers[0].conv, layers[1].depthwise, layers[1].pointwise, ...``; the FULLY_CONNECTED op
    after the last conv (521 x 1024) onto ``classifier``. Each op's fused activation
    (RELU for convs, NONE for the classifier), padding (SAME), stride and dilation are
    checked against the PyTorch model; any mismatch raises WeightsError.
    """
    from emolens.models.tflite_reader import TFLiteModel

    tfl = TFLiteModel(path)
    name = Path(path).name
    model = YAMNet()
    convs = conv_modules(model)
    ops = tfl.ops_of_type("CONV_2D", "DEPTHWISE_CONV_2D")
    if len(ops) != len(convs):
        raise WeightsError(
            f"{name} has {len(ops)} convolutions, YAMNet has {len(convs)}; it is not Google's yamnet.tflite"
        )
    for i, (op, (kind, conv)) in enumerate(zip(ops, convs)):
        what = f"{name} op {op.index} ({op.op_type}, conv #{i})"
        expected_type = "DEPTHWISE_CONV_2D" if kind == "depthwise" else "CONV_2D"
        if op.op_type != expected_type:
            raise WeightsError(f"{what}: expected {expected_type}; the file is not Google's yamnet.tflite")
        if op.fused_activation != "RELU":
            raise WeightsError(f"{what}: fused activation {op.fused_activation}, YAMNet needs RELU")
        # 1x1/stride-1 pointwise convs are identical under SAME and VALID.
        if op.padding != "SAME" and not (kind == "pointwise" and op.padding == "VALID"):
            raise WeightsError(f"{what}: padding {op.padding}, YAMNet uses TF SAME padding")
        if op.stride != tuple(conv.stride) or (op.dilation not in (None, (1, 1))):
            raise WeightsError(
                f"{what}: stride {op.stride}/dilation {op.dilation} differ from YAMNet's stride {tuple(conv.stride)}"
            )
        if kind == "depthwise" and op.depth_multiplier not in (None, 1):
            raise WeightsError(f"{what}: depth multiplier {op.depth_multiplier}, YAMNet uses 1")
        if len(op.inputs) < 3 or op.inputs[2] < 0:
            raise WeightsError(f"{what}: no bias tensor; batch norm is not folded as expected")
        _assign(conv.weight, _tflite_to_torch(kind, tfl.array(op.inputs[1])), what)
        _assign(conv.bias, tfl.array(op.inputs[2]), what)  # type: ignore[arg-type]

    last_conv = ops[-1].index
    fcs = [op for op in tfl.ops_of_type("FULLY_CONNECTED") if op.index > last_conv]
    if len(fcs) != 1:
        raise WeightsError(f"{name}: expected one classifier after the convolutions, found {len(fcs)}")
    fc = fcs[0]
    what = f"{name} op {fc.index} (FULLY_CONNECTED classifier)"
    if fc.fused_activation not in ("NONE", None):
        raise WeightsError(f"{what}: fused activation {fc.fused_activation}, expected NONE (logits)")
    if len(fc.inputs) < 3 or fc.inputs[2] < 0:
        raise WeightsError(f"{what}: classifier has no bias")
    _assign(model.classifier.weight, tfl.array(fc.inputs[1]), what)  # (out, in) like torch
    _assign(model.classifier.bias, tfl.array(fc.inputs[2]), what)
    return model.eval()


# --------------------------------------------------------------------------- Keras h5
def _h5_weights(path: Path) -> dict[str, np.ndarray]:
    """All datasets of a Keras HDF5 file, keyed by path with any ':0' suffix removed."""
    try:
        import h5py
    except ImportError as exc:
        raise WeightsError("loading yamnet.h5 needs h5py: pip install h5py") from exc
    out: dict[str, np.ndarray] = {}
    try:
        with h5py.File(path, "r") as f:
            root = f["model_weights"] if "model_weights" in f else f  # full-model saves

            def visit(name: str, obj: object) -> None:
                if isinstance(obj, h5py.Dataset):
                    out[name.removesuffix(":0")] = np.asarray(obj[()])

            root.visititems(visit)
    except OSError as exc:
        raise WeightsError(f"{path.name} is not a readable HDF5 file ({exc}); download yamnet.h5 again") from exc
    return out


def _h5_find(weights: dict[str, np.ndarray], name: str, path: Path) -> np.ndarray | None:
    """The dataset whose key is ``name`` or ends with ``/name`` (Keras nests group/weight)."""
    hits = [k for k in weights if k == name or k.endswith("/" + name)]
    if len(hits) > 1:
        raise WeightsError(f"{path.name} has several weights named '{name}'; expected one YAMNet model")
    return weights[hits[0]] if hits else None


def _h5_get(weights: dict[str, np.ndarray], name: str, path: Path) -> np.ndarray:
    """Like :func:`_h5_find` but the weight must exist."""
    found = _h5_find(weights, name, path)
    if found is None:
        raise WeightsError(f"{path.name} has no weight '{name}'; expected Google's Keras yamnet.h5 layout")
    return found


def yamnet_from_h5(path: str | Path, eps: float = BN_EPSILON) -> YAMNet:
    """Build a :class:`YAMNet` from Google's float Keras ``yamnet.h5``, folding BN (eps 1e-4).

    Keras layouts: conv kernel (H, W, Cin, Cout) -> (Cout, Cin, H, W); depthwise kernel
    (H, W, C, 1) -> (C, 1, H, W); Dense ``logits`` kernel (1024, 521) -> (521, 1024).
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"YAMNet weights not found: {path}")
    weights = _h5_weights(path)
    model = YAMNet()
    convs = conv_modules(model)
    keras_names = ["layer1/conv"]
    for i in range(2, len(SEPARABLE_DEFS) + 2):
        keras_names += [f"layer{i}/depthwise_conv", f"layer{i}/pointwise_conv"]
    for keras_name, (kind, conv) in zip(keras_names, convs):
        what = f"{path.name} {keras_name}"
        kname = "depthwise_kernel" if kind == "depthwise" else "kernel"
        k = _h5_get(weights, f"{keras_name}/{kname}", path)
        if k.ndim != 4:
            raise WeightsError(f"{what}: kernel has shape {k.shape}, expected 4-D (H, W, Cin, Cout)")
        w = k.transpose(2, 3, 0, 1) if kind == "depthwise" else k.transpose(3, 2, 0, 1)
        bn = f"{keras_name}/bn"
        w, b = fold_batch_norm(
            w,
            beta=_h5_get(weights, f"{bn}/beta", path),
            mean=_h5_get(weights, f"{bn}/moving_mean", path),
            var=_h5_get(weights, f"{bn}/moving_variance", path),
            gamma=_h5_find(weights, f"{bn}/gamma", path),  # absent: YAMNet's BN has scale=False
            eps=eps,
        )
        _assign(conv.weight, w, what)
        _assign(conv.bias, b, what)  # type: ignore[arg-type]
    dense_k = _h5_get(weights, "logits/kernel", path)
    dense_b = _h5_get(weights, "logits/bias", path)
    _assign(model.classifier.weight, dense_k.T, f"{path.name} logits")
    _assign(model.classifier.bias, dense_b, f"{path.name} logits")
    return model.eval()


# --------------------------------------------------------------------- dispatching
def load_yamnet_file(path: str | Path) -> YAMNet:
    """Load YAMNet weights from ``.tflite`` (Google's TFLite) or ``.h5`` (Keras), by suffix."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"YAMNet weights not found: {path}; pass yamnet.tflite or yamnet.h5")
    suffix = path.suffix.lower()
    if suffix == ".tflite":
        return yamnet_from_tflite(path)
    if suffix in (".h5", ".hdf5"):
        return yamnet_from_h5(path)
    raise WeightsError(
        f"unknown YAMNet weights format '{suffix or path.name}'; pass yamnet.tflite or yamnet.h5"
    )


def load_class_names(csv_path: str | Path) -> list[str]:
    """Display names from ``yamnet_class_map.csv`` (index, mid, display_name), in index order."""
    csv_path = Path(csv_path)
    try:
        with csv_path.open(newline="", encoding="utf-8") as f:
            rows = list(csv.reader(f))
    except OSError as exc:
        raise WeightsError(f"cannot read YAMNet class map {csv_path}: {exc.strerror}") from exc
    if not rows or [c.strip() for c in rows[0][:3]] != ["index", "mid", "display_name"]:
        raise WeightsError(f"{csv_path.name} is not a YAMNet class map (header index,mid,display_name)")
    names: list[str] = []
    for n, row in enumerate(rows[1:]):
        if len(row) < 3 or row[0].strip() != str(n):
            raise WeightsError(f"{csv_path.name} line {n + 2} is malformed; download yamnet_class_map.csv again")
        names.append(row[2])
    return names
