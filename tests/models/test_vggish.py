"""VGGish: exact shapes, torchvggish state-dict layout, NHWC flatten, TF1 checkpoint reader,
PCA postprocessing."""

from __future__ import annotations

import base64
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from emolens.errors import WeightsError
from emolens.models.vggish import (
    Postprocessor,
    VGGish,
    flatten_nhwc,
    postprocessor_from_file,
    state_dict_from_tf,
    state_dict_layout,
    tf_conv_to_torch,
    tf_dense_to_torch,
    vggish_from_file,
    vggish_from_pth,
    vggish_from_state_dict,
    vggish_from_tf_checkpoint,
)
from emolens.models.weights import read_tf1_checkpoint

# torchvggish's state-dict layout (key -> shape), written out independently of the model
TORCHVGGISH_KEYS: dict[str, tuple[int, ...]] = {
    "features.0.weight": (64, 1, 3, 3),
    "features.0.bias": (64,),
    "features.3.weight": (128, 64, 3, 3),
    "features.3.bias": (128,),
    "features.6.weight": (256, 128, 3, 3),
    "features.6.bias": (256,),
    "features.8.weight": (256, 256, 3, 3),
    "features.8.bias": (256,),
    "features.11.weight": (512, 256, 3, 3),
    "features.11.bias": (512,),
    "features.13.weight": (512, 512, 3, 3),
    "features.13.bias": (512,),
    "embeddings.0.weight": (4096, 12288),
    "embeddings.0.bias": (4096,),
    "embeddings.2.weight": (4096, 4096),
    "embeddings.2.bias": (4096,),
    "embeddings.4.weight": (128, 4096),
    "embeddings.4.bias": (128,),
}

