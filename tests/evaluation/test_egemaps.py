"""The eGeMAPS+SVM baseline: estimator behaviour on synthetic data, features on EmoDB."""

from __future__ import annotations

import csv
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from emolens.errors import AudioError, EmolensError, SplitError
from emolens.evaluation import egemaps
from emolens.evaluation.egemaps import EgemapsSVM, cross_validate_egemaps, extract_egemaps

FOUR = ["angry", "happy", "neutral", "sad"]


def _blobs(n_per_class: int = 30, n_speakers: int = 6, seed: int = 0):
    """Three separable classes in 88-D with a speaker id per row."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(0.0, 3.0, size=(3, 88))
    y = np.repeat(np.array(["a", "b", "c"]), n_per_class)
    X = centers[np.repeat(np.arange(3), n_per_class)] + rng.normal(size=(3 * n_per_class, 88))
    groups = np.tile(np.arange(n_speakers), 3 * n_per_class // n_speakers)
    return X, y, groups


def test_fit_predict_defaults_to_c1_without_groups() -> None:
    X, y, _ = _blobs()
    model = EgemapsSVM().fit(X, y)
    assert model.C_ == 1.0 and model.inner_scores_ == {}
    assert model.classes_.tolist() == ["a", "b", "c"]
    assert (model.predict(X) == y).mean() > 0.95
    assert model.decision_function(X).shape == (len(y), 3)
    svc = model.pipeline_.named_steps["svc"]
    assert svc.kernel == "rbf" and svc.class_weight == "balanced" and svc.probability is not True


def test_fit_with_groups_searches_c_grid() -> None:
    X, y, groups = _blobs()
    model = EgemapsSVM(C_grid=(0.1, 1.0, 10.0)).fit(X, y, groups=groups)
    assert set(model.inner_scores_) == {0.1, 1.0, 10.0}
    assert model.C_ == max(model.inner_scores_, key=model.inner_scores_.get)
    assert EgemapsSVM(C=10.0).fit(X, y, groups=groups).C_ == 10.0  # explicit C: no search
    with pytest.raises(SplitError):
        EgemapsSVM().fit(X, y, groups=np.zeros(len(y)))


def test_predict_before_fit_fails() -> None:
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        EgemapsSVM().predict(np.zeros((1, 88)))


def test_cross_validate_on_separable_blobs() -> None:
    X, y, groups = _blobs()
    res = cross_validate_egemaps(X, y, groups, ["a", "b", "c"], n_splits=3)
    assert res["n_folds"] == 3 and len(res["folds"]) == 3
    assert np.sum(res["confusion"]) == len(y)
    assert res["uar"]["mean"] > 0.95
    # every speaker is tested exactly once
    tested = sorted(g for fold in res["folds"] for g in fold["test_groups"])
    assert tested == [str(g) for g in range(6)]
    with pytest.raises(SplitError):
        cross_validate_egemaps(X, y, groups, ["a", "b", "c"], n_splits=7)


def test_missing_opensmile_gives_install_hint(monkeypatch, tmp_path) -> None:
    monkeypatch.setitem(sys.modules, "opensmile", None)
    wav = tmp_path / "x.wav"
    sf.write(wav, np.zeros(1600, dtype=np.float32), 16000)
    with pytest.raises(EmolensError, match="pip install opensmile"):
        extract_egemaps([wav], progress=False)


def test_missing_file_is_audio_error(tmp_path) -> None:
    with pytest.raises(AudioError):
        extract_egemaps([tmp_path / "nope.wav"], cache_dir=tmp_path / "cache", progress=False)


# ---------------------------------------------------------------- real corpus (slow)


def _metadata(emodb_dir: Path) -> list[dict]:
    with (emodb_dir / "metadata.csv").open(newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def four_class(emodb_dir: Path, tmp_path_factory) -> dict:
    """eGeMAPS features of the 339 angry/happy/neutral/sad clips (one extraction, cached)."""
    pytest.importorskip("opensmile")
    rows = [r for r in _metadata(emodb_dir) if r["emotion"] in FOUR]
    cache = tmp_path_factory.mktemp("egemaps_cache")
    start = time.perf_counter()
    X = extract_egemaps([emodb_dir / r["path"] for r in rows], cache_dir=cache, progress=False)
    return {
        "X": X,
        "y": np.array([r["emotion"] for r in rows]),
        "groups": np.array([r["speaker"] for r in rows]),
        "paths": [emodb_dir / r["path"] for r in rows],
        "cache": cache,
        "seconds": time.perf_counter() - start,
    }


@pytest.mark.slow
def test_emodb_features_shape_and_finite(four_class: dict) -> None:
    X = four_class["X"]
    assert X.shape == (339, 88) and X.dtype == np.float32
    assert np.isfinite(X).all()
    assert np.unique(X, axis=0).shape[0] == 339  # every clip gets its own vector
    assert four_class["seconds"] < 60


@pytest.mark.slow
def test_emodb_cache_is_keyed_by_content(four_class: dict, tmp_path, monkeypatch) -> None:
    cache = four_class["cache"]
    assert len(list(cache.rglob("*.npy"))) == 339
    copy = tmp_path / "renamed.flac"
    shutil.copy(four_class["paths"][5], copy)

    def no_smile():
        raise AssertionError("cache miss: openSMILE should not run")

    monkeypatch.setattr(egemaps, "_make_smile", no_smile)
    again = extract_egemaps([four_class["paths"][0], copy], cache_dir=cache, progress=False)
    np.testing.assert_array_equal(again, four_class["X"][[0, 5]])


@pytest.mark.slow
def test_emodb_four_class_grouped_cv_beats_chance(four_class: dict) -> None:
    res = cross_validate_egemaps(four_class["X"], four_class["y"], four_class["groups"], FOUR, n_splits=5)
    assert res["n_folds"] == 5
    assert np.sum(res["confusion"]) == 339
    tested = sorted(g for fold in res["folds"] for g in fold["test_groups"])
    assert len(tested) == len(set(tested)) == 10  # speaker-independent: each speaker tested once
    assert res["uar"]["mean"] > 0.5  # chance is 0.25; measured about 0.76
    assert res["accuracy"]["mean"] > 0.5
