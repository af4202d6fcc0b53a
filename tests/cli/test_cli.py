"""The command line: one-line errors with exit code 2, and the whole pipeline
(prepare -> train -> predict -> explain -> profile) on a real EmoDB subset."""

import csv
import json
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from emolens.cli.main import main


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def test_errors_are_one_line(tmp_path, capsys):
    code, _, err = run(capsys, "predict", "--model", tmp_path / "nope", tmp_path / "x.wav")
    assert code == 2 and err.count("\n") == 1 and "emolens: error:" in err and "train" in err
    code, _, err = run(capsys, "prepare", "--corpus", "emodb", "--root", tmp_path / "missing", "--out", tmp_path / "w")
    assert code == 2 and err.count("\n") == 1
    code, _, err = run(capsys, "train", "--work", tmp_path, "--out", tmp_path / "r")
    assert code == 2 and "prepare" in err and err.count("\n") == 1


def test_console_script_exit_code(tmp_path):
    r = subprocess.run([sys.executable, "-m", "emolens.cli.main", "explain", "--model", str(tmp_path), str(tmp_path / "a.wav"), "--out", str(tmp_path / "o")],
                       capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr.startswith("emolens: error:") and "Traceback" not in r.stderr


@pytest.mark.slow
def test_pipeline_on_emodb_subset(tmp_path, capsys, emodb_dir, weights_dir, monkeypatch):
    monkeypatch.setenv("EMOLENS_WEIGHTS", str(weights_dir))
    rows = [r for r in csv.DictReader(open(emodb_dir / "metadata.csv"))
            if r["speaker"] in {"03", "08", "09", "10", "11"} and r["emotion"] in {"angry", "happy", "neutral", "sad"}]
    table = tmp_path / "subset.csv"
    with open(table, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "label", "speaker"])
        for r in rows:
            w.writerow([str(emodb_dir / r["path"]), r["emotion"], r["speaker"]])
    work, run_dir = tmp_path / "work", tmp_path / "run"
    code, out, _ = run(capsys, "prepare", "--corpus", "csv", "--root", emodb_dir, "--csv", table, "--out", work, "--quiet")
    assert code == 0
    info = json.loads((work / "prepare.json").read_text())
    # every frame covered: 96-frame patches, hop 48, the last one padded (each recording's own length)
    from emolens.features.mel import num_frames
    from emolens.features.patches import num_patches

    expected = sum(num_patches(num_frames(sf.info(str(emodb_dir / r["path"])).frames)) for r in rows)
    assert info["files"] == len(rows) and info["speakers"] == 5 and info["patches_before"] == expected > 4 * len(rows)
    assert 0.05 < 1 - info["patches_after"] / info["patches_before"] < 0.3
    assert (work / "gds.png").stat().st_size > 10_000
    code, out, _ = run(capsys, "train", "--work", work, "--model", "yamnet", "--gds", "--folds", "3", "--epochs", "4", "--out", run_dir, "--quiet")
    assert code == 0
    m = json.loads((run_dir / "metrics.json").read_text())
    assert m["n_folds"] == 3 and len(m["confusion"]) == 4
    assert sum(map(sum, m["confusion"])) == len(rows)  # every utterance tested once
    assert m["uar"] > 0.4 and m["gds"] is True and m["patches"]["train_after"] < m["patches"]["train_before"]
    assert (run_dir / "model.safetensors").exists() and (run_dir / "gds.safetensors").exists()
    # re-running resumes: finished folds are not retrained
    code, out2, _ = run(capsys, "train", "--work", work, "--model", "yamnet", "--gds", "--folds", "3", "--epochs", "4", "--out", run_dir, "--quiet")
    assert json.loads((run_dir / "metrics.json").read_text())["uar"] == m["uar"]
    # top fine-tuning runs through the same pipeline (backbone layers trainable, no feature cache)
    code, _, _ = run(capsys, "train", "--work", work, "--model", "yamnet", "--finetune", "top", "--folds", "2",
                     "--epochs", "1", "--out", tmp_path / "top", "--quiet")
    mt = json.loads((tmp_path / "top" / "metrics.json").read_text())
    assert code == 0 and mt["finetune"] == "top" and mt["n_folds"] == 2 and sum(map(sum, mt["confusion"])) == len(rows)
    # predict: JSON lines, bad files reported per file
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not audio" * 20)
    stereo = tmp_path / "stereo44k.wav"
    x, sr = sf.read(emodb_dir / "wav" / "03a01Wa.flac")
    sf.write(stereo, np.stack([x, x], 1), 44100)
    code, out, err = run(capsys, "predict", "--model", run_dir, "--json", emodb_dir / "wav" / "03a01Wa.flac", stereo, bad)
    lines = [json.loads(l) for l in out.splitlines()]
    assert code == 0 and len(lines) == 3 and "error" in lines[2]
    assert abs(sum(lines[0]["probabilities"].values()) - 1) < 1e-5
    assert any("mixed to mono" in n for n in lines[1]["notes"])
    # explain: every file is written, maps cover the recording
    ex = tmp_path / "ex"
    code, out, _ = run(capsys, "explain", "--model", run_dir, emodb_dir / "wav" / "03a01Wa.flac", "--out", ex,
                       "--layer", "yamnet_mid", "--lime-samples", "50", "--work", work, "--quiet")
    assert code == 0
    d = ex / "03a01Wa"
    for name in ("explanation.png", "regions.png", "focus.wav", "focus.png", "focus_tf.wav", "faithfulness.png", "explanation.json"):
        assert (d / name).exists(), name
    info = json.loads((d / "explanation.json").read_text())
    from emolens.explain.methods import DEFAULT_METHOD
    from emolens.explain.region_attribution import DEFAULT_REGION_METHOD

    assert info["true_label"] == "angry" and set(info["faithfulness"]) == {DEFAULT_METHOD, "gradcam", "lime", "occlusion", "random"}
    assert info["focus_method"] == f"regions ({DEFAULT_REGION_METHOD})"  # the focus audio follows the top regions
    assert info["focus_regions_s"] and 0 < info["focus_fraction"] < 1
    # the regions: boxes in seconds and Hz, and their sentence, also on stdout with --json
    pos = [r for r in info["regions"] if r["sign"] > 0]
    assert pos and all(0 <= r["start_s"] < r["end_s"] <= 2.0 and 125 < r["low_hz"] < r["high_hz"] < 7500 for r in pos)
    assert info["sentence"].startswith(f"{pos[0]['start_s']:.2f}-{pos[0]['end_s']:.2f} s, ")
    code, out, _ = run(capsys, "explain", "--model", run_dir, emodb_dir / "wav" / "03a01Wa.flac", "--out", tmp_path / "exj",
                       "--methods", "gxi", "--json", "--contrast", "--no-faithfulness", "--quiet")
    j = json.loads(out.splitlines()[-1])
    assert code == 0 and j["contrast"] and j["contrast"] != j["target"] and f"rather than {j['contrast']}" in j["sentence"]
    assert {"start_s", "end_s", "low_hz", "high_hz", "share", "sign"} <= set(j["regions"][0])
    focus, fsr = sf.read(d / "focus.wav")
    assert fsr == 16000 and len(focus) == sf.info(str(emodb_dir / "wav" / "03a01Wa.flac")).frames == 30045
    assert np.count_nonzero(focus) < len(focus)
    # profile
    code, out, _ = run(capsys, "profile", "--model", run_dir, "--work", work, "--out", tmp_path / "prof", "--layer", "yamnet_mid", "--limit", "5", "--quiet")
    assert code == 0 and (tmp_path / "prof" / "profile.csv").exists()
    assert len((tmp_path / "prof" / "profile.csv").read_text().splitlines()) == 1 + 4 * 64
    pj = json.loads((tmp_path / "prof" / "profile.json").read_text())
    assert pj["method"] == DEFAULT_METHOD and "thesis claim" in out
    assert pj["stats"]["thesis_verdict"] in ("supported", "partly supported", "not shown", "contradicted")
    for e in pj["stats"]["emotions"].values():
        assert e["centroid_ci"][0] <= e["centroid_hz"] <= e["centroid_ci"][1]
    # profile stitches over the voting patches, the ones explain uses
    from emolens.features.mel import mel_spectrogram
    from emolens.inference import EmotionRecognizer

    rec = EmotionRecognizer.from_dir(run_dir)
    a = rec.analyze(emodb_dir / "wav" / "03a01Wa.flac")
    assert rec.voting_patches(mel_spectrogram(a.clip.samples, rec.frontend)).tolist() == a.voting.tolist()


