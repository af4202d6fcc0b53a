"""A model with the prosody stream (``pooling='mean+prosody'``) through every surface that
decides: predict, the timeline, region scores and faithfulness predictors, the prosody
lines of ``explain``, --adapt's head, the ONNX backend and the Ray engine's rows; each
gives ``W [mean z, s(q)] + b`` with the clip's own prosody functionals ``q``."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from emolens.features.prosody import N_PROSODY, prosody_features
from emolens.inference import EmotionRecognizer


@pytest.fixture(scope="module")
def rec(prosody_run):
    return EmotionRecognizer.from_dir(prosody_run, backend="torch")


def _by_hand(rec, a, mu) -> np.ndarray:
    """``softmax(W [mean z, s(q)] + b)`` from the torch head, the clip's q computed here."""
    head = rec.model.head
    with torch.no_grad():
        q = torch.from_numpy(prosody_features(a.clip.samples))
        return torch.softmax(head.classifier(torch.cat([mu, head.scale_prosody(q)])), 0).numpy()


def test_predict_decides_on_mean_embedding_and_the_clips_prosody(rec, tmp_path, write_voice, voting_mean_embedding) -> None:
    a = rec.analyze(write_voice(tmp_path / "a.wav", 2.5, 180.0))
    np.testing.assert_allclose(a.probs, _by_hand(rec, a, voting_mean_embedding(rec, a)), atol=1e-5)
    assert len(a.context) == 2 and a.context[0].shape == (N_PROSODY,)
    b = rec.analyze(write_voice(tmp_path / "b.wav", 2.5, 360.0))  # another voice: other functionals, other decision
    assert np.abs(b.context[0] - a.context[0]).max() > 0.5 and not np.allclose(a.probs, b.probs, atol=1e-3)
    # the same patches with another clip's prosody decide differently: q enters the decision
    z, _ = rec.patch_outputs(a.patches)
    other = rec.decide(rec.with_prosody(z, [b.context[0]], [len(z)]), a.voting).probs
    assert np.abs(other - a.probs).max() > 1e-3


def test_patch_shares_explanations_and_prosody_lines(rec, tmp_path, write_voice) -> None:
    from emolens.explain.pipeline import explain, explain_maps

    a = rec.analyze(write_voice(tmp_path / "c.wav", 2.5, 240.0, 2))
    with torch.no_grad(), rec.model.head.use_context(*a.context):
        shares = torch.softmax(rec.model(torch.from_numpy(a.patches)[:, None]), 1).numpy()
    np.testing.assert_allclose(shares, a.patch_probs, atol=1e-4)
    res = explain_maps(rec, a, int(np.argmax(a.probs)), methods=("gradcam", "occlusion"), progress=False)
    for m in res["maps"].values():
        assert m.shape == a.log_mel.shape and np.all(np.isfinite(m)) and np.abs(m).max() > 0
    assert rec.model.head._context is None  # restored
    ex = explain(rec, a, methods=("gradcam",), progress=False, with_faithfulness=False)
    assert rec.model.head._context is None
    assert 1 <= len(ex.prosody) <= 3 and all("training average" in p.text for p in ex.prosody)
    bare = explain(rec, a, methods=("gradcam",), progress=False, with_faithfulness=False, regions=None)
    assert bare.regions is None  # without regions the prosody lines and stream shares are still given (they were lost)
    assert [p.text for p in bare.prosody] == [p.text for p in ex.prosody]
    assert ex.streams is not None and bare.streams.as_dict() == ex.streams.as_dict()
    # the prosody contributions are Integrated Gradients from the training average: they add up
    # to the change of the target's log-probability between the average voice and this one
    p = rec.prosody_inputs(a)
    from emolens.explain.prosody import prosody_contributions

    t = int(np.argmax(a.probs))
    c = prosody_contributions(p, t, n_steps=256)
    f = lambda v: float(p.score_fn(torch.as_tensor(np.asarray(v, np.float32))[None])[0, t])  # noqa: E731
    assert c.sum() == pytest.approx(f(p.values) - f(p.train_mean), abs=2e-2)
    np.testing.assert_allclose(np.exp(p.score_fn(torch.as_tensor(p.values, dtype=torch.float32)[None])[0].numpy()),
                               a.probs, atol=1e-5)  # uncalibrated model: score_fn is the decision


def test_region_score_and_predictors_are_the_decision(rec, tmp_path, write_voice) -> None:
    from emolens.explain.region_attribution import UtteranceScore, decision_predictor

    a = rec.analyze(write_voice(tmp_path / "d.wav", 2.5, 260.0, 1))
    lm = a.log_mel.astype(np.float32)
    with rec.model.head.use_context(*a.context):
        f = UtteranceScore(rec.model, lm.shape[0], a.voting, score="prob")
        x = torch.from_numpy(lm)[None, None].requires_grad_(True)
        p = f(x)
        np.testing.assert_allclose(p.detach().numpy()[0], a.probs, atol=1e-4)
        p[0, int(np.argmax(a.probs))].backward()
        assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
        fast = decision_predictor(rec.model, lm, a.voting, pcfg=rec.patch_config, probs_fn=lambda q: rec.patch_outputs(q)[0])
        np.testing.assert_allclose(fast(lm[None])[0], a.probs, atol=1e-4)
        np.testing.assert_allclose(decision_predictor(rec.model, lm, a.voting, pcfg=rec.patch_config)(lm[None])[0],
                                   a.probs, atol=1e-4)
    voting, ctx = rec.voting_and_context(a.log_mel_linear if hasattr(a, "log_mel_linear") else np.exp(a.log_mel) - 0.01,
                                         a.clip.samples)
    np.testing.assert_array_equal(voting, a.voting)
    np.testing.assert_allclose(ctx[0], a.context[0], atol=1e-5)
    with pytest.raises(Exception, match="prosody"):
        rec.voting_and_context(np.exp(a.log_mel) - 0.01)  # a prosody head needs the waveform


