"""Several corpora in one manifest: spec parsing, namespaced speakers, per-corpus counts."""

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from emolens.corpora.multi import (
    CorpusSpec,
    build_multi_manifest,
    corpus_array,
    namespace_speaker,
    parse_corpus_specs,
    per_corpus_counts,
)
from emolens.errors import CorpusError


def test_parse_specs(tmp_path):
    s = parse_corpus_specs(["emodb:/a/b", "ravdess:/c"])
    assert s == [CorpusSpec("emodb", Path("/a/b")), CorpusSpec("ravdess", Path("/c"))]
    assert parse_corpus_specs(["emodb"], root=Path("/x")) == [CorpusSpec("emodb", Path("/x"))]  # old form
    assert parse_corpus_specs(["csv"], root=Path("/x"), csv=Path("/t.csv"))[0].csv == Path("/t.csv")
    for bad, kw in [(["nope:/a"], {}), (["emodb"], {}), (["emodb", "ravdess:/c"], {}),
                    (["emodb:/a", "emodb:/b"], {}), (["emodb:/a", "ravdess:/b"], {"csv": Path("/t.csv")}),
                    (["emodb:/a"], {"root": Path("/x")}), (["emodb:"], {})]:
        with pytest.raises(CorpusError):
            parse_corpus_specs(bad, **kw)


def test_namespace_keeps_unknown():
    assert namespace_speaker("ravdess", "01") == "ravdess/01"
    assert namespace_speaker("x", "unknown") == "unknown"


def _folder_corpus(root: Path, speakers: list[str], labels=("angry", "sad")) -> None:
    for lab in labels:
        for spk in speakers:
            d = root / lab / spk
            d.mkdir(parents=True)
            sf.write(d / f"{spk}_{lab}.wav", np.zeros(1600, np.float32), 16000)


def test_two_corpora_speakers_do_not_collide(tmp_path):
    _folder_corpus(tmp_path / "a", ["01", "02"])
    rows = ["path,label,speaker"]
    for lab in ("angry", "sad"):
        for spk in ("01", "03"):  # speaker 01 exists in both corpora
            p = tmp_path / "b" / f"{spk}{lab}.wav"
            p.parent.mkdir(exist_ok=True)
            sf.write(p, np.zeros(1600, np.float32), 16000)
            rows.append(f"{p},{lab},{spk}")
    (tmp_path / "b.csv").write_text("\n".join(rows) + "\n")
    specs = [CorpusSpec("folder", tmp_path / "a"), CorpusSpec("csv", tmp_path / "b", tmp_path / "b.csv")]
    with pytest.warns(Warning):
        m, skipped = build_multi_manifest(specs)
    assert len(m) == 8 and not skipped
    assert m.speakers == ("csv/01", "csv/03", "folder/01", "folder/02")
    assert m.corpora == ("csv", "folder")
    assert list(corpus_array(m)) == ["folder"] * 4 + ["csv"] * 4  # corpora in the given order
    # one corpus alone keeps its plain ids
    with pytest.warns(Warning):
        single, _ = build_multi_manifest(specs[:1])
    assert single.speakers == ("01", "02")


def test_per_corpus_counts():
    from emolens.corpora.manifest import Manifest, Utterance

    m = Manifest([Utterance("/a.wav", "sad", "x/1", "x"), Utterance("/b.wav", "angry", "y/1", "y"),
                  Utterance("/c.wav", "sad", "y/2", "y")])
    patch_utt = np.array([0, 0, 1, 2, 2, 2])
    keep = np.array([1, 0, 1, 1, 1, 0], bool)
    d = per_corpus_counts(m, patch_utt, keep)
    assert d["x"] == {"files": 1, "speakers": 1, "labels": {"sad": 1}, "patches_before": 2, "patches_after": 1,
                      "dropped_fraction": 0.5}
    assert d["y"]["patches_before"] == 4 and d["y"]["patches_after"] == 3 and d["y"]["speakers"] == 2
