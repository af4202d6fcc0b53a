"""`emolens predict --adapt` over folders of real clips (an EmoDB speaker, RAVDESS actors) and `timeline --adapt`,
through the entry point, with the shipped model and its adaptation statistics."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

RAVDESS_4 = {"01": "neutral", "03": "happy", "04": "sad", "05": "angry"}
EMODB_4 = {"W": "angry", "F": "happy", "N": "neutral", "T": "sad"}


def _emolens(*argv, tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "EMOLENS_WEIGHTS"}  # offline: packaged YAMNet only
    env.update({"EMOLENS_CACHE": str(tmp_path / "cache"), "MPLBACKEND": "Agg"})
    return subprocess.run([sys.executable, "-m", "emolens.cli.main", *map(str, argv)], capture_output=True, text=True, env=env)


def _actor(shared_dir: Path, tmp_path: Path, actor: str = "12") -> Path:
    """The actor's 4-class clips (28) in a folder of links (one voice = one folder)."""
    src = shared_dir / "data" / "ravdess" / f"Actor_{actor}"
    d = tmp_path / f"actor{actor}"
    d.mkdir()
    for f in sorted(src.glob("*.flac")):
        if f.name.split("-")[2] in RAVDESS_4:
            (d / f.name).symlink_to(f)
    return d


def _voice(shared_dir: Path, tmp_path: Path, speaker: str = "03", letters: str = "WFNT") -> Path:
    """An EmoDB speaker's clips of the given emotions (speaker 03, all four: 39 clips) in a folder of
    links. The spread gate lets this voice through with all its emotions and not with one."""
    d = tmp_path / f"emodb{speaker}{letters}"
    d.mkdir()
    for f in sorted((shared_dir / "data" / "emodb-original" / "wav").glob(f"{speaker}*.flac")):
        if f.stem[5] in letters:
            (d / f.name).symlink_to(f)
    return d


def _label(file: str) -> str:
    name = Path(file).name
    return RAVDESS_4[name.split("-")[2]] if "-" in name else EMODB_4[Path(name).stem[5]]


def _uar(records: list[dict]) -> float:
    y = np.array([_label(r["file"]) for r in records])
    p = np.array([r["emotion"] for r in records])
    return float(np.mean([np.mean(p[y == c] == c) for c in np.unique(y)]))


@pytest.mark.slow
def test_predict_adapt_folder_of_one_voice(shared_dir, tmp_path):
    d = _voice(shared_dir, tmp_path)
    r = _emolens("predict", "--json", "--backend", "torch", d, tmp_path=tmp_path)
    assert r.returncode == 0, r.stderr
    single = [json.loads(l) for l in r.stdout.splitlines()]
    r = _emolens("predict", "--json", "--adapt", "--out", tmp_path / "adapted.csv", d, tmp_path=tmp_path)
    assert r.returncode == 0, r.stderr
    adapted = [json.loads(l) for l in r.stdout.splitlines()]
    assert len(single) == len(adapted) == 39
    assert "adapt: adapted to voice" in r.stderr and "39 clips" in r.stderr
    assert all(a["adapted"] for a in adapted) and not any(s["adapted"] for s in single)
    diff = max(abs(a["probabilities"][c] - s["probabilities"][c]) for a, s in zip(adapted, single) for c in a["probabilities"])
    assert diff > 0.01  # the voice's statistics changed the decision inputs
    from emolens.evaluation.calibration import calibration_of
    from emolens.resources import default_model_dir

    shipped = json.loads((default_model_dir() / "model.json").read_text())
    _, thr = calibration_of(shipped)
    m = shipped["card"]["adaptation_loco"]  # what --adapt measured on the model's own LOCO folds, said up front
    assert (f"adapt: note: on this model's leave-one-corpus-out folds --adapt (gated) changed UAR by "
            f"{m['gated'] - m['single']:+.3f} (speakers with all their emotions) and "
            f"{m['one_gated'] - m['one_single']:+.3f} (speakers showing one emotion), and by "
            f"{m['two_gated'] - m['two_single']:+.3f} where speakers show two emotions") in r.stderr
    for rec in adapted:  # every record keeps emotion + probabilities and has the uncertain flag
        assert set(rec["probabilities"]) == {"angry", "happy", "neutral", "sad"}
        assert rec["uncertain"] is (max(rec["probabilities"].values()) < thr)
        assert rec["emotion"] == max(rec["probabilities"], key=rec["probabilities"].get)
        assert abs(sum(rec["probabilities"].values()) - 1) < 1e-5
    # measured on this voice (shipped model): single clip vs adapted UAR (both well above chance 0.25)
    u_single, u_adapt = _uar(single), _uar(adapted)
    assert u_single > 0.4 and u_adapt > 0.4, (u_single, u_adapt)
    rows = (tmp_path / "adapted.csv").read_text().splitlines()
    assert rows[0].split(",")[7:9] == ["uncertain", "adapted"] and len(rows) == 40
    assert all(line.split(",")[8] == "1" for line in rows[1:])