def test_timeline_windows_are_clip_decisions(rec, tmp_path, write_voice) -> None:
    from emolens.timeline import TimelineConfig, compute_timeline

    p = write_voice(tmp_path / "e.wav", 3.0)
    a = rec.analyze(p)
    tl = compute_timeline(rec, p, TimelineConfig(context=1000))  # every window is the whole clip
    np.testing.assert_allclose(tl.patch_probs, np.broadcast_to(a.probs, tl.patch_probs.shape), atol=1e-4)
    short = compute_timeline(rec, p, TimelineConfig(context=3))
    assert not np.allclose(short.patch_probs, tl.patch_probs, atol=1e-3)


def test_adapt_onnx_and_ray_rows_decide_as_predict(rec, prosody_run, tmp_path, write_voice) -> None:
    from emolens.adaptation.runtime import head_outputs, stream_features
    from emolens.distributed.ray_batch import ModelSpec, RayBatchConfig, file_record

    a = rec.analyze(write_voice(tmp_path / "f.wav", 2.0, 220.0, 3))
    feats, audioset = stream_features(rec, a.patches)
    z, _ = rec.patch_outputs(a.patches)
    np.testing.assert_allclose(head_outputs(rec, feats), z, atol=1e-5)
    spec = ModelSpec(tuple(rec.classes), rec.frontend, rec.patch_config, None, rec.speech_gate, "x",
                     float(rec.temperature), rec.uncertain_threshold, rec.decision)
    row = {"id": 0, "file": "f.wav", "notes": [], "duration_s": 2.0, "size_bytes": 1, "mtime_ns": 1}
    out = file_record(row, rec.with_prosody(z, [a.context[0]], [len(z)]), audioset, a.keep, spec, RayBatchConfig())
    np.testing.assert_allclose([out["probabilities"][c] for c in rec.classes], a.probs, atol=1e-5)
    pytest.importorskip("onnxruntime")
    fast = EmotionRecognizer.from_dir(prosody_run, backend="onnx")
    b = fast.analyze(tmp_path / "f.wav")
    np.testing.assert_allclose(b.probs, a.probs, atol=1e-4)


@pytest.mark.parametrize("run", ["prosody_run", "whisper_run"])
def test_ray_decode_and_classifier_rows_equal_predict_and_timeline(run, request, tmp_path, write_voice) -> None:
    """The Ray engine's two stages run here in-process (no cluster): the decoding task
    computes the clip's functionals (and, for a long recording, its windows'; the Whisper
    model's stream after them), the model actor appends them; results equal ``predict`` and
    ``timeline``."""
    pa = pytest.importorskip("pyarrow")
    pytest.importorskip("onnxruntime")
    from emolens.distributed.ray_batch import (
        Classifier,
        RayBatchConfig,
        decode_rows,
        file_id,
        model_spec,
    )
    from emolens.timeline import TimelineConfig, compute_timeline

    rec = EmotionRecognizer.from_dir(request.getfixturevalue(run), backend="onnx")
    spec, onnx = model_spec(rec)
    assert bool(spec.whisper) == (run == "whisper_run")
    short, long = write_voice(tmp_path / "s.wav", 2.0, 200.0, 4), write_voice(tmp_path / "l.wav", 9.0, 150.0, 5)
    for stream_over in (600.0, 5.0):  # whole-file decoding, and the long one in blocks
        cfg = RayBatchConfig(segments_over=6.0, stream_over=stream_over, block_seconds=4.0)
        rows = [{"id": file_id(p)[0], **file_id(p)[1]} for p in (short, long)]
        res = Classifier(onnx, spec, cfg)(decode_rows(pa.Table.from_pylist(rows), spec, cfg)).to_pylist()
        assert all(r["error"] is None for r in res)
        for r, p in zip(res, (short, long)):
            if stream_over == 600.0 or p == short:
                np.testing.assert_allclose([r["probabilities"][c] for c in rec.classes], rec.analyze(p).probs, atol=1e-4)
        assert res[0]["segments"] is None and res[1]["segments"]
        tl = compute_timeline(rec, long, TimelineConfig(block_seconds=4.0 if stream_over == 5.0 else 60.0))
        want = [s.as_dict(rec.classes) for s in tl.segments]
        assert [s["label"] for s in res[1]["segments"]] == [s["label"] for s in want]
        np.testing.assert_allclose([list(s["probabilities"].values()) for s in res[1]["segments"]],
                                   [list(s["probabilities"].values()) for s in want], atol=1e-4)


def test_report_lists_the_prosody_lines(rec, tmp_path, write_voice) -> None:
    from emolens.explain.pipeline import explain
    from emolens.report.html import _sentence

    ex = explain(rec, rec.analyze(write_voice(tmp_path / "r.wav", 2.0, 230.0, 6)), methods=("gxi",), progress=False,
                 with_faithfulness=False)
    html = _sentence(ex.sentence, ex.prosody)
    assert html.count("<li>") == len(ex.prosody) >= 1 and "Prosody" in html and "training average" in html
