"""Why int8 VGGish needs 7-bit weights: ``python benchmarks/int8_saturation.py``.

Quantises the VGGish-like net of ``tests/models/test_backends.py`` as
:func:`emolens.models.onnx_export.quantize_vggish` does, with 8-bit and with 7-bit
(``reduce_range``) weights, and computes its int8 graph in numpy as ONNX Runtime's MLAS
does: exact int32 sums (CPUs with VNNI, e.g. this one) and with the int16 pair saturation
of VPMADDUBSW (the u8 x s8 kernels of AVX2/AVX512 CPUs without VNNI). Prints max |delta p|
against float for each, next to ONNX Runtime on this machine (which the exact emulation
must match). Measured: 8-bit weights 0.005 exact / 0.083 saturated (the 0.082 of issue 13,
seen on a fresh machine), 7-bit 0.006 both ways (no pair can saturate).
"""
import importlib.util
import logging
import tempfile
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnx import numpy_helper

REPO = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("tb", REPO / "tests/models/test_backends.py")
tb = importlib.util.module_from_spec(spec)
spec.loader.exec_module(tb)

def q(x, s, z, lo=0, hi=255):
    return np.clip(np.round(x / s) + z, lo, hi).astype(np.int64)

def int_dot(xq, wq, saturate):  # xq (M, K) u8, wq (K, N) s8 -> int32 sum_k xq*wq
    if not saturate:
        return xq @ wq
    K = xq.shape[1]
    if K % 2:
        xq = np.pad(xq, ((0, 0), (0, 1))); wq = np.pad(wq, ((0, 1), (0, 0)))
    p = xq[:, 0::2, None] * wq[None, 0::2] + xq[:, 1::2, None] * wq[None, 1::2]  # (M, K/2, N) pair sums
    return np.clip(p, -32768, 32767).sum(1), float(np.mean((p > 32767) | (p < -32768)))

def im2col(x, zx, k=3, pad=1):  # x (n, c, h, w) -> (n*h*w, c*k*k) in (c, kh, kw) order
    n, c, h, w = x.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)), constant_values=zx)  # padding is real 0
    cols = np.stack([xp[:, :, i:i + h, j:j + w] for i in range(k) for j in range(k)], 2)  # (n, c, 9, h, w)
    return cols.reshape(n, c * k * k, h * w).transpose(0, 2, 1).reshape(n * h * w, c * k * k), (n, h, w)

def run(path, x, saturate):
    m = onnx.load(path)
    I = {i.name: numpy_helper.to_array(i) for i in m.graph.initializer}
    sat = []
    def layer(a, in_name, wname, out_name, conv):
        sx, zx = float(I[in_name + "_scale"]), int(I[in_name + "_zero_point"])
        xq = q(a, sx, zx)
        wq = I[wname + ".weight_quantized"].astype(np.int64); sw = I[wname + ".weight_scale"]
        bq = I[wname + ".bias_quantized"].astype(np.int64)
        if conv:
            cols, (n, h, w) = im2col(xq, zx)
            W = wq.reshape(wq.shape[0], -1).T
            r = int_dot(cols, W, saturate)
        else:
            cols, W = xq, wq.T
            r = int_dot(cols, W, saturate)
        acc = r[0] if saturate else r
        if saturate:
            sat.append(r[1])
        acc = acc - zx * W.sum(0)[None] + bq[None]
        y = acc * (sx * sw)[None]
        so, zo = float(I[out_name + "_scale"]), int(I[out_name + "_zero_point"])
        y = (q(y, so, zo) - zo) * so
        if conv:
            y = y.reshape(n, h, w, -1).transpose(0, 3, 1, 2)
        return y
    a = layer(x, "patches", "features.0", "/features/features.0/Conv_output_0", True)
    a = np.maximum(a, 0); a = a.reshape(a.shape[0], a.shape[1], 24, 4, 16, 4).max((3, 5))
    a = layer(a, "/features/features.2/MaxPool_output_0", "features.3", "/features/features.3/Conv_output_0", True)
    a = np.maximum(a, 0); a = a.reshape(a.shape[0], a.shape[1], 6, 4, 4, 4).max((3, 5))
    a = a.reshape(len(a), -1)
    a = layer(a, "/embeddings/embeddings.0/Flatten_output_0", "embeddings.1", "/embeddings/embeddings.1/Gemm_output_0", False)
    e = np.exp(a - a.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True), sat

def quantised(tmp: Path, reduce_range: bool) -> str:
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    src = tmp / "f.onnx"
    torch.onnx.export(net, (torch.zeros(2, 1, 96, 64),), str(src), input_names=["patches"], output_names=["probs"],
                      dynamic_axes={"patches": {0: "n"}, "probs": {0: "n"}}, dynamo=False)
    nodes = [n.name for n in onnx.load(str(src)).graph.node if n.op_type in ("Conv", "Gemm")]
    cal = np.ascontiguousarray(x[:48, None])

    class R(CalibrationDataReader):  # the same batches as quantize_vggish
        def __init__(self):
            self.i = 0

        def get_next(self):
            if self.i >= len(cal):
                return None
            self.i += 32
            return {"patches": cal[self.i - 32:self.i]}

    dest = tmp / f"q{int(reduce_range)}.onnx"
    logging.disable(logging.WARNING)
    quantize_static(str(src), str(dest), R(), quant_format=QuantFormat.QDQ, per_channel=True, reduce_range=reduce_range,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, nodes_to_quantize=nodes)
    logging.disable(logging.NOTSET)
    return str(dest)


net = tb._VGGishLike().eval()
x = tb._patches(64)
with torch.no_grad():
    ref = net(torch.from_numpy(x[48:, None])).numpy()
xt = x[48:, None].astype(np.float64)
with tempfile.TemporaryDirectory() as d:
    for rr in (False, True):
        path = quantised(Path(d), rr)
        got = ort.InferenceSession(path, providers=["CPUExecutionProvider"]).run(None, {"patches": np.ascontiguousarray(x[48:, None])})[0]
        exact, _ = run(path, xt, False)
        satd, frac = run(path, xt, True)
        print(f"{'7-bit (reduce_range)' if rr else '8-bit':<21} weights: max |delta p| vs float: ONNX Runtime here {np.abs(got - ref).max():.4f}; "
              f"emulated exact int32 {np.abs(exact - ref).max():.4f} (vs ONNX Runtime {np.abs(exact - got).max():.4f}); "
              f"emulated int16 pair saturation (no VNNI) {np.abs(satd - ref).max():.4f}, "
              f"saturated pairs per layer {', '.join('%.2f%%' % (100 * f) for f in frac)}")
