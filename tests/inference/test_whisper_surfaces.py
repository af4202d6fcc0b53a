"""A model with the Whisper stream (the prosody head whose utterance vector ``q`` is the
prosody functionals followed by the clip's pooled Whisper base encoder state) through the
surfaces that decide: predict, the prosody lines of ``explain``, the timeline's windows, the
ONNX backend, ``--adapt --neutral``'s offsets, the model-name resolution and the errors."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from emolens.errors import EmolensError, ModelError
from emolens.features.prosody import N_PROSODY, prosody_features
from emolens.inference import EmotionRecognizer, resolve_model
from emolens.models.whisper import (
    SegmentStats,
    encoder_states,
    pool_frames,
    shared_encoder,
    whisper_stream,
    window_stats,
)


@pytest.fixture(scope="module")
def rec(whisper_run):
    return EmotionRecognizer.from_dir(whisper_run, backend="torch")


def _by_hand(rec, a, mu) -> np.ndarray:
    """``softmax(W [mean z, s(q_p), ln(q_w)] + b + MLP(ln(q_w)))`` with the clip's q computed here, from torch."""
    head = rec.model.head
    with torch.no_grad():
        qp = prosody_features(a.clip.samples)
        qw = whisper_stream(a.clip.samples)
        zq = 2.0 * torch.clamp((torch.from_numpy(qp) - head.prosody_mean) / head.prosody_scale, -6.0, 6.0)
        ln = torch.nn.functional.layer_norm(torch.from_numpy(qw), (1024,), eps=1e-5)
        return torch.softmax(head.classifier(torch.cat([mu, zq, ln])) + head.whisper_mlp(ln), 0).numpy()


def test_predict_decides_on_the_clips_whisper_stream(rec, tmp_path, write_voice, voting_mean_embedding) -> None:
    a = rec.analyze(write_voice(tmp_path / "a.wav", 2.5, 180.0))
    assert rec.whisper_config.layers == (3, 4, 5) and rec.whisper_spec["layer"] == 5
    assert a.context[0].shape == (N_PROSODY + 1024,)
    np.testing.assert_allclose(a.probs, _by_hand(rec, a, voting_mean_embedding(rec, a)), atol=1e-5)
    # the same patches and functionals with another clip's Whisper stream decide differently
    b = rec.analyze(write_voice(tmp_path / "b.wav", 2.5, 330.0, 1))
    z, _ = rec.patch_outputs(a.patches)
    q = np.concatenate([a.context[0][:N_PROSODY], b.context[0][N_PROSODY:]])
    other = rec.decide(rec.with_prosody(z, [q], [len(z)]), a.voting).probs
    assert np.abs(other - a.probs).max() > 1e-3


def test_prosody_lines_hold_the_whisper_stream_at_the_recordings(rec, tmp_path, write_voice) -> None:
    from emolens.explain.prosody import prosody_contributions

    a = rec.analyze(write_voice(tmp_path / "c.wav", 2.5, 240.0, 2))
    p = rec.prosody_inputs(a)
    assert len(p.values) == N_PROSODY
    # score_fn at the recording's functionals is the decision (the Whisper part held fixed)
    np.testing.assert_allclose(np.exp(p.score_fn(torch.as_tensor(p.values, dtype=torch.float32)[None])[0].numpy()),
                               a.probs, atol=1e-5)
    t = int(np.argmax(a.probs))
    c = prosody_contributions(p, t, n_steps=128)
    assert c.shape == (N_PROSODY,) and np.all(np.isfinite(c))
    with torch.no_grad(), rec.model.head.use_context(*a.context):  # the patches' shares, from torch
        shares = torch.softmax(rec.model(torch.from_numpy(a.patches)[:, None]), 1).numpy()
    np.testing.assert_allclose(shares, a.patch_probs, atol=1e-4)


