"""The LOCO yardstick's machinery on synthetic features: folds, voting, ECE, balancing,
head training, resumable runs."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from emolens.evaluation.generalisation import (
    CorpusFeatures,
    HeadConfig,
    _weights,
    expected_calibration_error,
    loco_folds,
    run_loco,
    summarise,
    train_head,
    vote,
)
from emolens.models.fusion import FusionHead


def test_loco_folds_keep_casia_out_of_training() -> None:
    folds = loco_folds(["emodb", "ravdess", "nemo", "casia"])
    assert [(f.test, f.train) for f in folds] == [
        ("emodb", ("ravdess", "nemo")), ("ravdess", ("emodb", "nemo")), ("nemo", ("emodb", "ravdess")),
        ("casia", ("emodb", "ravdess", "nemo"))]
    assert all("casia" not in f.train for f in folds)
    with pytest.raises(ValueError, match="two development corpora"):
        loco_folds(["emodb", "casia"])


def test_vote_uses_speech_patches_and_falls_back() -> None:
    probs = np.array([[1, 0], [0, 1], [0, 1], [0.2, 0.8], [0.6, 0.4]], float)
    utt = np.array([0, 0, 0, 1, 1])
    speech = np.array([True, True, False, False, False])
    v = vote(probs, utt, speech, 2)
    np.testing.assert_allclose(v, [[0.5, 0.5], [0.4, 0.6]])


def test_ece_known_values() -> None:
    # two items at confidence 0.9, one right one wrong: |0.5 - 0.9| = 0.4
    p = np.array([[0.9, 0.1], [0.9, 0.1]])
    assert expected_calibration_error(p, np.array([0, 1])) == pytest.approx(0.4)
    # perfectly calibrated at 1.0
    assert expected_calibration_error(np.array([[1.0, 0.0]]), np.array([0])) == pytest.approx(0.0)


def test_weights_balance_cells() -> None:
    y = np.array([0, 0, 0, 1, 0, 1])
    corpus = np.array(["a", "a", "a", "a", "b", "b"])
    ukey = np.array(["a0", "a0", "a1", "a2", "b0", "b1"])
    w = _weights(HeadConfig(balance="corpus-class"), y, corpus, ukey, 2)
    cells = {(c, k): w[(corpus == c) & (y == k)].sum() for c in "ab" for k in (0, 1)}
    assert np.allclose(list(cells.values()), 1.5) and w.mean() == pytest.approx(1.0)
    wu = _weights(HeadConfig(balance="none", per_utterance=True), y, corpus, ukey, 2)
    assert wu[0] == pytest.approx(wu[2] / 2)  # utterance a0 has two patches, a1 one


def _toy(name: str, shift: float, rng) -> CorpusFeatures:
    """Two classes separated along the first 32 features, plus a corpus offset on the rest."""
    n_utt = 40
    y = np.repeat([0, 1], n_utt // 2)
    utt = np.repeat(np.arange(n_utt), 3)
    x = rng.normal(size=(len(utt), 1024)).astype(np.float32)  # the embedding stream is 1024-d
    x[:, :32] += 2 * (2 * y[utt] - 1)[:, None]
    x[:, 32:] += shift * np.tile([1.0, -1.0], 496)  # zero-mean offset (the head layer-normalises)
    return CorpusFeatures(name, {"yamnet": x}, utt, np.ones(len(utt), bool), y,
                          np.array([f"s{i % 4}" for i in range(n_utt)]), np.array([f"{name}{i}" for i in range(n_utt)]),
                          ["angry", "sad"])


def test_run_loco_learns_and_resumes(tmp_path) -> None:
    rng = np.random.default_rng(0)
    data = {c: _toy(c, s, rng) for c, s in (("emodb", 0.0), ("ravdess", 0.3), ("nemo", -0.3), ("casia", 0.2))}
    cfg = HeadConfig(streams=("yamnet",), hidden=16, epochs=10, batch_size=32)
    res = run_loco(cfg, data, seed=0, out=tmp_path, log=None)
    s = summarise(res)
    assert set(s["per_corpus"]) == set(data) and s["worst_uar"] > 0.9
    assert (tmp_path / "casia.npz").exists()
    again = run_loco(cfg, data, seed=0, out=tmp_path, log=None)  # read back from the cache
    np.testing.assert_array_equal(again[0].probs, res[0].probs)
    relabelled = dict(data, ravdess=replace(data["ravdess"], y=1 - data["ravdess"].y))  # a new labelling of one corpus
    fresh = {r.test: r for r in run_loco(cfg, relabelled, seed=0, out=tmp_path, log=None)}
    np.testing.assert_array_equal(fresh["ravdess"].y, 1 - data["ravdess"].y)  # not the cached fold
    assert fresh["ravdess"].metrics["uar"] < 0.1  # the head learnt the other corpora's mapping
    assert not np.array_equal(fresh["emodb"].probs, res[0].probs)  # trained on the relabelled corpus too
    # another head (or seed) in the same folder trains its own folds: never the cached ones
    for other, seed in ((replace(cfg, hidden=8), 0), (cfg, 1)):
        redo = run_loco(other, data, seed=seed, out=tmp_path, log=None)[0]
        assert not np.array_equal(redo.probs, res[0].probs)
        np.testing.assert_array_equal(run_loco(other, data, seed=seed, out=tmp_path, log=None)[0].probs, redo.probs)
    for lever in (replace(cfg, mixup=0.4, label_smoothing=0.1, corpus_center=True),
                  replace(cfg, hidden=0, balance="corpus-class", train_on="utterance", mixup=0.4, epochs=20)):
        assert summarise(run_loco(lever, data, seed=1, log=None))["worst_uar"] > 0.85


def test_utterance_head_matches_pooled_logits() -> None:
    """A linear head trained on pooled statistics, run per patch: its mean logit over an
    utterance's speech patches equals the classifier applied to the pooled vector."""
    from emolens.evaluation.generalisation import pooled_streams, train_utterance_head

    rng = np.random.default_rng(2)
    utt = np.repeat(np.arange(10), 4)
    speech = rng.random(40) > 0.3
    x = rng.normal(size=(40, 1024)).astype(np.float32)
    pooled = pooled_streams({"yamnet": x}, utt, speech, 10)
    cfg = HeadConfig(streams=("yamnet",), hidden=0, dropout=0.0, epochs=2, train_on="utterance")
    head = train_utterance_head(cfg, pooled, np.arange(10) % 2, np.zeros(10, str), 2)
    with torch.no_grad():
        per_patch = head({"yamnet": torch.from_numpy(x)}).numpy()
        ref = head.classifier(torch.from_numpy(pooled["yamnet"])).numpy()
    for u in range(10):
        m = (utt == u) & speech if ((utt == u) & speech).any() else utt == u
        np.testing.assert_allclose(per_patch[m].mean(0), ref[u], atol=1e-4)


