"""The Gradio page of ``emolens app``.

Tabs: *Analyse* (upload or record -> emotion + probabilities, per-patch emotion
timeline, spectrogram with the chosen method's map for the chosen class, players for
the original, the focus audio and the time-frequency-masked audio), *Model card*,
*Frequency profile*. Errors appear as the CLI's one-line ``emolens: error: ...`` in
the page. Gradio's analytics are off, it binds 127.0.0.1 unless told otherwise and
its upload/cache folder is the session's temporary folder.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

from emolens.app.session import AppConfig, AppSession, model_card_markdown, profile_files
from emolens.errors import EmolensError
from emolens.explain.explanation import method_title
from emolens.explain.methods import faithfulness_note, region_note
from emolens.explain.regions import DEFAULT_REGIONS

log = logging.getLogger("emolens")
__all__ = ["build_app", "launch"]


def _methods() -> list[str]:
    """Every registered method, the measured default first (it is the page's default)."""
    from emolens.explain.methods import DEFAULT_METHOD, METHODS as REGISTRY  # noqa: N811

    return [DEFAULT_METHOD] + [m for m in REGISTRY if m != DEFAULT_METHOD]


#: the page's styles: errors in red; the model card's wide tables (the --adapt table has 15
#: columns) scroll sideways instead of breaking numbers and words inside their cells
CSS = (".emolens-error{color:#b00020;font-weight:600}"
       "#model-card table{display:block;overflow-x:auto;max-width:100%;width:max-content}"
       "#model-card td{white-space:nowrap}"
       "#model-card th{min-width:6.5em;overflow-wrap:normal;word-break:normal;hyphens:none}")


def _adapt_info(rec) -> str | None:  # noqa: ANN001 - EmotionRecognizer
    """What ``--adapt`` measured for this model, under the checkbox (None when unmeasured)."""
    from emolens.adaptation.runtime import measured_note

    note = measured_note(rec)
    return note[0].upper() + note[1:] if note else None


def _gradio():
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    try:
        import gradio as gr
    except ImportError:
        raise EmolensError("the web app needs Gradio: pip install 'emolens[app]'") from None
    return gr


def _pcm16(x):
    """float wave in [-1, 1] -> int16 (what the players get; Gradio would warn and convert)."""
    import numpy as np

    return (np.clip(np.asarray(x, dtype=np.float32), -1.0, 1.0) * 32767).astype(np.int16)


def build_app(rec, config: AppConfig, run_dir: str | Path | None = None):
    """The ``gr.Blocks`` page for recognizer ``rec``."""
    os.environ["GRADIO_TEMP_DIR"] = str(config.workdir)
    gr = _gradio()
    methods = _methods()
    theme = gr.themes.Default(font=["system-ui", "sans-serif"], font_mono=["monospace"])  # no web fonts fetched

    def analyse(path, method, target, contrast, adapt, neutral, state, progress=gr.Progress()):
        session = AppSession(rec, config)
        try:
            session.analyse(path, adapt=bool(adapt), neutral=neutral or None)
            target = target if target in rec.classes else None
            return _show(session, method, target, contrast, progress) + (session,)
        except EmolensError as exc:  # name the upload as the user knows it, not by its temporary path
            return _error(str(exc).replace(str(path), Path(str(path)).name) if path else str(exc)) + (None,)
        except Exception as exc:  # never a traceback in the page
            log.exception("app: analysis failed")
            return _error(f"could not analyse this recording ({type(exc).__name__}: {str(exc).splitlines()[0][:160] if str(exc) else ''})") + (None,)

    def reexplain(method, target, contrast, state, progress=gr.Progress()):
        """Method, class or contrast changed: only the map, the sentence, the focus players and the message change."""
        if state is None:
            return (None, None, None, "", "", None)
        try:
            full = _show(state, method, target if target in rec.classes else None, contrast, progress)
        except EmolensError as exc:
            return (None, None, None, _error(str(exc))[-1], "", state)
        return (full[2], full[4], full[5], full[6], full[7], state)

    def _show(session, method, target, contrast, progress):
        def report(step, done, total):
            progress((done, max(total, 1)), desc=f"{method_title(step)}: {done}/{total}")

        progress(0.0, desc=f"{method_title(method)} ...")
        log.info("app: %s of %s for %s", method, Path(str(session.analysis.clip.path)).name, target or "the prediction")
        v = session.view(method, target, report, contrast=bool(contrast))
        ex = v.explanation
        sr = ex.sample_rate
        label = f"{ex.label} ({ex.confidence:.2f})"
        a = session.analysis
        if getattr(a, "uncertain", False):  # calibrated top probability below the model's threshold
            label = f"uncertain (most likely {a.emotion}, {a.confidence:.2f} < {a.uncertain_threshold:.2f})"
        msg = f"**{label}** · {ex.duration:.2f} s · {int(ex.voting.sum())}/{len(ex.voting)} patches vote"
        if v.message:
            msg += f" · {v.message}"
        note = faithfulness_note(method, session.rec.model_dir)
        if note:  # every method is labelled with its measured faithfulness (benchmarks/faithfulness.py)
            msg += f"  \n*map: {note}*"
        return (v.probabilities, str(v.timeline_png), str(v.map_png), (sr, _pcm16(ex.wave)), (sr, _pcm16(ex.focus_audio)),
                (sr, _pcm16(ex.tf_audio)), msg, _words(v, session.rec.model_dir))

    def _words(v, model_dir):
        """The sentence under the map (and the prosody lines when the model has them)."""
        if not v.sentence:
            return ""
        ex = v.explanation
        note = region_note(ex.regions.method, DEFAULT_REGIONS, model_dir)  # the app explains with the default regions
        text = f"**Top regions (boxes):** {v.sentence}"
        if note:
            text += f"  \n*regions: {note}*"
        text += "  \n*The focus audio plays exactly the boxed time spans; the time-frequency audio only the boxed cells.*"
        if v.streams:  # how much of the decision the map can show at all
            text += f"\n\n**Streams:** {v.streams[0].upper() + v.streams[1:]}"
        if v.prosody:
            text += "\n\n**Prosody:**\n" + "\n".join(f"- {p}" for p in v.prosody)
        return text

    def _error(text):
        return (None, None, None, None, None, None, f"<div class='emolens-error'>emolens: error: {text}</div>", "")

    with gr.Blocks(title="emolens", analytics_enabled=False, theme=theme,
                   css=CSS) as demo:
        gr.Markdown("# emolens: speech emotion you can see and hear")
        state = gr.State(None)
        with gr.Tab("Analyse"):
            with gr.Row():
                with gr.Column(scale=1):
                    audio_in = gr.Audio(sources=["upload", "microphone"], type="filepath", label="recording",
                                        elem_id="input-audio")
                    method = gr.Dropdown([(method_title(m), m) for m in methods], value=methods[0], label="explanation method", elem_id="method")
                    target = gr.Dropdown(["predicted"] + list(rec.classes), value="predicted", label="class to explain",
                                         elem_id="target")
                    contrast = gr.Checkbox(False, label="contrast: why this class rather than the runner-up",
                                           elem_id="contrast")
                    adapt = gr.Checkbox(False, label="adapt to this voice (>= 10 s of speech, or a neutral clip of it below)",
                                        elem_id="adapt", interactive=getattr(rec, "adapter", None) is not None,
                                        info=_adapt_info(rec))
                    neutral = gr.Audio(sources=["upload", "microphone"], type="filepath", label="neutral clip of the same voice (optional: adapt enrols the voice with it)",
                                       elem_id="neutral-audio", interactive=getattr(rec, "adapter", None) is not None)
                    run = gr.Button("Analyse", variant="primary", elem_id="analyse")
                    gr.Markdown(f"Up to {config.max_upload_mb:g} MB and {config.max_seconds:g} s. LIME and Occlusion take "
                                "seconds to minutes on a CPU; progress shows here.")
                with gr.Column(scale=2):
                    message = gr.Markdown("", elem_id="message")
                    probs = gr.Label(num_top_classes=len(rec.classes), label="emotion", elem_id="emotion")
            timeline = gr.Image(type="filepath", label="emotion per patch (grey: dropped by GDS, hatched: non-speech)",
                                elem_id="timeline", interactive=False)
            map_img = gr.Image(type="filepath", label="spectrogram with the top regions outlined, and the explanation map",
                               show_label=False, elem_id="map", interactive=False)  # the label would cover the panel titles
            words = gr.Markdown("", elem_id="regions-sentence")
            with gr.Row():
                a_orig = gr.Audio(label="original", elem_id="audio-original", interactive=False, type="numpy")
                a_focus = gr.Audio(label="focus audio (the rest silenced)", elem_id="audio-focus", interactive=False, type="numpy")
                a_tf = gr.Audio(label="time-frequency-masked audio", elem_id="audio-tf", interactive=False, type="numpy")
            outs = [probs, timeline, map_img, a_orig, a_focus, a_tf, message, words, state]
            for event in (run.click, audio_in.upload, audio_in.stop_recording):
                event(analyse, [audio_in, method, target, contrast, adapt, neutral, state], outs,
                      show_progress_on=[probs, map_img])
            partial = [map_img, a_focus, a_tf, message, words, state]
            for control in (method, target, contrast):
                control.input(reexplain, [method, target, contrast, state], partial, show_progress_on=[map_img])
        with gr.Tab("Model card"):
            gr.Markdown(model_card_markdown(run_dir), elem_id="model-card")
        with gr.Tab("Frequency profile"):
            png, data = profile_files(run_dir)
            if png is not None:
                local = Path(config.workdir) / "profile.png"
                shutil.copyfile(png, local)
                gr.Image(str(local), type="filepath", label="explanation mass per mel band, per emotion", interactive=False)
            if data:
                rows = [f"| {k} | {v.get('n')} | {v.get('centroid_hz', float('nan')):.0f} | {v.get('high_low_ratio', float('nan')):.2f} |"
                        for k, v in (data.get("summary") or {}).items()]
                gr.Markdown("| emotion | n | centroid Hz | high/low (1 kHz) |\n|---|---|---|---|\n" + "\n".join(rows))
            if png is None and not data:
                gr.Markdown("No frequency profile in this run directory; compute one with "
                            "`emolens profile --model RUN --work WORK --out RUN/profile` (minutes).")
    return demo


def launch(rec, config: AppConfig, run_dir: str | Path | None = None, block: bool = True):
    """Serve the page on ``config.host:config.port`` (local only by default)."""
    demo = build_app(rec, config, run_dir)
    for name in ("httpx", "gradio"):
        logging.getLogger(name).setLevel(logging.WARNING)
    demo.queue(default_concurrency_limit=1)
    return demo.launch(server_name=config.host, server_port=config.port, share=False, inbrowser=False,
                       max_file_size=f"{int(config.max_upload_mb * 1e6)}b", show_api=False,
                       allowed_paths=[str(config.workdir)], prevent_thread_lock=not block, quiet=True)
