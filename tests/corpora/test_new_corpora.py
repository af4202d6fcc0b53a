"""nEMO, TurEV-DB and CASIA parsers (original layouts on tiny synthetic trees, and the
../shared folders against their metadata.csv), the label map and the evaluate-only guard."""

from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from emolens.corpora import build_manifest
from emolens.corpora.label_map import apply_label_map, effective_map, parse_label_map, unused_pairs
from emolens.corpora.parsers import EVALUATE_ONLY_CORPORA
from emolens.errors import LabelError, ModelError
from emolens.training.package import check_shippable

from .test_parsers import by_name, make_tree, skipped_names


# --- original layouts, synthetic ------------------------------------------------------
def test_nemo_original_layout_with_data_tsv(tmp_path: Path) -> None:
    make_tree(tmp_path, ["samples/SB0_anger_12.wav", "samples/SB0_sadness_3.wav", "samples/KL0_happiness_1.wav",
                         "samples/KL0_surprised_1.wav", "samples/KL0_neutral_2.wav", "samples/readme.wav",
                         "samples/KL0_neutral_9.wav"])
    (tmp_path / "data.tsv").write_text(
        "file_id\temotion\traw_text\tnormalized_text\tspeaker_id\tgender\tage\n"
        "SB0_anger_12.wav\tanger\tAla ma kota.\tala ma kota\t SB0\tmale\t24\n"
        "SB0_sadness_3.wav\tsadness\tx\tx\tSB0\tmale\t24\n"
        "KL0_happiness_1.wav\thappiness\ty\ty\tKL0\tfemale\t30\n"
        "KL0_neutral_9.wav\tanger\tz\tz\tKL0\tfemale\t30\n")
    m, skipped = build_manifest("nemo", tmp_path)
    got = by_name(m)
    assert got == {"SB0_anger_12.wav": ("angry", "SB0", "male"), "SB0_sadness_3.wav": ("sad", "SB0", "male"),
                   "KL0_happiness_1.wav": ("happy", "KL0", "female"), "KL0_surprised_1.wav": ("surprise", "KL0", None),
                   "KL0_neutral_2.wav": ("neutral", "KL0", None)}
    assert next(u.text for u in m if u.path.endswith("SB0_anger_12.wav")) == "ala ma kota"
    sk = skipped_names(skipped)
    assert "unparseable" in sk["readme.wav"] and "table says emotion 'anger'" in sk["KL0_neutral_9.wav"]


def test_turev_original_layout(tmp_path: Path) -> None:
    src = "Sound Source"
    make_tree(tmp_path, [f"{src}/Angry/1157_kz_acik.wav", f"{src}/Calm/1234_sk_cay.wav", f"{src}/Happy/1234_mt_cay.wav",
                         f"{src}/Sad/1157_hl_acik.wav", f"{src}/Sad/1234_kz_defne.wav", f"{src}/Sad/notes.wav"])
    (tmp_path / "Spectrograms").mkdir()
    make_tree(tmp_path, ["filtered/Angry/1157_kz_acik.wav"])  # outside Sound Source: ignored
    m, skipped = build_manifest("turev", tmp_path)
    assert by_name(m) == {"1157_kz_acik.wav": ("angry", "1157", None), "1234_sk_cay.wav": ("calm", "1234", None),
                          "1234_mt_cay.wav": ("happy", "1234", None), "1157_hl_acik.wav": ("sad", "1157", None)}
    sk = skipped_names(skipped)
    assert "disagrees with folder 'Sad'" in sk["1234_kz_defne.wav"] and "unparseable" in sk["notes.wav"]
    assert {u.text for u in m} == {"acik", "cay"}


def test_casia_original_layout(tmp_path: Path) -> None:
    make_tree(tmp_path, ["liuchanhg/angry/201.wav", "liuchanhg/fear/202.wav", "wangzhe/sad/250.wav",
                         "wangzhe/boredom/203.wav", "wangzhe/excited/204.wav", "wangzhe/sad/readme.wav"])
    m, skipped = build_manifest("casia", tmp_path)
    assert by_name(m) == {"201.wav": ("angry", "liuchanhg", "female"), "202.wav": ("fear", "liuchanhg", "female"),
                          "250.wav": ("sad", "wangzhe", "male")}
    sk = skipped_names(skipped)
    assert "unknown emotion folder 'boredom'" in sk["203.wav"] and "'excited'" in sk["204.wav"] and "not <speaker>/<emotion>/<number>" in sk["readme.wav"]
    assert "casia" in EVALUATE_ONLY_CORPORA


# --- label map ------------------------------------------------------------------------
def test_label_map_parse_and_apply(tmp_path: Path) -> None:
    make_tree(tmp_path, ["Calm/1_sk_a.wav", "Calm/1_sk_b.wav", "Sad/1_hl_a.wav", "Angry/2_kz_a.wav"])
    m, _ = build_manifest("turev", tmp_path)
    lm = parse_label_map(["turev:calm=neutral", "Bored=Sadness"], ["turev", "emodb"])
    assert lm == {"turev": {"calm": "neutral"}, "*": {"boredom": "sad"}}
    assert effective_map(lm, "turev") == {"boredom": "sad", "calm": "neutral"}
    assert effective_map(lm, "emodb") == {"boredom": "sad"}
    new, applied = apply_label_map(m, lm)
    assert applied == {"turev": {"calm->neutral": 2}}
    assert new.label_counts() == {"angry": 1, "neutral": 2, "sad": 1}
    assert unused_pairs(lm, applied, ["turev", "emodb"]) == ["boredom=sad"]
    # a corpus scope wins over a global pair for the same source
    lm2 = parse_label_map(["calm=sad", "turev:calm=neutral"])
    assert effective_map(lm2, "turev") == {"calm": "neutral"} and effective_map(lm2, "ravdess") == {"calm": "sad"}


