"""Speaker-independent splits: synthetic manifests and the real EmoDB manifest."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from emolens.corpora import (
    UNKNOWN_SPEAKER,
    Fold,
    Manifest,
    Utterance,
    build_manifest,
    check_no_leakage,
    fold_speakers,
    holdout_speakers,
    leave_one_speaker_out,
    make_folds,
    random_split,
    speaker_kfold,
)
from emolens.errors import SplitError

LABELS = ("angry", "happy", "neutral", "sad")


def synthetic(n_speakers: int, per_label: int = 3, labels: tuple[str, ...] = LABELS) -> Manifest:
    """Every speaker says every label ``per_label`` times."""
    return Manifest(
        Utterance(f"/x/s{s:02d}_{lab}_{i}.wav", lab, f"s{s:02d}", "syn")
        for s in range(n_speakers)
        for lab in labels
        for i in range(per_label)
    )


def assert_speaker_independent(m: Manifest, folds: list[Fold]) -> None:
    for fold in folds:
        sides = fold_speakers(m, fold)
        assert not set(sides["train"]) & set(sides["test"])
        assert not set(sides["val"]) & set(sides["train"])
        assert not set(sides["val"]) & set(sides["test"])
        n_val = 0 if fold.val is None else len(fold.val)
        assert len(fold.train) + n_val + len(fold.test) == len(m)


def test_kfold_synthetic() -> None:
    m = synthetic(6)
    folds = speaker_kfold(m, k=3, seed=1)
    assert [f.name for f in folds] == ["fold-1", "fold-2", "fold-3"]
    assert_speaker_independent(m, folds)
    tested = np.sort(np.concatenate([f.test for f in folds]))
    assert np.array_equal(tested, np.arange(len(m)))
    assert all(len(fold_speakers(m, f)["test"]) == 2 and len(fold_speakers(m, f)["val"]) == 1 for f in folds)


def test_splits_are_deterministic() -> None:
    m = synthetic(8)
    a, b = speaker_kfold(m, 4, seed=3), speaker_kfold(m, 4, seed=3)
    assert all(np.array_equal(x.test, y.test) and np.array_equal(x.val, y.val) for x, y in zip(a, b))
    tests = {tuple(fold_speakers(m, f)["test"]) for s in range(5) for f in speaker_kfold(m, 4, seed=s)}
    assert len(tests) > 4  # different seeds give different groupings


def test_val_speakers_keep_every_class_in_training() -> None:
    # Only s00 and s01 ever say "sad": validation must never take the last "sad" speaker
    # out of training, and prefers the speakers covering most classes.
    base = list(synthetic(5, labels=("angry", "happy")))
    sad = [Utterance(f"/x/s0{s}_sad.wav", "sad", f"s0{s}", "syn") for s in (0, 1)]
    m = Manifest(base + sad)
    for seed in range(6):
        (fold,) = holdout_speakers(m, ["s00"], val_speakers=1, seed=seed)
        assert fold_speakers(m, fold)["val"] != ("s01",)
    folds = leave_one_speaker_out(m, val_speakers=2, seed=0)
    for fold in folds:
        train_labels = {m[int(i)].label for i in fold.train}
        assert train_labels == {"angry", "happy", "sad"}
        assert len(fold_speakers(m, fold)["val"]) == 2


def test_loso_and_holdout_synthetic() -> None:
    m = synthetic(4)
    folds = leave_one_speaker_out(m, val_speakers=0)
    assert [f.name for f in folds] == ["loso-s00", "loso-s01", "loso-s02", "loso-s03"]
    assert all(f.val is None and len(f.test) == 12 and len(f.train) == 36 for f in folds)
    (fold,) = make_folds(m, "holdout:s01, s03", val_speakers=1)
    assert fold.name == "holdout-s01-s03"
    assert fold_speakers(m, fold)["test"] == ("s01", "s03") and len(fold.val) == 12 and len(fold.train) == 12


def test_too_few_speakers() -> None:
    m = synthetic(3)
    with pytest.raises(SplitError, match="at least 5 speakers; this manifest has 3"):
        speaker_kfold(m, k=5)
    assert len(speaker_kfold(m, k=3, val_speakers=1)) == 3  # 1 test, 1 val, 1 train speaker
    with pytest.raises(SplitError, match="only 2 training speaker\\(s\\), cannot hold out 2"):
        speaker_kfold(m, k=3, val_speakers=2)
    with pytest.raises(SplitError, match="needs at least 4 speakers; this manifest has 3"):
        leave_one_speaker_out(m, val_speakers=2)
    with pytest.raises(SplitError, match="k >= 2"):
        make_folds(m, 1)


def test_unknown_speakers_refused() -> None:
    m = Manifest([*synthetic(4), Utterance("/x/u.wav", "sad", UNKNOWN_SPEAKER, "syn")])
    for spec in (3, "loso", "holdout:s00"):
        with pytest.raises(SplitError, match="speaker 'unknown'"):
            make_folds(m, spec)


def test_leakage_check_raises_on_crafted_folds() -> None:
    m = synthetic(3, per_label=1)  # indices 0-3 s00, 4-7 s01, 8-11 s02
    check_no_leakage(m, Fold("ok", np.arange(0, 4), np.arange(8, 12), np.arange(4, 8)))
    with pytest.raises(SplitError, match="speaker\\(s\\) s01 in both train and test"):
        check_no_leakage(m, Fold("bad", np.arange(0, 6), np.arange(6, 12)))
    with pytest.raises(SplitError, match="speaker\\(s\\) s00 in both val and test"):
        check_no_leakage(m, Fold("bad", np.arange(4, 8), np.array([0, 1]), np.array([2, 3])))
    with pytest.raises(SplitError, match="1 utterances in both train and test"):
        check_no_leakage(m, Fold("bad", np.arange(0, 5), np.arange(4, 12)))
    with pytest.raises(SplitError, match="empty test"):
        check_no_leakage(m, Fold("bad", np.arange(0, 12), np.array([], dtype=int)))
    with pytest.raises(SplitError, match="outside"):
        check_no_leakage(m, Fold("bad", np.arange(0, 4), np.array([12])))


def test_random_split_needs_flag() -> None:
    m = synthetic(2)
    with pytest.raises(SplitError, match="allow_speaker_overlap"):
        make_folds(m, "random")
    with pytest.raises(SplitError, match="allow_speaker_overlap"):
        random_split(m, 4)
    folds = make_folds(m, "random:4", allow_speaker_overlap=True)
    assert len(folds) == 4
    tested = np.sort(np.concatenate([f.test for f in folds]))
    assert np.array_equal(tested, np.arange(len(m)))
    f = folds[0]
    assert len(f.test) == 6 and len(f.val) == 2 and len(f.train) == 16
    assert not set(f.val) & set(f.train)
    assert set(fold_speakers(m, f)["train"]) & set(fold_speakers(m, f)["test"])  # it does overlap


@pytest.mark.parametrize("spec", ["lopo", "holdout:", "random:x", True, "5fold"])
def test_bad_specs(spec) -> None:
    with pytest.raises(SplitError):
        make_folds(synthetic(6), spec)


def test_holdout_unknown_speaker() -> None:
    with pytest.raises(SplitError, match="s09 not in this manifest; its speakers are s00, s01"):
        holdout_speakers(synthetic(2), ["s09"])


# --- real EmoDB ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def emodb(emodb_dir: Path) -> Manifest:
    return build_manifest("emodb", emodb_dir)[0]


@pytest.mark.slow
def test_emodb_kfold(emodb: Manifest) -> None:
    folds = make_folds(emodb, 5, seed=0)
    assert len(folds) == 5
    assert_speaker_independent(emodb, folds)
    tested = np.concatenate([f.test for f in folds])
    assert np.array_equal(np.sort(tested), np.arange(535))
    assert sorted(s for f in folds for s in fold_speakers(emodb, f)["test"]) == list(emodb.speakers)
    for f in folds:
        assert len(fold_speakers(emodb, f)["val"]) == 1
        assert {emodb[int(i)].label for i in f.train} == set(emodb.labels)


@pytest.mark.slow
def test_emodb_loso(emodb: Manifest) -> None:
    folds = make_folds(emodb, "loso", seed=0, val_speakers=2)
    assert len(folds) == 10
    assert [f.name for f in folds] == [f"loso-{s}" for s in emodb.speakers]
    assert_speaker_independent(emodb, folds)
    tested = np.concatenate([f.test for f in folds])
    assert np.array_equal(np.sort(tested), np.arange(535))
    assert [len(f.test) for f in folds] == [emodb.speaker_counts()[s] for s in emodb.speakers]
    assert all(len(fold_speakers(emodb, f)["val"]) == 2 for f in folds)


@pytest.mark.slow
def test_emodb_holdout_4class(emodb: Manifest) -> None:
    four = emodb.filter_classes("4class")
    (fold,) = make_folds(four, "holdout:03,08")
    assert_speaker_independent(four, [fold])
    assert fold_speakers(four, fold)["test"] == ("03", "08")
    counts = four.speaker_counts()
    assert len(fold.test) == sum(1 for u in four if u.speaker in ("03", "08"))
    assert len(fold.train) + len(fold.val) == len(four) - len(fold.test)
    (val_speaker,) = fold_speakers(four, fold)["val"]
    assert len(fold.val) == counts[val_speaker]


def _three_corpora() -> Manifest:
    """Corpora a (3 speakers), b (2), c (4); every speaker says every label twice."""
    return Manifest(
        Utterance(f"/x/{c}{s}_{lab}_{i}.wav", lab, f"{c}/{s}", c)
        for c, n in (("a", 3), ("b", 2), ("c", 4))
        for s in range(n)
        for lab in LABELS
        for i in range(2)
    )


def test_leave_one_corpus_out() -> None:
    m = _three_corpora()
    folds = make_folds(m, "locorpus", seed=1)
    corp = np.array([u.corpus for u in m])
    assert [f.name for f in folds] == ["locorpus-a", "locorpus-b", "locorpus-c"]
    assert_speaker_independent(m, folds)
    for f, c in zip(folds, "abc"):
        assert set(corp[f.test]) == {c} and len(f.test) == np.sum(corp == c)  # the whole held-out corpus
        assert c not in set(corp[f.train]) | set(corp[f.val])
        others = sorted(set("abc") - {c})
        assert sorted(set(corp[f.val])) == others  # one validation speaker from each training corpus
        assert len(set(np.array([u.speaker for u in m])[f.val])) == 2
    # without validation speakers: train = all other corpora
    f0 = make_folds(m, "locorpus", val_speakers=0)[0]
    assert f0.val is None and len(f0.train) == len(m) - len(f0.test)


def test_leave_one_corpus_out_needs_two_corpora() -> None:
    with pytest.raises(SplitError, match="at least 2 corpora"):
        make_folds(synthetic(4), "locorpus")
    m = Manifest([Utterance("/x/1.wav", "sad", "01", "a"), Utterance("/x/2.wav", "sad", "01", "b"),
                  Utterance("/x/3.wav", "sad", "02", "a"), Utterance("/x/4.wav", "sad", "03", "b")])
    with pytest.raises(SplitError, match="several corpora"):
        make_folds(m, "locorpus", val_speakers=0)
