"""YAMNet in PyTorch: TF SAME padding, Keras-h5 BN folding, and agreement with Google's TFLite.

The key test runs the published ``yamnet.tflite`` in ai-edge-litert on real EmoDB speech and
feeds the *same* log-mel patches to the PyTorch model loaded from that file.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from emolens.features.patches import frame_patches as _frame

from emolens.errors import WeightsError
from emolens.models import yamnet as Y
from emolens.models.tflite_reader import TFLiteModel, dequantize
from emolens.models.yamnet import (
    YAMNet,
    load_class_names,
    load_yamnet_file,
    same_padding,
    yamnet_from_h5,
    yamnet_from_tflite,
)

EMODB_FILES = ("03a01Fa", "03a01Nc", "03a01Wa")  # EmoDB originals, 1.90 + 1.61 + 1.88 s -> 5.39 s -> 11 YAMNet patches
STRIDES = [2, 1, 2, 1, 2, 1, 2, 1, 1, 1, 1, 1, 2, 1]  # layers[0..13]
CHANNELS = [32, 64, 128, 128, 256, 256, 512, 512, 512, 512, 512, 512, 1024, 1024]


# ----------------------------------------------------------------------------- shapes
def test_same_padding_matches_tf_rule() -> None:
    # TF docs: pad = max(k - s, 0) if n % s == 0 else max(k - n % s, 0); top = pad // 2.
    for n in range(1, 40):
        for k in (1, 3, 5):
            for s in (1, 2, 3):
                pad = max(k - s, 0) if n % s == 0 else max(k - n % s, 0)
                assert same_padding(n, k, s) == (pad // 2, pad - pad // 2)
    assert same_padding(96, 3, 2) == (0, 1)  # even input, stride 2: all padding bottom/right
    assert same_padding(3, 3, 2) == (1, 1)


def test_feature_map_and_block_shapes() -> None:
    torch.manual_seed(0)
    model = YAMNet().eval()
    seen: list[tuple[int, ...]] = []
    hooks = [blk.register_forward_hook(lambda m, i, o: seen.append(tuple(o.shape))) for blk in model.layers]
    x = torch.randn(1, 1, 96, 64)
    with torch.no_grad():
        fmap = model.feature_map(x)
        emb = model.embed(x)
        logits = model(x)
    for h in hooks:
        h.remove()
    assert fmap.shape == (1, 1024, 3, 2)
    assert emb.shape == (1, 1024) and logits.shape == (1, 521)
    torch.testing.assert_close(emb, fmap.mean(dim=(2, 3)))
    h, w = 96, 64
    expected = []
    for stride, ch in zip(STRIDES, CHANNELS):
        h, w = math.ceil(h / stride), math.ceil(w / stride)
        expected.append((1, ch, h, w))
    assert seen[: len(expected)] == expected
    # odd sizes: SAME padding gives ceil at every stride-2 layer (97 -> 49 -> 25 -> 13 -> 7 -> 4)
    with torch.no_grad():
        assert model.feature_map(torch.randn(2, 1, 97, 63)).shape == (2, 1024, 4, 2)
    with pytest.raises(ValueError):
        model(torch.randn(1, 96, 64))


def test_frame_patches_like_tf_signal_frame() -> None:
    frame_patches = lambda x: _frame(x, pad_end=False)  # noqa: E731
    spec = np.arange(624 * 64, dtype=np.float32).reshape(624, 64)
    p = frame_patches(spec)
    assert p.shape == (12, 96, 64)
    np.testing.assert_array_equal(p[5], spec[240:336])
    assert [frame_patches(spec[:t]).shape[0] for t in (95, 96, 143, 144)] == [0, 1, 1, 2]


# ------------------------------------------------------------------------- Keras h5
def _tf_same_pad_nhwc(x: np.ndarray, k: int, s: int) -> np.ndarray:
    """Independent TF-docs formulation of SAME padding for an NHWC array."""
    pads = []
    for n in x.shape[1:3]:
        total = max(k - s, 0) if n % s == 0 else max(k - n % s, 0)
        pads.append((total // 2, total - total // 2))
    return np.pad(x, ((0, 0), pads[0], pads[1], (0, 0)))


def _np_conv(x: np.ndarray, kern: np.ndarray, s: int, depthwise: bool) -> np.ndarray:
    """NHWC conv with a Keras kernel (kh, kw, cin, cout) or depthwise (kh, kw, c, 1)."""
    kh = kern.shape[0]
    ho, wo = math.ceil(x.shape[1] / s), math.ceil(x.shape[2] / s)
    xp = _tf_same_pad_nhwc(x, kh, s)
    out = 0.0
    for i in range(kh):
        for j in range(kern.shape[1]):
            patch = xp[:, i : i + s * ho : s, j : j + s * wo : s, :]
            out = out + (patch * kern[i, j, :, 0] if depthwise else patch @ kern[i, j])
    return out


def _random_keras_weights(rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Unfolded YAMNet parameters in Keras names/layouts (BN: beta, moving mean/var)."""
    w: dict[str, np.ndarray] = {}

    def bn(prefix: str, c: int) -> None:
        w[f"{prefix}/bn/beta:0"] = rng.normal(0, 0.2, c)
        w[f"{prefix}/bn/moving_mean:0"] = rng.normal(0, 0.3, c)
        w[f"{prefix}/bn/moving_variance:0"] = rng.uniform(0.3, 3.0, c)

    w["layer1/conv/kernel:0"] = rng.normal(0, math.sqrt(2 / 9), (3, 3, 1, 32))
    bn("layer1/conv", 32)
    cin = 32
    for i, cout in enumerate(CHANNELS[1:], start=2):
        w[f"layer{i}/depthwise_conv/depthwise_kernel:0"] = rng.normal(0, math.sqrt(2 / 9), (3, 3, cin, 1))
        bn(f"layer{i}/depthwise_conv", cin)
        w[f"layer{i}/pointwise_conv/kernel:0"] = rng.normal(0, math.sqrt(2 / cin), (1, 1, cin, cout))
        bn(f"layer{i}/pointwise_conv", cout)
        cin = cout
    w["logits/kernel:0"] = rng.normal(0, 0.05, (1024, 521))
    w["logits/bias:0"] = rng.normal(0, 0.1, 521)
    return {k: v.astype(np.float32) for k, v in w.items()}


