"""--adapt on LOCO folds: on toy corpora where each speaker carries a large offset, a mean
shift repairs balanced speakers, and the gain is gone when each speaker shows one emotion."""

from __future__ import annotations

import numpy as np

from emolens.evaluation.adaptation_loco import adaptation_loco
from emolens.evaluation.generalisation import CorpusFeatures, HeadConfig


def _toy(name: str, rng) -> CorpusFeatures:
    n_utt, per = 48, 12
    y = np.tile([0, 1], n_utt // 2)
    spk = np.repeat(np.arange(4), n_utt // 4)
    utt = np.repeat(np.arange(n_utt), per)
    x = rng.normal(0, 1, (len(utt), 1024)).astype(np.float32)
    x[:, :8] += 1.0 * (2 * y[utt] - 1)[:, None]
    offsets = rng.normal(0, 1, (4, 1024)) * 3.0  # each speaker shifts everything, emotion dims included
    x += offsets[spk[utt]].astype(np.float32)
    return CorpusFeatures(name, {"yamnet": x}, utt, np.ones(len(utt), bool), y,
                          np.array([f"{name}-s{s}" for s in spk]), np.array([f"{name}{i}" for i in range(n_utt)]),
                          ["angry", "sad"])


def test_adaptation_loco_measures_the_gain_and_the_trap() -> None:
    rng = np.random.default_rng(0)
    data = {c: _toy(c, rng) for c in ("emodb", "ravdess", "nemo", "casia")}
    cfg = HeadConfig(streams=("yamnet",), hidden=0, dropout=0.0, epochs=20, batch_size=32, balance="corpus-class",
                     train_on="utterance")
    res = adaptation_loco(cfg, data, seed=0, methods=("mean", "prior"), draws=2)
    assert set(res["per_corpus"]) == set(data)
    assert set(res["mean"]) == {"single", "mean", "prior", "one_single", "one_mean", "one_prior",
                                "two_single", "two_mean", "two_prior"}
    m = res["mean"]
    assert all(0.0 <= v <= 1.0 for v in m.values())
    gain, gain_one = m["mean"] - m["single"], m["one_mean"] - m["one_single"]
    assert gain > 0.2  # the speaker offset removed on balanced speakers
    assert gain_one < gain - 0.15  # ... but not when each speaker shows one emotion (it goes with the offset)
    assert m["prior"] - m["single"] > 0.2  # the prior-aware shift keeps most of the balanced gain
    # two classes: keeping two emotions keeps every clip, so the two-emotion version is the balanced one
    assert np.isclose(m["two_single"], m["single"]) and np.isclose(m["two_mean"], m["mean"])


def test_neutral_enrolment_helps_balanced_and_one_emotion_speakers() -> None:
    from dataclasses import replace

    rng = np.random.default_rng(1)
    data = {c: replace(_toy(c, rng), classes=["neutral", "sad"]) for c in ("emodb", "ravdess", "nemo", "casia")}
    cfg = HeadConfig(streams=("yamnet",), hidden=0, dropout=0.0, epochs=20, batch_size=32, balance="corpus-class",
                     train_on="utterance")
    m = adaptation_loco(cfg, data, seed=0, methods=("mean", "enrol"), draws=2)["mean"]
    assert {"enrol_single", "enrol", "one_enrol_single", "one_enrol"} <= set(m)
    assert m["enrol"] - m["enrol_single"] > 0.2  # one neutral clip per speaker removes its offset
    assert m["one_enrol"] - m["one_enrol_single"] > 0.2  # ... and keeps a steady emotion (unlike the mean shift)
    assert m["one_mean"] - m["one_single"] < m["one_enrol"] - m["one_enrol_single"] - 0.15


def test_a_whisper_head_adapts_on_its_whole_utterance_vector() -> None:
    """The Whisper model's head (prosody functionals, then the Whisper stream) is measured
    with both: the class signal placed in the Whisper stream alone is what every method
    decides on, and ``--neutral`` shifts the functionals only."""
    from dataclasses import replace

    from emolens.features.prosody import N_PROSODY

    rng = np.random.default_rng(2)
    data = {}
    for c in ("emodb", "ravdess", "nemo", "casia"):
        cf = replace(_toy(c, rng), classes=["neutral", "sad"])
        cf.feats["yamnet"][:, :8] = rng.normal(0, 1, (len(cf.utt), 8))  # no class signal in the patches
        cf.prosody = rng.normal(0, 1, (cf.n_utt, N_PROSODY)).astype(np.float32)
        w = rng.normal(0, 1, (cf.n_utt, 1024)).astype(np.float32)
        w[:, :32] += 1.5 * (2 * cf.y - 1)[:, None]
        cf.whisper = w
        data[c] = cf
    cfg = HeadConfig(streams=("yamnet",), hidden=0, dropout=0.0, epochs=20, batch_size=32, balance="corpus-class",
                     train_on="utterance", decision="pooled", prosody=2.0, prosody_set="emolens", whisper=1.0)
    m = adaptation_loco(cfg, data, seed=0, methods=("mean", "enrol"), draws=1)["mean"]
    assert m["single"] > 0.85 and m["enrol"] > 0.85 and m["one_enrol"] > 0.85
    data["nemo"].whisper = None
    import pytest

    with pytest.raises(ValueError, match="Whisper fusion needs the Whisper stream"):
        adaptation_loco(cfg, data, seed=0, methods=("mean",), draws=1)


def test_enrolling_the_whisper_stream_removes_a_voices_offset_in_it() -> None:
    """``enrol_whisper=True`` (measured on the real folds and not shipped): with each
    voice's offset in the Whisper stream's emotion dimensions, one neutral clip shifts it away
    only when the stream is enrolled too."""
    from dataclasses import replace

    from emolens.features.prosody import N_PROSODY

    rng = np.random.default_rng(3)
    data = {}
    for c in ("emodb", "ravdess", "nemo", "casia"):
        cf = replace(_toy(c, rng), classes=["neutral", "sad"])
        cf.feats["yamnet"][:, :8] = rng.normal(0, 1, (len(cf.utt), 8))
        cf.prosody = rng.normal(0, 1, (cf.n_utt, N_PROSODY)).astype(np.float32)
        spk = np.unique(cf.speakers, return_inverse=True)[1]
        w = rng.normal(0, 1, (cf.n_utt, 1024)).astype(np.float32)
        w[:, :32] += (1.5 * (2 * cf.y - 1) + 3.0 * rng.choice([-1.0, 1.0], 4)[spk])[:, None]
        cf.whisper = w
        data[c] = cf
    cfg = HeadConfig(streams=("yamnet",), hidden=0, dropout=0.0, epochs=20, batch_size=32, balance="corpus-class",
                     train_on="utterance", decision="pooled", prosody=2.0, prosody_set="emolens", whisper=1.0)
    plain = adaptation_loco(cfg, data, seed=0, methods=("enrol",), draws=1)["mean"]
    both = adaptation_loco(cfg, data, seed=0, methods=("enrol",), draws=1, enrol_whisper=True)["mean"]
    assert plain["enrol_single"] == both["enrol_single"] < 0.8  # the offsets confuse single clips
    assert both["enrol"] - plain["enrol"] > 0.15 and both["one_enrol"] - plain["one_enrol"] > 0.15
