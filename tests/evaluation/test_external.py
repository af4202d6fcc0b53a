"""``evaluate``: a saved model scored on labelled files through EmotionRecognizer."""

import json

import numpy as np
import pytest
import soundfile as sf
import torch

from emolens.errors import CorpusError, LabelError
from emolens.evaluation.external import evaluate_recognizer, manifest_from_labels, write_evaluation
from emolens.inference import EmotionRecognizer
from emolens.models.fusion import FusionNet
from emolens.models.io import save_model

CFG = {"classes": ["angry", "neutral", "sad"], "frontend": {"name": "vggish16k"},
       "patches": {"patch_frames": 96, "hop_frames": 48}, "gds": {"enabled": False},
       "head": {"hidden": 16, "layer_dim": 16, "dropout": 0.0}}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    torch.manual_seed(0)
    d = tmp_path_factory.mktemp("run")
    save_model(d, FusionNet(3, ("yamnet_mid",), hidden=16, layer_dim=16, dropout=0.0), {**CFG, "streams": ["yamnet_mid"]})
    return d


@pytest.fixture
def table(tmp_path):
    rng = np.random.default_rng(0)
    rows = ["path,label,speaker,corpus"]
    for i, (lab, spk, corp) in enumerate([("angry", "1", "x"), ("sad", "1", "x"), ("neutral", "2", "y"),
                                         ("angry", "2", "y"), ("fear", "2", "y")]):
        sf.write(tmp_path / f"{i}.wav", (0.05 * (i + 1) * rng.standard_normal(20000)).astype(np.float32), 16000)
        rows.append(f"{i}.wav,{lab},{spk},{corp}")
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")
    return tmp_path / "labels.csv"


def test_unknown_labels_error_or_drop(run_dir, table, tmp_path):
    rec = EmotionRecognizer.from_dir(run_dir)
    m = manifest_from_labels(table)
    with pytest.raises(LabelError, match="fear"):
        evaluate_recognizer(rec, m, progress=False)
    ev = evaluate_recognizer(rec, m, drop_unknown=True, progress=False)
    assert ev.dropped_labels == {"fear": 1} and len(ev.y_true) == 4
    # the same probabilities as `predict` (analyze) gives file by file
    for u, p in zip(ev.manifest, ev.probs):
        np.testing.assert_allclose(p, rec.analyze(u.path).probs, atol=1e-5)
    met = write_evaluation(ev, tmp_path / "out", run_dir)
    assert set(met["per_corpus"]) == {"x", "y"} and met["per_corpus"]["x"]["n"] == 2 and met["n"] == 4
    assert np.sum(met["confusion"]) == 4 and json.loads((tmp_path / "out" / "metrics.json").read_text())["uar"] == met["uar"]
    assert (tmp_path / "out" / "confusion.png").stat().st_size > 1000
    assert len((tmp_path / "out" / "predictions.csv").read_text().splitlines()) == 5


def test_labels_table_checks(table, tmp_path):
    only = manifest_from_labels(table, [tmp_path / "1.wav"])
    assert len(only) == 1 and only[0].label == "sad" and only[0].corpus == "x"
    with pytest.raises(CorpusError, match="none of the given files"):
        manifest_from_labels(table, [tmp_path / "nope.wav"])
    (tmp_path / "bad.csv").write_text("file,emotion\na.wav,sad\n")
    with pytest.raises(CorpusError, match="path,label"):
        manifest_from_labels(tmp_path / "bad.csv")


def test_speaker_normalised_model_uses_speaker_groups(run_dir, table):
    rec = EmotionRecognizer.from_dir(run_dir)
    rec.config = {**rec.config, "normalize": "speaker"}
    ev = evaluate_recognizer(rec, manifest_from_labels(table), drop_unknown=True, progress=False)
    clips = [u.path for u in ev.manifest]
    from emolens.audio.io import load_audio

    ref = rec.analyze_clips([load_audio(p) for p in clips], groups=["x|1", "x|1", "y|2", "y|2"])
    for a, p in zip(ref, ev.probs):
        np.testing.assert_allclose(p, a.probs, atol=1e-5)
