"""Speech gating: the probability from AudioSet scores, the recording decision, the
voting mask and its fallbacks, and (slow) YAMNet itself on synthesised non-speech vs
a real speech clip."""

import csv

import numpy as np
import pytest

from emolens.errors import SelectionError
from emolens.selection.speech import (
    NUM_AUDIOSET_CLASSES,
    VOICE_CLASSES,
    SpeechGateConfig,
    decide,
    speech_probability,
    voting_mask,
    voting_masks,
)


def scores(rows):
    """AudioSet score rows ``(n, 521)`` with the given ``{class: score}`` per row."""
    a = np.zeros((len(rows), NUM_AUDIOSET_CLASSES))
    for i, r in enumerate(rows):
        for c, v in r.items():
            a[i, c] = v
    return a


def test_speech_probability_is_the_voice_class_maximum():
    a = scores([{0: 0.9}, {13: 0.6, 0: 0.1}, {24: 0.3}, {494: 0.99, 500: 0.8}, {35: 0.9}])
    # speech, laughter, singing count; silence (494) and whistling (35) do not
    np.testing.assert_allclose(speech_probability(a), [0.9, 0.6, 0.3, 0.0, 0.0])
    cfg = SpeechGateConfig(classes=(0,))
    np.testing.assert_allclose(speech_probability(a, cfg), [0.9, 0.1, 0.0, 0.0, 0.0])
    nor = SpeechGateConfig(aggregation="noisy_or")
    assert speech_probability(scores([{0: 0.5, 6: 0.5}]), nor)[0] == pytest.approx(0.75)
    assert 0 in VOICE_CLASSES and 494 not in VOICE_CLASSES and len(VOICE_CLASSES) == 29


def test_bad_input_raises_one_line_errors():
    with pytest.raises(SelectionError, match="521"):
        speech_probability(np.zeros((3, 520)))
    with pytest.raises(SelectionError):
        SpeechGateConfig(threshold=1.5)
    with pytest.raises(SelectionError):
        SpeechGateConfig(classes=(600,))
    with pytest.raises(SelectionError):
        SpeechGateConfig(aggregation="mean")
    with pytest.raises(SelectionError, match="speech_gate"):
        SpeechGateConfig.from_dict({"treshold": 0.3})
    with pytest.raises(SelectionError, match="shape"):
        voting_mask(np.ones(3, bool), np.ones(4, bool))


def test_config_round_trip_and_default_for_old_models():
    assert SpeechGateConfig.from_dict(None) == SpeechGateConfig()  # model.json without speech_gate
    cfg = SpeechGateConfig(threshold=0.35, classes=(0, 6), min_speech_fraction=0.2)
    assert SpeechGateConfig.from_dict(cfg.to_dict()) == cfg
    assert SpeechGateConfig().enabled and SpeechGateConfig().to_dict()["classes"][:3] == [0, 1, 2]


def test_decision_fraction_and_minimum():
    a = scores([{0: 0.9}] * 2 + [{}] * 18)  # 2 of 20 patches speech
    d = decide(a)
    assert d.speech_fraction == pytest.approx(0.10) and d.has_speech
    np.testing.assert_array_equal(d.is_speech, np.arange(20) < 2)
    assert not decide(a, SpeechGateConfig(min_speech_fraction=0.15)).has_speech
    assert not decide(scores([{}] * 5)).has_speech
    # min fraction 0 still needs one speech patch
    assert not decide(scores([{0: 0.1}] * 5), SpeechGateConfig(min_speech_fraction=0.0)).has_speech
    at = decide(scores([{0: 0.2}]))  # threshold is inclusive
    assert at.is_speech.tolist() == [True]


def test_voting_mask_and_fallbacks():
    s = np.array([1, 1, 0, 0, 1], bool)
    k = np.array([1, 0, 1, 1, 0], bool)
    assert voting_mask(s, k).tolist() == [True, False, False, False, False]  # speech AND kept
    assert voting_mask(s, np.array([0, 0, 1, 1, 0], bool)).tolist() == s.tolist()  # GDS kept no speech
    assert voting_mask(np.zeros(5, bool), k).tolist() == k.tolist()  # no speech: GDS-kept vote
    assert voting_mask(np.zeros(3, bool), np.zeros(3, bool)).all()
    assert voting_mask(np.zeros(0, bool), np.zeros(0, bool)).shape == (0,)


def test_voting_masks_per_utterance_equal_voting_mask():
    rng = np.random.default_rng(0)
    groups = np.repeat(np.arange(40), 5)
    s, k = rng.random(200) < 0.4, rng.random(200) < 0.6
    s[groups == 3], k[groups == 4] = False, False  # one utterance without speech, one with nothing kept
    s[groups == 5], k[groups == 5] = False, False
    got = voting_masks(s, k, groups)
    for g in range(40):
        m = groups == g
        np.testing.assert_array_equal(got[m], voting_mask(s[m], k[m]))
    assert got[groups == 5].all() and np.array_equal(got[groups == 3], k[groups == 3])


# ---------------------------------------------------------------- YAMNet itself


def _yamnet_speech(weights_dir, waves):
    from emolens.features.mel import mel_spectrogram
    from emolens.features.patches import log_mel_patches
    from emolens.models.yamnet import load_yamnet_file
    from emolens.selection.speech import audioset_scores

    yam = load_yamnet_file(weights_dir / "yamnet.tflite")
    return {k: audioset_scores(yam, log_mel_patches(mel_spectrogram(w.astype(np.float32)))) for k, w in waves.items()}


@pytest.mark.slow
def test_yamnet_speech_probability_separates_speech_from_synthetic_non_speech(weights_dir, emodb_dir):
    from emolens.audio.io import load_audio

    rng = np.random.default_rng(0)
    t = np.arange(3 * 16000) / 16000
    row = next(r for r in csv.DictReader(open(emodb_dir / "metadata.csv", newline="")) if r["emotion"] == "neutral")
    speech = load_audio(emodb_dir / row["path"]).samples
    a = _yamnet_speech(weights_dir, {
        "silence": np.zeros_like(t),
        "white noise": 0.1 * rng.standard_normal(t.size),
        "tone 1 kHz": 0.5 * np.sin(2 * np.pi * 1000 * t),
        "hum 50 Hz": sum(0.1 / k * np.sin(2 * np.pi * 50 * k * t) for k in range(1, 8)),
        "speech": speech,
    })
    p = {k: speech_probability(v) for k, v in a.items()}
    for name in ("silence", "white noise", "tone 1 kHz", "hum 50 Hz"):
        assert p[name].max() < 0.1, name
        assert not decide(a[name]).has_speech and decide(a[name]).speech_fraction == 0.0
    # a 1.61-s EmoDB sentence (03a01Nc): three patches (the last one end-padded), all speech
    assert len(p["speech"]) == 3 and p["speech"].min() > 0.9
    assert decide(a["speech"]).has_speech and decide(a["speech"]).speech_fraction == 1.0
