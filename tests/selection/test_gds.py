"""Gaussian Data Selection: the pure functions, the selector's scopes and guarantees
(mostly on the thesis preset, whose scores do not depend on the utterance), the summary
and figure, and (slow) what the default drops on EmoDB."""

import csv
import json
import time

import numpy as np
import pytest

from emolens.report.gds_report import gds_summary, patch_silence, plot_gds
from emolens.selection import (
    DEFAULT_THRESHOLD,
    GDSConfig,
    GaussianDataSelector,
    SelectionError,
    bhattacharyya_coefficient,
    gaussian_pdf_grid,
    patch_gaussians,
    pdf_correlation,
)
from emolens.selection.gds import forced_keep, mean_bhattacharyya

SILENCE = float(np.log(0.01))  # log-mel of digital silence (VGGish offset)


def noise_and_silence(n_noise=90, n_silent=10, seed=0, shape=(96, 64)):
    """``n_noise`` N(0,1) patches, then ``n_silent`` ~constant log(0.01) patches."""
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal((n_noise, *shape))
    silent = SILENCE + 1e-4 * rng.standard_normal((n_silent, *shape))
    return np.concatenate([noise, silent]).astype(np.float32)


# ---------------------------------------------------------------- pure functions


def test_patch_gaussians_matches_numpy():
    x = np.random.default_rng(1).normal(2.0, 3.0, (7, 96, 64)).astype(np.float32)
    mu, sigma = patch_gaussians(x)
    np.testing.assert_allclose(mu, [np.mean(p, dtype=np.float64) for p in x], rtol=1e-10)
    np.testing.assert_allclose(sigma, [np.std(p, dtype=np.float64) for p in x], rtol=1e-10)
    assert mu.shape == sigma.shape == (7,)


def test_pdf_grid_and_pearson():
    grid = np.linspace(-6, 6, 256)
    p = gaussian_pdf_grid(np.array([0.0, 0.0, 1.0]), np.array([1.0, 1.0, 2.0]), grid)
    assert p.shape == (3, 256)
    assert np.sum(p[0]) * (grid[1] - grid[0]) == pytest.approx(1.0, abs=1e-6)
    assert pdf_correlation(p[0], p[1]) == pytest.approx(1.0, abs=1e-12)
    r = pdf_correlation(p, p)
    np.testing.assert_allclose(r, np.corrcoef(p), atol=1e-12)
    assert 0.0 < r[0, 2] < 0.95
    # a flat row (pdf far off the grid) correlates 0 with everything
    assert pdf_correlation(np.zeros(256), p[0]) == 0.0


def test_bhattacharyya_closed_form_matches_numeric_integral():
    x = np.linspace(-30, 30, 200001)
    for m1, s1, m2, s2 in [(0, 1, 0, 1), (0, 1, 1.5, 0.5), (-2, 3, 1, 1)]:
        p, q = gaussian_pdf_grid(np.array([m1, m2]), np.array([s1, s2]), x)
        numeric = np.sum(np.sqrt(p * q)) * (x[1] - x[0])
        assert bhattacharyya_coefficient(m1, s1, m2, s2) == pytest.approx(numeric, abs=1e-6)
    assert bhattacharyya_coefficient(0.3, 0.7, 0.3, 0.7) == pytest.approx(1.0)
    rng = np.random.default_rng(2)
    mu, sd, rmu, rsd = rng.normal(size=3000), rng.uniform(0.1, 2, 3000), rng.normal(size=50), rng.uniform(0.1, 2, 50)
    pairwise = bhattacharyya_coefficient(mu[:, None], sd[:, None], rmu[None], rsd[None])
    np.testing.assert_allclose(mean_bhattacharyya(mu, sd, rmu, rsd), pairwise.mean(axis=1), rtol=1e-12)


def test_forced_keep_tops_up_each_group():
    scores = np.array([0.1, 0.5, 0.3, 0.9, 0.2, 0.8])
    groups = np.array([0, 0, 0, 1, 1, 2])
    keep = np.array([False, False, False, True, False, False])
    f = forced_keep(scores, keep, groups, 1)
    assert f.tolist() == [False, True, False, False, False, True]
    f2 = forced_keep(scores, keep, groups, 2)
    assert f2.tolist() == [False, True, True, False, True, True]


# ---------------------------------------------------------------- the selector


