"""Utterance-level levers of the yardstick: pooling against numpy, NAP recovers a planted
direction, the classifier learns, and a lever row runs end to end on synthetic corpora."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from emolens.evaluation.generalisation import (
    CorpusFeatures,
    HeadConfig,
    PatchFeatures,
    layer_norm,
    run_loco,
    summarise,
)
from emolens.evaluation.utterance_levers import (
    ProsodyScaler,
    fit_classifier,
    nap_basis,
    pool_streams,
    predict_proba,
    project_out,
)


def test_pool_streams_mean_and_std_over_speech_patches() -> None:
    rng = np.random.default_rng(0)
    utt = np.repeat(np.arange(3), 4)
    speech = np.array([1, 1, 0, 1, 0, 0, 0, 0, 1, 1, 1, 1], bool)  # utterance 1 has no speech patch
    a, b = rng.normal(size=(12, 6)).astype(np.float32), rng.normal(size=(12, 5)).astype(np.float32)
    X = pool_streams({"a": a, "b": b}, utt, speech, 3, ("a", "b"), std=True)
    assert X.shape == (3, 2 * 11)
    for u, m in ((0, (utt == 0) & speech), (1, utt == 1), (2, (utt == 2) & speech)):
        za, zb = layer_norm(a[m]), layer_norm(b[m])
        np.testing.assert_allclose(X[u], np.r_[za.mean(0), zb.mean(0), za.std(0), zb.std(0)], atol=1e-5)
    np.testing.assert_allclose(pool_streams({"a": a, "b": b}, utt, speech, 3, ("a", "b")), X[:, :11], atol=1e-6)
    sq = pool_streams({"a": a, "b": b}, utt, speech, 3, ("a", "b"), square=True)
    m = (utt == 2) & speech
    np.testing.assert_allclose(sq[2, 11:17], (layer_norm(a[m]) ** 2).mean(0), atol=1e-5)


def test_nap_finds_the_speaker_direction_whatever_the_emotion_mix() -> None:
    rng = np.random.default_rng(1)
    d = 20
    v = np.zeros(d)
    v[3] = 1.0
    emo = np.zeros(d)
    emo[7] = 3.0
    spk = np.repeat(np.arange(8), 30)
    y = np.arange(240) % 2
    y[spk == 0] = np.r_[np.zeros(25, int), np.ones(5, int)]  # a speaker mostly one emotion
    X = rng.normal(0, 0.1, (240, d)) + (rng.normal(0, 2, 8)[spk])[:, None] * v + y[:, None] * emo
    basis = nap_basis(X.astype(np.float32), y, spk, 1, 2)
    assert basis.shape == (d, 1) and abs(basis[:, 0] @ v) > 0.99  # not the emotion direction
    Xp = project_out(X.astype(np.float32), basis)
    assert np.abs(Xp @ v).max() < 0.1 and np.abs(Xp @ basis).max() < 1e-5


def test_prosody_scaler_standardises_with_training_statistics() -> None:
    rng = np.random.default_rng(2)
    E = rng.normal(5, 3, (200, 88))
    sc = ProsodyScaler(weight=2.0).fit(E)
    Z = sc.transform(E)
    np.testing.assert_allclose(Z.mean(0), 0, atol=1e-4)
    np.testing.assert_allclose(Z.std(0), 2.0, rtol=1e-3)
    assert sc.transform(np.full((1, 88), 1e6)).max() == pytest.approx(12.0)  # clipped at 6 sd, times 2


def _separable(n: int, dim: int, n_classes: int, shift: float, seed: int):
    """``(X (n, dim), y (n,), weights (n,))``: class k lifted by ``shift`` in column k, unit noise."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % n_classes
    X = rng.normal(0, 1, (n, dim)).astype(np.float32)
    X[np.arange(n), y] += shift
    return X, y, np.ones(n, np.float32)


def test_fit_classifier_learns_is_seeded_and_checks_the_adversary() -> None:
    X, y, w = _separable(300, 10, 3, 4.0, seed=3)
    m = fit_classifier(X, y, w, 3, epochs=20, lr=1e-2, mixup=0.4, seed=0)
    assert (predict_proba(m, X).argmax(1) == y).mean() > 0.95
    m2 = fit_classifier(X, y, w, 3, epochs=20, lr=1e-2, mixup=0.4, seed=0)
    np.testing.assert_array_equal(predict_proba(m, X), predict_proba(m2, X))
    corpus = np.where(np.arange(300) < 150, "a", "b")
    adv = fit_classifier(X, y, w, 3, hidden=16, epochs=20, lr=1e-2, corpus=corpus, adversarial=0.3, seed=0)
    assert (predict_proba(adv, X).argmax(1) == y).mean() > 0.9
    with pytest.raises(ValueError, match="hidden"):
        fit_classifier(X, y, w, 3, adversarial=0.3, corpus=corpus)


def test_fit_classifier_trains_on_given_target_distributions() -> None:
    """One-hot targets give the labels' model exactly; a teacher's distributions move the
    probabilities towards them; malformed targets are refused."""
    X, y, w = _separable(200, 6, 2, 2.0, seed=4)
    hard = fit_classifier(X, y, w, 2, epochs=15, lr=1e-2, mixup=0.4, seed=1)
    same = fit_classifier(X, y, w, 2, epochs=15, lr=1e-2, mixup=0.4, seed=1, targets=np.eye(2)[y])
    np.testing.assert_allclose(predict_proba(hard, X), predict_proba(same, X), atol=1e-6)
    flat = fit_classifier(X, y, w, 2, epochs=15, lr=1e-2, mixup=0.4, seed=1, targets=np.full((200, 2), 0.5))
    assert np.abs(predict_proba(flat, X)[:, 1] - 0.5).max() < 0.1 < np.abs(predict_proba(hard, X)[:, 1] - 0.5).mean()
    with pytest.raises(ValueError, match="distributions"):
        fit_classifier(X, y, w, 2, targets=np.ones((200, 2)))


