"""`emolens predict` says "no speech" for a silent recording (table and JSON) and shows
the speech fraction of every file."""

import json

import numpy as np
import pytest
import soundfile as sf
import torch

from emolens.cli.main import main
from emolens.models.fusion import MODEL_STREAMS, FusionNet
from emolens.models.io import save_model
from emolens.models.yamnet import load_yamnet_file


@pytest.mark.slow
def test_predict_silent_file_is_no_speech(tmp_path, capsys, weights_dir, emodb_dir):
    torch.manual_seed(0)
    model = FusionNet(4, MODEL_STREAMS["yamnet"], yamnet=load_yamnet_file(weights_dir / "yamnet.tflite"))
    cfg = {"emolens_model": 1, "model": "yamnet", "streams": list(model.streams),
           "classes": ["angry", "happy", "neutral", "sad"], "frontend": {"name": "vggish16k"},
           "patches": {"patch_frames": 96, "hop_frames": 48},
           "head": {"hidden": 256, "layer_dim": 256, "dropout": 0.3}, "gds": {"enabled": False}}
    run_dir = save_model(tmp_path / "run", model, cfg)  # model.json without speech_gate: gate on
    silent = tmp_path / "silent.wav"
    sf.write(silent, np.zeros(48000, np.float32), 16000)
    speech = emodb_dir / "wav" / "03a01Wa.flac"

    assert main(["predict", "--model", str(run_dir), str(silent), str(speech)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[:4] == ["file", "emotion", "p", "speech"]
    row = next(l for l in out if "silent.wav" in l)
    assert row.split()[1:5] == ["no", "speech", "1.00", "0.00"] and "no speech:" in row

    assert main(["predict", "--model", str(run_dir), "--json", str(silent), str(speech)]) == 0
    lines = [json.loads(l) for l in capsys.readouterr().out.splitlines()]
    assert lines[0]["label"] == "no speech" and lines[0]["speech"] is False and lines[0]["speech_fraction"] == 0.0
    assert lines[1]["label"] in lines[1]["probabilities"] and lines[1]["speech"] is True
    assert lines[1]["speech_fraction"] >= 0.75
