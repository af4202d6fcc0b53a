"""Several corpora in one work dir through the CLI: prepare, leave-one-corpus-out
training with a per-corpus table, and `emolens evaluate` on another corpus."""

import csv
import json
from pathlib import Path

import pytest

from emolens.cli.main import main

CLASSES = {"W": "angry", "F": "happy", "N": "neutral", "T": "sad"}
RAVDESS = {"05": "angry", "03": "happy", "01": "neutral", "04": "sad"}


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    cap = capsys.readouterr()
    return code, cap.out, cap.err


@pytest.fixture
def corpora(tmp_path, shared_dir):
    """Links to 3 EmoDB speakers (2-s crops) and 3 RAVDESS actors, 2 files per class each."""
    emo, rav = tmp_path / "emodb", tmp_path / "ravdess"
    emo.mkdir(), rav.mkdir()
    seen: dict = {}
    for f in sorted((shared_dir / "data" / "emodb-original" / "wav").glob("*.flac")):
        spk, code = f.stem[:2], f.stem[5]
        if spk in ("03", "08", "09") and code in CLASSES and seen.setdefault((spk, code), 0) < 2:
            seen[(spk, code)] += 1
            (emo / f.name).symlink_to(f)
    for actor in ("01", "02", "03"):
        for f in sorted((shared_dir / "data" / "ravdess" / f"Actor_{actor}").glob("*.flac")):
            emotion = f.stem.split("-")[2]
            if emotion in RAVDESS and seen.setdefault((actor, emotion, "r"), 0) < 2:
                seen[(actor, emotion, "r")] += 1
                (rav / f.name).symlink_to(f)
    return emo, rav


@pytest.mark.slow
def test_two_corpora_end_to_end(tmp_path, capsys, corpora, weights_dir, monkeypatch):
    monkeypatch.setenv("EMOLENS_WEIGHTS", str(weights_dir))
    emo, rav = corpora
    work = tmp_path / "work"
    code, out, err = run(capsys, "prepare", "--corpus", f"emodb:{emo}", "--corpus", f"ravdess:{rav}", "--out", work, "--quiet")
    assert code == 0, err
    info = json.loads((work / "prepare.json").read_text())
    assert info["files"] == 48 and set(info["per_corpus"]) == {"emodb", "ravdess"}
    assert info["per_corpus"]["emodb"]["files"] == 24 and info["per_corpus"]["ravdess"]["speakers"] == 3
    assert sum(d["patches_before"] for d in info["per_corpus"].values()) == info["patches_before"]
    table_lines = out.split("\ncorpus")[1].splitlines()  # the per-corpus table is printed
    assert table_lines[1].split()[:3] == ["emodb", "24", "3"] and table_lines[2].startswith("ravdess")
    rows = list(csv.DictReader(open(work / "manifest.csv")))
    assert {r["speaker"] for r in rows if r["corpus"] == "ravdess"} == {"ravdess/01", "ravdess/02", "ravdess/03"}

    code, out, err = run(capsys, "train", "--work", work, "--model", "yamnet-layers", "--folds", "locorpus",
                         "--epochs", "2", "--out", tmp_path / "run", "--quiet")
    assert code == 0, err
    m = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert [f["fold"] for f in m["folds"]] == ["locorpus-emodb", "locorpus-ravdess"]
    assert {c: d["n"] for c, d in m["per_corpus"].items()} == {"emodb": 24, "ravdess": 24}
    assert m["per_corpus"]["emodb"]["uar"] == pytest.approx(m["folds"][0]["uar"])  # one fold = one corpus
    assert "emodb" in out and "ravdess" in out and "macro F1" in out

    code, out, err = run(capsys, "evaluate", "--model", tmp_path / "run", "--work", work, "--out", tmp_path / "ev", "--quiet")
    assert code == 0, err
    ev = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert ev["n"] == 48 and sum(map(sum, ev["confusion"])) == 48 and set(ev["per_corpus"]) == {"emodb", "ravdess"}
    assert (tmp_path / "ev" / "confusion.png").exists() and (tmp_path / "ev" / "confusion.csv").exists()

    # --adapt statistics for the trained model from its work dir: the spread gate held out by corpus
    from emolens.adaptation.store import fit_for_model

    adapter = fit_for_model(work, tmp_path / "run", progress=False)
    assert adapter.config.method == "gated" and adapter.gate is not None and adapter.gate.directions.shape[1] == 3
    assert json.loads((tmp_path / "run" / "model.json").read_text())["adaptation"]["method"] == "gated"
    code, out, err = run(capsys, "predict", "--model", tmp_path / "run", "--adapt", "--json", emo)
    assert code == 0, err
    assert len(out.splitlines()) == 24 and f"voice '{emo}'" in err  # adapted, or told why not

    table = tmp_path / "labels.csv"
    table.write_text("path,label\n" + "".join(f"{p},{'fear' if i == 0 else 'sad'}\n" for i, p in enumerate(sorted(emo.iterdir())[:3])))
    code, _, err = run(capsys, "evaluate", "--model", tmp_path / "run", "--labels", table, "--out", tmp_path / "ev2", "--quiet")
    assert code == 2 and err.count("\n") == 1 and "fear" in err and "--drop-unknown" in err
    code, out, _ = run(capsys, "evaluate", "--model", tmp_path / "run", "--labels", table, "--drop-unknown", "--out", tmp_path / "ev2", "--quiet")
    assert code == 0 and json.loads((tmp_path / "ev2" / "metrics.json").read_text())["n"] == 2


def test_locorpus_needs_two_corpora(tmp_path, capsys):
    from emolens.corpora.manifest import Manifest, Utterance

    work = tmp_path / "w"
    work.mkdir()
    Manifest([Utterance(f"/x/{i}.wav", "sad", f"s{i}", "one") for i in range(4)]).to_csv(work / "manifest.csv")
    (work / "prepare.json").write_text(json.dumps({"classes": ["sad"], "frontend": {"name": "vggish16k"},
                                                   "patches": {"patch_frames": 96, "hop_frames": 48}}))
    code, _, err = run(capsys, "train", "--work", work, "--model", "egemaps-svm", "--folds", "locorpus", "--out", tmp_path / "r")
    assert code == 2 and "at least 2 corpora" in err and err.count("\n") == 1
    code, _, err = run(capsys, "prepare", "--corpus", "emodb:/a", "--corpus", "emodb:/b", "--out", tmp_path / "o")
    assert code == 2 and "more than once" in err
