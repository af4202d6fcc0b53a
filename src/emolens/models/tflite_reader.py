"""Minimal, interpreter-free reader for TensorFlow Lite flatbuffers.

Reads a ``.tflite`` file with the ``tflite`` flatbuffer bindings and exposes, for the
first (main) subgraph:

* the operators in execution order (:class:`OperatorInfo`): op type name, input and
  output tensor indices, fused activation, strides, padding, dilation, depth multiplier;
* the tensors (:class:`TensorInfo`) and their constant buffers as numpy arrays, with
  dequantization of quantized weights: ``w = scale[c] * (q - zero_point[c])`` along
  ``quantized_dimension`` (per-channel), or with one scale/zero point (per-tensor).

Nothing is executed; this is for copying weights into other frameworks.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from emolens.errors import WeightsError

_TFLITE_IDENTIFIER = b"TFL3"

# TensorType enum value -> numpy dtype (only the types that hold plain numbers).
_NUMPY_DTYPES: dict[str, np.dtype] = {
    "FLOAT32": np.dtype("<f4"),
    "FLOAT16": np.dtype("<f2"),
    "FLOAT64": np.dtype("<f8"),
    "INT8": np.dtype("i1"),
    "UINT8": np.dtype("u1"),
    "INT16": np.dtype("<i2"),
    "UINT16": np.dtype("<u2"),
    "INT32": np.dtype("<i4"),
    "UINT32": np.dtype("<u4"),
    "INT64": np.dtype("<i8"),
    "UINT64": np.dtype("<u8"),
    "BOOL": np.dtype("?"),
    "COMPLEX64": np.dtype("<c8"),
    "COMPLEX128": np.dtype("<c16"),
}


def _import_tflite():  # noqa: ANN202 - returns the module
    try:
        import tflite
    except ImportError as exc:  # pragma: no cover - dependency is declared
        raise WeightsError(
            "reading .tflite files needs the 'tflite' package: pip install tflite"
        ) from exc
    return tflite


def _enum_names(enum_cls: type) -> dict[int, str]:
    """Reverse map of a flatbuffers enum class: value -> NAME."""
    return {v: k for k, v in vars(enum_cls).items() if not k.startswith("_") and isinstance(v, int)}


@dataclass(frozen=True)
class TensorInfo:
    """One tensor of the subgraph; quantization fields are empty when not quantized."""

    index: int
    name: str
    shape: tuple[int, ...]
    type_name: str  # e.g. "FLOAT32", "INT8"
    buffer: int
    scales: np.ndarray  # (n,) float32; n = 0 when unquantized
    zero_points: np.ndarray  # (n,) int64
    quantized_dimension: int

    @property
    def is_quantized(self) -> bool:
        return self.scales.size > 0


@dataclass(frozen=True)
class OperatorInfo:
    """One operator; option fields are None when the op has no such option."""

    index: int
    op_type: str  # e.g. "CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"
    inputs: tuple[int, ...]  # tensor indices, -1 for an omitted optional input
    outputs: tuple[int, ...]
    fused_activation: str | None  # "NONE", "RELU", "RELU6", ...
    stride: tuple[int, int] | None  # (h, w)
    padding: str | None  # "SAME" or "VALID"
    dilation: tuple[int, int] | None  # (h, w)
    depth_multiplier: int | None


def _read_options(tfl, op, option_names: dict[int, str]) -> dict[str, object]:  # noqa: ANN001
    """Decode the common fields of an operator's builtin options (if any)."""
    opt_type = op.BuiltinOptionsType()
    table = op.BuiltinOptions()
    name = option_names.get(opt_type)
    out: dict[str, object] = {}
    if table is None or name is None or not hasattr(tfl, name):
        return out
    options = getattr(tfl, name)()
    options.Init(table.Bytes, table.Pos)
    act_names = _enum_names(tfl.ActivationFunctionType)
    pad_names = _enum_names(tfl.Padding)
    if hasattr(options, "FusedActivationFunction"):
        out["fused_activation"] = act_names.get(options.FusedActivationFunction(), "UNKNOWN")
    if hasattr(options, "Padding"):
        out["padding"] = pad_names.get(options.Padding(), "UNKNOWN")
    if hasattr(options, "StrideH"):
        out["stride"] = (int(options.StrideH()), int(options.StrideW()))
    if hasattr(options, "DilationHFactor"):
        out["dilation"] = (int(options.DilationHFactor()), int(options.DilationWFactor()))
    if hasattr(options, "DepthMultiplier"):
        out["depth_multiplier"] = int(options.DepthMultiplier())
    return out


