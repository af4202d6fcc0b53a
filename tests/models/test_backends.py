"""ONNX export and the ONNX Runtime backend agree with PyTorch (max |delta| of
probabilities and AudioSet scores), on synthetic patches and on real EmoDB clips."""

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

from emolens.errors import ModelError  # noqa: E402
from emolens.inference import EmotionRecognizer  # noqa: E402
from emolens.models.backends import OnnxBackend, TorchBackend, onnx_for_run, resolve_backend  # noqa: E402
from emolens.models.io import load_model  # noqa: E402
from emolens.models.onnx_export import export_onnx, run_fingerprint  # noqa: E402


def _patches(n, seed=0):
    return np.random.default_rng(seed).normal(-3.0, 2.0, (n, 96, 64)).astype(np.float32)


def test_onnx_matches_torch_and_has_no_pad_nodes(make_run, tmp_path, monkeypatch):
    import onnx

    monkeypatch.setenv("EMOLENS_CACHE", str(tmp_path / "cache"))
    run = make_run()
    model, _, _ = load_model(run)
    path = export_onnx(model, tmp_path / "m.onnx", "abc")
    ops = {n.op_type for n in onnx.load(str(path)).graph.node}
    assert "Pad" not in ops and "Conv" in ops  # SAME pads folded into the convolutions
    be = OnnxBackend(path)
    assert be.fingerprint == "abc" and be.width == 3
    x = _patches(37)
    (p_t, a_t), (p_o, a_o) = TorchBackend(model).run(x), be.run(x, batch_size=16)  # batches of 16, 16, 5
    assert p_o.shape == (37, 3) and a_o.shape == (37, 521)
    assert np.abs(p_t - p_o).max() < 1e-5 and np.abs(a_t - a_o).max() < 1e-5
    assert np.allclose(p_o.sum(1), 1, atol=1e-5)
    empty_p, empty_a = be.run(np.zeros((0, 96, 64), np.float32))
    assert empty_p.shape == (0, 3) and empty_a.shape == (0, 521)


def test_export_cache_follows_the_weights(make_run, tmp_path, monkeypatch):
    monkeypatch.setenv("EMOLENS_CACHE", str(tmp_path / "cache"))
    run = make_run(streams=("yamnet",))
    model, _, _ = load_model(run)
    be = onnx_for_run(run, model)
    assert be.fingerprint == run_fingerprint(run) and be.path.parent == tmp_path / "cache" / "onnx"
    assert onnx_for_run(run, model).path == be.path  # reused, not exported again
    # an export in the run dir from the same weights is preferred; a stale one is ignored
    export_onnx(model, run / "model.onnx", run_fingerprint(run))
    assert onnx_for_run(run, model).path == run / "model.onnx"
    (run / "model.json").write_text((run / "model.json").read_text().replace('"model": "test"', '"model": "changed"'))
    assert onnx_for_run(run, model).path != run / "model.onnx"
    (run / "model.onnx").write_bytes(b"garbage")
    with pytest.raises(ModelError):
        OnnxBackend(run / "model.onnx")
    with pytest.raises(ModelError):
        resolve_backend("tensorrt")
    assert resolve_backend("auto") == "onnx"


@pytest.mark.slow
def test_onnx_parity_on_real_clips(make_run, emodb_dir, weights_dir, tmp_path, monkeypatch):
    """Published YAMNet weights + a random head, EmoDB recordings: every patch's
    probability and AudioSet score within 1e-4 of PyTorch, same utterance labels."""
    from emolens.models.yamnet import yamnet_from_tflite

    monkeypatch.setenv("EMOLENS_CACHE", str(tmp_path / "cache"))
    run = make_run(yamnet=yamnet_from_tflite(weights_dir / "yamnet.tflite"))
    torch_rec = EmotionRecognizer.from_dir(run, backend="torch")
    onnx_rec = EmotionRecognizer.from_dir(run, backend="onnx")
    assert onnx_rec.backend.name == "onnx" and torch_rec.backend.name == "torch"
    files = sorted((emodb_dir / "wav").glob("*.flac"))[:12]
    for a_t, a_o in zip(torch_rec.analyze_clips([__import__("emolens").load_audio(f) for f in files]),
                        onnx_rec.analyze_clips([__import__("emolens").load_audio(f) for f in files])):
        assert np.abs(a_t.patch_probs - a_o.patch_probs).max() < 1e-4
        assert a_t.label == a_o.label
    patches = np.concatenate([torch_rec.analyze(f).patches for f in files[:4]])
    (p_t, s_t), (p_o, s_o) = torch_rec.patch_outputs(patches), onnx_rec.patch_outputs(patches)
    assert np.abs(s_t - s_o).max() < 1e-4 and s_t[:, 0].mean() > 0.5  # AudioSet "Speech" on speech


class _VGGishLike(__import__("torch").nn.Module):
    """A small conv net whose layers carry VGGish's module names (features, embeddings)."""

    def __init__(self):
        import torch
        from torch import nn

        super().__init__()
        torch.manual_seed(0)
        self.features = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(4),
                                      nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(4))
        self.embeddings = nn.Sequential(nn.Flatten(), nn.Linear(32 * 6 * 4, 3))

    def forward(self, x):
        import torch

        return torch.softmax(self.embeddings(self.features(x)), 1)


def test_int8_quantises_the_vggish_layers_only(tmp_path, make_run):
    import onnx
    import torch

    from emolens.models.onnx_export import QUANTIZED_KEY, quantize_vggish

    net = _VGGishLike().eval()
    src = tmp_path / "f.onnx"
    torch.onnx.export(net, (torch.zeros(2, 1, 96, 64),), str(src), input_names=["patches"], output_names=["probs"],
                      dynamic_axes={"patches": {0: "n"}, "probs": {0: "n"}}, dynamo=False)
    proto = onnx.load(str(src))
    m = proto.metadata_props.add()
    m.key, m.value = "emolens_weights_sha256", "abc"
    onnx.save(proto, str(src))
    x = _patches(64)
    q = quantize_vggish(src, tmp_path / "q.onnx", x[:48])
    ops = [n.op_type for n in onnx.load(str(q)).graph.node]
    assert ops.count("QuantizeLinear") >= 3 and ops.count("DequantizeLinear") >= 3
    be = OnnxBackend(q)
    assert be.quantized == "int8-vggish" and be.fingerprint == "abc"
    with torch.no_grad():
        ref = net(torch.from_numpy(x[48:, None])).numpy()
    got = be.run(x[48:])[0]
    assert got.shape == (16, 3) and 0 < np.abs(got - ref).max() < 0.05  # quantised: close, not identical
    # The bound must hold on every x86 CPU, not only on this one: without VNNI, ONNX Runtime's
    # u8 x s8 kernel sums products in int16 pairs and clamps (8-bit weights gave 0.08 there).
    # 7-bit weights keep every pair sum within int16 (2 * 255 * 64 < 32767), so no CPU clamps.
    from onnx import numpy_helper

    w = [numpy_helper.to_array(i) for i in onnx.load(str(q)).graph.initializer if i.name.endswith("weight_quantized")]
    assert len(w) == 3 and all(a.dtype == np.int8 and np.abs(a.astype(int)).max() <= 64 for a in w)
    assert 2 * 255 * max(int(np.abs(a.astype(int)).max()) for a in w) <= np.iinfo(np.int16).max
    model, _, _ = load_model(make_run())
    yam = export_onnx(model, tmp_path / "y.onnx")
    with pytest.raises(ModelError, match="VGGish"):
        quantize_vggish(yam, tmp_path / "yq.onnx", x)