def _write_keras_h5(path: Path, weights: dict[str, np.ndarray]) -> None:
    """Keras 2 ``save_weights`` layout: group per layer, dataset '<layer>/<weight_name>'."""
    h5py = pytest.importorskip("h5py")
    layers: dict[str, list[str]] = {}
    for name in weights:
        layers.setdefault(name.rsplit("/", 1)[0], []).append(name)
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = [n.encode() for n in layers]
        for layer, names in layers.items():
            g = f.require_group(layer)
            g.attrs["weight_names"] = [n.encode() for n in names]
            for n in names:
                g.create_dataset(n, data=weights[n])


def _keras_reference(x: np.ndarray, w: dict[str, np.ndarray], eps: float = 1e-4) -> tuple[np.ndarray, np.ndarray]:
    """Explicit-BN float64 forward in NHWC: x (B, 96, 64) -> (embeddings, logits)."""
    w = {k: v.astype(np.float64) for k, v in w.items()}

    def bn_relu(h: np.ndarray, p: str) -> np.ndarray:
        h = (h - w[f"{p}/bn/moving_mean:0"]) / np.sqrt(w[f"{p}/bn/moving_variance:0"] + eps) + w[f"{p}/bn/beta:0"]
        return np.maximum(h, 0)

    h = bn_relu(_np_conv(x[..., None].astype(np.float64), w["layer1/conv/kernel:0"], 2, False), "layer1/conv")
    for i, s in enumerate(STRIDES[1:], start=2):
        h = bn_relu(_np_conv(h, w[f"layer{i}/depthwise_conv/depthwise_kernel:0"], s, True), f"layer{i}/depthwise_conv")
        h = bn_relu(_np_conv(h, w[f"layer{i}/pointwise_conv/kernel:0"], 1, False), f"layer{i}/pointwise_conv")
    emb = h.mean(axis=(1, 2))
    return emb, emb @ w["logits/kernel:0"] + w["logits/bias:0"]


def test_h5_loader_folds_bn_and_matches_keras_reference(tmp_path: Path) -> None:
    pytest.importorskip("h5py")
    rng = np.random.default_rng(7)
    weights = _random_keras_weights(rng)
    path = tmp_path / "yamnet.h5"
    _write_keras_h5(path, weights)
    x = rng.normal(-2.0, 1.5, (3, 96, 64)).astype(np.float32)  # log-mel-like values
    ref_emb, ref_logits = _keras_reference(x, weights)
    assert (ref_emb > 0).mean() > 0.2  # the random net is not dead: the test can fail

    model = load_yamnet_file(path)
    with torch.no_grad():
        emb = model.embed(torch.from_numpy(x[:, None])).double().numpy()
        logits = model(torch.from_numpy(x[:, None])).double().numpy()
    assert np.linalg.norm(emb - ref_emb) / np.linalg.norm(ref_emb) < 1e-5  # measured 2.1e-7
    assert np.abs(logits - ref_logits).max() < 1e-4 * max(1.0, np.abs(ref_logits).max())  # 4.3e-7

    # BN with the wrong epsilon is measurably different (the check is sensitive).
    loose = yamnet_from_h5(path, eps=1e-3)
    with torch.no_grad():
        emb_loose = loose.embed(torch.from_numpy(x[:, None])).double().numpy()
    assert np.linalg.norm(emb_loose - ref_emb) / np.linalg.norm(ref_emb) > 1e-4  # measured 1.8e-3