def test_train_head_is_deterministic_and_linear_head_exports() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(60, 1024)).astype(np.float32)
    y = (x[:, 0] > 0).astype(int)
    args = ({"yamnet": x}, y, np.zeros(60, str), np.arange(60).astype(str), 2)
    cfg = HeadConfig(streams=("yamnet",), hidden=0, dropout=0.0, epochs=3)
    a, b = train_head(cfg, *args, seed=3), train_head(cfg, *args, seed=3)
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))
    head = FusionHead(("yamnet",), 4, hidden=0)
    assert [type(m).__name__ for m in head.classifier] == ["Dropout", "Linear"]


def test_a_row_fuses_the_prosody_set_it_names() -> None:
    """``prosody_set='emolens-audible'`` (the stop-13 ablation row) reads
    ``CorpusFeatures.prosody_variants``, not ``.prosody``, and the head it can ship records
    that set's feature tag."""
    from emolens.evaluation.generalisation import PROSODY_SETS, LocoFold, run_fold
    from emolens.features.prosody import N_PROSODY
    from emolens.features.prosody_files import prosody_cache_tag

    rng = np.random.default_rng(4)
    data = {}
    for c in ("emodb", "ravdess", "nemo"):
        cf = _toy(c, 0.0, rng)
        cf.feats["yamnet"] = np.tile(rng.normal(size=(1, 1024)), (len(cf.utt), 1)).astype(np.float32)  # no class signal
        q = rng.normal(size=(cf.n_utt, N_PROSODY)).astype(np.float32)
        cf.prosody = q.copy()  # noise
        q[:, :8] += 2 * (2 * cf.y - 1)[:, None]  # the class signal, in the audible set only
        cf.prosody_variants["emolens-audible"] = q
        data[c] = cf
    base = HeadConfig(streams=("yamnet",), hidden=0, dropout=0.0, epochs=60, balance="corpus-class",
                      train_on="utterance", decision="pooled", prosody=2.0, prosody_set="emolens-audible",
                      batch_size=16)
    fold = LocoFold("nemo", ("emodb", "ravdess"))
    res, head = run_fold(base, data, fold, 0)
    assert res.metrics["uar"] > 0.85
    assert head.prosody["features"] == prosody_cache_tag(PROSODY_SETS["emolens-audible"]) != prosody_cache_tag()
    assert run_fold(replace(base, prosody_set="emolens"), data, fold, 0)[0].metrics["uar"] < 0.75
    with pytest.raises(ValueError, match="unknown prosody_set"):
        run_fold(replace(base, prosody_set="opensmile"), data, fold, 0)
    from emolens.training.default_model import attach_prosody

    with pytest.raises(ValueError, match="unknown prosody_set 'opensmile'; use egemaps or one of emolens, emolens-audible"):
        attach_prosody(data["nemo"], "no-such-work-dir", prosody_set="opensmile")