# A TF1 "V1" checkpoint written by TensorFlow 2.21 (tf.compat.v1.train.Saver(write_version=V1)):
# conv/weights (3,3,2,3) + conv/biases, fc/weights (12,4) + fc/biases (random), part/w (5,3)
# saved as 2 slices (fixed_size_partitioner) with its full value in expected/part,
# global_step int64 123456789012, dbl float64 [[1.5,-2.25],[1e-300,3]], neg int32 [-3,0,7],
# expected/pool_out = TF max_pool(relu(conv2d(X, conv/weights, SAME) + b), 2, 2) for X below,
# expected/fc_out = reshape(XF, [1, -1]) @ fc/weights + fc/biases (TF's NHWC flatten).
TF1_FIXTURE = (
    "AADxAgruAgoZCgtjb252L2JpYXNlcxIEEgIIAxgBIgIKAAosCgxjb252L3dlaWdodHMSEBICCAMSAggDEgIIAhICCAMYASII"
    "CgAKAAoACgAKFwoDZGJsEggSAggCEgIIAhgCIgQKAAoACiMKD2V4cGVjdGVkL2ZjX291dBIIEgIIARICCAQYASIECgAKAAoh"
    "Cg1leHBlY3RlZC9wYXJ0EggSAggFEgIIAxgBIgQKAAoACjEKEWV4cGVjdGVkL3Bvb2xfb3V0EhASAggBEgIIAxICCAISAggD"
    "GAEiCAoACgAKAAoAChcKCWZjL2JpYXNlcxIEEgIIBBgBIgIKAAoeCgpmYy93ZWlnaHRzEggSAggMEgIIBBgBIgQKAAoAChMK"
    "C2dsb2JhbF9zdGVwEgAYCSIAChEKA25lZxIEEgIIAxgDIgIKAAoqCgZwYXJ0L3cSCBICCAUSAggDGAEiCAoCEAMKAhADIgoK"
    "BAgDEAIKAhADEgIIAQASIwBjb252L2JpYXNlcwABAQGAfxIhCgtjb252L2JpYXNlcxICCgAaDioMB+mkv3BNyj4YF9w+BhP5"
    "AXdlaWdodHMAAQEEgH+Af4B/gH8S9gEKDGNvbnYvd2VpZ2h0cxIICgAKAAoACgAa2wEq2AFsvwA+f0YHvr3yIz/f1dY9oSEJ"
    "v/0iuT556aY/5nNyP/4nNL9V+aG/6o4fv25FKT1OzRTA7ApgvgN6n7/gdTu/j1QLvxjyob49wdI+FHGFP5eeA75G6K4/M0oq"
    "vyH5sz7SSWc/hYnAPfhVPr8y9mu/ClvqvtV6YT4rO4G/HzJWvuILI77bdAo/ms9bPmnztT5QYSe/cLkEvp6ySD/AKL8/Dymh"
    "v0HIwT+lRaw/BgRIP7pmhz5+uqC+bKC6P7/p+j/5m+Y/UlWoP5H6tj4vqpq/+vORu74OKD8BCzFkYmwAAQECgH+AfxIvCgNk"
    "YmwSBAoACgAaIjIgAAAAAAAA+D8AAAAAAAACwFnz+MIfbqUBAAAAAAAACEABFy1leHBlY3RlZC9mY19vdXQAAQECgH+AfxIr"
    "Cg9leHBlY3RlZC9mY19vdXQSBAoACgAaEioQ3InEPoa+kr/wvvq/CvSMwAoMV3BhcnQAAQECgH+AfxJVCg1leHBlY3RlZC9w"
    "YXJ0EgQKAAoAGj4qPI2yT79VB74/aMuFPURVHMC/Qss9eloXPz/DFz8U3gfAyw85v42yT79VB74/aMuFPURVHMC/Qss9eloX"
    "PwsTa29vbF9vdXQAAQEEgH+Af4B/gH8SaQoRZXhwZWN0ZWQvcG9vbF9vdXQSCAoACgAKAAoAGkoqSFZDG0B9JWFASom3QHJ+"
    "IECor1E/1jsPQAAAAACRlu0/AAAAAE0i+D8G/RdAQH7VP18qtT+gcBVADRp0PwAAAABTMUNA6+pbQAEPJWZjL2JpYXNlcwAB"
    "AQGAfxIjCglmYy9iaWFzZXMSAgoAGhIqEPPjo7+hiza/B/seP1ACEMAED9sBd2VpZ2h0cwABAQKAf4B/EtgBCgpmYy93ZWln"
    "aHRzEgQKAAoAGsMBKsAB2y8yPy2Rl79XZSm/cXTfvhK8lb+bo94/A+j9vrVuqD6fY4S+Pa/KP5cBqT9mIyI/TgYNwFUcVT0P"
    "Bi8/0IGAPygvHr+rN+k/4gOpv+dZKb9wX28/fu1IPTMnAEAtC0E+AhkivwFQwb6tqou/Boujv6ZiIT9IxxQ/GrSlP9gtQb+s"
    "NNg/eySTvjaGyT8blt2+okg8v73Hfz6oBoQ/st8kPjjlFb8Wrau/BGWzv9OvAD/VXX0/1zwovsqEib+xf18/AQ4bZ2xvYmFs"
    "X3N0ZXAAAQASGQoLZ2xvYmFsX3N0ZXASABoIUgaUtOT0ywMBCRtuZWcAAQEBgH8SGQoDbmVnEgIKABoOOgz9//////////8B"
    "AAcBDjxwYXJ0L3cAAQECgIOAgxI6CgZwYXJ0L3cSCAoCEAMKAhADGiYqJI2yT79VB74/aMuFPURVHMC/Qss9eloXPz/DFz8U"
    "3gfAyw85vwsEMoOCgIMSMAoGcGFydC93EgoKBAgDEAIKAhADGhoqGI2yT79VB74/aMuFPURVHMC/Qss9eloXPwAAAAABAAAA"
    "ADDt6Y4AAAAAAQAAAADA8qGwAAEDAQCwDAAAAAABAAAAALdVZMO1DAjCDA8AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    "AAAAAAAAV/uAiyR1R9s="
)


def _x_conv() -> np.ndarray:
    """The fixture's conv input, NHWC (1, 6, 4, 2)."""
    return np.fromfunction(
        lambda n, h, w, c: np.sin(0.7 * h + 0.3 * w * w + 1.1 * c) + 0.1 * h, (1, 6, 4, 2)
    ).astype(np.float32)


