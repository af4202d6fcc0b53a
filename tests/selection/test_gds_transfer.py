"""The transferable GDS default: levels relative to the utterance, the per-utterance
cap, the thesis preset, old saved selectors, and (slow) drop rates on RAVDESS speakers."""

import csv
import json

import numpy as np
import pytest

from emolens.errors import SelectionError
from emolens.selection.gds import (
    GDSConfig,
    GaussianDataSelector,
    THESIS_THRESHOLD,
    forced_keep,
    relative_level,
)

SILENCE = float(np.log(0.01))


def utterances(n_utt=30, n_patches=8, n_quiet=1, seed=0, shape=(16, 16)):
    """Utterances of ``n_patches`` N(gain, 1) patches, the last ``n_quiet`` of each at
    the silence level; each utterance has its own gain. Returns (x, utt)."""
    rng = np.random.default_rng(seed)
    xs, utt = [], []
    for u in range(n_utt):
        gain = rng.uniform(-2, 3)
        p = gain + rng.standard_normal((n_patches, *shape))
        p[n_patches - n_quiet :] = SILENCE + 0.05 * rng.standard_normal((n_quiet, *shape))
        xs.append(p)
        utt += [u] * n_patches
    return np.concatenate(xs).astype(np.float32), np.array(utt)


def test_relative_level():
    mu = np.array([1.0, 3.0, -2.0, 0.0, 5.0])
    np.testing.assert_allclose(relative_level(mu, np.array([0, 0, 1, 1, 1])), [-2.0, 0.0, -7.0, -5.0, 0.0])
    np.testing.assert_allclose(relative_level(mu), mu - 5.0)


def test_presets():
    t = GDSConfig.thesis()
    assert (t.level, t.max_drop_per_utterance, t.threshold, t.scope) == ("absolute", None, THESIS_THRESHOLD, "corpus")
    d = GDSConfig()
    assert (d.level, d.max_drop_per_utterance, d.threshold) == ("utterance", 0.25, 0.0)
    assert GDSConfig.preset("thesis") == t and GDSConfig.preset("transfer") == d
    assert GDSConfig.preset("thesis", threshold=-1.0).threshold == -1.0
    with pytest.raises(SelectionError):
        GDSConfig.preset("fast")
    with pytest.raises(SelectionError):
        GDSConfig(level="peak")
    with pytest.raises(SelectionError):
        GDSConfig(max_drop_per_utterance=1.5)


def test_utterance_level_makes_scores_gain_invariant_unlike_thesis():
    x, utt = utterances(seed=1)
    louder = x.copy()
    louder[utt == 3] += 2.0  # +2 nats on one utterance (about +17 dB of mel power)
    for cfg, invariant in ((GDSConfig(), True), (GDSConfig.thesis(), False)):
        sel = GaussianDataSelector(cfg).fit(x, utterance_ids=utt)
        a, b = sel.score(x[utt == 3], utt[utt == 3]), sel.score(louder[utt == 3], utt[utt == 3])
        assert np.allclose(a, b, atol=1e-9) == invariant


def test_scores_depend_on_the_own_utterance_only():
    x, utt = utterances(seed=2)
    sel = GaussianDataSelector(GDSConfig()).fit(x, utterance_ids=utt)
    whole = sel.select(x, utt)
    for u in (0, 7):
        alone = sel.select(x[utt == u], np.zeros((utt == u).sum(), int))  # how inference calls it
        np.testing.assert_array_equal(alone.scores, whole.scores[utt == u])
        np.testing.assert_array_equal(alone.keep, whole.keep[utt == u])