def test_a_row_fuses_the_whisper_stream() -> None:
    """``whisper > 0`` appends the utterances' Whisper streams to the pooled row (scaled per
    ``whisper_norm``): the class signal there alone is learnt; without it, or with the
    stream missing on a corpus, it is not or fails in one line."""
    from emolens.evaluation.generalisation import (
        LocoFold,
        layer_norm,
        run_fold,
        whisper_scaler,
    )

    rng = np.random.default_rng(5)
    data = {}
    for c, offset in (("emodb", 0.0), ("ravdess", 3.0), ("nemo", -3.0)):
        cf = _toy(c, 0.0, rng)
        cf.feats["yamnet"] = np.tile(rng.normal(size=(1, 1024)), (len(cf.utt), 1)).astype(np.float32)  # no class signal
        v = rng.normal(size=(cf.n_utt, 1024)).astype(np.float32) + offset  # a corpus offset on every feature
        v[:, :16] += 2 * (2 * cf.y - 1)[:, None]
        cf.whisper = v
        data[c] = cf
    base = HeadConfig(streams=("yamnet",), hidden=0, dropout=0.0, epochs=60, balance="corpus-class",
                      train_on="utterance", decision="pooled", whisper=1.0, batch_size=16)
    fold = LocoFold("nemo", ("emodb", "ravdess"))
    res, head = run_fold(base, data, fold, 0)
    assert res.metrics["uar"] > 0.85
    assert head is None  # the Whisper stream ships riding with the prosody functionals only
    # z-scoring with the training corpora's statistics keeps the unseen corpus's offset: it costs
    z_res = run_fold(replace(base, whisper_norm="z"), data, fold, 0)[0]
    assert z_res.metrics["uar"] < res.metrics["uar"] - 0.1
    assert run_fold(replace(base, whisper=0.0), data, fold, 0)[0].metrics["uar"] < 0.75
    row = whisper_scaler(replace(base, whisper=2.0), data["emodb"].whisper)(data["nemo"].whisper)
    np.testing.assert_allclose(row.mean(1), 0.0, atol=1e-5)
    np.testing.assert_allclose(row.std(1), 2.0, atol=1e-3)  # each utterance standardised, times the weight
    z = whisper_scaler(replace(base, whisper_norm="z"), data["emodb"].whisper)(data["nemo"].whisper)
    assert z.min() >= -6.0 and z.max() <= 6.0 and z[:, 20:].mean() < -2  # training statistics: nEMO's offset stays
    r2 = whisper_scaler(replace(base, whisper_norm="row2"), data["emodb"].whisper)(data["nemo"].whisper)
    assert r2.shape == (data["nemo"].n_utt, 1024)
    for half in (r2[:, :512], r2[:, 512:]):  # the mean and the sd halves standardised each
        np.testing.assert_allclose(half.mean(1), 0.0, atol=1e-5)
        np.testing.assert_allclose(half.std(1), 1.0, atol=1e-3)
    m = whisper_scaler(replace(base, whisper_norm="mean"), data["emodb"].whisper)(data["nemo"].whisper)
    np.testing.assert_allclose(m, layer_norm(data["nemo"].whisper[:, :512]), atol=1e-6)
    with pytest.raises(ValueError, match="unknown whisper_norm .pca.; use row, row2, mean or z"):
        whisper_scaler(replace(base, whisper_norm="pca"), data["emodb"].whisper)
    data["ravdess"].whisper = None
    with pytest.raises(ValueError, match="Whisper fusion needs the Whisper stream on every corpus"):
        run_fold(base, data, fold, 0)