def _x_fc() -> np.ndarray:
    """The fixture's dense input, NHWC (1, 2, 3, 2)."""
    return np.fromfunction(lambda n, h, w, c: np.cos(0.5 * h + 0.9 * w + 1.7 * c) + 0.2 * w, (1, 2, 3, 2)).astype(
        np.float32
    )


@pytest.fixture(scope="module")
def model() -> VGGish:
    torch.manual_seed(0)
    return VGGish().eval()


@pytest.fixture(scope="module")
def patches() -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    return torch.randn(2, 1, 96, 64, generator=g) - 2.0  # log-mel-like values


@pytest.fixture(scope="module")
def tv_state() -> dict[str, torch.Tensor]:
    """A random state dict in torchvggish's layout (He-scaled so activations stay O(1))."""
    g = torch.Generator().manual_seed(2)
    out: dict[str, torch.Tensor] = {}
    for k, shape in TORCHVGGISH_KEYS.items():
        if k.endswith("bias"):
            out[k] = 0.1 * torch.randn(shape, generator=g)
        else:
            fan_in = int(np.prod(shape[1:]))
            out[k] = torch.randn(shape, generator=g) * (2.0 / fan_in) ** 0.5
    return out


def _reference_forward(sd: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """torchvggish's VGG.forward written out functionally (post-ReLU embedding)."""
    for i in (0, 3, 6, 8, 11, 13):
        x = F.relu(F.conv2d(x, sd[f"features.{i}.weight"], sd[f"features.{i}.bias"], padding=1))
        if i in (0, 3, 8, 13):
            x = F.max_pool2d(x, 2, 2)
    x = torch.transpose(x, 1, 3)
    x = torch.transpose(x, 1, 2).contiguous().view(x.size(0), -1)
    for i in (0, 2, 4):
        x = F.relu(F.linear(x, sd[f"embeddings.{i}.weight"], sd[f"embeddings.{i}.bias"]))
    return x


def test_output_shapes(model: VGGish, patches: torch.Tensor) -> None:
    with torch.no_grad():
        blocks = model.block_outputs(patches)
        assert [tuple(b.shape) for b in blocks] == [(2, 64, 48, 32), (2, 128, 24, 16), (2, 256, 12, 8), (2, 512, 6, 4)]
        assert tuple(model.conv_features(patches).shape) == (2, 512, 6, 4)
        assert torch.equal(model.conv_features(patches), blocks[-1])
        fc = model.fc_features(patches)
        emb = model(patches)
        pre = model.embedding_preact(patches)
    assert tuple(fc.shape) == (2, 4096) and tuple(emb.shape) == (2, 128)
    assert float(fc.min()) >= 0.0 and float(emb.min()) >= 0.0
    assert torch.equal(emb, pre.clamp_min(0.0))
    assert float(pre.min()) < 0.0  # the pre-activation really differs
    assert float(blocks[-1].abs().mean()) > 1e-3  # the random init does not vanish
    # (B, 96, 64) input is accepted as Google's graph does
    with torch.no_grad():
        assert torch.equal(model(patches[:, 0]), emb)
    with pytest.raises(ValueError, match="96, 64"):
        model(torch.zeros(1, 1, 64, 96))


def test_final_relu_off_gives_preactivation(model: VGGish, patches: torch.Tensor) -> None:
    model.final_relu = False  # Google's graph: no ReLU on the embedding
    try:
        with torch.no_grad():
            assert torch.equal(model(patches), model.embedding_preact(patches))
    finally:
        model.final_relu = True


def test_state_dict_keys_match_torchvggish(model: VGGish) -> None:
    assert {k: tuple(v.shape) for k, v in model.state_dict().items()} == TORCHVGGISH_KEYS
    assert list(model.state_dict()) == list(TORCHVGGISH_KEYS)
    assert list(state_dict_layout().items()) == list(TORCHVGGISH_KEYS.items())


def test_torchvggish_pth_loads_strict_and_reproduces(
    tv_state: dict[str, torch.Tensor], patches: torch.Tensor, tmp_path: Path
) -> None:
    path = tmp_path / "vggish-10086976.pth"
    torch.save(tv_state, path)
    m = vggish_from_file(path)  # suffix dispatch -> vggish_from_pth (strict, weights_only)
    assert not m.training
    with torch.no_grad():
        got = m(patches)
        want = _reference_forward(tv_state, patches)
    assert float(want.abs().max()) > 1e-3
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    assert all(torch.equal(m.state_dict()[k], tv_state[k]) for k in TORCHVGGISH_KEYS)


def test_wrong_key_or_shape_names_it(tv_state: dict[str, torch.Tensor]) -> None:
    renamed = dict(tv_state)
    renamed["embeddings.4.b"] = renamed.pop("embeddings.4.bias")
    with pytest.raises(WeightsError, match=r"missing key 'embeddings\.4\.bias'"):
        vggish_from_state_dict(renamed)
    reshaped = dict(tv_state)
    reshaped["features.3.weight"] = torch.zeros(128, 64, 5, 5)
    shape_msg = r"'features\.3\.weight' has shape \(128, 64, 5, 5\), expected \(128, 64, 3, 3\)"
    with pytest.raises(WeightsError, match=shape_msg):
        vggish_from_state_dict(reshaped)
    extra = {**tv_state, "classifier.weight": torch.zeros(3)}
    with pytest.raises(WeightsError, match=r"unexpected key 'classifier\.weight'"):
        vggish_from_state_dict(extra)
    bad = {**tv_state, "features.0.bias": torch.full((64,), float("nan"))}
    with pytest.raises(WeightsError, match=r"'features\.0\.bias' contains NaN"):
        vggish_from_state_dict(bad)


class _Evil:
    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (print, ("this must never run",))


def test_pth_errors_are_weights_errors(tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match="not found"):
        vggish_from_pth(tmp_path / "nope.pth")
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"this is not a torch file" * 10)
    with pytest.raises(WeightsError, match="cannot read garbage.pth"):
        vggish_from_pth(garbage)
    evil = tmp_path / "evil.pth"
    torch.save({"x": _Evil()}, evil)
    with pytest.raises(WeightsError, match="cannot read evil.pth"):  # weights_only refuses the global
        vggish_from_pth(evil)
    tensor_only = tmp_path / "tensor.pth"
    torch.save(torch.zeros(3), tensor_only)
    with pytest.raises(WeightsError, match="not a state dict"):
        vggish_from_pth(tensor_only)
    with pytest.raises(WeightsError, match="unknown VGGish weights format '.onnx'"):
        vggish_from_file(tmp_path / "v.onnx")