def test_segment_stats_pool_the_frames_of_each_window() -> None:
    """The stream's frames are states 3, 4 and 5 averaged frame by frame (stop 25), in the clip's
    stream and in the timeline's running sums alike."""
    rng = np.random.default_rng(0)
    audio = (0.1 * rng.normal(size=16000 * 4)).astype(np.float32)
    enc = shared_encoder(5)
    states = encoder_states(audio, enc, (3, 4, 5))
    frames = (states[3] + states[4] + states[5]) / 3
    acc = SegmentStats(enc, (3, 4, 5), 24)
    for piece in np.array_split(audio, 7):  # fed in uneven blocks
        acc.add(piece)
    sums, squares, counts = acc.finish()
    assert counts.sum() == len(frames) == 200 and counts[:-1].tolist() == [24] * 8 and counts[-1] == 8
    got = window_stats(sums, squares, counts, np.array([0, 2, 8]), np.array([3, 6, 9]))
    for row, (s, e) in zip(got, ((0, 72), (48, 144), (192, 200))):
        np.testing.assert_allclose(row, pool_frames(frames[s:e]), atol=1e-4)
    np.testing.assert_allclose(window_stats(sums, squares, counts, [0], [100])[0], pool_frames(frames), atol=1e-4)
    np.testing.assert_allclose(whisper_stream(audio, encoder=enc), pool_frames(frames), atol=1e-5)
    with pytest.raises(ValueError, match="pooling"):
        window_stats(sums, squares, counts, [0], [1], "max")


def test_timeline_windows_pool_the_stream_of_their_span(rec, tmp_path, write_voice) -> None:
    import soundfile as sf

    from emolens.timeline import TimelineConfig, compute_timeline

    p = write_voice(tmp_path / "e.wav", 4.0)
    tl = compute_timeline(rec, p, TimelineConfig(context=1000, block_seconds=1.5))  # every window: the whole clip
    # the streamed samples end with the front end's last full window, 20 ms before the file (stream.new_samples),
    # and every Whisper frame attends to the rest (against the file itself layers 3-5 moved the decision by 4e-3):
    # scored against predict on those samples, the window keeps the bound the layer-4 stream met on the file
    x, sr = sf.read(p, dtype="float32")
    a = rec.analyze(sf.write(tmp_path / "streamed.wav", x[: len(x) - 320], sr) or tmp_path / "streamed.wav")
    np.testing.assert_allclose(tl.patch_probs, np.broadcast_to(a.probs, tl.patch_probs.shape), atol=2e-3)
    short = compute_timeline(rec, p, TimelineConfig(context=3))
    assert not np.allclose(short.patch_probs, tl.patch_probs, atol=1e-3)


def test_onnx_backend_decides_as_torch(rec, whisper_run, tmp_path, monkeypatch, write_voice) -> None:
    pytest.importorskip("onnxruntime")
    monkeypatch.setenv("EMOLENS_CACHE", str(tmp_path / "cache"))
    p = write_voice(tmp_path / "f.wav", 2.0, 220.0, 3)
    fast = EmotionRecognizer.from_dir(whisper_run, backend="onnx")  # the YAMNet graph exported to the cache
    np.testing.assert_allclose(fast.analyze(p).probs, rec.analyze(p).probs, atol=1e-4)
    assert list((tmp_path / "cache" / "onnx").glob("*.onnx"))


def test_neutral_enrolment_moves_the_functionals_only(rec) -> None:
    shift = np.arange(N_PROSODY, dtype=np.float32)
    padded = rec.pad_shift(shift)
    assert padded.shape == (N_PROSODY + 1024,) and np.array_equal(padded[:N_PROSODY], shift) and not padded[N_PROSODY:].any()
    assert rec.pad_shift(None) is None