def _toy(name: str, shift: float, rng, dim: int = 64) -> CorpusFeatures:
    n_utt = 40
    y = np.repeat([0, 1], n_utt // 2)
    utt = np.repeat(np.arange(n_utt), 3)
    x = rng.normal(size=(len(utt), dim)).astype(np.float32)
    x[:, :8] += 2 * (2 * y[utt] - 1)[:, None]
    x[:, 8:] += shift * np.tile([1.0, -1.0], (dim - 8) // 2)
    cf = CorpusFeatures(name, {"yamnet": x}, utt, np.ones(len(utt), bool), y,
                        np.array([f"s{i % 4}" for i in range(n_utt)]), np.array([f"{name}{i}" for i in range(n_utt)]),
                        ["angry", "sad"])
    cf.egemaps = (rng.normal(size=(n_utt, 88)) + (2 * y - 1)[:, None]).astype(np.float32)
    noisy = x + rng.normal(0, 0.5, x.shape).astype(np.float32)
    cf.variants = {"aug-mix": PatchFeatures({"yamnet": noisy}, utt, cf.speech),
                   "eq-band": PatchFeatures({"yamnet": x * 1.0}, utt, cf.speech)}
    return cf


def test_lever_rows_run_loco_and_keep_old_cache_keys() -> None:
    rng = np.random.default_rng(4)
    data = {c: _toy(c, s, rng) for c, s in (("emodb", 0.0), ("ravdess", 0.3), ("nemo", -0.3), ("casia", 0.2))}
    base = HeadConfig(streams=("yamnet",), hidden=0, dropout=0.0, epochs=10, batch_size=32, balance="corpus-class",
                      train_on="utterance", mixup=0.4)
    assert not base.utterance_levers and "pooling" not in base.to_dict()  # keys of earlier rows unchanged
    for lever in (replace(base, decision="pooled"), replace(base, pooling="mean+std"), replace(base, pooling="mean+sq"),
                  replace(base, prosody=2.0),
                  replace(base, nap=2), replace(base, augment="mix"), replace(base, frontend="eq-band"),
                  replace(base, hidden=16, adversarial=0.3)):
        assert lever.utterance_levers and lever.key() != base.key()
        res = run_loco(lever, data, seed=0, log=None)
        assert all(r.probs.shape == (40, 2) for r in res)
        np.testing.assert_allclose(res[0].probs.sum(1), 1, atol=1e-5)
        assert summarise(res)["worst_uar"] > 0.85, lever
    bad = replace(base, prosody=2.0)
    data["emodb"].egemaps = None
    with pytest.raises(ValueError, match="eGeMAPS"):
        run_loco(bad, data, seed=0, log=None)


def test_statistics_pooling_row_ships_as_a_head_that_decides_the_same() -> None:
    from emolens.evaluation.adaptation_loco import adaptation_loco
    from emolens.evaluation.generalisation import LocoFold, run_fold, utterance_decisions

    rng = np.random.default_rng(5)
    data = {c: _toy(c, s, rng, dim=1024) for c, s in (("emodb", 0.0), ("ravdess", 0.3), ("nemo", -0.3), ("casia", 0.2))}
    for cf in data.values():
        cf.speech[::3] = False  # the decision is over the speech patches only
    cfg = HeadConfig(streams=("yamnet",), hidden=0, dropout=0.0, epochs=10, batch_size=32, balance="corpus-class",
                     train_on="utterance", mixup=0.4, decision="pooled", pooling="mean+std")
    res, head = run_fold(cfg, data, LocoFold("nemo", ("emodb", "ravdess", "casia")), 0)
    assert head is not None and head.pooling == "mean+std"
    te = data["nemo"]
    np.testing.assert_allclose(utterance_decisions(head, te.feats, te.utt, te.speech, te.n_utt), res.probs, atol=1e-4)
    # a row the model cannot ship has no head (the eGeMAPS stream is not a model input)
    assert run_fold(replace(cfg, prosody=2.0), data, LocoFold("nemo", ("emodb", "ravdess", "casia")), 0)[1] is None
    out = adaptation_loco(cfg, data, methods=("mean",), draws=1)
    assert set(out["mean"]) == {"single", "mean", "one_single", "one_mean", "two_single", "two_mean"}
    assert out["mean"]["single"] > 0.85


def test_pooled_memo_never_serves_another_arrays_entry() -> None:
    from emolens.evaluation import generalisation as g

    rng = np.random.default_rng(6)
    cf = _toy("emodb", 0.0, rng)
    x = cf.feats["yamnet"]
    stale = np.zeros((5, 64), np.float32)
    g._POOLED[(id(x), "yamnet")] = (np.ones_like(x), stale)  # what a freed array with the same id left behind
    out = g._pooled(cf, ("yamnet",))["yamnet"]
    assert out.shape == (cf.n_utt, 64)
    np.testing.assert_allclose(out, g.pooled_streams({"yamnet": x}, cf.utt, cf.speech, cf.n_utt)["yamnet"])
    assert g._pooled(cf, ("yamnet",))["yamnet"] is out  # a real hit is served from the memo