def test_batched_analysis_equals_one_by_one():
    import torch

    from emolens.audio.io import AudioClip
    from emolens.inference import EmotionRecognizer
    from emolens.models.fusion import MODEL_STREAMS, FusionNet

    torch.manual_seed(0)
    model = FusionNet(3, MODEL_STREAMS["yamnet"]).eval()
    cfg = {"classes": ["a", "b", "c"], "frontend": {"name": "vggish16k"}, "patches": {"patch_frames": 96, "hop_frames": 48},
           "gds": {"enabled": False}}
    rec = EmotionRecognizer(model, cfg)
    rng = np.random.default_rng(0)
    clips = [AudioClip((0.1 * rng.standard_normal(n)).astype(np.float32), 16000, 16000, 1) for n in (8000, 32000, 50000)]
    batched = rec.analyze_clips(clips)
    assert any("shorter than one patch" in n for n in batched[0].clip.notes)
    assert not any("shorter" in n for n in batched[1].clip.notes)
    for clip, b in zip(clips, batched):
        single = rec.analyze_clip(clip)
        np.testing.assert_allclose(b.probs, single.probs, rtol=1e-5, atol=1e-6)
        assert len(b.patches) == len(single.patches) and abs(b.probs.sum() - 1) < 1e-5


def test_weights_where(capsys, monkeypatch, tmp_path):
    (tmp_path / "yamnet.tflite").write_bytes(b"TFL3")
    monkeypatch.setenv("EMOLENS_WEIGHTS", str(tmp_path))
    monkeypatch.setenv("EMOLENS_CACHE", str(tmp_path / "cache"))
    code, out, _ = run(capsys, "weights", "where")
    assert code == 0
    assert f"yamnet: {tmp_path / 'yamnet.tflite'}" in out
    assert "vggish:" in out and "not found" in out