def test_model_names_and_one_line_errors(whisper_run, tmp_path, monkeypatch) -> None:
    import emolens.resources as R

    monkeypatch.setattr(R, "PACKAGED_MODELS", {"default": R.DEFAULT_MODEL_DIR, "whisper": tmp_path / "none"})
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ModelError, match="no whisper model"):
        resolve_model("whisper")
    monkeypatch.setattr(R, "PACKAGED_MODELS", {"default": R.DEFAULT_MODEL_DIR, "whisper": whisper_run})
    assert resolve_model("whisper") == whisper_run
    (tmp_path / "whisper").mkdir()  # a run folder of that name here wins
    assert resolve_model("whisper").resolve() == tmp_path / "whisper"
    bad = tmp_path / "bad"
    shutil.copytree(whisper_run, bad)
    cfg = json.loads((bad / "model.json").read_text())
    cfg["head"]["whisper"]["features"] = "whisper-v0-0000000000"
    (bad / "model.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelError, match="trained on Whisper features 'whisper-v0-0000000000'"):
        EmotionRecognizer.from_dir(bad, backend="torch")
    cfg["head"]["whisper"]["layers"] = [3, 9]  # no such encoder state: one line, not a traceback
    (bad / "model.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelError, match=r"names no Whisper stream .*'layers': \[3, 9\].*retrain"):
        EmotionRecognizer.from_dir(bad, backend="torch")
    assert issubclass(ModelError, EmolensError)
    with pytest.raises(ModelError, match="no shipped model is called 'big'; use one of default, whisper"):
        EmotionRecognizer.default(name="big")


@pytest.mark.parametrize("run", ["prosody_run", "whisper_run"])
def test_stream_inputs_split_the_decision_the_model_took(run, request, tmp_path, write_voice) -> None:
    """Every stream at the recording's value is the decision; each baseline is computed here
    by hand (the flattened log-mel's voting patches, the training average, the flattened
    Whisper log-mel through the encoder) and the Shapley values add up."""
    from dataclasses import replace

    from emolens.evaluation.calibration import apply_temperature
    from emolens.explain.stitch import SILENCE_LOG_MEL
    from emolens.explain.streams import explain_streams
    from emolens.features.patches import frame_patches
    from emolens.features.whisper_mel import whisper_log_mel

    r = EmotionRecognizer.from_dir(request.getfixturevalue(run), backend="torch")
    a = r.analyze(write_voice(tmp_path / "s.wav", 2.5, 210.0, 3))
    inp = r.stream_inputs(a)
    d = r.decision
    assert list(inp.names) == ["spectrogram", "prosody"] + (["whisper"] if d.n_whisper else [])
    every = (True,) * len(inp.names)
    p = np.exp(inp.logits_fn(every) - inp.logits_fn(every).max())
    np.testing.assert_allclose(apply_temperature(p / p.sum(), r.temperature), a.probs, atol=2e-3)

    lm = a.log_mel
    flat = frame_patches(np.full_like(lm, lm.mean()), r.patch_config, pad_value=SILENCE_LOG_MEL)
    mu_flat = r.patch_outputs(flat)[0][a.voting].mean(0)
    q = np.asarray(a.context[0], np.float64)
    s_q = d.scaled(q)
    w_rows = [np.asarray(mu_flat, np.float64), np.zeros(d.n_prosody)]
    if d.n_whisper:
        mel = whisper_log_mel(a.clip.samples)
        with torch.no_grad():
            states = shared_encoder(5)(torch.from_numpy(np.full_like(mel, mel.mean()))[None])
        frames = ((states[3] + states[4] + states[5]) / 3)[0].numpy()  # the stream's states 3-5, averaged
        w_rows.append(d.scaled(np.concatenate([q[: d.n_prosody], pool_frames(frames)]))[d.n_prosody :])
    mlp_net = r.model.head.whisper_mlp  # the Whisper MLP's logits, from torch (0 without one)

    def mlp(s_w: np.ndarray) -> np.ndarray:
        if mlp_net is None:
            return np.zeros(len(d.bias))
        with torch.no_grad():
            return mlp_net(torch.as_tensor(s_w, dtype=torch.float32)).numpy().astype(np.float64)

    none = (False,) * len(inp.names)
    np.testing.assert_allclose(inp.logits_fn(none), np.concatenate(w_rows) @ d.weight.T + d.bias
                               + (mlp(w_rows[2]) if d.n_whisper else 0), atol=1e-4)
    if d.n_whisper:  # only the Whisper stream at the recording's value
        only_w = np.concatenate(w_rows[:2] + [s_q[d.n_prosody :]]) @ d.weight.T + d.bias + mlp(s_q[d.n_prosody :])
        np.testing.assert_allclose(inp.logits_fn((False, False, True)), only_w, atol=1e-4)

    t = int(np.argmax(a.probs))
    s = explain_streams(r, a, t)
    assert s.values.sum() == pytest.approx(s.full - s.base, abs=1e-9) and s.target == r.classes[t]
    assert r.stream_inputs(replace(a, adapted=True)) is None  # embeddings moved to a voice: not split
