"""Statistics pooling (the shipped decision): the per-patch shares add up to the utterance
logits, numpy and torch agree, windows equal clips, and ONNX Runtime decides as PyTorch."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from emolens.models.decision import PatchVote, StatisticsPooling, decision_for, softmax
from emolens.models.fusion import FusionHead, FusionNet


def _head(seed: int = 0) -> FusionHead:
    torch.manual_seed(seed)
    h = FusionHead(("yamnet_l5", "yamnet_mid"), 4, hidden=0, dropout=0.0, pooling="mean+std").eval()
    with torch.no_grad():
        h.classifier[1].weight.mul_(5.0)
    return h


def _feats(n: int, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {"yamnet_l5": torch.randn(n, 512, generator=g), "yamnet_mid": torch.randn(n, 1024, generator=g) * 2 + 1}


def test_patch_shares_add_up_to_the_utterance_logits() -> None:
    h = _head()
    f = _feats(9)
    voting = np.array([1, 1, 0, 1, 1, 0, 1, 1, 1], bool)
    d = decision_for({"head": {"pooling": "mean+std"}}, head_state=h.state_dict())
    z = h.embed(f).detach().numpy()
    dec = d.decide(z, voting)
    mu, sigma = dec.context
    zv = z[voting].astype(np.float64)
    np.testing.assert_allclose(mu, zv.mean(0), atol=1e-6)
    np.testing.assert_allclose(sigma, zv.std(0), atol=1e-6)
    shares = d.contributions(z, dec.context)
    np.testing.assert_allclose(shares[voting].mean(0), d.logits(mu, sigma), atol=1e-4)
    W, b = h.classifier[1].weight.detach().numpy(), h.classifier[1].bias.detach().numpy()
    np.testing.assert_allclose(dec.probs, softmax(W @ np.r_[mu, sigma] + b), atol=1e-6)
    # torch: the head in the same context returns the same shares; pooled_logits is the decision
    with torch.no_grad(), h.use_context(torch.from_numpy(mu).float(), torch.from_numpy(sigma).float()):
        t_shares = h(f).numpy()
    np.testing.assert_allclose(t_shares, shares, atol=1e-3, rtol=1e-4)
    with torch.no_grad():
        t_logits = h.pooled_logits(torch.from_numpy(z[voting])).numpy()
    np.testing.assert_allclose(softmax(t_logits), dec.probs, atol=1e-5)
    assert h._context is None  # the context is only held inside the block
    # the decision depends on the spread: same mean, larger spread -> other logits
    z2 = mu + 3 * (z - mu)
    assert np.abs(d.logits(*d.stats(z2, voting)) - d.logits(mu, sigma)).max() > 0.1


def test_one_patch_utterance_and_the_vote() -> None:
    d = decision_for({"head": {"pooling": "mean+std"}}, head_state=_head().state_dict())
    z = np.random.default_rng(0).normal(size=(1, d.width)).astype(np.float32)
    dec = d.decide(z, np.array([True]))
    assert np.all(np.isfinite(dec.probs)) and np.isclose(dec.probs.sum(), 1, atol=1e-6)
    np.testing.assert_allclose(dec.context[1], 1e-6)  # sigma floored, not 0
    v = PatchVote().decide(np.array([[0.2, 0.8], [0.6, 0.4], [0.0, 1.0]], np.float32), np.array([1, 1, 0], bool))
    np.testing.assert_allclose(v.probs, [0.4, 0.6]) and v.context is None


def test_windows_are_the_clips_of_that_span() -> None:
    d = decision_for({"head": {"pooling": "mean+std"}}, head_state=_head(3).state_dict())
    rng = np.random.default_rng(2)
    P = 41
    z = rng.normal(size=(P, d.width)).astype(np.float32)
    voting = rng.random(P) > 0.3
    voting[10:16] = False  # a window with no voting patch falls back to all its patches
    n = 5
    w = d.windows(z, voting, n)
    assert w.shape == (P, 4)
    for i in (0, 1, 12, 13, 20, P - 1):
        lo, hi = max(0, i - (n - 1) // 2), min(P, i + n // 2 + 1)
        np.testing.assert_allclose(w[i], d.decide(z[lo:hi], voting[lo:hi]).probs, atol=2e-5)
    np.testing.assert_allclose(d.windows(z, voting, 10 * P)[7], d.decide(z, voting).probs, atol=2e-5)


def test_head_refuses_what_cannot_add_up() -> None:
    with pytest.raises(ValueError, match="hidden=0"):
        FusionHead(("yamnet",), 4, hidden=16, pooling="mean+std")
    with pytest.raises(ValueError, match="pooling"):
        FusionHead(("yamnet",), 4, hidden=0, pooling="attention")


def test_saved_stats_model_decides_the_same_on_torch_and_onnx(stats_run, tmp_path, monkeypatch) -> None:
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    from emolens.inference import EmotionRecognizer
    from emolens.models.backends import OnnxBackend
    from emolens.models.io import load_model
    from emolens.models.onnx_export import export_onnx

    monkeypatch.setenv("EMOLENS_CACHE", str(tmp_path / "cache"))
    model, config, _ = load_model(stats_run)
    assert isinstance(model, FusionNet) and model.head.pooling == "mean+std"
    d = decision_for(config, stats_run)  # from model.safetensors, no torch state
    assert isinstance(d, StatisticsPooling)
    np.testing.assert_array_equal(d.weight, model.head.classifier[1].weight.detach().numpy())
    be = OnnxBackend(export_onnx(model, tmp_path / "m.onnx", "x"))
    assert be.outputs == ["embedding", "audioset"] and be.width == model.head.width
    rng = np.random.default_rng(0)
    t = np.arange(48000) / 16000
    from emolens.audio.io import AudioClip

    clips = [AudioClip((0.3 * np.sin(2 * np.pi * f * t) * (1 + np.sin(2 * np.pi * 3 * t)) +
                        0.05 * rng.normal(size=t.size)).astype(np.float32), 16000, 16000, 1, f"c{f}.wav")
             for f in (180.0, 240.0, 330.0)]
    rec_t = EmotionRecognizer.from_dir(stats_run, backend="torch")
    rec_o = EmotionRecognizer.from_dir(stats_run, backend="onnx")
    a_t, a_o = rec_t.analyze_clips(clips), rec_o.analyze_clips(clips)
    for x, y in zip(a_t, a_o):
        np.testing.assert_allclose(x.probs, y.probs, atol=1e-4)
        np.testing.assert_allclose(x.patch_probs, y.patch_probs, atol=1e-3)
        assert x.context is not None and x.context[0].shape == (model.head.width,)
    assert len({a.emotion for a in a_t}) >= 1 and not np.allclose(a_t[0].probs, a_t[1].probs, atol=1e-3)


def _prosody_head(seed: int = 0, dim: int = 6) -> FusionHead:
    torch.manual_seed(seed)
    spec = {"dim": dim, "weight": 2.0, "clip": 3.0, "features": "test"}
    h = FusionHead(("yamnet_l5", "yamnet_mid"), 4, hidden=0, dropout=0.0, pooling="mean+prosody", prosody=spec).eval()
    with torch.no_grad():
        h.classifier[1].weight.mul_(5.0)
        h.prosody_mean.copy_(torch.arange(dim, dtype=torch.float32))
        h.prosody_scale.copy_(torch.linspace(0.5, 2.0, dim))
    return h


def test_prosody_head_shares_windows_and_torch_agree() -> None:
    from emolens.models.decision import ProsodyPooling, decision_for

    h = _prosody_head()
    f = _feats(7, 3)
    voting = np.array([1, 0, 1, 1, 1, 0, 1], bool)
    q = np.array([0.0, 10.0, -4.0, 3.0, 4.5, 5.0], np.float32)  # two of them beyond the clip of +-3 sd
    d = decision_for({"head": {"pooling": "mean+prosody", "prosody": h.prosody}}, head_state=h.state_dict())
    assert isinstance(d, ProsodyPooling) and d.width == h.width and d.n_prosody == 6
    with torch.no_grad():
        z = h.embed(f)
        rows = np.concatenate([z.numpy(), np.broadcast_to(q, (7, 6))], 1)
        dec = d.decide(rows, voting)
        mu = z[torch.from_numpy(voting)].mean(0)
        s = h.scale_prosody(torch.from_numpy(q))
        assert float(s.abs().max()) == pytest.approx(6.0)  # weight 2 x clip 3
        want = torch.softmax(h.classifier(torch.cat([mu, s])), 0).numpy()
        np.testing.assert_allclose(dec.probs, want, atol=1e-5)
        with h.use_context(*dec.context):  # shares in the clip's context, from torch
            np.testing.assert_allclose(torch.softmax(h(f), 1).numpy(), dec.patch_probs, atol=1e-5)
            np.testing.assert_allclose(torch.softmax(h.pooled_logits(z[torch.from_numpy(voting)]), -1).numpy(),
                                       want, atol=1e-5)
    # the shares' mean over the voting patches is the utterance logits
    shares = np.log(dec.patch_probs)  # log-softmax: logits up to a per-row constant
    logit = d.logits(mu.numpy().astype(np.float64), q)
    np.testing.assert_allclose(np.mean(d.logits(z.numpy()[voting].astype(np.float64), q), 0), logit, atol=1e-5)
    assert shares.shape == (7, 4)
    # one window over everything is the clip's decision
    np.testing.assert_allclose(d.windows(rows, voting, 100), np.broadcast_to(dec.probs, (7, 4)), atol=1e-5)
    with pytest.raises(ValueError, match="rows"):
        d.decide(z.numpy(), voting)  # the functionals are missing


def test_prosody_head_needs_its_spec_and_a_linear_classifier() -> None:
    with pytest.raises(ValueError, match="mean\\+prosody"):
        FusionHead(("yamnet",), 4, hidden=0, pooling="mean+prosody")
    with pytest.raises(ValueError, match="hidden=0"):
        FusionHead(("yamnet",), 4, hidden=16, pooling="mean+prosody", prosody={"dim": 3, "weight": 1, "clip": 6})
