"""EmotionRecognizer with the speech gate: "no speech" for silence and noise, speech
patches vote, the gate off for a model.json that says so, and gating a model without a
YAMNet branch through separately loaded YAMNet weights."""

import csv

import numpy as np
import pytest
import torch

from emolens.audio.io import AudioClip, load_audio
from emolens.inference import EmotionRecognizer
from emolens.models.fusion import MODEL_STREAMS, FusionNet
from emolens.models.yamnet import load_yamnet_file

CLASSES = ["angry", "happy", "neutral", "sad"]


def config(**extra):
    return {"classes": CLASSES, "frontend": {"name": "vggish16k"},
            "patches": {"patch_frames": 96, "hop_frames": 48}, "gds": {"enabled": False}, **extra}


@pytest.fixture(scope="module")
def yamnet_model(weights_dir):
    torch.manual_seed(0)
    return FusionNet(4, MODEL_STREAMS["yamnet"], yamnet=load_yamnet_file(weights_dir / "yamnet.tflite")).eval()


@pytest.fixture(scope="module")
def speech_clip(emodb_dir):
    row = next(r for r in csv.DictReader(open(emodb_dir / "metadata.csv", newline="")) if r["emotion"] == "sad")
    return emodb_dir / row["path"]


def clip(samples):
    return AudioClip(np.asarray(samples, np.float32), 16000, 16000, 1)


@pytest.mark.slow
def test_silence_and_noise_are_no_speech(yamnet_model):
    rec = EmotionRecognizer(yamnet_model, config())
    rng = np.random.default_rng(0)
    for a in rec.analyze_clips([clip(np.zeros(48000)), clip(0.05 * rng.standard_normal(48000))]):
        assert a.label == "no speech" and not a.has_speech and a.speech_fraction == 0.0
        assert a.emotion in CLASSES and abs(a.probs.sum() - 1) < 1e-5  # still reported, flagged
        assert a.confidence == 1.0 and a.speech.max() < 0.1
        d = a.as_dict()
        assert d["label"] == "no speech" and d["speech"] is False and d["speech_fraction"] == 0.0
        assert d["probabilities_meaningful"] is False and any(n.startswith("no speech") for n in d["notes"])
        assert d["patches_voting"] == d["patches"]  # no speech patch: the GDS-kept (here all) give the probabilities


@pytest.mark.slow
def test_speech_patches_vote(yamnet_model, speech_clip):
    rec = EmotionRecognizer(yamnet_model, config())
    a = rec.analyze(speech_clip)
    assert a.has_speech and a.label in CLASSES and a.label == a.emotion
    np.testing.assert_array_equal(a.voting, a.speech >= 0.2)
    assert 0 < a.voting.sum() <= len(a.patches)
    np.testing.assert_allclose(a.probs, a.patch_probs[a.voting].mean(0), rtol=1e-6)
    assert a.as_dict()["speech_fraction"] == pytest.approx(a.voting.mean(), abs=1e-4)
    # a silence-padded copy: the padding does not vote, so the decision is unchanged
    x = load_audio(speech_clip).samples
    padded = rec.analyze_clip(clip(np.concatenate([np.zeros(32000, np.float32), x, np.zeros(32000, np.float32)])))
    assert padded.has_speech and padded.speech_fraction < a.speech_fraction
    assert padded.label == a.label


@pytest.mark.slow
def test_gate_off_in_model_json(yamnet_model):
    rec = EmotionRecognizer(yamnet_model, config(speech_gate={"enabled": False}))
    a = rec.analyze_clip(clip(np.zeros(32000)))
    assert a.label in CLASSES and a.speech is None and a.as_dict()["speech"] is True


@pytest.mark.slow
def test_model_without_yamnet_branch_gates_with_separate_yamnet(weights_dir, monkeypatch):
    monkeypatch.setenv("EMOLENS_WEIGHTS", str(weights_dir))
    torch.manual_seed(0)
    model = FusionNet(4, ("vggish",)).eval()
    assert model.yamnet is None
    rec = EmotionRecognizer(model, config())
    a = rec.analyze_clip(clip(np.zeros(32000)))
    assert a.label == "no speech" and rec._gate_yamnet is not None