def test_h5_loader_rejects_missing_weight(tmp_path: Path) -> None:
    pytest.importorskip("h5py")
    weights = _random_keras_weights(np.random.default_rng(1))
    del weights["layer5/pointwise_conv/bn/moving_variance:0"]
    path = tmp_path / "broken.h5"
    _write_keras_h5(path, weights)
    with pytest.raises(WeightsError, match="layer5/pointwise_conv/bn/moving_variance"):
        yamnet_from_h5(path)


def test_load_yamnet_file_errors(tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match="not found"):
        load_yamnet_file(tmp_path / "nope.tflite")
    (tmp_path / "w.pt").write_bytes(b"\0" * 16)
    with pytest.raises(WeightsError, match="unknown YAMNet weights format"):
        load_yamnet_file(tmp_path / "w.pt")
    (tmp_path / "junk.tflite").write_bytes(b"this is not a flatbuffer at all")
    with pytest.raises(WeightsError, match="not a TensorFlow Lite"):
        load_yamnet_file(tmp_path / "junk.tflite")
    (tmp_path / "junk.h5").write_bytes(b"not hdf5")
    with pytest.raises(WeightsError, match="not a readable HDF5|needs h5py"):
        load_yamnet_file(tmp_path / "junk.h5")


def test_dequantize_per_channel_and_per_tensor() -> None:
    q = np.array([[[[-128, 0, 5]], [[127, 2, -5]]]], dtype=np.int8)  # (1, 2, 1, 3)
    out = dequantize(q, np.array([0.5, 2.0, 0.1]), np.array([0, 1, -5]), axis=3)
    expected = np.array([[[[-64.0, -2.0, 1.0]], [[63.5, 2.0, 0.0]]]], dtype=np.float32)
    np.testing.assert_allclose(out, expected, rtol=1e-6)
    np.testing.assert_allclose(dequantize(q, np.array([0.25]), np.array([2]), axis=0), 0.25 * (q.astype(np.float32) - 2))
    with pytest.raises(WeightsError):
        dequantize(q, np.array([1.0, 2.0]), np.array([0, 0]), axis=3)


# ----------------------------------------------------------------- published TFLite
def _load_emodb_16k(emodb_dir: Path) -> np.ndarray:
    import soundfile as sf
    import soxr

    parts = []
    for stem in EMODB_FILES:
        x, sr = sf.read(emodb_dir / "wav" / f"{stem}.flac", dtype="float32", always_2d=False)
        parts.append(soxr.resample(x, sr, 16000, quality="HQ"))
    return np.concatenate(parts).astype(np.float32)


def _run_tflite(path: Path, wave: np.ndarray, builtin_kernels: bool) -> tuple[dict[str, np.ndarray], object]:
    """Run the interpreter on a waveform -> ({scores, embeddings, log_mel}, interpreter)."""
    litert = pytest.importorskip("ai_edge_litert.interpreter")
    kwargs = {}
    if builtin_kernels:  # TFLite's own hybrid kernels, all intermediate tensors kept
        kwargs = dict(
            experimental_op_resolver_type=litert.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
            experimental_preserve_all_tensors=True,
        )
    it = litert.Interpreter(model_path=str(path), **kwargs)
    inp = it.get_input_details()[0]
    assert inp["name"] == "waveform"
    it.resize_tensor_input(inp["index"], wave.shape)
    it.allocate_tensors()
    it.set_tensor(inp["index"], wave)
    it.invoke()
    outs = {d["name"]: it.get_tensor(d["index"]).copy() for d in it.get_output_details()}
    by_cols = {v.shape[1]: v for v in outs.values()}
    return {"scores": by_cols[521], "embeddings": by_cols[1024], "log_mel": by_cols[64]}, it