def test_flatten_is_tf_nhwc_order() -> None:
    t = torch.arange(2 * 512 * 6 * 4, dtype=torch.float32).reshape(2, 512, 6, 4)
    flat = flatten_nhwc(t)
    for b, c, h, w in [(0, 0, 0, 1), (1, 100, 2, 3), (0, 511, 5, 0), (1, 7, 4, 2)]:
        assert flat[b, (h * 4 + w) * 512 + c] == t[b, c, h, w]
    # torchvggish's double transpose is the same permutation
    tv = torch.transpose(torch.transpose(t, 1, 3), 1, 2).contiguous().view(2, -1)
    assert torch.equal(flat, tv)


def test_first_fc_reads_nhwc_position(patches: torch.Tensor) -> None:
    torch.manual_seed(3)
    m = VGGish().eval()
    with torch.no_grad():
        live = m.conv_features(patches).amin(0)  # (512, 6, 4): pick a unit active in both patches
    c, h, w = (int(i) for i in np.unravel_index(int(live.argmax()), (512, 6, 4)))
    k = (h * 4 + w) * 512 + c  # TF NHWC flat index of conv feature (c, h, w)
    with torch.no_grad():
        m.embeddings[0].weight.zero_()
        m.embeddings[0].bias.zero_()
        m.embeddings[0].weight[0, k] = 1.0
        m.embeddings[2].weight.zero_()
        m.embeddings[2].bias.zero_()
        m.embeddings[2].weight[0, 0] = 1.0
        conv = m.conv_features(patches)
        fc = m.fc_features(patches)
    assert float(conv[:, c, h, w].min()) > 0.0  # a live unit, so the check can fail
    torch.testing.assert_close(fc[:, 0], conv[:, c, h, w])
    # a PyTorch (NCHW) flatten would have read another unit
    c2, h2, w2 = np.unravel_index(k, (512, 6, 4))
    assert (int(c2), int(h2), int(w2)) != (c, h, w)
    assert not torch.allclose(fc[:, 0], conv[:, int(c2), int(h2), int(w2)])
    assert float(fc[:, 1:].abs().max()) == 0.0


