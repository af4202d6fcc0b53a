"""The app's computing side (no web server): limits, errors, cached explanations, views."""

import json

import numpy as np
import pytest
import soundfile as sf

from emolens.app.session import AppConfig, AppSession, model_card_markdown, profile_files
from emolens.errors import AudioError
from emolens.inference import EmotionRecognizer, resolve_model


@pytest.fixture(scope="module")
def rec(tiny_run):
    return EmotionRecognizer.from_dir(tiny_run)


def _wav(path, seconds, sr=16000):
    t = np.arange(int(seconds * sr)) / sr
    sf.write(path, (0.2 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), sr)
    return path


def test_limits_and_bad_files(rec, tmp_path):
    s = AppSession(rec, AppConfig(workdir=tmp_path / "w", max_seconds=2.0, max_upload_mb=0.05))
    with pytest.raises(AudioError, match="over the 0.05 MB upload limit"):
        s.analyse(_wav(tmp_path / "big.wav", 1.9))  # 60.8 kB of PCM16
    s.config.max_upload_mb = 1.0
    with pytest.raises(AudioError, match="longer|seconds|long"):
        s.analyse(_wav(tmp_path / "long.wav", 3.0))
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF not really a wav" * 10)
    with pytest.raises(AudioError):
        s.analyse(bad)
    with pytest.raises(AudioError, match="no recording"):
        s.analyse(tmp_path / "missing.wav")


def test_view_cached_and_rendered(rec, tmp_path):
    cfg = AppConfig(workdir=tmp_path / "w", lime_samples=6)
    s = AppSession(rec, cfg)
    a = s.analyse(_wav(tmp_path / "ok.wav", 1.2))
    v = s.view("gradcam")
    assert v.explanation.target_label == a.emotion and abs(sum(v.probabilities.values()) - 1) < 1e-5
    for p in (v.timeline_png, v.map_png):
        assert p.is_file() and p.read_bytes()[:4] == b"\x89PNG" and cfg.workdir in p.parents
    steps = []
    v2 = s.view("lime", "sad", lambda st, d, t: steps.append((st, d, t)))
    e2 = v2.explanation
    assert e2.focus_method == "regions (occlusion)" and e2.target_label == "sad" and ("lime", 2, 2) in steps
    assert s.explanation("lime", "sad") is e2 and len(s.cache) == 2  # no recomputation
    assert v2.sentence == e2.sentence and "of the evidence for sad" in v2.sentence  # the boxes in words
    v3 = s.view("lime", "sad", contrast=True)
    assert v3.explanation.contrast_label not in (None, "sad") and "for sad rather than" in v3.sentence
    assert len(s.cache) == 3 and v3.map_png != v2.map_png


def test_model_card_and_profile(tiny_run, tmp_path):
    md = model_card_markdown(tiny_run)
    assert "angry, happy, neutral, sad" in md and "no MODEL_CARD.md" in md
    (tmp_path / "MODEL_CARD.md").write_text("# card\nhello")
    assert model_card_markdown(tmp_path) == "# card\nhello"
    assert profile_files(tmp_path) == (None, None)
    (tmp_path / "profile").mkdir()
    (tmp_path / "profile" / "profile.json").write_text(json.dumps({"summary": {"sad": {"n": 3}}}))
    assert profile_files(tmp_path)[1]["summary"]["sad"]["n"] == 3


def test_resolve_model(tiny_run, monkeypatch):
    assert EmotionRecognizer.from_dir(resolve_model(tiny_run)).classes == ["angry", "happy", "neutral", "sad"]
    assert resolve_model(tiny_run) == tiny_run
    import emolens.resources

    monkeypatch.setattr(emolens.resources, "default_model_dir", lambda name="default": None)
    with pytest.raises(Exception, match="no --model given and this emolens install has no default model"):
        resolve_model(None)


def test_adapt_checkbox_says_what_adapt_measured():
    from types import SimpleNamespace

    from emolens.app.ui import _adapt_info

    m = {"single": 0.466, "nap": 0.452, "mean": 0.568, "one_single": 0.489, "one_nap": 0.393, "one_mean": 0.32}
    info = _adapt_info(SimpleNamespace(config={"card": {"adaptation_loco": m}}))
    assert info.startswith("On this model's leave-one-corpus-out folds --adapt (nap) changed UAR by -0.014")
    assert "-0.096 (speakers showing one emotion)" in info
    m |= {"gated": 0.513, "one_gated": 0.518}  # the model's own method names the figures
    adapter = SimpleNamespace(config=SimpleNamespace(method="gated"))
    info = _adapt_info(SimpleNamespace(config={"card": {"adaptation_loco": m}}, adapter=adapter))
    assert info.startswith("On this model's leave-one-corpus-out folds --adapt (gated) changed UAR by +0.047")
    assert "+0.029 (speakers showing one emotion)" in info
    assert _adapt_info(SimpleNamespace(config={})) is None


@pytest.mark.slow
def test_adapt_one_recording_reads_its_stretches(shared_dir, tmp_path):
    """The app adapts one uploaded recording: its 2-s stretches are the spread gate's clips, so a
    voice heard in every emotion is adapted and the same voice angry throughout is not."""
    import soundfile as sf

    wav = sorted((shared_dir / "data" / "emodb-original" / "wav").glob("03*.flac"))
    mixed = [f for f in wav if f.stem[5] in "WFNT"][::2]  # 20 clips, every emotion, about 50 s
    angry = [f for f in wav if f.stem[5] == "W"]  # 14 clips, about 35 s
    s = AppSession(EmotionRecognizer.default(backend="torch"), AppConfig(workdir=tmp_path / "w"))
    out = {}
    for name, files in (("mixed", mixed), ("angry", angry)):
        path = tmp_path / f"{name}.wav"
        sf.write(path, np.concatenate([sf.read(f)[0] for f in files]).astype(np.float32), 16000)
        out[name] = s.analyse(path, adapt=True)
    assert out["mixed"].adapted and any(n.startswith("adapted to voice") for n in out["mixed"].clip.notes)
    assert not out["angry"].adapted
    assert any("it may hold one steady emotion" in n for n in out["angry"].clip.notes)


@pytest.mark.slow
def test_adapt_with_a_neutral_clip_of_the_voice(shared_dir, tmp_path):
    rec = EmotionRecognizer.default(backend="torch")
    wav = shared_dir / "data" / "emodb-original" / "wav"
    s = AppSession(rec, AppConfig(workdir=tmp_path / "w"))
    plain = s.analyse(wav / "03a02Wb.flac").probs
    a = s.analyse(wav / "03a02Wb.flac", adapt=True, neutral=wav / "03a01Nc.flac")
    assert a.adapted and any("from 1 neutral clip" in n for n in a.clip.notes)
    assert np.abs(a.probs - plain).max() > 0.01
    with pytest.raises(AudioError, match="tick 'adapt to this voice'"):
        s.analyse(wav / "03a02Wb.flac", neutral=wav / "03a01Nc.flac")
    with pytest.raises(AudioError, match="no neutral clip received"):
        s.analyse(wav / "03a02Wb.flac", adapt=True, neutral=tmp_path / "missing.wav")