@pytest.mark.parametrize("mlp", [0, 16])
def test_a_prosody_whisper_row_ships_a_head_that_decides_as_the_fold(mlp: int) -> None:
    """The shippable Whisper row (prosody functionals, then the Whisper stream, per-row
    standardised; ``mlp``: with an MLP on the Whisper stream whose logits add): its
    :func:`lever_head` records the stream's recipe, and the head's decision
    (:class:`~emolens.models.decision.ProsodyPooling` on rows ``[z, q_p, q_w]``, and the torch
    head's pooled logits) gives the fold's own test probabilities; z-scored Whisper columns do
    not ship."""
    import torch

    from emolens.evaluation.generalisation import LocoFold, layer_norm, run_fold
    from emolens.features.prosody import N_PROSODY
    from emolens.features.whisper_files import whisper_cache_tag
    from emolens.models.decision import decision_for

    rng = np.random.default_rng(9)
    data = {}
    for c in ("emodb", "ravdess", "nemo"):
        cf = _toy(c, 0.0, rng)
        cf.prosody = rng.normal(size=(cf.n_utt, N_PROSODY)).astype(np.float32) * 3 + 1
        v = rng.normal(size=(cf.n_utt, 1024)).astype(np.float32)
        v[:, :16] += 2 * (2 * cf.y - 1)[:, None]
        cf.whisper = v
        data[c] = cf
    cfg = HeadConfig(streams=("yamnet",), hidden=0, dropout=0.0, epochs=30, balance="corpus-class", train_on="utterance",
                     decision="pooled", prosody=2.0, prosody_set="emolens", whisper=1.5, batch_size=16, whisper_mlp=mlp)
    fold = LocoFold("nemo", ("emodb", "ravdess"))
    res, head = run_fold(cfg, data, fold, 0)
    assert head is not None and head.whisper["features"] == whisper_cache_tag() and head.whisper["weight"] == 1.5
    assert head.whisper.get("mlp", 0) == mlp and (head.whisper_mlp is not None) == bool(mlp)
    if mlp:  # the MLP's logits move the probabilities; the linear part is the no-MLP row's head
        plain = run_fold(replace(cfg, whisper_mlp=0), data, fold, 0)
        assert np.abs(plain[0].probs - res.probs).max() > 1e-3
        torch.testing.assert_close(plain[1].classifier[1].weight, head.classifier[1].weight)
    assert head.utterance_dim == N_PROSODY + 1024
    d = decision_for({"head": {"pooling": "mean+prosody", "prosody": head.prosody, "whisper": head.whisper}},
                     head_state=head.state_dict())
    t = data["nemo"]
    with torch.no_grad():
        z = head.embed({"yamnet": torch.from_numpy(t.feats["yamnet"])}).numpy()
    for u in (0, 7, 33):
        rows = np.concatenate([z[t.utt == u], np.broadcast_to(np.concatenate([t.prosody[u], t.whisper[u]]),
                                                              ((t.utt == u).sum(), N_PROSODY + 1024))], 1)
        np.testing.assert_allclose(d.decide(rows, np.ones(len(rows), bool)).probs, res.probs[u], atol=1e-4)
        with torch.no_grad(), head.use_context(rows[0, head.width:]):
            logits = head.pooled_logits(torch.from_numpy(z[t.utt == u][None])).numpy()[0]
        np.testing.assert_allclose(np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum(), res.probs[u], atol=1e-4)
    scaled = d.scaled(np.concatenate([t.prosody[:3], t.whisper[:3]], 1))[:, N_PROSODY:]
    np.testing.assert_allclose(scaled, 1.5 * layer_norm(t.whisper[:3]), atol=1e-5)
    # what the adaptation table and the timeline's evaluation decide with: the same probabilities
    from emolens.evaluation.generalisation import utterance_decisions, utterance_vector

    np.testing.assert_allclose(utterance_decisions(head, t.feats, t.utt, t.speech, t.n_utt, utterance_vector(head, t)),
                               res.probs, atol=1e-4)
    assert run_fold(replace(cfg, whisper_norm="z"), data, fold, 0)[1] is None


