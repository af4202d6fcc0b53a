"""``--neutral`` on a model with a prosody stream shifts the voice's prosody functionals as
well as its YAMNet streams: the neutral clips' mean functionals go to the training
neutral mean (balanced over speakers), shrunk by the same speech seconds."""

import numpy as np
import pytest

from emolens.adaptation.transform import AdaptConfig, SpeakerAdapter, prosody_class_means


def test_prosody_class_means_are_balanced_over_speakers():
    # speaker a: 3 neutral clips at 0, speaker b: 1 neutral clip at 10 -> the balanced mean is 5, not 2.5
    q = np.array([[0.0], [0.0], [0.0], [10.0], [7.0], [9.0]])
    spk = np.array(["a", "a", "a", "b", "a", "b"])
    y = np.array([0, 0, 0, 0, 1, 1])
    m = prosody_class_means(q, spk, y, 3)
    np.testing.assert_allclose(m[:, 0], [5.0, 8.0, 0.0])  # class 2 has no clip: zeros


def test_prosody_offsets_shrink_with_speech_and_skip_voices_without_clips():
    ad = SpeakerAdapter(AdaptConfig(enrol_shrink_seconds=3.0), {}, np.array([[1.0, 2.0], [0.0, 0.0]], np.float32))
    q = np.array([[3.0, 2.0], [5.0, 6.0], [9.0, 9.0]])
    off = ad.prosody_offsets(q, np.array([0, 0, 2]), np.array([3.0, 6.0, 0.0]), reference=0)
    np.testing.assert_allclose(off[0], 0.5 * (np.array([4.0, 4.0]) - [1.0, 2.0]))  # 3 s of speech: w = 1/2
    np.testing.assert_allclose(off[1], 0.0)  # no enrolment clip
    np.testing.assert_allclose(off[2], 0.0)  # no speech: w = 0
    with pytest.raises(ValueError, match="prosody"):
        SpeakerAdapter(AdaptConfig(), {}).prosody_offsets(q, np.zeros(3, int), np.ones(1), 0)
    back = SpeakerAdapter.from_arrays(ad.to_arrays(), ad.config)  # stored beside the stream statistics
    np.testing.assert_array_equal(back.prosody_means, ad.prosody_means)
    # other class means (the Whisper stream's, adaptation_loco(enrol_whisper=True)): the same rule
    w_means = np.array([[2.0, 0.0, 1.0], [0.0, 0.0, 0.0]], np.float32)
    w = np.array([[4.0, 2.0, 1.0], [6.0, 4.0, 1.0]])
    off = ad.prosody_offsets(w, np.array([0, 0]), np.array([3.0]), reference=0, means=w_means)
    np.testing.assert_allclose(off[0], 0.5 * (np.array([5.0, 3.0, 1.0]) - [2.0, 0.0, 1.0]))


def test_shipped_model_enrols_the_prosody_of_the_voice():
    """On the shipped model (prosody head): predict --adapt --neutral decides on the clip's
    functionals minus the voice's offset, computed from the neutral clip."""
    from emolens.inference import EmotionRecognizer
    from emolens.resources import example_clips

    rec = EmotionRecognizer.default(backend="torch")
    if not rec.needs_prosody:
        pytest.skip("the shipped model has no prosody stream")
    assert rec.adapter.prosody_means is not None and rec.adapter.prosody_means.shape == (4, len(rec.adapter.prosody_means[0]))
    from emolens.audio import load_audio

    sad, angry = (load_audio(p) for p in example_clips())
    a = rec.analyze_clips([angry], adapt=True, neutral=[sad])[0]
    rep = rec.last_adaptation[0]
    assert a.adapted and rep.enrolled == 1
    ref = rec.classes.index(rec.adapter.config.reference)
    w = rep.speech_seconds / (rep.speech_seconds + rec.adapter.config.enrol_shrink_seconds)
    q_raw, q_sad = rec.clip_prosody(angry.samples), rec.clip_prosody(sad.samples)
    np.testing.assert_allclose(a.context[0], q_raw - w * (q_sad - rec.adapter.prosody_means[ref]), rtol=1e-4, atol=1e-3)
    shift = w * (q_sad - rec.adapter.prosody_means[ref])
    np.testing.assert_allclose(a.prosody_shift, shift, rtol=1e-4, atol=1e-3)

    # the prosody lines stay in the recording's raw values, around the voice's expected value,
    # with the attributions of the shifted space the decision read (IG is translation invariant)
    from emolens.explain.prosody import explain_prosody, prosody_contributions

    p = rec.prosody_inputs(a)
    np.testing.assert_allclose(p.values, q_raw, rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(p.train_mean, rec.decision.mean + a.prosody_shift, rtol=1e-6, atol=1e-6)
    import dataclasses

    unshifted = rec.prosody_inputs(dataclasses.replace(a, prosody_shift=None))
    np.testing.assert_allclose(unshifted.values, a.context[0], rtol=1e-6)
    target = int(np.argmax(a.probs))
    c_raw, c_shifted = prosody_contributions(p, target), prosody_contributions(unshifted, target)
    np.testing.assert_allclose(c_raw, c_shifted, atol=2e-4)
    assert np.abs(c_raw).max() > 1e-3
    # completeness: the contributions add up to the log-probability change from the reference
    import torch

    lp = lambda v: float(p.score_fn(torch.as_tensor(np.asarray(v, np.float32))[None])[0, target])  # noqa: E731
    assert abs(c_raw.sum() - (lp(p.values) - lp(p.train_mean))) < 1e-2
    lines = explain_prosody(rec, a, target)
    assert lines and all("this voice's expected value" in ln.text for ln in lines)
    plain = explain_prosody(rec, rec.analyze_clips([angry])[0], target)
    assert plain and all("the training average" in ln.text for ln in plain)