@pytest.fixture
def tf1_ckpt(tmp_path: Path) -> Path:
    p = tmp_path / "fixture.ckpt"
    p.write_bytes(base64.b64decode("".join(TF1_FIXTURE)))
    return p


def test_tf1_reader_values_and_dtypes(tf1_ckpt: Path) -> None:
    v = read_tf1_checkpoint(tf1_ckpt)
    assert v["global_step"].dtype == np.int64 and int(v["global_step"]) == 123456789012
    assert v["neg"].dtype == np.int32 and v["neg"].tolist() == [-3, 0, 7]
    assert v["dbl"].dtype == np.float64 and v["dbl"].tolist() == [[1.5, -2.25], [1e-300, 3.0]]
    assert v["conv/weights"].shape == (3, 3, 2, 3) and v["fc/weights"].shape == (12, 4)
    assert v["part/w"].shape == (5, 3)
    np.testing.assert_array_equal(v["part/w"], v["expected/part"])  # 2 slices reassembled
    assert float(np.abs(v["part/w"]).sum()) > 0.0
    only = read_tf1_checkpoint(tf1_ckpt, names=["neg"])
    assert list(only) == ["neg"]
    with pytest.raises(WeightsError, match="variable 'vggish/conv1/weights' not in checkpoint"):
        read_tf1_checkpoint(tf1_ckpt, names=["vggish/conv1/weights"])


def test_tf_kernels_convert_to_torch_semantics(tf1_ckpt: Path) -> None:
    v = read_tf1_checkpoint(tf1_ckpt)
    x = torch.from_numpy(_x_conv()).permute(0, 3, 1, 2)  # NHWC -> NCHW
    bias = torch.from_numpy(v["conv/biases"])
    y = F.max_pool2d(F.relu(F.conv2d(x, tf_conv_to_torch(v["conv/weights"]), bias, padding=1)), 2, 2)
    want = torch.from_numpy(v["expected/pool_out"]).permute(0, 3, 1, 2)
    assert tuple(y.shape) == (1, 3, 3, 2)
    torch.testing.assert_close(y, want, rtol=1e-5, atol=1e-5)
    # a spatially transposed kernel (a classic porting bug) would not match
    wrong = tf_conv_to_torch(v["conv/weights"]).transpose(2, 3)
    y_wrong = F.max_pool2d(F.relu(F.conv2d(x, wrong, torch.from_numpy(v["conv/biases"]), padding=1)), 2, 2)
    assert not torch.allclose(y_wrong, want, atol=1e-3)
    xf = torch.from_numpy(_x_fc()).permute(0, 3, 1, 2)
    fc = F.linear(flatten_nhwc(xf), tf_dense_to_torch(v["fc/weights"]), torch.from_numpy(v["fc/biases"]))
    torch.testing.assert_close(fc, torch.from_numpy(v["expected/fc_out"]), rtol=1e-5, atol=1e-5)


def test_tf1_reader_rejects_bad_files(tf1_ckpt: Path, tmp_path: Path) -> None:
    data = tf1_ckpt.read_bytes()
    truncated = tmp_path / "trunc.ckpt"
    truncated.write_bytes(data[:-10])
    with pytest.raises(WeightsError, match="cannot read trunc.ckpt as a TF1 checkpoint"):
        read_tf1_checkpoint(truncated)
    with pytest.raises(WeightsError, match="variable 'vggish/conv1/weights' missing|not in checkpoint"):
        vggish_from_tf_checkpoint(tf1_ckpt)
    v2 = tmp_path / "model.ckpt"
    v2.write_bytes(b"x")
    (tmp_path / "model.ckpt.index").write_bytes(b"x")
    with pytest.raises(WeightsError, match="TF2/V2 checkpoint"):
        read_tf1_checkpoint(v2)