def test_an_ensemble_row_is_one_linear_head_whose_logits_are_the_seeds_mean() -> None:
    """``ensemble=3`` at seed 0 trains the row's linear head with seeds 0, 1 and 2 and averages
    their weights into one head that ships: its weights are the mean of the three heads trained
    one by one (so its logits are the mean of theirs), and it decides differently from seed 0."""
    import torch

    from emolens.evaluation.generalisation import LocoFold, average_linear, run_fold

    rng = np.random.default_rng(3)
    data = {c: _toy(c, s, rng) for c, s in (("emodb", 0.0), ("ravdess", 0.5), ("nemo", -0.5))}
    base = HeadConfig(streams=("yamnet",), hidden=0, dropout=0.0, epochs=8, batch_size=16, balance="corpus-class",
                      train_on="utterance", decision="pooled", pooling="mean+std")
    fold = LocoFold("nemo", ("emodb", "ravdess"))
    singles = [run_fold(base, data, fold, s) for s in range(3)]
    three, head3 = run_fold(replace(base, ensemble=3), data, fold, 0)
    assert head3 is not None and three.metrics["uar"] > 0.8
    for name in ("weight", "bias"):
        want = torch.stack([getattr(h.classifier[1], name) for _, h in singles]).mean(0)
        np.testing.assert_allclose(getattr(head3.classifier[1], name).detach().numpy(), want.detach().numpy(), atol=1e-6)
    assert not np.allclose(singles[0][0].probs, three.probs, atol=1e-4)
    assert replace(base, ensemble=3).key() != base.key() and "ensemble" not in base.to_dict()  # old cache keys hold
    lins = [torch.nn.Linear(5, 3) for _ in range(3)]
    x = torch.randn(7, 5)
    want = torch.stack([m(x) for m in lins]).mean(0).detach()
    np.testing.assert_allclose(average_linear(lins[0], lins[1:])(x).detach().numpy(), want.numpy(), atol=1e-6)
    with pytest.raises(ValueError, match="ensemble averages linear heads"):
        run_fold(replace(base, ensemble=2, hidden=8, pooling="mean"), data, fold, 0)