@pytest.mark.slow
def test_predict_adapt_falls_back_with_too_few_clips(shared_dir, tmp_path):
    d = _actor(shared_dir, tmp_path)
    few = tmp_path / "few"
    few.mkdir()
    for f in sorted(d.iterdir())[:2]:
        (few / f.name).symlink_to(f.resolve())
    r = _emolens("predict", "--json", "--adapt", few, tmp_path=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "2 clips of this voice (< 3): too little to adapt on, classified clip by clip" in r.stderr
    adapted = [json.loads(l) for l in r.stdout.splitlines()]
    r = _emolens("predict", "--json", "--backend", "torch", few, tmp_path=tmp_path)
    single = [json.loads(l) for l in r.stdout.splitlines()]
    assert not any(a["adapted"] for a in adapted) and all(any("not adapted" in n for n in a["notes"]) for a in adapted)
    for a, s in zip(adapted, single):  # the fallback is exactly the single-clip result
        for c in a["probabilities"]:
            assert abs(a["probabilities"][c] - s["probabilities"][c]) < 1e-5
    # a CSV of speakers regroups files: all of them named as one speaker, from two folders
    csv = tmp_path / "speakers.csv"
    files = sorted(d.iterdir())[:4]
    csv.write_text("path,speaker\n" + "".join(f"{f},A\n" for f in files))
    other = tmp_path / "other"
    other.mkdir()
    for f in files[2:]:
        f.rename(other / f.name)
    r = _emolens("predict", "--json", "--adapt", "--speakers", csv, *[p for p in files[:2]], *[other / f.name for f in files[2:]],
                 tmp_path=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "voice 'speaker A'" in r.stderr or "adapted to voice 'speaker A'" in r.stderr
    # the voice adapted above with all its emotions, now angry in every clip (14): the spread gate
    # leaves it as it is, so the steady emotion is not erased
    angry = _voice(shared_dir, tmp_path, letters="W")
    r = _emolens("predict", "--json", "--adapt", angry, tmp_path=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "it may hold one steady emotion, which adapting would erase; classified clip by clip" in r.stderr
    out = [json.loads(line) for line in r.stdout.splitlines()]
    assert len(out) == 14 and not any(o["adapted"] for o in out)


def test_predict_adapt_errors(tmp_path, tiny_run, tone):
    wav = tmp_path / "t.wav"
    sf.write(wav, tone, 16000)
    r = _emolens("predict", "--model", tiny_run, "--adapt", wav, tmp_path=tmp_path)
    assert r.returncode == 2 and r.stderr.strip().startswith("emolens: error:") and "no adaptation statistics" in r.stderr
    # statistics saved for method gated without its gate (fitted from one labelled set): one line, not a traceback
    import shutil

    from emolens.adaptation.store import save_adapter
    from emolens.adaptation.transform import AdaptConfig, SpeakerAdapter

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    rng = np.random.default_rng(0)
    feats = {s: rng.normal(size=(80, 1024)).astype(np.float32) for s in ("yamnet", "yamnet_mid")}
    utt = np.arange(80)
    save_adapter(run, SpeakerAdapter.fit(feats, utt, np.ones(80, bool), (utt // 20).astype(str), utt % 4, utt,
                                         AdaptConfig(k=2, q=2)))
    r = _emolens("predict", "--model", run, "--adapt", wav, tmp_path=tmp_path)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "have no spread gate (method gated)" in r.stderr, r.stderr
    r = _emolens("predict", "--speakers", tmp_path / "x.csv", wav, tmp_path=tmp_path)
    assert r.returncode == 2 and "--speakers names voices for --adapt" in r.stderr
    r = _emolens("predict", "--uncertain-below", "1.5", wav, tmp_path=tmp_path)
    assert r.returncode == 2 and "between 0 and 1" in r.stderr


@pytest.mark.slow
def test_timeline_adapt(shared_dir, tmp_path):
    d = _voice(shared_dir, tmp_path)
    clips = [sf.read(f)[0] for f in sorted(d.iterdir())[::2]]  # 20 clips, about 50 s
    long = tmp_path / "long.wav"
    sf.write(long, np.concatenate(clips).astype(np.float32), 16000)
    short = tmp_path / "short.wav"
    sf.write(short, clips[0].astype(np.float32), 16000)
    r = _emolens("timeline", long, "--out", tmp_path / "tl", "--adapt", tmp_path=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "adapt: note: on this model's leave-one-corpus-out folds" in r.stderr
    seg = json.loads((tmp_path / "tl" / "segments.json").read_text())
    assert any(n.startswith("adapt: adapted to voice 'this recording'") for n in seg["notes"])
    r0 = _emolens("timeline", long, "--out", tmp_path / "tl0", "--backend", "torch", tmp_path=tmp_path)
    seg0 = json.loads((tmp_path / "tl0" / "segments.json").read_text())
    assert abs(seg["duration_s"] - seg0["duration_s"]) < 1e-6 and seg["segments"] != seg0["segments"]
    r = _emolens("timeline", short, "--out", tmp_path / "tl2", "--adapt", tmp_path=tmp_path)
    assert r.returncode == 0, r.stderr
    seg = json.loads((tmp_path / "tl2" / "segments.json").read_text())
    assert any("not adapted" in n and "s of speech (< 10 s)" in n for n in seg["notes"])


@pytest.mark.slow
def test_predict_and_timeline_adapt_with_a_neutral_clip(shared_dir, tmp_path):
    d = _actor(shared_dir, tmp_path)
    neutral = sorted(f for f in d.iterdir() if f.name.split("-")[2] == "01")[0]
    r = _emolens("predict", "--json", "--adapt", "--neutral", neutral, d, tmp_path=tmp_path)
    assert r.returncode == 0, r.stderr
    out = [json.loads(l) for l in r.stdout.splitlines()]
    assert len(out) == 27 and neutral.name not in {Path(o["file"]).name for o in out}  # the enrolment clip is not classified
    assert f"adapted to voice '{d}' from 1 neutral clip" in r.stderr and "27 clips classified" in r.stderr
    from emolens.resources import default_model_dir

    m = json.loads((default_model_dir() / "model.json").read_text())["card"]["adaptation_loco"]
    assert m["enrol"] > m["enrol_single"] and m["one_enrol"] > m["one_enrol_single"]  # measured: helps on both kinds
    assert (f"one neutral clip per voice changed UAR by {m['enrol'] - m['enrol_single']:+.3f} (speakers with all their "
            f"emotions) and {m['one_enrol'] - m['one_enrol_single']:+.3f}") in r.stderr
    r0 = _emolens("predict", "--json", "--backend", "torch", d, tmp_path=tmp_path)
    single = {Path(o["file"]).name: o for o in map(json.loads, r0.stdout.splitlines())}
    assert all(o["adapted"] for o in out)
    assert max(abs(o["probabilities"][c] - single[Path(o["file"]).name]["probabilities"][c])
               for o in out for c in o["probabilities"]) > 0.01
    # the neutral clip belongs to a voice: two folders and a clip of neither is refused
    other = tmp_path / "other"
    other.mkdir()
    stray = tmp_path / "stray" / neutral.name
    stray.parent.mkdir()
    stray.symlink_to(neutral.resolve())
    for f in sorted(d.iterdir())[:3]:
        (other / f.name).symlink_to(f.resolve())
    r = _emolens("predict", "--adapt", "--neutral", stray, d, other, tmp_path=tmp_path)
    assert r.returncode == 2 and "has no clips to classify" in r.stderr
    r = _emolens("predict", "--neutral", neutral, d, tmp_path=tmp_path)
    assert r.returncode == 2 and "--neutral enrols a voice for --adapt" in r.stderr
    # timeline: the recording's voice enrolled with the neutral clip
    clips = [sf.read(f)[0] for f in sorted(d.iterdir())[1::3]]
    long = tmp_path / "long.wav"
    sf.write(long, np.concatenate(clips).astype(np.float32), 16000)
    r = _emolens("timeline", long, "--out", tmp_path / "tl", "--adapt", "--neutral", neutral, tmp_path=tmp_path)
    assert r.returncode == 0, r.stderr
    seg = json.loads((tmp_path / "tl" / "segments.json").read_text())
    assert any(n.startswith("adapt: enrolled this recording's voice with 1 neutral clip") for n in seg["notes"])


@pytest.mark.slow
def test_speakers_csv_marks_neutral_enrolment_clips(shared_dir, tmp_path):
    a, b = _actor(shared_dir, tmp_path, "12"), _actor(shared_dir, tmp_path, "13")
    rows = ["path,speaker,neutral"]
    enrol = []
    for d, spk in ((a, "A"), (b, "B")):
        for i, f in enumerate(sorted(d.iterdir())):
            mark = "1" if f.name.split("-")[2] == "01" and f not in enrol and not any(e.parent == d for e in enrol) else ""
            if mark:
                enrol.append(f)
            rows.append(f"{f},{spk},{mark}")
    csv = tmp_path / "voices.csv"
    csv.write_text("\n".join(rows) + "\n")
    r = _emolens("predict", "--json", "--adapt", "--speakers", csv, a, b, tmp_path=tmp_path)
    assert r.returncode == 0, r.stderr
    out = [json.loads(l) for l in r.stdout.splitlines()]
    assert len(out) == 54 and not {Path(o["file"]).name for o in out} & {e.name for e in enrol}
    assert "adapted to voice 'speaker A' from 1 neutral clip" in r.stderr
    assert "adapted to voice 'speaker B' from 1 neutral clip" in r.stderr
    assert all(o["adapted"] for o in out)


@pytest.mark.slow
def test_neutral_clip_without_speech_or_corrupt(shared_dir, tmp_path):
    d = _actor(shared_dir, tmp_path)
    silent = tmp_path / "silent.wav"
    sf.write(silent, np.zeros(32000, np.float32), 16000)
    r = _emolens("predict", "--json", "--adapt", "--neutral", silent, d, tmp_path=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "its neutral clip has no speech: classified clip by clip" in r.stderr
    out = [json.loads(l) for l in r.stdout.splitlines()]
    assert len(out) == 28 and not any(o["adapted"] for o in out)
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF" + bytes(100))
    r = _emolens("predict", "--adapt", "--neutral", broken, d, tmp_path=tmp_path)
    last = r.stderr.strip().splitlines()[-1]
    assert r.returncode == 2 and last.startswith("emolens: error: --neutral: ") and ("decode" in last or "not recognised" in last)
    assert "Traceback" not in r.stderr
    clip = sorted(d.iterdir())[0]
    r = _emolens("timeline", clip, "--out", tmp_path / "tl", "--adapt", "--neutral", silent, tmp_path=tmp_path)
    assert r.returncode == 0, r.stderr
    seg = json.loads((tmp_path / "tl" / "segments.json").read_text())
    assert "adapt: not adapted: the --neutral clip has no speech" in seg["notes"]


@pytest.mark.slow
def test_explain_adapt_explains_the_adapted_decision(shared_dir, tmp_path):
    """`explain --adapt` on a voice folder explains exactly what `predict --adapt` decided
    (same probabilities, per file), says so in its notes, and checks its options as predict does."""
    src = _voice(shared_dir, tmp_path)
    d = tmp_path / "eight"
    d.mkdir()
    by = {e: sorted(f for f in src.iterdir() if f.stem[5] == e) for e in "WFNT"}
    for f in by["N"][:2] + by["W"][:2] + by["F"][:2] + by["T"][:2]:  # eight clips of the voice, every emotion
        (d / f.name).symlink_to(f.resolve())
    r = _emolens("predict", "--json", "--adapt", d, tmp_path=tmp_path)
    assert r.returncode == 0, r.stderr
    predicted = {Path(j["file"]).name: j for j in map(json.loads, r.stdout.splitlines())}
    assert all(j["adapted"] for j in predicted.values())
    r = _emolens("explain", "--json", "--adapt", "--methods", "gradcam", "--no-faithfulness", "--regions", "none",
                 "--out", tmp_path / "ex", d, tmp_path=tmp_path)
    assert r.returncode == 0, r.stderr
    explained = [json.loads(line) for line in r.stdout.splitlines()]
    assert len(explained) == 8
    for e in explained:
        p = predicted[Path(e["file"]).name]
        assert e["label"] == p["emotion"]
        assert max(abs(e["probabilities"][c] - p["probabilities"][c]) for c in p["probabilities"]) < 1e-5
        assert any("--adapt" in n for n in e["notes"])
        assert (Path(e["out"]) / "explanation.json").exists()
    r = _emolens("explain", "--json", "--methods", "gradcam", "--no-faithfulness", "--regions", "none",
                 "--out", tmp_path / "ex1", d, tmp_path=tmp_path)
    single = {Path(j["file"]).name: j for j in map(json.loads, r.stdout.splitlines())}
    assert max(abs(single[k]["probability"] - predicted[k]["probabilities"][single[k]["label"]])
               for k in single) > 0.01  # unadapted explanations explain another decision
    r = _emolens("explain", "--neutral", next(d.iterdir()), d, tmp_path=tmp_path)
    assert r.returncode == 2 and "--neutral enrols a voice for --adapt" in r.stderr
    neutral = sorted(f for f in d.iterdir() if f.stem[5] == "N")[0]  # a neutral clip: enrols the voice, is not explained
    r = _emolens("predict", "--json", "--adapt", "--neutral", neutral, d, tmp_path=tmp_path)
    enrolled = {Path(j["file"]).name: j for j in map(json.loads, r.stdout.splitlines())}
    r = _emolens("explain", "--json", "--adapt", "--neutral", neutral, "--methods", "gradcam", "--no-faithfulness",
                 "--regions", "none", "--out", tmp_path / "ex2", d, tmp_path=tmp_path)
    assert r.returncode == 0, r.stderr
    explained = [json.loads(line) for line in r.stdout.splitlines()]
    assert len(explained) == len(enrolled) == 7 and neutral.name not in {Path(e["file"]).name for e in explained}
    for e in explained:
        p = enrolled[Path(e["file"]).name]
        assert max(abs(e["probabilities"][c] - p["probabilities"][c]) for c in p["probabilities"]) < 1e-5
        assert any("--adapt --neutral" in n for n in e["notes"])
        assert e["prosody"] and all("this voice's expected value" in pl["text"] for pl in e["prosody"])  # voice-referenced