def test_state_dict_from_tf_layout(tv_state: dict[str, torch.Tensor], patches: torch.Tensor) -> None:
    # build TF-layout variables from a torchvggish state dict and map them back
    scopes = {
        0: "vggish/conv1", 3: "vggish/conv2", 6: "vggish/conv3/conv3_1", 8: "vggish/conv3/conv3_2",
        11: "vggish/conv4/conv4_1", 13: "vggish/conv4/conv4_2",
    }
    tf_vars: dict[str, np.ndarray] = {}
    for i, s in scopes.items():
        tf_vars[f"{s}/weights:0"] = tv_state[f"features.{i}.weight"].numpy().transpose(2, 3, 1, 0)
        tf_vars[f"{s}/biases:0"] = tv_state[f"features.{i}.bias"].numpy()
    for i, s in {0: "vggish/fc1/fc1_1", 2: "vggish/fc1/fc1_2", 4: "vggish/fc2"}.items():
        tf_vars[f"{s}/weights:0"] = tv_state[f"embeddings.{i}.weight"].numpy().T
        tf_vars[f"{s}/biases:0"] = tv_state[f"embeddings.{i}.bias"].numpy()
    sd = state_dict_from_tf(tf_vars)
    assert all(torch.equal(sd[k], tv_state[k]) for k in TORCHVGGISH_KEYS)
    del tf_vars["vggish/fc2/biases:0"]
    with pytest.raises(WeightsError, match="'vggish/fc2/biases' missing"):
        state_dict_from_tf(tf_vars)


def test_postprocessor_quantizes_like_google() -> None:
    means = torch.full((128,), 0.5)
    pp = Postprocessor(2.0 * torch.eye(128), means)  # pca(e) = 2 (e - 0.5)
    e = torch.full((1, 128), 0.5)
    e[0, 1], e[0, 2], e[0, 3], e[0, 4] = 0.75, 10.0, -10.0, 0.25
    q = pp(e)
    # (clip(2(e-0.5), -2, 2) + 2) * 255/4 truncated as numpy astype(uint8):
    # 127.5->127, 2.5*63.75=159.375->159, 255, 0, 1.5*63.75=95.625->95 (rounding would give 96)
    assert q[0, :5].tolist() == [127.0, 159.0, 255.0, 0.0, 95.0]
    assert q.dtype == torch.float32 and float(q.min()) >= 0 and float(q.max()) <= 255
    with pytest.raises(WeightsError, match=r"expected \(128, 128\)/\(128,\)"):
        Postprocessor(torch.eye(64), torch.zeros(64))


def test_pca_params_load_from_pth_and_npz(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    params = {"pca_eigen_vectors": rng.standard_normal((128, 128)), "pca_means": rng.standard_normal((128, 1))}
    npz = tmp_path / "vggish_pca_params.npz"
    np.savez(npz, **params)
    pth = tmp_path / "vggish_pca_params-970ea276.pth"
    torch.save(params, pth)  # numpy arrays inside, as torchvggish's file
    # the same pickle as written under numpy 1.x (module path numpy.core.multiarray)
    old = tmp_path / "old_numpy.pth"
    with zipfile.ZipFile(pth) as zin, zipfile.ZipFile(old, "w") as zout:
        for info in zin.infolist():
            data = zin.read(info.filename)
            if info.filename.endswith("data.pkl"):
                assert b"numpy._core.multiarray" in data
                data = data.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
            zout.writestr(info, data)
    e = torch.from_numpy(rng.standard_normal((4, 128)).astype(np.float32))
    want = (e.double() - torch.from_numpy(params["pca_means"][:, 0])) @ torch.from_numpy(params["pca_eigen_vectors"]).T
    for p in (npz, pth, old):
        pp = postprocessor_from_file(p)
        torch.testing.assert_close(pp.pca(e), want.float(), rtol=1e-4, atol=1e-4)
    torch.save({"pca_means": torch.zeros(128)}, tmp_path / "bad.pth")
    with pytest.raises(WeightsError, match="missing key 'pca_eigen_vectors'"):
        postprocessor_from_file(tmp_path / "bad.pth")
