"""`emolens report` from the command line: which folder kinds it takes, one-line errors,
and a run report with explained examples from a prepared work directory."""

import csv
import json
import re
import shutil

import pytest

from emolens.cli.main import main


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def test_report_errors_are_one_line(tmp_path, capsys):
    code, _, err = run(capsys, "report", tmp_path / "missing")
    assert code == 2 and err.count("\n") == 1 and "no such directory" in err
    (tmp_path / "empty").mkdir()
    code, _, err = run(capsys, "report", tmp_path / "empty")
    assert code == 2 and err.count("\n") == 1 and "neither a run directory" in err
    code, _, err = run(capsys, "app", "--model", tmp_path / "empty")
    assert code == 2 and err.count("\n") == 1 and "no trained model" in err


@pytest.mark.slow
def test_run_report_with_examples(tmp_path, capsys, emodb_dir, tiny_run, monkeypatch):
    rows = [r for r in csv.DictReader(open(emodb_dir / "metadata.csv")) if r["speaker"] in {"03", "08"}
            and r["emotion"] in {"angry", "happy", "neutral", "sad"}]
    picked = {}
    for r in rows:  # two clips per emotion
        picked.setdefault(r["emotion"], [])
        if len(picked[r["emotion"]]) < 2:
            picked[r["emotion"]].append(r)
    table = tmp_path / "subset.csv"
    with open(table, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "label", "speaker"])
        for rs in picked.values():
            for r in rs:
                w.writerow([str(emodb_dir / r["path"]), r["emotion"], r["speaker"]])
    work = tmp_path / "work"
    assert run(capsys, "prepare", "--corpus", "csv", "--root", emodb_dir, "--csv", table, "--out", work, "--quiet",
               "--workers", "1")[0] == 0
    rd = tmp_path / "run"
    shutil.copytree(tiny_run, rd)
    (rd / "metrics.json").write_text(json.dumps({"model": "yamnet", "accuracy": 0.5, "uar": 0.5, "f1_macro": 0.5, "n_folds": 0}))
    code, out, err = run(capsys, "report", rd, "--work", work, "--methods", "gradcam", "--no-faithfulness", "--quiet", "--out", tmp_path / "r.html")
    assert code == 0, err
    page = (tmp_path / "r.html").read_text()
    heads = re.findall(r"<h3>(angry|happy|neutral|sad): ([^<]+)</h3>", page)
    assert [h[0] for h in heads] == ["angry", "happy", "neutral", "sad"]  # one example per emotion, in class order
    assert all(any(h[1] == r["path"].split("/")[-1] for r in picked[h[0]]) for h in heads)
    assert page.count("<audio") == 8 and "Grad-CAM" in page and "csv" in page and "deletion AUC" not in page  # corpus from prepare.json
