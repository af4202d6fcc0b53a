"""The fusion network: stream shapes, the YAMNet offset conversion, fine-tune scopes,
and that the head's depth concatenation uses every stream."""

import math

import numpy as np
import pytest
import torch

from emolens.models.fusion import MODEL_STREAMS, RAW_DIMS, FusionNet, vggish_to_yamnet_input
from emolens.models.io import load_model, save_model


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    return FusionNet(4).eval()


def test_offset_conversion_is_exact():
    mel = torch.rand(2, 1, 96, 64) * 3
    x = torch.log(mel + 0.01)
    np.testing.assert_allclose(vggish_to_yamnet_input(x).numpy(), torch.log(mel + 0.001).numpy(), rtol=1e-4, atol=1e-4)
    silent = torch.full((1, 1, 96, 64), math.log(0.01))
    assert torch.allclose(vggish_to_yamnet_input(silent), torch.tensor(math.log(0.001)), atol=1e-3)


def test_streams_and_logits(net):
    x = torch.randn(3, 1, 96, 64) - 2
    feats = net.extract(x)
    assert {k: tuple(v.shape) for k, v in feats.items()} == {k: (3, RAW_DIMS[k]) for k in MODEL_STREAMS["fusion"]}
    # the vggish stream equals VGGish's own forward (same flatten order)
    np.testing.assert_allclose(feats["vggish"].detach(), net.vggish(x).detach(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(feats["yamnet"].detach(), net.yamnet.embed(vggish_to_yamnet_input(x)).detach(), rtol=1e-4, atol=1e-5)
    h = vggish_to_yamnet_input(x)
    for layer in net.yamnet.layers[:8]:
        h = layer(h)
    np.testing.assert_allclose(feats["yamnet_mid"][:, :512].detach(), h.mean((2, 3)).detach(), rtol=1e-4, atol=1e-5)
    assert net(x).shape == (3, 4)


def test_every_stream_reaches_the_logits(net):
    x = torch.randn(2, 1, 96, 64)
    feats = {k: v.detach().requires_grad_(True) for k, v in net.extract(x).items()}
    net.head(feats).sum().backward()
    for k, v in feats.items():
        assert v.grad is not None and float(v.grad.abs().sum()) > 0, k


def test_single_backbone_kinds_share_the_head_code():
    y = FusionNet(3, MODEL_STREAMS["yamnet-thesis"])
    assert y.vggish is None and y.head.classifier[1].in_features == 1024
    v = FusionNet(3, MODEL_STREAMS["vggish-thesis"])
    assert v.yamnet is None and v.head.classifier[1].in_features == 128
    assert FusionNet(3, MODEL_STREAMS["yamnet"]).head.classifier[1].in_features == 2048
    assert FusionNet(3, MODEL_STREAMS["fusion"]).head.classifier[1].in_features == 128 + 256 + 2048


def test_finetune_scopes(net):
    n_all = sum(p.numel() for p in net.parameters())
    assert net.set_finetune("head") == []
    top = sum(p.numel() for p in net.set_finetune("top"))
    full = sum(p.numel() for p in net.set_finetune("all"))
    assert 0 < top < full <= n_all
    with pytest.raises(ValueError):
        net.set_finetune("some")
    net.set_finetune("head")


def test_gradcam_layers_resolution(net):
    maps = {}
    hooks = [m.register_forward_hook(lambda m, i, o, n=n: maps.__setitem__(n, o.shape)) for n, m in net.gradcam_layers().items()]
    net(torch.randn(1, 1, 96, 64))
    for h in hooks:
        h.remove()
    assert maps["vggish"][2:] == (12, 8) and maps["yamnet"][2:] == (3, 2)


def test_save_load_round_trip(tmp_path, net):
    cfg = {"model": "fusion", "streams": list(net.streams), "classes": ["a", "b", "c", "d"],
           "head": {"hidden": 256, "layer_dim": 256, "dropout": 0.3}, "frontend": {}, "patches": {}}
    save_model(tmp_path, net, cfg, {"ref": np.arange(3.0)})
    back, cfg2, gds = load_model(tmp_path)
    x = torch.randn(2, 1, 96, 64)
    torch.testing.assert_close(back(x), net(x))
    assert cfg2["classes"] == cfg["classes"] and gds["ref"].tolist() == [0, 1, 2]
    assert not list(tmp_path.glob("*.pt")) and not list(tmp_path.glob("*.pkl"))


def test_forward_with_audioset_matches_separate_passes() -> None:
    from emolens.models.yamnet import YAMNet

    torch.manual_seed(0)
    model = FusionNet(4, ("yamnet_mid",), yamnet=YAMNet()).eval()
    x = torch.randn(3, 1, 96, 64)
    with torch.no_grad():
        logits, scores = model.forward_with_audioset(x)
        want = model.yamnet.scores(vggish_to_yamnet_input(x))
        assert torch.allclose(logits, model(x), atol=1e-6)
    assert scores.shape == (3, 521) and torch.allclose(scores, want, atol=1e-6)
    with pytest.raises(ValueError, match="no YAMNet"):
        FusionNet(4, ("vggish",)).forward_with_audioset(x)


def test_yamnet_layer_streams():
    torch.manual_seed(0)
    net = FusionNet(4, MODEL_STREAMS["yamnet-layers"]).eval()
    assert net.vggish is None and net.head.classifier[1].in_features == 512 + 1024 + 1024
    x = torch.randn(2, 1, 96, 64) - 2
    feats = net.extract(x)
    assert {k: tuple(v.shape) for k, v in feats.items()} == {"yamnet_l5": (2, 512), "yamnet_mid": (2, 1024), "yamnet_l9": (2, 1024)}
    h = vggish_to_yamnet_input(x)
    for layer in net.yamnet.layers[:6]:
        h = layer(h)
    np.testing.assert_allclose(feats["yamnet_l5"][:, 256:].detach(), h.amax((2, 3)).detach(), rtol=1e-4, atol=1e-5)
    # yamnet_l7 is the same pooling as yamnet_mid
    np.testing.assert_allclose(net.extract(x, ("yamnet_l7",))["yamnet_l7"].detach(), feats["yamnet_mid"].detach(), rtol=1e-5)
    assert net(x).shape == (2, 4)
