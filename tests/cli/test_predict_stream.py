"""``emolens predict --out``: results streamed as they come, one record per file, and
a killed or interrupted run resumes without redoing (or losing) any file."""

import csv
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import soundfile as sf

from emolens.cli.main import main
from emolens.report import results_file


@pytest.fixture
def folder(tmp_path):
    """11 short recordings in two sub-folders plus one undecodable file."""
    rng = np.random.default_rng(0)
    d = tmp_path / "in"
    for i in range(11):
        sub = d / ("a" if i % 2 else "b")
        sub.mkdir(parents=True, exist_ok=True)
        sf.write(sub / f"clip{i:02d}.wav", (0.1 * rng.standard_normal(4000 + 2500 * i)).astype(np.float32), 16000)
    (d / "b" / "broken.wav").write_bytes(b"not audio" * 10)
    return d


def _records(path):
    if path.suffix == ".csv":
        return {r["file"]: r for r in csv.DictReader(open(path))}
    lines = path.read_text().splitlines()
    recs = [json.loads(l) for l in lines]
    assert len({r["file"] for r in recs}) == len(recs), "a file was recorded twice"
    return {r["file"]: r for r in recs}


@pytest.mark.parametrize("ext", [".jsonl", ".csv"])
def test_interrupted_run_resumes_every_file_once(folder, make_run, tmp_path, monkeypatch, capsys, ext):
    run = make_run()
    base = ["predict", "--model", str(run), str(folder), "--backend", "torch", "--batch-files", "4", "--json"]
    ref_path = tmp_path / f"ref{ext}"
    assert main(base + ["--out", str(ref_path)]) == 0
    ref = _records(ref_path)
    assert len(ref) == 12 and sum(bool(r.get("error")) for r in ref.values()) == 1
    capsys.readouterr()

    out = tmp_path / f"out{ext}"
    real_write, calls = results_file.ResultsFile.write, {"n": 0}

    def flaky_write(self, r):
        if calls["n"] == 5:
            raise KeyboardInterrupt  # as Ctrl-C after five files
        calls["n"] += 1
        return real_write(self, r)

    monkeypatch.setattr(results_file.ResultsFile, "write", flaky_write)
    assert main(base + ["--out", str(out)]) == 130
    monkeypatch.setattr(results_file.ResultsFile, "write", real_write)
    assert len(_records(out)) == 5
    with open(out, "a") as f:  # a kill in the middle of writing a line
        f.write('{"file": "' if ext == ".jsonl" else f"{folder}/a/clip99.wav,ang")
    capsys.readouterr()
    assert main(base + ["--out", str(out)]) == 0
    cap = capsys.readouterr()
    assert "resuming: 5 of 12" in cap.err
    assert len(cap.out.splitlines()) == 7  # only the remaining files were classified
    got = _records(out)
    assert set(got) == set(ref)
    for f, r in ref.items():
        if ext == ".jsonl" and "probabilities" in r:
            for c, p in r["probabilities"].items():
                assert abs(got[f]["probabilities"][c] - p) < 1e-5
        elif ext == ".csv":
            assert got[f]["label"] == r["label"] and got[f]["error"] == r["error"]
    if ext == ".csv":
        assert out.read_text().count("file,label,probability") == 1
    # a changed file is classified again; unchanged ones are not
    changed = folder / "a" / "clip01.wav"
    sf.write(changed, np.zeros(8000, np.float32), 16000)
    assert main(base + ["--out", str(out)]) == 0
    assert "resuming: 11 of 12" in capsys.readouterr().err


def test_killed_process_resumes(folder, make_run, tmp_path, capsys):
    """SIGKILL a real `emolens predict` after a few records, run it again: all files, once."""
    run = make_run()
    out = tmp_path / "out.jsonl"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p), OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "emolens.cli.main", "predict", "--model", str(run), str(folder), "--backend", "torch",
           "--batch-files", "1", "--workers", "1", "--json", "--out", str(out)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while time.time() < deadline and proc.poll() is None:
        if out.exists() and out.read_text().count("\n") >= 3:
            break
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    first = out.read_text().count("\n")
    assert 3 <= first < 12, "the run was not interrupted part-way"
    capsys.readouterr()
    assert main(cmd[3:]) == 0  # the same command, in this process
    assert f"resuming: {first} of 12" in capsys.readouterr().err
    assert len(_records(out)) == 12


def test_over_long_file_is_an_error_that_points_to_timeline(folder, make_run, tmp_path, capsys):
    out = tmp_path / "o.jsonl"
    code = main(["predict", "--model", str(make_run()), str(folder / "a" / "clip09.wav"), str(folder / "b" / "clip00.wav"),
                 "--backend", "torch", "--max-seconds", "1.0", "--out", str(out)])
    err = capsys.readouterr().err
    recs = [json.loads(l) for l in out.read_text().splitlines()]
    assert code == 0 and len(recs) == 2 and "emolens timeline" in recs[0]["error"] and "label" in recs[1]
    assert err.count("emolens: error:") == 1 and "emolens timeline" in err
