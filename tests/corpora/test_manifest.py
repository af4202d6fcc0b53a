"""Manifest, label vocabulary and class sets."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from emolens.corpora import (
    CLASS_SETS,
    Manifest,
    Utterance,
    build_manifest,
    normalize_label,
    probe_duration,
    resolve_class_set,
)
from emolens.errors import AudioError, CorpusError, LabelError


def _utt(i: int, label: str, speaker: str, **kw) -> Utterance:
    return Utterance(f"/data/{speaker}/{i}.wav", label, speaker, "test", **kw)


@pytest.fixture
def small() -> Manifest:
    labels = ["angry", "happy", "sad", "angry", "neutral", "angry", "boredom"]
    speakers = ["a", "a", "b", "b", "c", "c", "c"]
    return Manifest(_utt(i, lab, spk) for i, (lab, spk) in enumerate(zip(labels, speakers)))


# --- labels ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("raw", "label"),
    [
        ("anger", "angry"), ("Angry", "angry"), ("happiness", "happy"), ("joy", "happy"),
        ("sadness", "sad"), ("fearful", "fear"), ("disgusted", "disgust"), ("surprised", "surprise"),
        ("pleasant_surprise", "surprise"), ("Pleasant Surprise", "surprise"), ("bored", "boredom"),
        ("boredom", "boredom"), ("chagrin", "chagrin"), ("calm", "calm"), (" NEUTRAL ", "neutral"),
        ("기쁨", "happy"), ("놀람", "surprise"), ("중립", "neutral"), ("공포", "fear"),
        ("혐오", "disgust"), ("분노", "angry"), ("슬픔", "sad"), ("억울", "chagrin"),
    ],
)
def test_normalize_label_maps_synonyms(raw: str, label: str) -> None:
    assert normalize_label(raw) == label


@pytest.mark.parametrize("raw", ["excited", "ps", "", "ANG", "frustration"])
def test_normalize_label_rejects_unknown(raw: str) -> None:
    with pytest.raises(LabelError, match="unknown emotion label"):
        normalize_label(raw)


def test_resolve_class_set() -> None:
    avail = ["sad", "angry", "happy", "neutral", "fear"]
    assert resolve_class_set("4class", avail) == ("angry", "happy", "neutral", "sad")
    assert resolve_class_set("all", avail) == ("angry", "fear", "happy", "neutral", "sad")
    assert resolve_class_set(["Sadness", "anger"], avail) == ("angry", "sad")
    assert resolve_class_set("sad, fear", avail) == ("fear", "sad")
    assert CLASS_SETS["all"] is None


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ("5class", "unknown class set"),
        (["angry", "surprise"], "not in this corpus"),
        (["angry", "anger"], "more than once"),
        (["angry"], "fewer than 2"),
        (["angry", "excited"], "unknown emotion label"),
    ],
)
def test_resolve_class_set_errors(spec, match: str) -> None:
    with pytest.raises(LabelError, match=match):
        resolve_class_set(spec, ["angry", "happy", "neutral", "sad"])


def test_4class_needs_all_four_labels() -> None:
    with pytest.raises(LabelError, match="neutral"):
        resolve_class_set("4class", ["angry", "happy", "sad", "fear"])


# --- manifest --------------------------------------------------------------------------
def test_utterance_path_must_be_absolute() -> None:
    with pytest.raises(CorpusError, match="not absolute"):
        Utterance("rel/a.wav", "sad", "s", "c")


def test_summaries(small: Manifest) -> None:
    assert len(small) == 7
    assert small.labels == ("angry", "boredom", "happy", "neutral", "sad")
    assert small.speakers == ("a", "b", "c")
    assert small.label_counts() == {"angry": 3, "boredom": 1, "happy": 1, "neutral": 1, "sad": 1}
    assert list(small.label_counts())[0] == "angry"
    assert small.speaker_counts() == {"c": 3, "a": 2, "b": 2}
    assert [u.speaker for u in small] == ["a", "a", "b", "b", "c", "c", "c"]


def test_getitem(small: Manifest) -> None:
    assert isinstance(small[1], Utterance) and small[1].label == "happy"
    assert small[np.int64(2)].label == "sad"
    sub = small[np.array([6, 0])]
    assert isinstance(sub, Manifest) and [u.label for u in sub] == ["boredom", "angry"]
    assert [u.label for u in small[[0, 3]]] == ["angry", "angry"]
    assert len(small[np.array([], dtype=int)]) == 0
    mask = np.array([u.speaker == "b" for u in small])
    assert [u.label for u in small[mask]] == ["sad", "angry"]
    assert len(small[2:5]) == 3
    with pytest.raises(IndexError):
        small[np.array([True, False])]


def test_filter_classes_and_label_array(small: Manifest) -> None:
    four = small.filter_classes("4class")
    assert len(four) == 6 and "boredom" not in four.labels
    classes = resolve_class_set("4class", four.labels)
    assert four.label_array(classes).tolist() == [0, 1, 3, 0, 2, 0]
    assert four.label_array(classes).dtype == np.int64
    assert small.filter_classes(["sad", "boredom"]).label_array().tolist() == [1, 0]
    with pytest.raises(LabelError, match="boredom"):
        small.label_array(("angry", "happy", "neutral", "sad"))
    assert small.speaker_array().tolist() == ["a", "a", "b", "b", "c", "c", "c"]


def test_csv_round_trip(small: Manifest, tmp_path: Path) -> None:
    m = Manifest([_utt(0, "sad", "03", duration=1.25, gender="female", text="a01"), *small])
    out = m.to_csv(tmp_path / "sub" / "m.csv")
    back = Manifest.from_csv(out)
    assert back == m
    assert back[0].speaker == "03" and back[0].duration == 1.25 and back[1].gender is None


def test_csv_relative_paths(tmp_path: Path) -> None:
    wav = tmp_path / "audio" / "x.wav"
    m = Manifest([Utterance(str(wav), "sad", "s1", "c")])
    m.to_csv(tmp_path / "m.csv", relative=True)
    assert "audio/x.wav" in (tmp_path / "m.csv").read_text()
    assert Manifest.from_csv(tmp_path / "m.csv")[0].path == str(wav)


def test_from_csv_errors(tmp_path: Path) -> None:
    with pytest.raises(CorpusError, match="not found"):
        Manifest.from_csv(tmp_path / "nope.csv")
    bad = tmp_path / "bad.csv"
    bad.write_text("path,label\n/a.wav,sad\n")
    with pytest.raises(CorpusError, match="lacks column\\(s\\) speaker, corpus"):
        Manifest.from_csv(bad)
    bad.write_text("path,label,speaker,corpus\n/a.wav,excited,s,c\n")
    with pytest.raises(LabelError, match="line 2"):
        Manifest.from_csv(bad)
    bad.write_text("path,label,speaker,corpus\n/a.wav,sad,,c\n")
    with pytest.raises(CorpusError, match="empty 'speaker'"):
        Manifest.from_csv(bad)


def test_durations_from_header(tmp_path: Path) -> None:
    wav = tmp_path / "a.wav"
    sf.write(wav, np.zeros(4000, dtype=np.float32), 16000)
    assert probe_duration(wav) == pytest.approx(0.25)
    m = Manifest([Utterance(str(wav), "sad", "s", "c")]).fill_durations()
    assert m[0].duration == pytest.approx(0.25)
    (tmp_path / "junk.wav").write_bytes(b"not audio")
    with pytest.raises(AudioError):
        probe_duration(tmp_path / "junk.wav")


# --- real EmoDB ------------------------------------------------------------------------
@pytest.mark.slow
def test_emodb_manifest(emodb_dir: Path, tmp_path: Path) -> None:
    m, skipped = build_manifest("emodb", emodb_dir)
    assert skipped == []
    assert len(m) == 535
    assert len(m.speakers) == 10
    assert m.label_counts() == {
        "angry": 127, "boredom": 81, "neutral": 79, "happy": 71, "fear": 69, "sad": 62, "disgust": 46,
    }
    assert len(m.filter_classes("4class")) == 339
    assert sum(u.gender == "female" for u in m) == 58 + 43 + 61 + 69 + 71
    meta = {r["path"].split("/")[-1]: float(r["duration_s"]) for r in csv.DictReader(open(emodb_dir / "metadata.csv"))}
    assert all(u.duration == pytest.approx(meta[Path(u.path).name], abs=1e-3) for u in m)  # the recordings' own lengths
    assert sum(u.duration for u in m) / 60 == pytest.approx(24.78, abs=0.01) and min(u.duration for u in m) > 1.2
    first = m[0]
    assert (Path(first.path).name, first.label, first.speaker, first.text) == ("03a01Fa.flac", "happy", "03", "a01")
    out = m.to_csv(tmp_path / "emodb.csv")
    with out.open() as fh:
        assert sum(1 for _ in csv.reader(fh)) == 536
    assert Manifest.from_csv(out) == m
