"""`emolens app` in a real browser: the CLI serves the page on 127.0.0.1, headless
Chromium uploads files and reads what the page shows."""

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from emolens.app.session import AppConfig, AppSession
from emolens.inference import EmotionRecognizer

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def app_url(tiny_run, tmp_path_factory):
    yield from _serve(tiny_run, tmp_path_factory)


def _serve(run_dir, tmp_path_factory):
    """Start ``emolens app --model run_dir``; yields ``(url, workdir)``, stops it after."""
    tiny_run = run_dir
    pytest.importorskip("gradio", reason="gradio is not installed (pip install 'emolens[app]')")
    port = _free_port()
    log = tmp_path_factory.mktemp("app") / "app.log"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    with open(log, "w") as f:
        proc = subprocess.Popen([sys.executable, "-m", "emolens.cli.main", "app", "--model", str(tiny_run),
                                 "--port", str(port), "--lime-samples", "6",
                                 "--max-seconds", "3", "--max-upload-mb", "0.5"], stdout=f, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.time() + 120
        while True:
            try:
                urllib.request.urlopen(url, timeout=2)
                break
            except OSError:
                if proc.poll() is not None or time.time() > deadline:
                    pytest.fail(f"the app did not start: {log.read_text()[-2000:]}")
                time.sleep(0.5)
        first = next(line for line in log.read_text().splitlines() if line.startswith("emolens app on"))
        workdir = first.split("files under ")[1].split(")")[0]
        assert first.startswith(f"emolens app on {url[:-1]} (files under /")
        yield url, workdir
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        if "workdir" in locals():
            import shutil

            shutil.rmtree(workdir, ignore_errors=True)
    assert "Traceback" not in log.read_text()


def _upload(page, url, path):
    page.goto(url)
    page.locator("#input-audio input[type=file]").set_input_files(str(path))


def test_app_analyses_an_emodb_clip(browser, app_url, emodb_dir, tiny_run, tmp_path):
    app_url, workdir = app_url
    clip = emodb_dir / "wav" / "03a01Wa.flac"
    ref = EmotionRecognizer.from_dir(tiny_run).analyze(clip)
    page = browser.new_page(viewport={"width": 1300, "height": 1800})
    _upload(page, app_url, clip)
    page.wait_for_selector("#map img", timeout=60000)
    page.wait_for_function("document.querySelectorAll('#audio-tf audio').length > 0", timeout=30000)
    emotion = page.inner_text("#emotion")
    assert ref.label in emotion.split("\n")[1]  # the big label under the block title
    for c, p in zip(ref.classes, ref.probs):  # every probability, as the page rounds it
        assert f"{c}\n{round(100 * p)}%" in emotion
    shown = (f"uncertain (most likely {ref.emotion}, {ref.confidence:.2f} < {ref.uncertain_threshold:.2f})"
             if ref.uncertain else f"{ref.label} ({ref.confidence:.2f})")  # an untrained head is unsure
    assert shown in page.inner_text("#message")
    for sel in ("#timeline img", "#map img"):
        w = page.eval_on_selector(sel, "e => e.complete ? e.naturalWidth : 0")
        assert w > 500 and workdir in page.get_attribute(sel, "src"), sel  # served from the app's temporary folder
    durations = {}
    for sel in ("#audio-original", "#audio-focus", "#audio-tf"):
        durations[sel] = page.eval_on_selector_all(sel + " audio", "es => es.map(e => e.duration).filter(d => d > 0)")
        assert durations[sel] and abs(durations[sel][0] - 1.8778) < 0.02, sel  # 03a01Wa.flac (1.878 s), decoded by the browser
    # the original player plays
    assert page.eval_on_selector("#audio-original audio[src^='blob']",
                                 "e => e.play().then(() => { e.pause(); return true; }, () => true)")
    # the top regions in words under the map, as the session computes them
    sess = AppSession(EmotionRecognizer.from_dir(tiny_run), AppConfig(workdir=tmp_path / "s"))
    sess.analyse(clip)
    ex = sess.explanation("gxi")
    words = page.inner_text("#regions-sentence")
    assert words.startswith("Top regions (boxes): ") and ex.sentence in words
    assert "of the evidence for " in words and " kHz" in words
    # one click away: the contrast with the runner-up class
    page.locator("#contrast input").check()
    other = sess.explanation("gxi", contrast=True)
    page.wait_for_function("t => document.querySelector('#regions-sentence').innerText.includes(t)",
                           arg=f"of the evidence for {other.target_label} rather than {other.contrast_label}", timeout=60000)
    assert other.sentence in page.inner_text("#regions-sentence")
    page.locator("#contrast input").uncheck()
    page.wait_for_function("() => !document.querySelector('#regions-sentence').innerText.includes('rather than')", timeout=60000)
    # switching the method to LIME recomputes (a new map image) and keeps the label
    before = page.get_attribute("#map img", "src")
    page.locator("#method input").click()
    page.get_by_role("option", name="LIME").click()
    page.wait_for_function("b => { const i = document.querySelector('#map img'); return i && i.src !== b && i.complete"
                           " && i.naturalWidth > 500; }", arg=before, timeout=60000)
    assert ref.label in page.inner_text("#emotion")
    page.screenshot(path=str(tmp_path / "app.png"), full_page=True)
    assert (tmp_path / "app.png").stat().st_size > 50_000
    page.close()


def test_app_shows_one_line_error_for_corrupt_file(browser, app_url, tmp_path):
    app_url, _ = app_url
    bad = tmp_path / "broken.wav"
    bad.write_bytes(b"RIFF" + np.random.default_rng(0).bytes(4000))
    page = browser.new_page()
    _upload(page, app_url, bad)
    page.wait_for_selector("#message .emolens-error", timeout=60000)
    msg = page.inner_text("#message .emolens-error")
    assert msg.startswith("emolens: error: broken.wav: cannot decode") and "/tmp" not in msg and "\n" not in msg.strip()
    assert "Traceback" not in page.inner_text("body")
    page.screenshot(path=str(tmp_path / "error.png"))
    page.close()


def test_app_limits_are_visible(browser, app_url, tmp_path):
    import soundfile as sf

    app_url, _ = app_url
    noise = np.random.default_rng(0).standard_normal
    sf.write(tmp_path / "long.wav", (0.1 * noise(4 * 16000)).astype(np.float32), 16000)  # 4 s > --max-seconds 3
    sf.write(tmp_path / "big.wav", (0.1 * noise((44100 * 5, 2))).astype(np.float32), 44100)  # 1.8 MB > 0.5 MB
    page = browser.new_page()
    _upload(page, app_url, tmp_path / "long.wav")
    page.wait_for_selector("#message .emolens-error", timeout=60000)
    assert page.inner_text("#message .emolens-error") == ("emolens: error: long.wav: 4.0 s is longer than the 3 s limit; "
                                                         "cut it into shorter clips or raise the limit (--max-seconds)")
    _upload(page, app_url, tmp_path / "big.wav")  # refused by the server before any analysis
    toast = page.get_by_text("File size exceeds the maximum allowed size of 500000 bytes")
    toast.wait_for(timeout=30000)
    assert "big.wav" in toast.inner_text()
    page.close()


@pytest.fixture(scope="module")
def adapt_app(tiny_run, tmp_path_factory):
    """The tiny model with adaptation statistics (fitted on random labelled features), served."""
    import shutil

    from emolens.adaptation.store import save_adapter
    from emolens.adaptation.transform import AdaptConfig, SpeakerAdapter

    run = tmp_path_factory.mktemp("adapt-run") / "run"
    shutil.copytree(tiny_run, run)
    rng = np.random.default_rng(0)
    n = 240
    feats = {"yamnet": rng.normal(size=(n, 1024)).astype(np.float32), "yamnet_mid": rng.normal(size=(n, 1024)).astype(np.float32)}
    utt = np.arange(n)
    ad = SpeakerAdapter.fit(feats, utt, np.ones(n, bool), np.repeat(np.arange(12), 20).astype(str), utt % 4, utt,
                            AdaptConfig(k=4, q=2))
    save_adapter(run, ad, {"fitted_on": ["random"]})
    for url_dir in _serve(run, tmp_path_factory):
        yield run, url_dir


def test_app_adapts_with_a_neutral_clip(browser, adapt_app, emodb_dir, tmp_path):
    run, (url, _) = adapt_app
    wav = emodb_dir / "wav"
    clip, neutral = wav / "03a02Wb.flac", wav / "03a01Nc.flac"
    sess = AppSession(EmotionRecognizer.from_dir(run, backend="torch"), AppConfig(workdir=tmp_path / "s"))
    ref = sess.analyse(clip, adapt=True, neutral=neutral)
    page = browser.new_page(viewport={"width": 1300, "height": 1800})
    page.goto(url)
    page.locator("#neutral-audio input[type=file]").set_input_files(str(neutral))
    page.locator("#adapt input").check()
    page.locator("#input-audio input[type=file]").set_input_files(str(clip))
    page.wait_for_function("document.querySelector('#message').innerText.includes('patches vote')", timeout=90000)
    msg = page.inner_text("#message")
    assert "adapted to voice 'speaker' from 1 neutral clip" in msg, msg
    emotion = page.inner_text("#emotion")
    for c, p in zip(ref.classes, ref.probs):  # the enrolled decision, as the session computes it
        assert f"{c}\n{round(100 * p)}%" in emotion
    page.screenshot(path=str(tmp_path / "adapt.png"), full_page=True)
    page.close()


@pytest.fixture(scope="module")
def whisper_app(tmp_path_factory):
    """``emolens app --model whisper``: the shipped Whisper model, by its name."""
    yield from _serve("whisper", tmp_path_factory)


def test_app_runs_the_whisper_model(browser, whisper_app, emodb_dir, tmp_path):
    url, _ = whisper_app
    clip = emodb_dir / "wav" / "03a01Wa.flac"
    ref = EmotionRecognizer.default(name="whisper").analyze(clip)
    page = browser.new_page(viewport={"width": 1300, "height": 1800})
    _upload(page, url, clip)
    page.wait_for_selector("#map img", timeout=90000)
    emotion = page.inner_text("#emotion")
    assert ref.label in emotion.split("\n")[1]
    for c, p in zip(ref.classes, ref.probs):  # the Whisper model's decision, as the page rounds it
        assert f"{c}\n{round(100 * p)}%" in emotion
    body = page.inner_text("body")  # the prosody lines (the Whisper part held at the recording's)
    assert "Prosody:" in body and ("above the training average" in body or "below the training average" in body)
    from emolens.adaptation.runtime import measured_note

    whisper = EmotionRecognizer.default(name="whisper")
    note = measured_note(whisper)  # this model's --adapt figures, not the default's
    assert note and note[1:] in " ".join(body.split())
    from emolens.explain.methods import DEFAULT_METHOD, faithfulness_note, region_note
    from emolens.explain.region_attribution import DEFAULT_REGION_METHOD
    from emolens.explain.regions import DEFAULT_REGIONS

    for line in (faithfulness_note(DEFAULT_METHOD, whisper.model_dir),  # the map's and the regions' own figures
                 region_note(DEFAULT_REGION_METHOD, DEFAULT_REGIONS, whisper.model_dir)):
        assert "measured on this model" in line and line in " ".join(body.split()), line
    streams = next(x for x in body.splitlines() if x.startswith("Streams:"))  # how much of it the map can show
    shares = [int(p.rsplit("(", 1)[1]) for p in streams.split("%")[:-1]]
    assert "Whisper stream (not on the map)" in streams and len(shares) == 3 and abs(sum(shares) - 100) <= 2
    page.screenshot(path=str(tmp_path / "whisper-app.png"), full_page=True)
    # the model card's wide --adapt table (15 columns) scrolls sideways; no number or corpus name
    # is broken over two lines inside its cell
    page.get_by_role("tab", name="Model card").click()
    page.get_by_role("heading", name="Adaptation to a voice").first.scroll_into_view_if_needed()
    cells = page.eval_on_selector_all(  # each cell's text and the number of lines it is laid out on
        "#model-card td", "ts => ts.map(t => { const r = document.createRange(); r.selectNodeContents(t);"
        " return [t.innerText, new Set([...r.getClientRects()].map(x => Math.round(x.top))).size]; })")
    card = (Path(whisper.model_dir) / "MODEL_CARD.md").read_text()  # the --adapt table's mean gated UAR, from the card file
    gated = card.split("## Adaptation to a voice")[1].split("| **mean** |")[1].split("|")[1].strip(" *")
    assert len(cells) > 50 and gated in [c[0] for c in cells]  # the --adapt table is on the card
    broken = [c[0] for c in cells if c[1] > 1]
    assert not broken, broken
    widths = page.eval_on_selector_all("#model-card table", "ts => ts.map(t => [t.scrollWidth, t.clientWidth])")
    assert any(sw > cw for sw, cw in widths)  # the widest table scrolls instead of squeezing its cells
    page.screenshot(path=str(tmp_path / "whisper-card.png"))
    if os.environ.get("EMOLENS_SCREENSHOTS"):  # to look at them: EMOLENS_SCREENSHOTS=DIR
        import shutil

        for name in ("whisper-app.png", "whisper-card.png"):
            shutil.copy(tmp_path / name, os.environ["EMOLENS_SCREENSHOTS"])
    page.close()