@pytest.mark.parametrize("value, match", [
    ("calm=relaxed", "unknown emotion label 'relaxed'"),
    ("chill=neutral", "unknown emotion label 'chill'"),
    ("calm", "is not FROM=TO"),
    ("casia:calm=neutral", "names corpus 'casia', which is not prepared"),
    ("calm=calm", "onto itself"),
])
def test_label_map_errors(value: str, match: str) -> None:
    with pytest.raises(LabelError, match=match):
        parse_label_map([value], ["turev"])
    with pytest.raises(LabelError, match="both 'neutral' and 'sad'"):
        parse_label_map(["calm=neutral", "calm=sad"])


def test_casia_guard() -> None:
    check_shippable({"training_corpora": ["emodb", "nemo"]})
    check_shippable({})  # older model.json: nothing recorded, nothing to refuse
    with pytest.raises(ModelError, match="casia, which is evaluate-only"):
        check_shippable({"training_corpora": ["casia", "emodb"]})


# --- the ../shared folders, against their metadata.csv --------------------------------
def _meta(root: Path) -> list[dict[str, str]]:
    with (root / "metadata.csv").open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


@pytest.mark.slow
@pytest.mark.parametrize("corpus, folder", [("nemo", "nemo"), ("turev", "turev"), ("casia", "casia")])
def test_shared_corpus_matches_metadata(shared_dir: Path, corpus: str, folder: str) -> None:
    root = shared_dir / "data" / folder
    if not root.is_dir():
        pytest.skip(f"{root} missing")
    m, skipped = build_manifest(corpus, root)
    rows = _meta(root)
    assert skipped == [] and len(m) == len(rows)
    by_path = {str((root / r["path"]).resolve()): r for r in rows}
    for u in m:
        r = by_path[u.path]
        assert (u.speaker, u.label) == (r["speaker"], r["emotion"])
        assert abs(u.duration - float(r["duration_s"])) < 0.02
    if corpus == "nemo":  # README: 749/749/809/769; MP0 198 clips, the other 8 speakers 359-360
        assert m.label_counts() == {"angry": 749, "happy": 749, "neutral": 809, "sad": 769}
        spk = m.speaker_counts()
        assert len(spk) == 9 and spk["MP0"] == 198 and all(359 <= n <= 360 for s, n in spk.items() if s != "MP0")
        assert Counter(u.gender for u in m) == Counter(r["gender"] for r in rows)
    if corpus == "turev":  # 487/408/357/483; speaker 1157 only angry 77 and sad 73; 7895 29 happy
        assert m.label_counts() == {"angry": 487, "calm": 408, "happy": 357, "sad": 483}
        s1157 = Counter(u.label for u in m if u.speaker == "1157")
        assert s1157 == {"angry": 77, "sad": 73}
        assert sum(u.speaker == "7895" and u.label == "happy" for u in m) == 29
        assert len(m.speakers) == 6 and sum(u.duration < 0.96 for u in m) > len(m) / 2
    if corpus == "casia":
        assert m.label_counts() == {"angry": 200, "happy": 200, "neutral": 200, "sad": 200}
        assert m.speaker_counts() == {"ZhaoZuoxiang": 200, "liuchanhg": 200, "wangzhe": 200, "zhaoquanyin": 200}


@pytest.mark.slow
def test_prepare_turev_label_map_and_short_words(tmp_path: Path, shared_dir: Path, capsys) -> None:
    """emolens prepare on 24 real TurEV words: calm->neutral recorded in prepare.json;
    a word shorter than a patch is one padded patch."""
    from emolens.cli.main import main

    root = shared_dir / "data" / "turev"
    rows = [r for r in _meta(root) if r["speaker"] == "1234"]
    pick = [r for lab in ("angry", "calm", "happy", "sad") for r in [x for x in rows if x["emotion"] == lab][:6]]
    # a copy of the TurEV layout with 24 files (symlinks keep it cheap)
    sub = tmp_path / "turev"
    for r in pick:
        dst = sub / r["path"]
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.symlink_to(root / r["path"])
    code = main(["prepare", "--corpus", f"turev:{sub}", "--label-map", "turev:calm=neutral", "--classes", "4class",
                 "--out", str(tmp_path / "w"), "--quiet"])
    assert code == 0
    info = json.loads((tmp_path / "w" / "prepare.json").read_text())
    assert info["label_map"] == {"turev": {"calm": "neutral"}}
    assert info["label_map_applied"] == {"turev": {"calm->neutral": 6}}
    assert info["labels"] == {"angry": 6, "happy": 6, "neutral": 6, "sad": 6}
    from emolens.workdir import WorkDir

    work = WorkDir.open(tmp_path / "w")
    ps = work.patchset(progress=False)
    per_utt = np.bincount(ps.utt, minlength=len(work.manifest))
    durations = np.array([u.duration for u in work.manifest])
    assert (durations < 0.96).sum() >= 6
    assert np.all(per_utt[durations < 0.96] == 1) and np.all(per_utt >= 1)
    assert info["patches_before"] == int(per_utt.sum())
    code = main(["prepare", "--corpus", f"turev:{sub}", "--label-map", "turev:calm=relaxed", "--out", str(tmp_path / "x"), "--quiet"])
    assert code == 2 and "unknown emotion label 'relaxed'" in capsys.readouterr().err
