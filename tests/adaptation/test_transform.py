"""The adaptation transform on synthetic voices with a known speaker subspace and known emotion directions."""

from __future__ import annotations

import numpy as np
import pytest

from emolens.adaptation.transform import AdaptConfig, SpeakerAdapter, adapt_rule, fit_stream

D, C = 24, 4
SPK_DIMS, EMO_DIMS = slice(0, 5), slice(5, 8)


def _emotion_means() -> np.ndarray:
    m = np.zeros((C, D))
    m[1:, EMO_DIMS] = 3.0 * np.eye(3)  # class 0 (angry here) at the origin of the emotion dims, others along 5..7
    m[0, EMO_DIMS] = -1.5
    return m


def _voice(rng, n_per_class: dict[int, int], offset_scale: float = 4.0):
    """Utterance features of one speaker: speaker offset in dims 0-4 + emotion mean + noise."""
    off = np.zeros(D)
    off[SPK_DIMS] = rng.normal(0, offset_scale, 5)
    rows, labels = [], []
    for c, n in n_per_class.items():
        rows.append(off + _emotion_means()[c] + rng.normal(0, 0.3, (n, D)))
        labels += [c] * n
    return np.concatenate(rows), np.array(labels), off


def _train(rng, n_spk=30):
    xs, ys, ss = [], [], []
    for s in range(n_spk):
        x, y, _ = _voice(rng, {c: 6 for c in range(C)})
        xs.append(x); ys.append(y); ss += [f"s{s}"] * len(y)
    return np.concatenate(xs), np.concatenate(ys), np.array(ss)


def _nearest_class(x: np.ndarray) -> np.ndarray:
    """Nearest emotion mean in the emotion dims only (a classifier blind to the speaker dims)."""
    m = _emotion_means()[:, EMO_DIMS]
    return np.argmin(((x[:, None, EMO_DIMS] - m[None]) ** 2).sum(-1), 1)


def _fit(x, y, s, cfg):
    utt = np.arange(len(y))
    return SpeakerAdapter.fit({"f": x}, utt, np.ones(len(y), bool), s, y, utt, cfg)


def test_subspaces_are_learned():
    rng = np.random.default_rng(0)
    x, y, s = _train(rng)
    st = fit_stream(x, s, y, k=5, q=3)
    # the emotion basis spans dims 5-7, the nuisance basis dims 0-4 (energy fractions)
    assert np.sum(st.emotion[EMO_DIMS] ** 2) / 3 > 0.98
    assert np.sum(st.nuisance[SPK_DIMS] ** 2) / 5 > 0.95
    assert np.abs(st.nuisance.T @ st.emotion).max() < 1e-5  # nuisance is orthogonal to the emotion subspace


@pytest.mark.parametrize("emotion", [0, 1, 3])
def test_nap_keeps_a_constant_emotion_speakers_class_mean_shift_erases_it(emotion):
    rng = np.random.default_rng(1)
    x, y, s = _train(rng)
    cfg = AdaptConfig(method="nap", k=5, q=3, shrink_seconds=0.0, min_clips=3, min_speech_seconds=0.0)
    ad = _fit(x, y, s, cfg)
    xt, yt, off = _voice(np.random.default_rng(100 + emotion), {emotion: 12}, offset_scale=6.0)
    g, v, secs = np.zeros(len(yt), int), np.ones(len(yt), bool), np.array([100.0])
    nap = ad.apply({"f": xt}, g, v, secs)["f"]
    mean = ad.apply({"f": xt}, g, v, secs, method="mean")["f"]
    # NAP removes the speaker offset (dims 0-4) ...
    assert np.linalg.norm(nap[:, SPK_DIMS].mean(0)) < 0.15 * np.linalg.norm(off[SPK_DIMS])
    # ... and keeps the class direction: emotion dims move by < 10% of the class spacing (3.0)
    np.testing.assert_allclose(nap[:, EMO_DIMS].mean(0), xt[:, EMO_DIMS].mean(0), atol=0.3)
    assert np.mean(_nearest_class(nap) == emotion) == 1.0
    # the plain mean shift moves the speaker to the training mean: its steady emotion is gone
    assert np.linalg.norm(mean[:, EMO_DIMS].mean(0) - ad.streams["f"].mean[EMO_DIMS]) < 0.1
    if emotion != 0:  # class 0 sits nearest the balanced mean, the others are pulled away from their class
        assert np.mean(_nearest_class(mean) == emotion) < 0.5


def test_shrinkage_and_fallback():
    rng = np.random.default_rng(2)
    x, y, s = _train(rng)
    cfg = AdaptConfig(method="nap", k=5, q=3, shrink_seconds=10.0)
    ad = _fit(x, y, s, cfg)
    xt, yt, off = _voice(np.random.default_rng(7), {2: 8})
    g, v = np.zeros(len(yt), int), np.ones(len(yt), bool)
    full = ad.offsets({"f": xt}, g, v, np.array([1e9]))["f"][0]
    for sec in (5.0, 10.0, 30.0):
        np.testing.assert_allclose(ad.offsets({"f": xt}, g, v, np.array([sec]))["f"][0], full * sec / (sec + 10.0), rtol=1e-4, atol=1e-5)
    same = ad.apply({"f": xt}, g, v, np.array([30.0]), adapt=np.array([False]))["f"]
    np.testing.assert_array_equal(same, xt.astype(np.float32))
    # the rule: too few clips / too little speech -> a one-line reason; enough -> None
    assert "2 clips" in adapt_rule(2, 50.0, cfg) and "clip by clip" in adapt_rule(2, 50.0, cfg)
    assert "4.0 s of speech" in adapt_rule(5, 4.0, cfg)
    assert adapt_rule(3, 10.0, cfg) is None
    assert adapt_rule(1, 12.0, cfg, single_recording=True) is None
    # storage round trip
    back = SpeakerAdapter.from_arrays(ad.to_arrays(), cfg)
    np.testing.assert_array_equal(back.apply({"f": xt}, g, v, np.array([30.0]))["f"],
                                  ad.apply({"f": xt}, g, v, np.array([30.0]))["f"])