class TFLiteModel:
    """Parsed view of a ``.tflite`` file (main subgraph only).

    Attributes:
        operators: operators in execution order.
        tensors: all tensors of the subgraph, indexed like the flatbuffer.
        inputs / outputs: tensor indices of the subgraph inputs and outputs.
    """

    def __init__(self, source: str | Path | bytes) -> None:
        tfl = _import_tflite()
        if isinstance(source, (bytes, bytearray)):
            data = bytes(source)
            label = "<bytes>"
        else:
            label = str(source)
            try:
                data = Path(source).read_bytes()
            except OSError as exc:
                raise WeightsError(f"cannot read TFLite file {label}: {exc.strerror}") from exc
        if len(data) < 8 or data[4:8] != _TFLITE_IDENTIFIER:
            raise WeightsError(
                f"{label} is not a TensorFlow Lite flatbuffer (no 'TFL3' identifier); "
                "pass Google's yamnet.tflite"
            )
        self._data = data
        try:
            self._model = tfl.Model.GetRootAsModel(data, 0)
            if self._model.SubgraphsLength() < 1:
                raise WeightsError(f"{label} has no subgraph; the file is truncated or corrupt")
            graph = self._model.Subgraphs(0)
            self.tensors = [self._tensor_info(graph.Tensors(i), i) for i in range(graph.TensorsLength())]
            self.operators = self._operators(tfl, graph)
            self.inputs = tuple(int(graph.Inputs(i)) for i in range(graph.InputsLength()))
            self.outputs = tuple(int(graph.Outputs(i)) for i in range(graph.OutputsLength()))
        except WeightsError:
            raise
        except Exception as exc:  # flatbuffers raise assorted errors on garbage
            raise WeightsError(
                f"{label} could not be parsed as TFLite ({type(exc).__name__}); "
                "the file is truncated or corrupt: download it again"
            ) from exc
        self.label = label

    # -- construction helpers -------------------------------------------------
    def _tensor_info(self, t, index: int) -> TensorInfo:  # noqa: ANN001
        tfl = _import_tflite()
        type_name = _enum_names(tfl.TensorType).get(t.Type(), "UNKNOWN")
        shape = tuple(int(s) for s in t.ShapeAsNumpy()) if t.ShapeLength() else ()
        q = t.Quantization()
        scales = np.zeros(0, np.float32)
        zeros = np.zeros(0, np.int64)
        qdim = 0
        if q is not None and q.ScaleLength() > 0:
            scales = np.asarray(q.ScaleAsNumpy(), dtype=np.float32)
            zeros = (
                np.asarray(q.ZeroPointAsNumpy(), dtype=np.int64)
                if q.ZeroPointLength()
                else np.zeros(scales.size, np.int64)
            )
            qdim = int(q.QuantizedDimension())
        name = t.Name().decode("utf-8", "replace") if t.Name() is not None else ""
        return TensorInfo(index, name, shape, type_name, int(t.Buffer()), scales, zeros, qdim)

    def _operators(self, tfl, graph) -> list[OperatorInfo]:  # noqa: ANN001
        op_names = _enum_names(tfl.BuiltinOperator)
        option_names = _enum_names(tfl.BuiltinOptions)
        ops: list[OperatorInfo] = []
        for i in range(graph.OperatorsLength()):
            op = graph.Operators(i)
            code = self._model.OperatorCodes(op.OpcodeIndex())
            # Schema v3a: the real code is the max of the deprecated and the new field.
            builtin = max(int(code.BuiltinCode()), int(code.DeprecatedBuiltinCode()))
            op_type = op_names.get(builtin, f"BUILTIN_{builtin}")
            if op_type == "CUSTOM" and code.CustomCode() is not None:
                op_type = "CUSTOM:" + code.CustomCode().decode("utf-8", "replace")
            opts = _read_options(tfl, op, option_names)
            ops.append(
                OperatorInfo(
                    index=i,
                    op_type=op_type,
                    inputs=tuple(int(op.Inputs(j)) for j in range(op.InputsLength())),
                    outputs=tuple(int(op.Outputs(j)) for j in range(op.OutputsLength())),
                    fused_activation=opts.get("fused_activation"),  # type: ignore[arg-type]
                    stride=opts.get("stride"),  # type: ignore[arg-type]
                    padding=opts.get("padding"),  # type: ignore[arg-type]
                    dilation=opts.get("dilation"),  # type: ignore[arg-type]
                    depth_multiplier=opts.get("depth_multiplier"),  # type: ignore[arg-type]
                )
            )
        return ops

    # -- public API --------------------------------------------------------------
    def ops_of_type(self, *op_types: str) -> list[OperatorInfo]:
        """Operators whose type is one of ``op_types``, in execution order."""
        return [op for op in self.operators if op.op_type in op_types]

    def raw_array(self, tensor_index: int) -> np.ndarray:
        """The constant buffer of a tensor as stored (no dequantization), shaped.

        Raises WeightsError when the tensor has no constant data (an activation).
        """
        info = self.tensors[tensor_index]
        try:
            buf = self._model.Buffers(info.buffer)
            if buf.Offset() > 1:  # large models keep data outside the flatbuffer
                raw = self._data[buf.Offset() : buf.Offset() + buf.Size()]
            else:
                raw = buf.DataAsNumpy().tobytes() if buf.DataLength() > 0 else b""
        except Exception as exc:  # out-of-range offsets in a truncated file
            raise WeightsError(
                f"tensor {info.name!r} in {self.label} cannot be read ({type(exc).__name__}); "
                "the file is truncated or corrupt: download it again"
            ) from exc
        if not raw:
            raise WeightsError(
                f"tensor {tensor_index} ({info.name!r}) in {self.label} holds no constant data"
            )
        dtype = _NUMPY_DTYPES.get(info.type_name)
        if dtype is None:
            raise WeightsError(f"tensor {info.name!r} has unsupported type {info.type_name}")
        arr = np.frombuffer(raw, dtype=dtype)
        if arr.size != int(np.prod(info.shape, dtype=np.int64)):
            raise WeightsError(
                f"tensor {info.name!r} in {self.label} has {arr.size} values for shape "
                f"{info.shape}; the file is corrupt: download it again"
            )
        return arr.reshape(info.shape).copy()

    def array(self, tensor_index: int) -> np.ndarray:
        """A constant tensor as float32 (dequantized when quantized, float16 upcast)."""
        info = self.tensors[tensor_index]
        raw = self.raw_array(tensor_index)
        if info.is_quantized and raw.dtype.kind in "iu":
            return dequantize(raw, info.scales, info.zero_points, info.quantized_dimension)
        if raw.dtype.kind == "f":
            return raw.astype(np.float32)
        return raw


def dequantize(
    q: np.ndarray, scales: np.ndarray, zero_points: np.ndarray, axis: int
) -> np.ndarray:
    """``scale[c] * (q - zero_point[c])`` along ``axis`` (or per tensor if one scale); float32."""
    scales = np.asarray(scales, dtype=np.float64)
    zero_points = np.asarray(zero_points, dtype=np.float64)
    if zero_points.size == 0:
        zero_points = np.zeros_like(scales)
    qf = q.astype(np.float64)
    if scales.size == 1:
        return (scales[0] * (qf - zero_points[0])).astype(np.float32)
    if q.ndim == 0 or q.shape[axis] != scales.size:
        raise WeightsError(
            f"quantization has {scales.size} scales but dimension {axis} of shape "
            f"{q.shape} does not match; the file is corrupt"
        )
    bshape = [1] * q.ndim
    bshape[axis] = scales.size
    return (scales.reshape(bshape) * (qf - zero_points.reshape(bshape))).astype(np.float32)
