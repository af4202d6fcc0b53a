"""Self-contained HTML reports: embedded data round-trips, tables carry the run's
numbers, and Chromium renders every image and audio element offline."""

import base64
import io
import json
import re

import numpy as np
import pytest
import soundfile as sf

from emolens.cli.main import main
from emolens.explain.pipeline import explain
from emolens.inference import EmotionRecognizer
from emolens.report.explanation_files import write_explanation
from emolens.report.html import explain_report_html, png_uri, run_report_html, wav_uri
from emolens.report.run_summary import read_run

FAST = {"steps": 4, "n_orders": 1}


def _fake_run(root, tiny_run):
    """A run directory with the files training writes (2 folds, logs), numbers known."""
    import shutil

    shutil.copytree(tiny_run, root)
    folds = [{"fold": "fold-1", "accuracy": 0.5, "uar": 0.25, "f1_macro": 0.2, "best_epoch": 2},
             {"fold": "fold-2", "accuracy": 0.75, "uar": 0.625, "f1_macro": 0.6, "best_epoch": 3}]
    m = {"model": "yamnet", "labels": ["angry", "happy", "neutral", "sad"], "accuracy": 0.625, "accuracy_std": 0.125,
         "uar": 0.4375, "uar_std": 0.1875, "f1_macro": 0.4, "f1_macro_std": 0.2, "n_folds": 2, "folds": folds,
         "confusion": [[3, 1, 0, 0], [1, 2, 1, 0], [0, 0, 4, 0], [0, 1, 1, 2]], "gds": True,
         "patches": {"train_before": 200, "train_after": 170, "test_before": 50, "test_after": 40}}
    (root / "metrics.json").write_text(json.dumps(m))
    for f in ("fold-1", "fold-2"):
        (root / "folds" / f).mkdir(parents=True)
        (root / "folds" / f / "train_log.jsonl").write_text("\n".join(json.dumps(
            {"epoch": e, "train_loss": 1.0 / e, "val_loss": 1.2 / e, "val_uar": 0.2 * e, "val_accuracy": 0.25 * e})
            for e in (1, 2, 3)) + "\n{\"epoch\": 4, \"train_lo")  # last line cut by a kill
    return root


def test_uris_round_trip(tmp_path):
    x = (0.5 * np.sin(np.arange(1600) / 5)).astype(np.float32)
    data = base64.b64decode(wav_uri(x, 16000).split(",", 1)[1])
    y, sr = sf.read(io.BytesIO(data), dtype="float32")
    assert sr == 16000 and np.abs(y - x).max() < 1e-4
    assert base64.b64decode(png_uri(b"\x89PNG1234").split(",", 1)[1]) == b"\x89PNG1234"


def test_run_report_numbers(tmp_path, tiny_run):
    run = read_run(_fake_run(tmp_path / "run", tiny_run))
    assert [len(v) for v in run.logs.values()] == [3, 3] and run.classes[0] == "angry"
    page = run_report_html([run])
    assert "0.625" in page and "0.438" in page and "fold-2" in page
    assert "15.0%" in page and "20.0%" in page  # GDS drop on train (30/200) and test (10/50)
    assert page.count("<img") == 2 and "http" not in page.replace("http-equiv", "")  # confusion + curves, nothing remote
    run.metrics["per_corpus"] = {"ravdess": {"n": 12, "accuracy": 0.5, "uar": 0.4321, "f1_macro": 0.3}}
    page = run_report_html([run])
    assert "run (12 utterances)" in page and "ravdess" in page and "0.432" in page


@pytest.mark.slow
def test_reports_render_in_chromium(tmp_path, tiny_run, emodb_dir, browser, capsys):
    rec = EmotionRecognizer.from_dir(tiny_run)
    clips = [emodb_dir / "wav" / "03a01Wa.flac"]  # one clip keeps the test short (each figure ~1 s)
    exs = [explain(rec, clips[0], methods=["gradcam", "lime"], lime_samples=8, progress=False, true_label="angry",
                   faithfulness_options=FAST)]
    run = read_run(_fake_run(tmp_path / "run", tiny_run))
    pages = {"run": tmp_path / "run.html"}
    pages["run"].write_text(run_report_html([run], {run.name: exs}, cfg=rec.frontend))
    # explain-folder report through the CLI (the clip's notes, e.g. an --adapt decision, shown with it)
    exs[0].notes.append("decided with --adapt: adapted to its voice's statistics")
    for c, ex in zip(clips, exs):
        write_explanation(ex, tmp_path / "ex" / c.stem, cfg=rec.frontend)
    assert main(["report", str(tmp_path / "ex"), "--out", str(tmp_path / "ex.html")]) == 0
    pages["explain"] = tmp_path / "ex.html"
    # (images, audio players): run = confusion + curves + per example (map, focus) and (original, focus);
    # explain folders = (explanation, focus, faithfulness) and (original, focus, TF-masked) per clip
    # + the top-regions figure per example in both
    expected = {"run": (2 + 3, 2), "explain": (4, 3)}
    assert exs[0].sentence and exs[0].boxes
    for kind, path in pages.items():
        page = browser.new_page(viewport={"width": 1200, "height": 900}, offline=True)
        page.goto(path.as_uri())
        page.wait_for_function("[...document.images].every(i => i.complete) && "
                               "[...document.querySelectorAll('audio')].every(a => a.readyState >= 1)", timeout=20000)
        imgs = page.eval_on_selector_all("img", "es => es.map(e => e.naturalWidth)")
        durs = page.eval_on_selector_all("audio", "es => es.map(e => e.duration)")
        assert (len(imgs), len(durs)) == expected[kind] and min(imgs) > 100
        assert np.allclose(durs, 1.8778, atol=0.01)  # 03a01Wa.flac (1.878 s, EmoDB original), decoded by the browser
        text = page.inner_text("body")
        assert "angry" in text and "Faithfulness" in text or "faithfulness" in text.lower()
        # the boxes in words, as the figure outlines them
        assert page.inner_text(".regions-sentence") == f"Top regions (boxes): {exs[0].sentence}"
        assert re.search(r"\d\.\d\d-\d\.\d\d s, \d\.\d-\d\.\d kHz: \d+% of the evidence for ", text)
        if kind == "explain":  # (the run page was written before the note was added)
            assert "notes: decided with --adapt: adapted to its voice's statistics" in text
        page.screenshot(path=str(tmp_path / f"{kind}.png"), full_page=True)
        page.close()
    assert re.search(r"deletion AUC", pages["run"].read_text())
    # the region figure outlines the boxes in lime: count those pixels in the written PNG
    from matplotlib.image import imread

    img = imread(tmp_path / "ex" / clips[0].stem / "regions.png")[..., :3]
    lime = (img[..., 0] < 0.1) & (img[..., 1] > 0.9) & (img[..., 2] < 0.1)
    assert lime.sum() > 500
