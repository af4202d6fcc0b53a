"""Each corpus parser on a tiny synthetic tree of 0.1 s silent files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from emolens.corpora import UNKNOWN_SPEAKER, CorpusWarning, Manifest, build_manifest, list_corpora
from emolens.errors import CorpusError


def make_tree(root: Path, names: list[str]) -> Path:
    """Write 0.1 s of silence at 16 kHz to every relative path in ``names``."""
    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        fmt = {".flac": "FLAC", ".ogg": "OGG"}.get(path.suffix.lower(), "WAV")
        sf.write(path, np.zeros(1600, dtype=np.float32), 16000, format=fmt)
    return root


def by_name(m: Manifest) -> dict[str, tuple[str, str, str | None]]:
    """File name → (label, speaker, gender)."""
    return {Path(u.path).name: (u.label, u.speaker, u.gender) for u in m}


def skipped_names(skipped: list[tuple[str, str]]) -> dict[str, str]:
    return {Path(p).name: why for p, why in skipped}


def test_list_corpora() -> None:
    assert list_corpora() == ["aihub", "ased", "casia", "cremad", "csu2022", "csv", "emodb", "folder", "nemo",
                              "ravdess", "savee", "tess", "turev"]


def test_unknown_corpus_and_missing_root(tmp_path: Path) -> None:
    with pytest.raises(CorpusError, match="unknown corpus 'iemocap'.*emodb"):
        build_manifest("iemocap", tmp_path)
    with pytest.raises(CorpusError, match="not found"):
        build_manifest("emodb", tmp_path / "missing")
    with pytest.raises(CorpusError, match="no usable emodb audio"):
        build_manifest("emodb", make_tree(tmp_path, ["bad.wav"]))


def test_ased(tmp_path: Path) -> None:
    root = make_tree(tmp_path, [
        "05Angry/a5-01-01-02-07.flac",
        "04Sad/S4-04-02-01-29.flac",          # upper-case letter, as in the release
        "03Happy/h3-02-01-01-11.flac",
        "03Happy/a5-02-01-01-11.flac",        # angry name in the happy folder
        "01Neutral/n2-01-01-01-01.flac",      # letter and number disagree
        "01Neutral/readme.flac",
    ])
    (root / "metadata.csv").write_text("path,speaker,gender\n05Angry/a5-01-01-02-07.flac,07,female\n")
    m, skipped = build_manifest("ased", root)
    assert by_name(m) == {
        "a5-01-01-02-07.flac": ("angry", "07", "female"),   # metadata.csv wins over GG=02
        "S4-04-02-01-29.flac": ("sad", "29", "female"),
        "h3-02-01-01-11.flac": ("happy", "11", "female"),
    }
    assert {u.corpus for u in m} == {"ased"} and m[0].text in {"01", "02", "04"}
    why = skipped_names(skipped)
    assert "disagrees with folder" in why["a5-02-01-01-11.flac"]
    assert "does not match its number" in why["n2-01-01-01-01.flac"]
    assert why["readme.flac"].startswith("unparseable name")


def test_ravdess(tmp_path: Path) -> None:
    root = make_tree(tmp_path, [
        "Actor_01/03-01-05-01-01-01-01.wav",
        "Actor_02/03-01-02-02-02-01-02.wav",
        "Actor_02/03-01-08-01-01-02-02.wav",
        "Actor_02/03-02-05-01-01-01-02.wav",  # song
        "Actor_02/01-01-05-01-01-01-02.wav",  # audio-video
        "Actor_03/03-01-09-01-01-01-03.wav",  # unknown emotion
        "Actor_03/ravdess.wav",
    ])
    m, skipped = build_manifest("ravdess", root)
    assert by_name(m) == {
        "03-01-05-01-01-01-01.wav": ("angry", "01", "male"),
        "03-01-02-02-02-01-02.wav": ("calm", "02", "female"),
        "03-01-08-01-01-02-02.wav": ("surprise", "02", "female"),
    }
    assert m[1].text == "02" and m[0].duration == pytest.approx(0.1)
    why = skipped_names(skipped)
    assert why["03-01-09-01-01-01-03.wav"] == "unknown emotion code '09'"
    assert "not speech" in why["03-02-05-01-01-01-02.wav"]
    assert "not audio-only" in why["01-01-05-01-01-01-02.wav"]
    assert why["ravdess.wav"].startswith("unparseable name")


def test_emodb_names_and_duplicates(tmp_path: Path) -> None:
    root = make_tree(tmp_path, [
        "wav/03a01Wa.wav", "wav/03a01Wa.flac", "wav/08b10Lc.flac", "wav/16a05Tb.wav",
        "wav/03a01Xa.wav", "wav/99a01Wa.wav", "wav/notes.wav",
    ])
    (root / "README.md").write_text("not audio")
    m, skipped = build_manifest("emodb", root)
    assert by_name(m) == {
        "03a01Wa.flac": ("angry", "03", "male"),
        "08b10Lc.flac": ("boredom", "08", "female"),
        "16a05Tb.wav": ("sad", "16", "female"),
    }
    assert [u.text for u in m] == ["a01", "b10", "a05"]
    why = skipped_names(skipped)
    assert set(why) == {"03a01Wa.wav", "03a01Xa.wav", "99a01Wa.wav", "notes.wav"}
    assert why["03a01Wa.wav"].startswith("duplicate of") and why["03a01Wa.wav"].endswith("03a01Wa.flac")
    assert why["03a01Xa.wav"] == "unknown emotion code 'X'"
    assert why["99a01Wa.wav"] == "unknown EmoDB speaker '99'"


def test_emodb_metadata(tmp_path: Path) -> None:
    root = make_tree(tmp_path, ["wav/03a01Wa.flac", "wav/08a02Fa.flac"])
    (root / "metadata.csv").write_text(
        "path,speaker,gender,text,emotion\n"
        "wav/03a01Wa.flac,03,male,sentence one,angry\n"
        "wav/08a02Fa.flac,08,female,a02,sad\n"
    )
    m, skipped = build_manifest("emodb", root)
    assert len(m) == 1 and m[0].text == "sentence one"
    assert skipped_names(skipped) == {"08a02Fa.flac": "metadata.csv says emotion 'sad', name says 'happy'"}


def test_cremad(tmp_path: Path) -> None:
    root = make_tree(tmp_path, [
        "AudioWAV/1001_DFA_ANG_XX.wav", "AudioWAV/1002_IEO_HAP_HI.wav", "AudioWAV/1001_TIE_NEU_XX.wav",
        "AudioWAV/1003_DFA_BOR_XX.wav", "AudioWAV/1003_DFA_SAD_QQ.wav", "AudioWAV/1003-DFA-SAD-XX.wav",
    ])
    (root / "VideoDemographics.csv").write_text("ActorID,Age,Sex,Race,Ethnicity\n1001,51,Male,Caucasian,Not Hispanic\n1002,21,Female,Caucasian,Not Hispanic\n")
    m, skipped = build_manifest("cremad", root)
    assert by_name(m) == {
        "1001_DFA_ANG_XX.wav": ("angry", "1001", "male"),
        "1001_TIE_NEU_XX.wav": ("neutral", "1001", "male"),
        "1002_IEO_HAP_HI.wav": ("happy", "1002", "female"),
    }
    why = skipped_names(skipped)
    assert why["1003_DFA_BOR_XX.wav"] == "unknown emotion code 'BOR'"
    assert why["1003_DFA_SAD_QQ.wav"].startswith("unparseable name")
    assert why["1003-DFA-SAD-XX.wav"].startswith("unparseable name")


def test_tess(tmp_path: Path) -> None:
    root = make_tree(tmp_path, [
        "OAF_angry/OAF_back_angry.wav", "YAF_pleasant_surprised/YAF_bar_ps.wav",
        "YAF_sad/YAF_base_sad.wav", "OAF_calm/OAF_back_calm.wav", "XAF_sad/XAF_base_sad.wav",
        "OAF_sad/OAF_sad.wav",
    ])
    m, skipped = build_manifest("tess", root)
    assert by_name(m) == {
        "OAF_back_angry.wav": ("angry", "OAF", "female"),
        "YAF_bar_ps.wav": ("surprise", "YAF", "female"),
        "YAF_base_sad.wav": ("sad", "YAF", "female"),
    }
    assert sorted(u.text for u in m) == ["back", "bar", "base"]
    why = skipped_names(skipped)
    assert why["OAF_back_calm.wav"] == "unknown emotion code 'calm'"
    assert why["XAF_base_sad.wav"].startswith("unknown TESS speaker")
    assert why["OAF_sad.wav"].startswith("unparseable name")


def test_savee(tmp_path: Path) -> None:
    root = make_tree(tmp_path, [
        "ALL/DC_a01.wav", "ALL/JE_sa02.wav", "ALL/KL_su15.wav", "JK/n03.wav", "JK/h01.wav",
        "ALL/DC_x01.wav", "ALL/ZZ_a01.wav", "ALL/DC-a01.wav", "ALL/JK_h01.wav",
    ])
    m, skipped = build_manifest("savee", root)
    assert by_name(m) == {
        "DC_a01.wav": ("angry", "DC", "male"),
        "JE_sa02.wav": ("sad", "JE", "male"),
        "KL_su15.wav": ("surprise", "KL", "male"),
        "JK_h01.wav": ("happy", "JK", "male"),
        "n03.wav": ("neutral", "JK", "male"),
    }
    why = skipped_names(skipped)
    assert why["DC_x01.wav"] == "unknown emotion code 'x'"
    assert why["ZZ_a01.wav"].startswith("unknown SAVEE speaker 'ZZ'")
    assert why["DC-a01.wav"].startswith("unparseable name")
    assert why["h01.wav"].startswith("duplicate of")  # JK/h01 and ALL/JK_h01 are one recording


def test_folder(tmp_path: Path) -> None:
    root = make_tree(tmp_path, [
        "Happy/spk1/x.wav", "Happy/spk1/deeper/y.ogg", "sadness/spk2_001.flac", "excited/spk1_1.wav",
        "loose.wav",
    ])
    with pytest.warns(CorpusWarning, match="real speakers"):
        m, skipped = build_manifest("folder", root)
    assert by_name(m) == {
        "x.wav": ("happy", "spk1", None), "y.ogg": ("happy", "spk1", None), "spk2_001.flac": ("sad", "spk2", None),
    }
    why = skipped_names(skipped)
    assert why == {"spk1_1.wav": "unknown label folder 'excited'", "loose.wav": "not inside a <label>/ folder"}


def test_folder_unknown_speaker(tmp_path: Path) -> None:
    root = make_tree(tmp_path, ["angry/a.wav", "sad/b1.wav"])
    with pytest.warns(CorpusWarning), pytest.raises(CorpusError, match="2 of 2 folder files have no speaker"):
        build_manifest("folder", root)
    with pytest.warns(CorpusWarning):
        m, _ = build_manifest("folder", root, allow_unknown_speakers=True)
    assert m.speakers == (UNKNOWN_SPEAKER,)


def test_csv_corpus(tmp_path: Path) -> None:
    make_tree(tmp_path, ["audio/a.wav", "audio/b.wav", "audio/c.wav", "audio/d.wav"])
    table = tmp_path / "list.csv"
    table.write_text(
        "path,label,speaker,gender\n"
        "audio/a.wav,Anger,s1,F\n"
        f"{tmp_path / 'audio' / 'b.wav'},joy,s2,male\n"
        "audio/c.wav,excited,s1,\n"
        "audio/missing.wav,sad,s1,\n"
        "audio/a.wav,angry,s1,\n"
    )
    m, skipped = build_manifest("csv", tmp_path, csv=table)
    assert by_name(m) == {"a.wav": ("angry", "s1", "female"), "b.wav": ("happy", "s2", "male")}
    assert {u.corpus for u in m} == {"csv"}
    why = skipped_names(skipped)
    assert why["c.wav"] == "unknown label 'excited'"
    assert why["missing.wav"] == "file not found"
    assert why["a.wav"].startswith("duplicate of")
    bad = tmp_path / "bad.csv"
    bad.write_text("file,emotion\na.wav,sad\n")
    with pytest.raises(CorpusError, match="lacks column\\(s\\) path, label"):
        build_manifest("csv", bad)
    with pytest.raises(CorpusError, match="CSV .* not found"):
        build_manifest("csv", tmp_path, csv=tmp_path / "none.csv")


def test_unreadable_audio_is_skipped(tmp_path: Path) -> None:
    root = make_tree(tmp_path, ["03a01Wa.wav"])
    (root / "03a02Wa.wav").write_bytes(b"RIFF garbage")
    m, skipped = build_manifest("emodb", root)
    assert len(m) == 1
    assert skipped_names(skipped)["03a02Wa.wav"].startswith("unreadable audio")


CSU_FILES = [
    "Happy/Day 1/1.wav", "Happy/Day 1/11.wav", "Chagrin/Day 2/3.wav", "Surprised/Day 2/12.wav",
    "Bored/Day 1/1.wav", "Happy/Day 1/take.wav", "Happy/1.wav",
]


def test_csu2022_requires_speaker_map(tmp_path: Path) -> None:
    root = make_tree(tmp_path, CSU_FILES)
    with pytest.raises(CorpusError, match="CSU 2022 .* no speaker id.*speakers.csv"):
        build_manifest("csu2022", root)
    m, skipped = build_manifest("csu2022", root, allow_unknown_speakers=True)
    assert sorted(u.label for u in m) == ["chagrin", "happy", "happy", "surprise"]
    assert m.speakers == (UNKNOWN_SPEAKER,)
    why = {Path(p).relative_to(root).as_posix(): w for p, w in skipped}
    assert why == {
        "Bored/Day 1/1.wav": "unknown emotion folder 'Bored'",
        "Happy/Day 1/take.wav": "not <Emotion>/<Day n>/<number>.wav",
        "Happy/1.wav": "not <Emotion>/<Day n>/<number>.wav",
    }


def test_csu2022_range_map(tmp_path: Path) -> None:
    root = make_tree(tmp_path, CSU_FILES)
    (root / "speakers.csv").write_text("day,first,last,speaker,gender\n1,1,10,P001,여\n1,11,20,P002,남\n2,1,10,P101,female\n")
    m, skipped = build_manifest("csu2022", root)
    got = {Path(u.path).relative_to(root).as_posix(): (u.label, u.speaker, u.gender) for u in m}
    assert got == {
        "Happy/Day 1/1.wav": ("happy", "P001", "female"),
        "Happy/Day 1/11.wav": ("happy", "P002", "male"),
        "Chagrin/Day 2/3.wav": ("chagrin", "P101", "female"),
    }
    assert skipped_names(skipped)["12.wav"] == "not in speaker map speakers.csv"


def test_csu2022_path_map_and_overlap(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "csu", CSU_FILES[:4])
    table = tmp_path / "map.csv"
    table.write_text("path,speaker\nHappy/Day 1/1.wav,A\nHappy/Day 1/11.wav,B\nChagrin/Day 2/3.wav,A\nSurprised/Day 2/12.wav,C\n")
    m, skipped = build_manifest("csu2022", root, csv=table)
    assert skipped == [] and m.speaker_counts() == {"A": 2, "B": 1, "C": 1}
    table.write_text("day,first,last,speaker\n1,1,10,A\n1,10,20,B\n")
    with pytest.raises(CorpusError, match="overlaps speaker A"):
        build_manifest("csu2022", root, csv=table)


def test_aihub(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "aihub", ["wav/5f0a.wav", "wav/sub/5f0b.wav", "wav/5f0c.wav", "wav/5f0e.wav"])
    table = tmp_path / "meta.csv"
    rows = "wav_id,발화문,상황,speaker,성별\n5f0a,안녕,기쁨,M01,남\n5f0b,응,Sadness,F02,여\n5f0c,뭐,당황,M01,남\n5f0d,와,분노,M01,남\n"
    table.write_bytes(rows.encode("cp949"))  # Korean Excel export
    m, skipped = build_manifest("aihub", root, csv=table)
    assert by_name(m) == {"5f0a.wav": ("happy", "M01", "male"), "5f0b.wav": ("sad", "F02", "female")}
    assert sorted(u.text for u in m) == ["안녕", "응"]
    assert skipped_names(skipped) == {"5f0c.wav": "unknown emotion '당황'", "5f0d": "no audio file named 5f0d.* under root"}


def test_aihub_needs_speakers_and_columns(tmp_path: Path) -> None:
    root = make_tree(tmp_path, ["5f0a.wav"])
    (root / "meta.csv").write_text("wav_id,emotion\n5f0a,happiness\n", encoding="utf-8")
    with pytest.raises(CorpusError, match="no speaker column"):
        build_manifest("aihub", root)
    m, _ = build_manifest("aihub", root, allow_unknown_speakers=True)
    assert [(u.label, u.speaker) for u in m] == [("happy", UNKNOWN_SPEAKER)]
    (root / "meta.csv").write_text("id,emotion\n5f0a,happiness\n")
    with pytest.raises(CorpusError, match="needs a wav_id"):
        build_manifest("aihub", root)