@pytest.mark.parametrize("correlation", ["pearson", "bhattacharyya"])
@pytest.mark.parametrize("scope", ["corpus", "class"])
def test_silent_patches_score_lowest_and_are_dropped(correlation, scope):
    x = noise_and_silence()
    labels = np.array(["a", "b"] * 50)
    utt = np.arange(100) % 25  # 4 patches per utterance, the silent ones are the 4th of 10
    sel = GaussianDataSelector(GDSConfig(scope=scope, correlation=correlation)).fit(x, labels, utt)
    scores = sel.score(x)
    assert set(np.argsort(scores)[:10]) == set(range(90, 100))
    assert scores[90:].max() < -2.0 < 0.0 < scores[:90].min()
    res = sel.select(x, utt)
    assert res.threshold == DEFAULT_THRESHOLD
    np.testing.assert_array_equal(res.keep, np.arange(100) < 90)
    assert not res.forced.any()


def test_fit_then_score_equals_training_scores_and_no_leakage():
    x = noise_and_silence(seed=3)
    sel = GaussianDataSelector(GDSConfig.thesis()).fit(x)
    loc, scale = sel.norm_
    np.testing.assert_allclose(sel.score(x), (sel.train_raw_scores_ - loc) / scale, atol=1e-12)
    assert sel.score(x).mean() == pytest.approx(0.0, abs=1e-12)
    assert sel.score(x).std() == pytest.approx(1.0, abs=1e-12)
    # a patch's score depends only on the fitted reference, not on what it is scored with
    other = noise_and_silence(40, 5, seed=4)
    np.testing.assert_allclose(sel.score(other)[:7], sel.score(other[:7]), atol=1e-12)
    # minmax maps the training scores onto [0, 1]
    mm = GaussianDataSelector(GDSConfig.thesis(normalize="minmax")).fit(x).score(x)
    assert mm.min() == pytest.approx(0.0) and mm.max() == pytest.approx(1.0)


def test_reference_is_subsampled_and_seeded():
    x = noise_and_silence(300, 20, seed=5, shape=(8, 8))
    a = GaussianDataSelector(GDSConfig(max_reference=50, seed=1)).fit(x)
    b = GaussianDataSelector(GDSConfig(max_reference=50, seed=1)).fit(x)
    c = GaussianDataSelector(GDSConfig(max_reference=50, seed=2)).fit(x)
    assert a.reference_index_["corpus"].size == 50
    np.testing.assert_array_equal(a.reference_index_["corpus"], b.reference_index_["corpus"])
    assert not np.array_equal(a.reference_index_["corpus"], c.reference_index_["corpus"])
    json.dumps(a.to_dict())
    assert a.to_dict()["n_reference"] == {"corpus": 50} and a.to_dict()["n_train"] == 320


def test_drop_fraction_drops_that_fraction():
    x = noise_and_silence(1000, 0, seed=6, shape=(8, 8))
    utt = np.arange(1000) // 5
    other = noise_and_silence(4000, 0, seed=7, shape=(8, 8))
    for frac in (0.1, 0.25):
        sel = GaussianDataSelector(GDSConfig.thesis(drop_fraction=frac)).fit(x)
        res = sel.select(x, utt)
        assert abs(int((~res.keep).sum()) - round(frac * 1000)) <= 1
        # on unseen patches from the same distribution, about the same fraction
        assert abs((1 - sel.select(other).keep.mean()) - frac) < 0.03


def test_keep_min_per_utterance_is_guaranteed_and_recorded():
    x = noise_and_silence(96, 8, seed=8)  # utterances 24 and 25 are all silence
    utt = np.arange(104) // 4
    sel = GaussianDataSelector(GDSConfig.thesis()).fit(x)
    res = sel.select(x, utt)
    kept_per_utt = np.bincount(utt, weights=res.keep)
    assert kept_per_utt.min() == 1 and kept_per_utt[24] == 1 and kept_per_utt[25] == 1
    assert res.forced.sum() == 2 and set(utt[res.forced]) == {24, 25}
    best24 = 96 + np.argmax(res.scores[96:100])
    assert res.forced[best24]
    none = GaussianDataSelector(GDSConfig.thesis(keep_min_per_utterance=0)).fit(x).select(x, utt)
    assert none.keep[96:].sum() == 0 and not none.forced.any()
    assert res.to_dict()["forced"] == 2


def test_class_scope_matches_best_class_unlike_corpus():
    """A minority class at another level is typical of its class but atypical of the corpus."""
    rng = np.random.default_rng(9)
    x = np.concatenate([rng.normal(0, 1, (80, 32, 32)), rng.normal(3, 0.5, (20, 32, 32))])
    labels = np.array(["major"] * 80 + ["minor"] * 20)
    corpus = GaussianDataSelector(GDSConfig()).fit(x, labels).select(x)
    assert corpus.keep[80:].sum() == 0 and corpus.keep[:80].all()
    raw_corpus = GaussianDataSelector(GDSConfig(normalize="none")).fit(x, labels).score(x)
    raw_class = GaussianDataSelector(GDSConfig(scope="class", normalize="none")).fit(x, labels).score(x)
    assert raw_corpus[80:].max() < 0.0 < 0.7 < raw_corpus[:80].min()
    assert raw_class.min() > 0.99  # every patch matches its best class (no label needed)
    # scored against its own label, a "minor" patch labelled "major" scores low
    own = GaussianDataSelector(GDSConfig(scope="class", class_match="label", normalize="none")).fit(x, labels)
    assert own.score(x[80:], labels=np.array(["major"] * 20)).max() < 0.0
    np.testing.assert_allclose(own.score(x[80:], labels=labels[80:]), raw_class[80:], atol=1e-12)