def test_quiet_patches_are_dropped_and_the_cap_holds():
    x, utt = utterances(n_utt=40, n_patches=8, n_quiet=3, seed=3)  # 3 of 8 quiet; cap 25% = 2
    res = GaussianDataSelector(GDSConfig()).fit(x, utterance_ids=utt).select(x, utt)
    dropped = np.bincount(utt, weights=~res.keep)
    assert dropped.max() == 2 and dropped.min() == 2
    quiet = np.tile(np.arange(8) >= 5, 40)
    assert not (~res.keep & ~quiet).any()  # only quiet patches dropped
    assert res.forced.sum() == 40  # one quiet patch per utterance kept by the cap
    no_cap = GaussianDataSelector(GDSConfig(max_drop_per_utterance=None)).fit(x, utterance_ids=utt).select(x, utt)
    np.testing.assert_array_equal(~no_cap.keep, quiet)


def test_forced_keep_with_cap():
    scores = np.array([3.0, 2.0, 1.0, 0.0, -1.0, -2.0, 5.0, -5.0])
    groups = np.array([0, 0, 0, 0, 0, 0, 1, 1])
    keep = scores >= 2.5
    f = forced_keep(scores, keep, groups, 1, max_drop=0.5)  # group 0: keep 3 of 6; group 1: 1 of 2
    assert f.tolist() == [False, True, True, False, False, False, False, False]
    f0 = forced_keep(scores, keep, groups, 1)
    assert f0.tolist() == [False] * 8  # each group already keeps one
    assert forced_keep(scores, keep, groups, 0, max_drop=0.0).sum() == (~keep).sum()


def test_old_saved_selector_keeps_the_thesis_behaviour():
    x, utt = utterances(seed=4)
    old = GaussianDataSelector(GDSConfig.thesis()).fit(x, utterance_ids=utt)
    state = old.state_dict()
    cfg = json.loads(bytes(state["config_json"]).decode())
    del cfg["level"], cfg["max_drop_per_utterance"]  # as written before these fields existed
    state["config_json"] = np.frombuffer(json.dumps(cfg).encode(), dtype=np.uint8).copy()
    back = GaussianDataSelector.from_state(state)
    assert back.config == GDSConfig.thesis()
    np.testing.assert_array_equal(back.select(x, utt).keep, old.select(x, utt).keep)


@pytest.mark.slow
def test_default_drop_rates_on_ravdess_speakers(shared_dir):
    """Four RAVDESS actors (1 s of silence around short sentences): the thesis preset
    drops over 30% (angry most); the default 10-20%, evenly, and only near-silence."""
    from emolens.audio.io import load_audio
    from emolens.features.mel import mel_spectrogram
    from emolens.features.patches import log_mel_patches
    from emolens.report.gds_report import patch_silence

    root = shared_dir / "data" / "ravdess"
    rows = [r for r in csv.DictReader(open(root / "metadata.csv", newline=""))
            if r["emotion"] in {"angry", "happy", "neutral", "sad"} and r["speaker"] in {"01", "02", "03", "04"}]
    assert len(rows) == 112
    xs, labels, utt = [], [], []
    for i, r in enumerate(rows):
        p = log_mel_patches(mel_spectrogram(load_audio(root / r["path"]).samples))
        xs.append(p)
        labels += [r["emotion"]] * len(p)
        utt += [i] * len(p)
    x, labels, utt = np.concatenate(xs), np.array(labels), np.array(utt)
    silent, level = patch_silence(x, utt)
    rates = {}
    for name, cfg in (("thesis", GDSConfig.thesis()), ("transfer", GDSConfig())):
        drop = ~GaussianDataSelector(cfg).fit(x, labels, utt).select(x, utt).keep
        per_class = {c: drop[labels == c].mean() for c in np.unique(labels)}
        rates[name] = (drop.mean(), max(per_class.values()) / drop.mean(), drop)
    assert rates["thesis"][0] > 0.30
    rate, worst, drop = rates["transfer"]
    assert 0.10 <= rate <= 0.20 and worst <= 1.5
    assert np.mean(silent[drop] > 0.5) > 0.95 and level[drop].mean() < level[~drop].mean() - 30
