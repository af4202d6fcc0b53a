"""The shipped model works offline with no --model: CLI entry point and Python API."""

import json
import subprocess
import sys

import numpy as np
import soundfile as sf

from emolens.inference import EmotionRecognizer
from emolens.resources import default_model_dir, example_clips


def _emolens(*argv, env_extra=None, tmp_path=None):
    import os

    env = {k: v for k, v in os.environ.items() if k != "EMOLENS_WEIGHTS"}  # offline: packaged YAMNet only
    env.update({"EMOLENS_CACHE": str(tmp_path / "cache"), "MPLBACKEND": "Agg"})
    return subprocess.run([sys.executable, "-m", "emolens.cli.main", *map(str, argv)], capture_output=True, text=True, env=env)


def test_default_model_is_shipped_head_only():
    d = default_model_dir()
    assert d is not None
    cfg = json.loads((d / "model.json").read_text())
    assert cfg["classes"] == ["angry", "happy", "neutral", "sad"] and "vggish" not in " ".join(cfg["streams"])
    assert cfg["backbones"]["yamnet"]["sha256"].startswith("2d5e1e05")
    assert (d / "model.safetensors").stat().st_size < 5_000_000
    rows = {r["corpus"].split()[0] for ev in cfg["card"]["evaluations"] for r in ev["rows"]}
    assert rows == {"ased", "emodb", "ravdess", "nemo", "turev", "casia"}
    # never trained on the corpora no shipped model may use (CASIA: provenance; TurEV-DB: no derivatives)
    assert cfg["training_corpora"] == ["ased", "emodb", "nemo", "ravdess"]
    assert set(cfg["card"]["not_trained_on"]) == {"casia", "turev"}
    exp = cfg["card"]["expected_unseen"]
    assert 0.25 < exp["worst_uar"] <= exp["mean_uar"] < 1


def test_predict_and_info_without_model(tmp_path):
    angry = [c for c in example_clips() if c.name == "03-01-05-02-01-01-12.flac"][0]
    silent = tmp_path / "silent.wav"
    sf.write(silent, np.zeros(32000, np.float32), 16000)
    r = _emolens("predict", "--json", "--backend", "torch", angry, silent, tmp_path=tmp_path)
    assert r.returncode == 0, r.stderr
    out = [json.loads(line) for line in r.stdout.splitlines()]
    assert out[0]["label"] == "angry" and out[0]["probability"] > 0.5 and out[0]["speech_fraction"] > 0.5
    assert out[1]["label"] == "no speech" and out[1]["speech_fraction"] == 0.0
    r = _emolens("info", tmp_path=tmp_path)
    assert r.returncode == 0 and "Leave one corpus out" in r.stdout and "CC BY-NC-SA 4.0" in r.stdout


def test_python_default_matches_cli_path():
    rec = EmotionRecognizer.default()
    a = rec.analyze(example_clips()[1])
    assert a.label == "angry" and abs(float(a.probs.sum()) - 1) < 1e-5 and rec.model.vggish is None