@pytest.fixture(scope="module")
def published(weights_dir: Path, emodb_dir: Path) -> dict:
    path = weights_dir / "yamnet.tflite"
    if not path.exists():
        pytest.skip(f"{path} not present")
    wave = _load_emodb_16k(emodb_dir)
    default, _ = _run_tflite(path, wave, builtin_kernels=False)
    builtin, interp = _run_tflite(path, wave, builtin_kernels=True)
    return {
        "path": path,
        "default": default,
        "builtin": builtin,
        "interp": interp,
        "model": yamnet_from_tflite(path),
        "reader": TFLiteModel(path),
    }


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def _torch_outputs(model: YAMNet, log_mel: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x = torch.from_numpy(_frame(log_mel, pad_end=False)[:, None].astype(np.float32))
    with torch.no_grad():
        return model.embed(x).numpy(), model.scores(x).numpy()


def _agrees(model: YAMNet, ref: dict[str, np.ndarray]) -> tuple[bool, dict[str, float]]:
    """Float PyTorch vs the TFLite run on the same patches; tolerances for hybrid int8."""
    emb, scores = _torch_outputs(model, ref["log_mel"])
    stats = {
        "min_cos": float(_cosines(emb, ref["embeddings"]).min()),
        "score_max_abs": float(np.abs(scores - ref["scores"]).max()),
    }
    ok = stats["min_cos"] > 0.995 and stats["score_max_abs"] < 0.02
    return ok, stats


@pytest.mark.slow
def test_pytorch_yamnet_matches_published_tflite(published: dict) -> None:
    ref = published["default"]
    assert ref["scores"].shape == (11, 521) and ref["embeddings"].shape == (11, 1024)
    assert _frame(ref["log_mel"], pad_end=False).shape[0] == 11  # YAMNet's own framing, 96 / hop 48
    model = published["model"]
    ok, stats = _agrees(model, ref)
    # measured: min cosine 0.9980, score max |diff| 0.0059 (TFLite quantizes activations to int8)
    assert ok, stats
    emb, scores = _torch_outputs(model, ref["log_mel"])
    assert np.linalg.norm(emb - ref["embeddings"]) / np.linalg.norm(ref["embeddings"]) < 0.08  # measured 0.045
    assert int(scores.mean(0).argmax()) == 0 == int(ref["scores"].mean(0).argmax())  # "Speech"
    assert scores.mean(0)[0] > 0.9  # measured 0.987


@pytest.mark.slow
def test_wrong_layout_or_padding_fails_the_comparison(published: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    ref = published["default"]
    swapped = copy.deepcopy(published["model"])
    for blk in list(swapped.layers)[1:]:  # depthwise kernels with H and W swapped
        blk.depthwise.weight.data = blk.depthwise.weight.data.transpose(2, 3).contiguous()
    ok, stats = _agrees(swapped, ref)
    assert not ok and stats["min_cos"] < 0.9, stats  # measured min cosine 0.19
    per_op = _per_op_errors(swapped, published)
    assert min(e for e in [x[2] for x in per_op][1:27:2]) > 0.3  # every depthwise op; measured >= 0.54

    # Padding on the wrong side (extra pixel top/left instead of bottom/right) also fails.
    real = Y.same_padding
    monkeypatch.setattr(Y, "same_padding", lambda n, k, s, d=1: real(n, k, s, d)[::-1])
    ok, stats = _agrees(published["model"], ref)
    assert not ok and stats["min_cos"] < 0.9, stats  # measured min cosine 0.20
    per_op = _per_op_errors(published["model"], published)
    stride2 = [e for (_, _, e), s in zip(per_op, [2] + [x for s in STRIDES[1:] for x in (s, 1)]) if s == 2]
    assert len(stride2) == 5 and min(stride2) > 0.3  # measured >= 0.85


def _quantize_activations(x: torch.Tensor) -> torch.Tensor:
    """TFLite hybrid kernels' on-the-fly input quantization: asymmetric int8 per batch row."""
    flat = x.reshape(x.shape[0], -1).double()
    rmin = flat.min(1).values.clamp(max=0)
    rmax = flat.max(1).values.clamp(min=0)
    scale = ((rmax - rmin) / 255.0).clamp(min=1e-30)
    zp_min, zp_max = -128 - rmin / scale, 127 - rmax / scale
    use_min = (128 + (rmin / scale).abs()) < (127 + (rmax / scale).abs())
    zp = torch.where(use_min, zp_min, zp_max).round().clamp(-128, 127)
    q = (zp[:, None] + flat * (1.0 / scale[:, None])).round().clamp(-128, 127)
    return ((q - zp[:, None]) * scale[:, None]).reshape(x.shape).float()


def _per_op_errors(model: YAMNet, published: dict) -> list[tuple[int, str, float]]:
    """Each conv/FC op of the TFLite graph vs its PyTorch module, fed TFLite's own input tensor.

    Int8-weight ops get their input quantized like TFLite's hybrid kernels do, so every op
    should agree to float rounding. Returns (op index, weight type, relative L2 error).
    """
    reader: TFLiteModel = published["reader"]
    interp = published["interp"]
    convs = reader.ops_of_type("CONV_2D", "DEPTHWISE_CONV_2D")
    fc = reader.ops_of_type("FULLY_CONNECTED")[-1]
    pairs = list(zip(convs, [m for _, m in Y.conv_modules(model)])) + [(fc, model.classifier)]
    out = []
    for op, mod in pairs:
        wtype = reader.tensors[op.inputs[1]].type_name
        x = torch.from_numpy(interp.get_tensor(op.inputs[0]))
        want = interp.get_tensor(op.outputs[0])
        with torch.no_grad():
            if wtype == "INT8":
                x = _quantize_activations(x)
            if op is fc:
                got = mod(x).numpy()
            else:
                got = torch.relu(mod(x.permute(0, 3, 1, 2))).permute(0, 2, 3, 1).numpy()
        out.append((op.index, wtype, float(np.linalg.norm(got - want) / np.linalg.norm(want))))
    return out


@pytest.mark.slow
def test_each_op_matches_tflite_on_its_own_inputs(published: dict) -> None:
    """Per op (27 convs + classifier), PyTorch == TFLite's builtin kernels to float rounding."""
    errors = _per_op_errors(published["model"], published)
    assert len(errors) == 28
    assert sum(t == "FLOAT32" for _, t, _ in errors) == 3  # first conv + 2 depthwise (2 stride-2)
    worst_float = max(e for _, t, e in errors if t == "FLOAT32")
    worst_int8 = max(e for _, t, e in errors if t == "INT8")
    assert worst_float < 1e-5, errors  # measured 1.4e-7
    assert worst_int8 < 5e-4, errors  # measured 3.7e-5 (without input quantization: up to 0.02)


@pytest.mark.slow
def test_tflite_reader_lists_yamnet_ops(published: dict) -> None:
    reader: TFLiteModel = published["reader"]
    ops = reader.ops_of_type("CONV_2D", "DEPTHWISE_CONV_2D")
    assert len(ops) == 27
    assert [op.stride[0] for op in ops[1::2]] == STRIDES[1:]  # the depthwise strides
    assert ops[0].stride == (2, 2) and reader.tensors[ops[0].inputs[1]].shape == (32, 3, 3, 1)
    assert all(op.fused_activation == "RELU" and op.padding == "SAME" for op in ops)
    fc = reader.ops_of_type("FULLY_CONNECTED")[-1]
    t = reader.tensors[fc.inputs[1]]
    assert t.shape == (521, 1024) and t.type_name == "INT8" and t.quantized_dimension == 0
    raw = reader.raw_array(fc.inputs[1]).astype(np.float64)
    deq = reader.array(fc.inputs[1])
    row = 100
    np.testing.assert_allclose(deq[row], t.scales[row] * (raw[row] - t.zero_points[row]), rtol=1e-6)


@pytest.mark.slow
def test_tflite_loader_checks_fused_activation_and_padding(
    published: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = TFLiteModel.ops_of_type

    def patched(field: str, value: str):  # noqa: ANN202
        def ops_of_type(self: TFLiteModel, *types: str) -> list:
            ops = real(self, *types)
            return [dataclasses.replace(o, **{field: value}) if o.index == ops[3].index else o for o in ops]

        return ops_of_type

    monkeypatch.setattr(TFLiteModel, "ops_of_type", patched("fused_activation", "RELU6"))
    with pytest.raises(WeightsError, match="RELU6"):
        yamnet_from_tflite(published["path"])
    monkeypatch.setattr(TFLiteModel, "ops_of_type", patched("padding", "VALID"))
    with pytest.raises(WeightsError, match="padding VALID"):
        yamnet_from_tflite(published["path"])


@pytest.mark.slow
def test_class_names(weights_dir: Path, tmp_path: Path) -> None:
    names = load_class_names(weights_dir / "yamnet_class_map.csv")
    assert len(names) == 521
    assert names[0] == "Speech" and names[1] == "Child speech, kid speaking"
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b,c\n0,x,y\n")
    with pytest.raises(WeightsError):
        load_class_names(bad)
