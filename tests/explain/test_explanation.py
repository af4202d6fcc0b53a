"""explain() returns one Explanation; the file writer renders it (same files as before)."""

import json

import numpy as np
import pytest
import soundfile as sf

from emolens.explain.explanation import Explanation
from emolens.explain.pipeline import explain, patch_times
from emolens.inference import EmotionRecognizer
from emolens.report.explanation_files import write_explanation


@pytest.fixture(scope="module")
def rec(tiny_run):
    return EmotionRecognizer.from_dir(tiny_run)


@pytest.fixture
def clip(tmp_path):
    rng = np.random.default_rng(0)
    t = np.arange(24000) / 16000
    x = (0.3 * np.sin(2 * np.pi * 300 * t) * (t > 0.5) + 0.01 * rng.standard_normal(t.size)).astype(np.float32)
    p = tmp_path / "clip.wav"
    sf.write(p, x, 16000)
    return p


def test_explanation_object(rec, clip):
    ex = explain(rec, clip, methods=["gradcam", "lime"], lime_samples=20, progress=False,
                 faithfulness_options={"steps": 5, "n_orders": 1})
    assert isinstance(ex, Explanation)
    n_frames = ex.log_mel.shape[0]
    assert ex.log_mel.shape == (n_frames, 64) and n_frames == 148  # 1.5 s: 1 + (24000 - 400) // 160
    assert set(ex.maps) == {"gradcam", "lime"} and all(m.shape == (n_frames, 64) for m in ex.maps.values())
    n = len(ex.keep)
    a = rec.analyze(clip)
    assert n == 3 and ex.patch_probs.shape == (n, 4) and ex.voting.tolist() == a.voting.tolist()
    assert ex.speech.tolist() == (a.speech >= rec.speech_gate.threshold).tolist() and ex.has_speech == a.has_speech
    np.testing.assert_allclose(ex.probs, ex.patch_probs[ex.voting].mean(0), rtol=1e-5)
    np.testing.assert_allclose(ex.patch_times, [[0, 0.96], [0.48, 1.44], [0.96, 1.92]], atol=1e-9)
    assert ex.target == int(np.argmax(ex.probs)) and ex.emotion == rec.classes[ex.target]
    assert ex.label == (ex.emotion if a.has_speech else "no speech")
    assert ex.focus_method == "regions (occlusion)" and ex.focus_mask.shape == ex.wave.shape == ex.focus_audio.shape == ex.tf_audio.shape
    assert 0 < ex.focus_mask.mean() < 1 and np.all(ex.focus_audio[~ex.focus_mask] == 0)
    # the focus audio plays exactly the time spans of the evidence boxes
    pos = [b for b in ex.boxes if b.sign > 0]
    assert pos and ex.sentence.startswith(f"{pos[0].start_s:.2f}-{pos[0].end_s:.2f} s, ")
    spans = np.zeros(len(ex.wave), bool)
    for b in pos:
        spans[int(round(b.start_s * 16000)):int(round(b.end_s * 16000))] = True
    assert np.array_equal(ex.focus_mask, spans)
    assert sum(b.share for b in pos) >= 0.5 or len(pos) == 4  # half the evidence, or the most boxes shown
    # cells no voting patch covers carry no region evidence
    covered = np.zeros(n_frames, bool)
    for (s, e), v in zip((ex.patch_times * 100).round().astype(int), ex.voting):
        covered[s:e] |= bool(v)
    assert np.all(ex.regions.cell_map()[~covered] == 0)
    d = ex.as_dict()
    assert d["regions"] and set(d["regions"][0]) == {"start_s", "end_s", "low_hz", "high_hz", "share", "sign", "score"}
    assert d["sentence"] == ex.sentence and d["region_method"] == "occlusion" and d["contrast"] is None
    assert set(ex.region_faithfulness) == {"regions", "random"}
    plain = explain(rec, clip, methods=["gradcam"], regions=None, with_faithfulness=False, progress=False)
    assert plain.focus_method == "gradcam" and plain.regions is None and "regions" not in plain.as_dict()
    c = explain(rec, clip, methods=["gradcam"], contrast=True, with_faithfulness=False, progress=False)
    assert c.contrast_label == rec.classes[int(np.argsort(c.probs)[-2])] and "rather than" in c.sentence
    assert set(ex.faithfulness) == {"gradcam", "lime", "random"} and len(ex.faithfulness["lime"]["deletion"]) == 6
    assert ex.cost["lime"]["patches_evaluated"] == 3 * 20 and ex.cost["gradcam"]["backward_calls"] == 1
    d = ex.as_dict()
    assert [p["start_s"] for p in d["patch_timeline"]] == [0.0, 0.48, 0.96] and d["patches_voting"] == 3
    assert abs(sum(d["probabilities"].values()) - 1) < 1e-5


def test_focus_method_and_target_and_speech(rec, clip):
    a = rec.analyze(clip)
    a.speech, a.voting = np.array([0.01, 0.9, 0.6]), None  # speech probabilities; voting derived from them
    ex = explain(rec, a, methods=["gradcam", "lime"], target="sad", focus="lime", lime_samples=10,
                 with_faithfulness=False, progress=False)
    assert ex.target_label == "sad" and ex.focus_method == "lime" and ex.faithfulness == {}
    assert ex.speech.tolist() == [False, True, True]
    assert ex.voting.tolist() == (a.keep & ex.speech).tolist() and "explaining: sad" in ex.title()
    # the focus follows LIME's positive part, not Grad-CAM
    g = explain(rec, a, methods=["gradcam"], target="sad", with_faithfulness=False, progress=False)
    assert not np.array_equal(ex.focus_mask, g.focus_mask)
    steps = []
    explain(rec, a, methods=["lime"], lime_samples=5, with_faithfulness=False, progress=lambda s, d, t: steps.append((s, d, t)))
    assert ("lime", 3, 3) in steps and steps[-1] == ("regions (occlusion)", 1, 1)


def test_writer_round_trip(rec, clip, tmp_path):
    ex = explain(rec, clip, methods=["gradcam"], progress=False, faithfulness_options={"steps": 4, "n_orders": 1})
    info = write_explanation(ex, tmp_path / "out", cfg=rec.frontend)
    for name in ("explanation.png", "regions.png", "focus.wav", "focus.png", "focus_tf.wav", "faithfulness.png", "explanation.json"):
        assert (tmp_path / "out" / name).stat().st_size > 0, name
    assert json.loads((tmp_path / "out" / "explanation.json").read_text()) == json.loads(json.dumps(info))
    focus, sr = sf.read(tmp_path / "out" / "focus.wav", dtype="float32")
    assert sr == 16000 and np.allclose(focus, ex.focus_audio, atol=1 / 32767)
