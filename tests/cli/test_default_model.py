"""The shipped model works offline with no --model: CLI entry point and Python API."""

import json
import subprocess
import sys
from pathlib import Path

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
    for ev in cfg["card"]["evaluations"]:  # the LOCO table and the --adapt table: every test corpus
        rows = {r["corpus"].split()[0] for r in ev["rows"]} - {"**mean**"}
        assert rows == {"ased", "emodb", "ravdess", "nemo", "turev", "casia"}, ev["title"]
    # the --adapt table's single-clip column is the LOCO table's (same folds, same heads)
    assert abs(cfg["card"]["adaptation_loco"]["single"] - cfg["card"]["expected_unseen"]["mean_uar"]) < 1e-9
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


def test_shipped_onnx_is_the_export_of_the_shipped_weights():
    """``model.onnx`` ships beside the weights, keyed to them (its recorded fingerprint
    is the sha256 of model.safetensors + model.json) and computing what they compute:
    regenerate it with ``emolens export src/emolens/data/default_model`` (or
    scripts/train_default) whenever the shipped model changes."""
    import torch

    from emolens.models.backends import OnnxBackend, TorchBackend, find_onnx
    from emolens.models.io import load_model
    from emolens.models.run_files import run_fingerprint

    d = default_model_dir()
    onnx_file = d / "model.onnx"
    assert onnx_file.is_file(), "no shipped model.onnx: run `emolens export src/emolens/data/default_model`"
    be = OnnxBackend(onnx_file)
    assert be.fingerprint == run_fingerprint(d), "shipped model.onnx is stale: re-export it from the shipped weights"
    assert find_onnx(d) is not None and find_onnx(d).path == onnx_file
    model, _, _ = load_model(d)
    rec = EmotionRecognizer(model, json.loads((d / "model.json").read_text()))
    patches = np.concatenate([rec.analyze(c).patches for c in example_clips()])
    torch.manual_seed(0)
    (p_t, a_t), (p_o, a_o) = TorchBackend(model).run(patches), be.run(patches)
    # per-patch outputs: the softmax of a voting head, the embedding of a pooled one (its decision is in numpy)
    assert p_t.shape == p_o.shape == (len(patches), model.head.output_width) and a_o.shape == (len(patches), 521)
    assert np.abs(p_t - p_o).max() < 1e-4 and np.abs(a_t - a_o).max() < 1e-4


_NO_TORCH = """
import importlib.abc, sys
class _Block(importlib.abc.MetaPathFinder):  # an install without PyTorch / scikit-learn / scipy
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('torch', 'sklearn', 'scipy'):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, _Block())
from emolens.cli.main import main
code = main(sys.argv[1:])
print('IMPORTED', sorted(m for m in ('torch', 'sklearn', 'scipy', 'onnx', 'matplotlib') if m in sys.modules), file=sys.stderr)
sys.exit(code)
"""


def _without_torch(*argv, tmp_path):
    import os

    env = {k: v for k, v in os.environ.items() if k != "EMOLENS_WEIGHTS"}
    env.update({"EMOLENS_CACHE": str(tmp_path / "cache"), "MPLBACKEND": "Agg"})
    return subprocess.run([sys.executable, "-c", _NO_TORCH, *map(str, argv)], capture_output=True, text=True, env=env)


def test_predict_and_timeline_need_neither_torch_nor_sklearn(tmp_path):
    """The practitioner's install: predict and timeline on the shipped model run with
    torch, scikit-learn and scipy unimportable, and give the same answer as with torch;
    a command that needs torch says in one line which extra to install."""
    angry = [c for c in example_clips() if c.name == "03-01-05-02-01-01-12.flac"][0]
    r = _without_torch("predict", "--json", angry, tmp_path=tmp_path)
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout.splitlines()[0])
    assert "IMPORTED ['matplotlib']" not in r.stderr and "IMPORTED []" in r.stderr
    ref = EmotionRecognizer.default(backend="torch").analyze(angry)
    assert got["label"] == ref.label == "angry"
    assert max(abs(got["probabilities"][c] - float(p)) for c, p in zip(ref.classes, ref.probs)) < 1e-4
    r = _without_torch("timeline", angry, "--out", tmp_path / "tl", tmp_path=tmp_path)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "tl" / "segments.csv").read_text().count("\n") >= 2 and (tmp_path / "tl" / "timeline.png").stat().st_size > 1000
    assert "'torch'" not in r.stderr.splitlines()[-1] and "'sklearn'" not in r.stderr.splitlines()[-1]
    r = _without_torch("explain", angry, "--out", tmp_path / "ex", tmp_path=tmp_path)
    assert r.returncode == 2 and r.stderr.splitlines()[0] == (
        "emolens: error: `emolens explain` needs torch, which this install lacks: pip install 'emolens[train]'")


def test_building_the_parser_imports_no_command_code():
    """``emolens --help`` (and every command's start-up) builds the whole parser: it must not
    import numpy, corpus parsers or models; `prepare --help` still names every corpus."""
    code = ("import sys; from emolens.cli.main import build_parser; ap = build_parser(); ap.format_help(); "
            "print(sorted(m for m in ('numpy', 'soundfile', 'emolens.corpora.parsers', 'emolens.inference') if m in sys.modules))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.strip() == "[]", r.stdout + r.stderr
    r = _emolens("prepare", "--help", tmp_path=Path("/nonexistent"))
    from emolens.corpora.parsers import list_corpora

    assert r.returncode == 0 and all(c in " ".join(r.stdout.split()) for c in list_corpora())