@pytest.mark.parametrize("emotion", [1, 3])
def test_neutral_enrolment_removes_the_voice_and_keeps_a_steady_emotion(emotion):
    rng = np.random.default_rng(3)
    x, y, s = _train(rng)
    cfg = AdaptConfig(k=5, q=3, enrol_shrink_seconds=0.0)
    ad = _fit(x, y, s, cfg)
    st = ad.streams["f"]
    np.testing.assert_allclose(st.class_means[:, EMO_DIMS], _emotion_means()[:, EMO_DIMS], atol=0.3)  # each class's mean
    # a voice far from the training voices, angry (or sad) in every clip, enrolled with 2 clips of class 0
    r = np.random.default_rng(200 + emotion)
    xt, yt, off = _voice(r, {emotion: 12}, offset_scale=6.0)
    enrol = off + _emotion_means()[0] + r.normal(0, 0.3, (2, D))
    o = ad.enrolment_offsets({"f": enrol}, np.zeros(2, int), np.ones(2, bool), np.array([2.0]), reference=0)
    np.testing.assert_allclose(o["f"][0], enrol.mean(0) - st.class_means[0], atol=1e-5)
    out = ad.subtract({"f": xt}, np.zeros(len(yt), int), o)["f"]
    # the voice offset is gone (speaker dims back near 0) and the steady emotion is kept
    assert np.linalg.norm(out[:, SPK_DIMS].mean(0)) < 0.2 * np.linalg.norm(off[SPK_DIMS])
    np.testing.assert_allclose(out[:, EMO_DIMS].mean(0), xt[:, EMO_DIMS].mean(0), atol=0.5)
    assert np.mean(_nearest_class(out) == emotion) == 1.0
    plain = SpeakerAdapter(AdaptConfig(k=5, q=3, shrink_seconds=0.0), ad.streams)
    mean = plain.apply({"f": xt}, np.zeros(len(yt), int), np.ones(len(yt), bool), np.array([100.0]), method="mean")["f"]
    assert np.linalg.norm(mean[:, EMO_DIMS].mean(0) - st.mean[EMO_DIMS]) < 0.1  # the mean shift erases it instead
    # shrinkage: w = S / (S + S0); statistics round trip keeps the class means; old files refuse enrolment
    shrunk = SpeakerAdapter(AdaptConfig(enrol_shrink_seconds=3.0), ad.streams)
    o3 = shrunk.enrolment_offsets({"f": enrol}, np.zeros(2, int), np.ones(2, bool), np.array([1.5]), reference=0)
    np.testing.assert_allclose(o3["f"], o["f"] * 1.5 / 4.5, rtol=1e-5, atol=1e-6)
    back = SpeakerAdapter.from_arrays(ad.to_arrays(), cfg)
    np.testing.assert_array_equal(back.streams["f"].class_means, st.class_means)
    old = {k: v for k, v in ad.to_arrays().items() if not k.endswith("class_means")}
    with pytest.raises(ValueError, match="refit"):
        SpeakerAdapter.from_arrays(old, cfg).enrolment_offsets({"f": enrol}, np.zeros(2, int), np.ones(2, bool),
                                                               np.array([2.0]), reference=0)


@pytest.mark.parametrize("shape", [(12, 40), (40, 12)])
def test_top_directions_survive_an_svd_that_does_not_converge(monkeypatch, shape):
    """LAPACK's gesdd fails to converge on some matrices (seen on a 172 x 1024 training
    matrix with numpy's OpenBLAS 0.3.31): the Gram-matrix fallback spans the same directions."""
    from emolens.adaptation import transform as T

    rng = np.random.default_rng(3)
    v = rng.normal(size=(shape[0], 5)) @ (rng.normal(size=(5, shape[1])) * np.array([9, 5, 3, 2, 1.0])[:, None])
    ref = T._orthonormal_top(v, 3)
    s, _ = T._svd_by_gram(v)
    np.testing.assert_allclose(s[:5], np.linalg.svd(v, compute_uv=False)[:5], rtol=1e-6)

    def broken(*a, **k):
        raise np.linalg.LinAlgError("SVD did not converge")

    monkeypatch.setattr(T.np.linalg, "svd", broken)
    got = T._orthonormal_top(v, 3)
    assert got.shape == ref.shape == (shape[1], 3)
    np.testing.assert_allclose(got @ got.T, ref @ ref.T, atol=1e-6)  # the same subspace (signs may differ)
    assert T._orthonormal_top(v, 10).shape[1] == 5  # rank 5: no spurious directions