@pytest.mark.parametrize("correlation", ["pearson", "bhattacharyya"])
def test_utterance_scope_without_fit(correlation):
    rng = np.random.default_rng(10)
    x = rng.standard_normal((40, 16, 16))
    x[[3, 17, 30]] = SILENCE + 1e-4 * rng.standard_normal((3, 16, 16))  # one per utterance 0, 4, 7
    utt = np.arange(40) // 4
    sel = GaussianDataSelector(GDSConfig(scope="utterance", correlation=correlation))
    res = sel.select(x, utt)
    assert set(np.argsort(res.scores)[:3]) == {3, 17, 30}
    # the other patches of those utterances lose score too (mean over 3 others, one silent)
    assert res.scores[[0, 1, 2]].max() < res.scores[4:16].min()
    frac = GaussianDataSelector(GDSConfig(scope="utterance", correlation=correlation, drop_fraction=3 / 40))
    assert set(np.flatnonzero(~frac.select(x, utt).keep)) == {3, 17, 30}
    # one-patch utterance: nothing to compare with, kept
    solo = sel.select(x[:5], np.array([0, 0, 0, 0, 1]))
    assert solo.keep[4]


def test_invalid_use_raises_one_line_errors():
    x = noise_and_silence(10, 2, shape=(4, 4))
    with pytest.raises(SelectionError, match="scope"):
        GDSConfig(scope="speaker")
    with pytest.raises(SelectionError, match="drop_fraction"):
        GDSConfig(drop_fraction=1.5)
    with pytest.raises(SelectionError, match="not fitted"):
        GaussianDataSelector().score(x)
    with pytest.raises(SelectionError, match="labels"):
        GaussianDataSelector(GDSConfig(scope="class")).fit(x)
    with pytest.raises(SelectionError, match="NaN"):
        GaussianDataSelector().fit(np.full((3, 4, 4), np.nan))
    with pytest.raises(SelectionError, match="utterance_ids"):
        GaussianDataSelector().fit(x).select(x, np.arange(3))


def _pdf_grid_reference(x: np.ndarray, points: int = 256) -> float:
    """Seconds for the least work any GDS must do on ``x`` ``(N, h, w)``: every patch's Gaussian
    evaluated on the grid, once to fit and once to score (no reference patch involved)."""
    mu, sd = x.mean((1, 2)), x.std((1, 2))
    grid = np.linspace(-8.0, 8.0, points)
    t = time.perf_counter()
    for _ in range(2):
        np.exp(-0.5 * ((grid - mu[:, None]) / sd[:, None]) ** 2).sum(1)
    return time.perf_counter() - t


@pytest.mark.parametrize("correlation", ["pearson", "bhattacharyya"])
def test_60k_patches_against_2000_references_cost_a_few_grid_passes(correlation):
    """Fit + score of 60k patches against 2000 references costs a small multiple of evaluating
    the patches' pdfs on the grid, measured in the same run (2-8x on 1-2 threads, loaded or
    not); comparing every patch with every reference on the grid would be about 1000x."""
    rng = np.random.default_rng(11)
    x = rng.normal(rng.normal(-1, 1, (60000, 1, 1)), rng.uniform(0.5, 2, (60000, 1, 1)), (60000, 4, 4))
    reference = min(_pdf_grid_reference(x) for _ in range(2))
    t = time.perf_counter()
    sel = GaussianDataSelector(GDSConfig(correlation=correlation)).fit(x)
    scores = sel.score(x)
    elapsed = time.perf_counter() - t
    assert sel.reference_index_["corpus"].size == 2000 and scores.shape == (60000,)
    assert elapsed < 25 * reference, f"{elapsed:.2f} s = {elapsed / reference:.1f}x the grid reference ({reference:.3f} s)"


# ---------------------------------------------------------------- report and figure


