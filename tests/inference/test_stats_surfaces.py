"""A statistics-pooling model through every surface that decides: predict, the timeline,
region scores and faithfulness predictors, --adapt's head, the Ray engine's rows; each
gives the decision of :mod:`emolens.models.decision`, not a vote."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

from emolens.inference import EmotionRecognizer


def _wav(path, seconds: float = 3.0, f0: float = 200.0, seed: int = 0):
    rng = np.random.default_rng(seed)
    t = np.arange(int(16000 * seconds)) / 16000
    x = 0.3 * np.sin(2 * np.pi * f0 * t) * (1 + 0.8 * np.sin(2 * np.pi * 2.5 * t)) + 0.03 * rng.normal(size=t.size)
    sf.write(path, x.astype(np.float32), 16000)
    return path


@pytest.fixture(scope="module")
def rec(stats_run):
    return EmotionRecognizer.from_dir(stats_run, backend="torch")


def test_timeline_windows_are_clip_decisions(rec, tmp_path) -> None:
    from emolens.timeline import TimelineConfig, compute_timeline

    p = _wav(tmp_path / "a.wav", 3.0)
    a = rec.analyze(p)
    tl = compute_timeline(rec, p, TimelineConfig(context=1000))  # every window is the whole clip
    assert tl.patch_probs.shape == a.patch_probs.shape
    # a tone is no speech: predict falls back to all patches, and so does every window
    assert a.voting.all() and not tl.voting.any()
    np.testing.assert_allclose(tl.patch_probs, np.broadcast_to(a.probs, tl.patch_probs.shape), atol=1e-4)
    short = compute_timeline(rec, p, TimelineConfig(context=3))
    assert not np.allclose(short.patch_probs, tl.patch_probs, atol=1e-3)  # a shorter span decides differently
    assert tl.as_dict()["context_patches"] == 1000


def test_region_score_and_predictors_are_the_decision(rec, tmp_path) -> None:
    from emolens.explain.faithfulness import utterance_predictor
    from emolens.explain.region_attribution import UtteranceScore, decision_predictor

    a = rec.analyze(_wav(tmp_path / "b.wav", 2.5, 260.0, 1))
    lm = a.log_mel.astype(np.float32)
    f = UtteranceScore(rec.model, lm.shape[0], a.voting, score="prob")
    x = torch.from_numpy(lm)[None, None].requires_grad_(True)
    p = f(x)
    np.testing.assert_allclose(p.detach().numpy()[0], a.probs, atol=1e-4)
    p[0, int(np.argmax(a.probs))].backward()  # differentiable through mu and sigma
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    np.testing.assert_allclose(utterance_predictor(rec.model, rec.patch_config, voting=a.voting)(lm)[0], a.probs, atol=1e-4)
    fast = decision_predictor(rec.model, lm, a.voting, pcfg=rec.patch_config, probs_fn=lambda q: rec.patch_outputs(q)[0])
    slow = decision_predictor(rec.model, lm, a.voting, pcfg=rec.patch_config)
    np.testing.assert_allclose(fast(lm[None])[0], a.probs, atol=1e-4)
    np.testing.assert_allclose(slow(lm[None])[0], a.probs, atol=1e-4)


def test_explanations_attribute_patch_shares_in_the_clip_context(rec, tmp_path) -> None:
    from emolens.explain.pipeline import explain_maps

    a = rec.analyze(_wav(tmp_path / "c.wav", 2.5, 310.0, 2))
    res = explain_maps(rec, a, int(np.argmax(a.probs)), methods=("gradcam", "occlusion"), progress=False)
    maps = res[0] if isinstance(res, tuple) else res["maps"]
    for m in maps.values():
        assert m.shape == a.log_mel.shape and np.all(np.isfinite(m)) and np.abs(m).max() > 0
    assert rec.model.head._context is None
    # the head's per-patch outputs in the clip's context are the patch shares the analysis shows
    with torch.no_grad(), rec.model.head.use_context(*a.context):
        shares = torch.softmax(rec.model(torch.from_numpy(a.patches)[:, None]), 1).numpy()
    np.testing.assert_allclose(shares, a.patch_probs, atol=1e-4)


def test_adapt_head_outputs_and_ray_rows_decide_as_predict(rec, tmp_path) -> None:
    from emolens.adaptation.runtime import head_outputs, stream_features
    from emolens.distributed.ray_batch import ModelSpec, RayBatchConfig, file_record

    a = rec.analyze(_wav(tmp_path / "d.wav", 2.0, 220.0, 3))
    feats, audioset = stream_features(rec, a.patches)
    z, _ = rec.patch_outputs(a.patches)
    np.testing.assert_allclose(head_outputs(rec, feats), z, atol=1e-5)
    spec = ModelSpec(tuple(rec.classes), rec.frontend, rec.patch_config, None, rec.speech_gate, "x",
                     float(rec.temperature), rec.uncertain_threshold, rec.decision)
    row = {"id": 0, "file": "d.wav", "notes": [], "duration_s": 2.0, "size_bytes": 1, "mtime_ns": 1}
    out = file_record(row, z, audioset, a.keep, spec, RayBatchConfig())
    np.testing.assert_allclose([out["probabilities"][c] for c in rec.classes], a.probs, atol=1e-5)