def test_summary_counts_and_energy():
    x = noise_and_silence(seed=12)
    labels = np.array(["a"] * 60 + ["b"] * 30 + ["b"] * 10)
    utt = np.arange(100) % 25  # patch k is position k // 25 of utterance k % 25
    res = GaussianDataSelector(GDSConfig.thesis()).fit(x).select(x, utt)
    s = gds_summary(res, labels, utt, x)
    json.dumps(s)
    assert (s["patches_before"], s["patches_after"]) == (100, 90)
    assert s["dropped_fraction"] == pytest.approx(0.10)
    assert s["per_class"] == {"a": {"before": 60, "after": 60}, "b": {"before": 40, "after": 30}}
    assert s["utterances"] == 25 and s["utterances_with_forced_keep"] == 0
    assert s["per_position"][0] == {"before": 25, "after": 25}
    assert s["per_position"][3] == {"before": 25, "after": 15}
    e = s["energy"]
    assert e["dropped"]["mean_log_mel"] == pytest.approx(SILENCE, abs=1e-3)
    assert e["kept"]["mean_log_mel"] == pytest.approx(0.0, abs=0.01)
    assert e["dropped"]["mostly_silent_fraction"] == 1.0 and e["kept"]["mostly_silent_fraction"] == 0.0
    assert e["dropped"]["mean_level_db"] < e["kept"]["mean_level_db"] - 40


def test_patch_silence_counts_padded_frames():
    x = np.zeros((2, 96, 64), dtype=np.float32)  # log-mel 0 = linear mel 0.99
    x[1, 54:] = SILENCE  # end padding: 42 of 96 frames
    silent, level = patch_silence(x, np.array([0, 0]))
    assert silent.tolist() == [0.0, pytest.approx(42 / 96)]
    assert level[0] == pytest.approx(0.0, abs=1e-9)
    assert level[1] == pytest.approx(10 * np.log10(54 / 96), abs=1e-6)


def test_plot_is_written(tmp_path):
    x = noise_and_silence(seed=13)
    labels = np.array(["angry", "sad"] * 50)
    res = GaussianDataSelector(GDSConfig()).fit(x).select(x, np.arange(100) % 25)
    out = plot_gds(res, x, labels, tmp_path / "fig" / "gds.png")
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000


# ---------------------------------------------------------------- real corpus


@pytest.mark.slow
def test_default_drops_mostly_silence_on_ravdess(shared_dir):
    """RAVDESS recordings have silence around the sentence (EmoDB's originals have almost
    none, so there GDS takes the quietest patches inside speech): the default preset drops
    10-25% of patches, all of them mostly silent, without singling out a class."""
    from emolens.audio.io import load_audio
    from emolens.features.mel import log_mel, mel_spectrogram
    from emolens.features.patches import frame_patches

    root = shared_dir / "data" / "ravdess"
    rows = [r for r in csv.DictReader(open(root / "metadata.csv", newline=""))
            if r["emotion"] in {"angry", "happy", "neutral", "sad"} and r["speaker"] in {"01", "02", "03", "04"}]
    patches, labels, utt = [], [], []
    for i, r in enumerate(rows):
        p = log_mel(frame_patches(mel_spectrogram(load_audio(root / r["path"]).samples)), "vggish")
        patches.append(p)
        labels += [r["emotion"]] * len(p)
        utt += [i] * len(p)
    x, labels, utt = np.concatenate(patches), np.array(labels), np.array(utt)
    assert len(rows) == 112 and x.shape == (804, 96, 64)
    res = GaussianDataSelector(GDSConfig()).fit(x, labels, utt).select(x, utt)
    s = gds_summary(res, labels, utt, x)
    assert 0.10 <= s["dropped_fraction"] <= 0.25
    kept, dropped = s["energy"]["kept"], s["energy"]["dropped"]
    assert dropped["mean_log_mel"] < kept["mean_log_mel"] - 1.0
    assert dropped["mean_level_db"] < kept["mean_level_db"] - 10.0
    assert dropped["mostly_silent_fraction"] > 0.9 > 0.6 > kept["mostly_silent_fraction"]
    rates = [1 - v["after"] / v["before"] for v in s["per_class"].values()]
    assert len(rates) == 4 and max(rates) <= 1.4 * s["dropped_fraction"]


def test_state_round_trip_scores_identically():
    from emolens.selection.gds import GaussianDataSelector, GDSConfig

    rng = np.random.default_rng(3)
    train = rng.standard_normal((300, 96, 64)).astype(np.float32)
    train[:30] = np.log(0.01) + 0.01 * rng.standard_normal((30, 96, 64))
    test = rng.standard_normal((50, 96, 64)).astype(np.float32) * 1.5
    for scope in ("corpus", "class"):
        sel = GaussianDataSelector(GDSConfig(scope=scope)).fit(train, labels=np.arange(300) % 3)
        back = GaussianDataSelector.from_state(sel.state_dict())
        np.testing.assert_array_equal(back.score(test), sel.score(test))
        np.testing.assert_array_equal(back.select(test).keep, sel.select(test).keep)
