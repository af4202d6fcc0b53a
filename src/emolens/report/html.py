"""Self-contained HTML reports (one file, opens offline: images and audio are
embedded as ``data:`` URIs, the CSS is inline, nothing is fetched).

* :func:`run_report_html`: training runs (:class:`~emolens.report.run_summary.RunSummary`)
  -> scores per run/corpus and per fold, confusion matrix, training curves, GDS and
  speech-gating summary, faithfulness table and one explained example per emotion
  with its explanation image and players for the original and the focus audio.
* :func:`explain_report_html`: the folders written by ``emolens explain``.
"""

from __future__ import annotations

import base64
import html
import io
import json
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import soundfile as sf

from emolens.explain.explanation import Explanation, method_title
from emolens.features.mel import VGGISH_16K, FrontEndConfig
from emolens.report.explain_figures import plot_focus, plot_four_panel, plot_regions
from emolens.report.run_summary import RunSummary

__all__ = ["png_uri", "wav_uri", "run_report_html", "explain_report_html", "explanation_section", "CSS"]

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:2em auto;max-width:1200px;color:#222;padding:0 1em}
h1{margin-bottom:.2em} h2{border-bottom:2px solid #ddd;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;margin:.6em 0} td,th{border:1px solid #ccc;padding:.25em .6em;text-align:right}
th{background:#f3f3f3} td.txt,td:first-child,th:first-child{text-align:left}
img{max-width:100%;border:1px solid #eee} .note{color:#666;font-size:.9em}
.example{border:1px solid #ddd;border-radius:6px;padding:.8em;margin:1em 0}
.players{display:flex;gap:2em;flex-wrap:wrap} .players label{display:block;font-size:.9em;color:#555}
.best{font-weight:bold}
"""


def _esc(x) -> str:
    return html.escape(str(x))


def png_uri(source: str | Path | bytes) -> str:
    """``data:image/png;base64,...`` of a PNG file or PNG bytes."""
    data = source if isinstance(source, bytes) else Path(source).read_bytes()
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def wav_uri(wave: np.ndarray, sr: int) -> str:
    """``data:audio/wav;base64,...`` of a mono float wave (16-bit PCM)."""
    buf = io.BytesIO()
    sf.write(buf, np.clip(np.asarray(wave, dtype=np.float32), -1.0, 1.0), int(sr), format="WAV", subtype="PCM_16")
    return "data:audio/wav;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _render_png(draw: Callable[[Path], object]) -> bytes:
    with tempfile.TemporaryDirectory(prefix="emolens-fig-") as d:
        p = Path(d) / "fig.png"
        draw(p)
        return p.read_bytes()


def _img(uri: str, alt: str) -> str:
    return f'<img src="{uri}" alt="{_esc(alt)}">'


def _audio(uri: str, label: str) -> str:
    return f'<div><label>{_esc(label)}</label><audio controls preload="auto" src="{uri}"></audio></div>'


def _f(x, nd: int = 3) -> str:
    if x is None or (isinstance(x, float) and not np.isfinite(x)):
        return "–"
    return f"{x:.{nd}f}" if isinstance(x, (float, np.floating)) else _esc(x)


def _table(header: Sequence[str], rows: Sequence[Sequence], cls: str = "") -> str:
    h = "".join(f"<th>{_esc(c)}</th>" for c in header)
    def cell(c) -> str:
        num = isinstance(c, (int, float, np.integer, np.floating)) and not isinstance(c, bool)
        return f"<td>{_f(c)}</td>" if num else f'<td class="txt">{_f(c)}</td>'

    body = "".join("<tr>" + "".join(cell(c) for c in r) + "</tr>" for r in rows)
    return f'<table class="{cls}"><thead><tr>{h}</tr></thead><tbody>{body}</tbody></table>'


def _page(title: str, body: str) -> str:
    return (f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{_esc(title)}</title>"
            f"<style>{CSS}</style></head><body><h1>{_esc(title)}</h1>{body}</body></html>")


def _sentence(sentence: str, prosody=(), streams: str = "") -> str:
    """The top regions in words (when there are regions), then the decision's split between
    the streams and the prosody lines (when the model has them; with or without regions)."""
    out = f'<p class="regions-sentence"><b>Top regions (boxes):</b> {_esc(sentence)}</p>' if sentence else ""
    if streams:
        out += f'<p class="streams"><b>Streams:</b> {_esc(streams)}</p>'
    lines = [p if isinstance(p, str) else getattr(p, "text", str(p)) for p in prosody]
    if lines:
        held = "; the regions explain the spectrogram with them held" if sentence else ""
        out += ('<p class="prosody-title"><b>Prosody</b> (the functionals that moved the decision most, '
                f'each from the reference it names{held}):</p>'
                '<ul class="prosody">' + "".join(f"<li>{_esc(t)}</li>" for t in lines) + "</ul>")
    return out


def faithfulness_rows(explanations: Sequence[Explanation]) -> list[list]:
    """Mean deletion/insertion AUC per method over ``explanations`` and the share of
    clips where the map beats the random order on both."""
    acc: dict[str, list] = {}
    for ex in explanations:
        tab = ex.faithfulness_table()
        for m, v in tab.items():
            beats = (v.get("deletion_gain", 0) > 0 and v.get("insertion_gain", 0) > 0) if m != "random" else None
            acc.setdefault(m, []).append((v["deletion_auc"], v["insertion_auc"], beats))
    rows = []
    for m, vals in acc.items():
        d, i, b = zip(*vals)
        share = None if m == "random" else f"{100.0 * np.mean(b):.0f}%"
        rows.append([method_title(m), float(np.mean(d)), float(np.mean(i)), share, len(vals)])
    return rows


FAITH_HEADER = ["method", "deletion AUC (lower better)", "insertion AUC (higher better)", "beats random on both", "clips"]


def explanation_section(ex: Explanation, cfg: FrontEndConfig = VGGISH_16K, heading: str | None = None,
                        with_tf: bool = True) -> str:
    """One example: title, probabilities, explanation image, focus image, players for
    the original, the focus audio and (``with_tf``) the time-frequency-masked audio."""
    name = Path(ex.file).name if ex.file else "recording"
    head = heading or name
    probs = _table(["class", "probability"], [[c, float(p)] for c, p in zip(ex.classes, ex.probs)])
    four = _render_png(lambda p: plot_four_panel(ex.log_mel, {method_title(m): v for m, v in ex.maps.items()}, p,
                                                 title=ex.title(), cfg=cfg))
    parts = [f'<div class="example"><h3>{_esc(head)}</h3>',
             f"<p>{_esc(ex.title())} &middot; {ex.duration:.2f} s &middot; {int(ex.voting.sum())}/{len(ex.voting)} patches vote"
             + (f" &middot; notes: {_esc('; '.join(ex.notes))}" if ex.notes else "") + "</p>",
             probs, _img(png_uri(four), f"explanation of {name}"),
             f"<p class=note>maps: {_esc(', '.join(method_title(m) for m in ex.maps))}</p>"]
    if ex.regions is not None:
        from emolens.report.explanation_files import region_title

        rp = _render_png(lambda p: plot_regions(ex.log_mel, ex.boxes, p, title=region_title(ex), cfg=cfg))
        parts.append(_img(png_uri(rp), f"top regions of {name}"))
    parts.append(_sentence(ex.sentence if ex.regions is not None else "", ex.prosody,
                           ex.streams.text if ex.streams is not None else ""))
    players = [_audio(wav_uri(ex.wave, ex.sample_rate), "original")]
    if ex.focus_mask is not None:
        fp = _render_png(lambda p: plot_focus(ex.wave, ex.sample_rate, ex.focus_mask, p, activation=ex.focus_activation,
                                              title=f"{method_title(ex.focus_method)} focus ({100 * ex.focus_mask.mean():.0f}% kept)"))
        parts.append(_img(png_uri(fp), f"focus of {name}"))
        players.append(_audio(wav_uri(ex.focus_audio, ex.sample_rate), f"focus ({method_title(ex.focus_method)})"))
        if with_tf:
            players.append(_audio(wav_uri(ex.tf_audio, ex.sample_rate), "time-frequency mask"))
    parts.append(f'<div class="players">{"".join(players)}</div>')
    if ex.faithfulness:
        parts.append(_table(FAITH_HEADER[:3], [[method_title(m), v["deletion_auc"], v["insertion_auc"]]
                                                for m, v in ex.faithfulness_table().items()]))
    parts.append("</div>")
    return "".join(parts)


def _run_section(run: RunSummary, examples: Sequence[Explanation], cfg: FrontEndConfig) -> str:
    m, h = run.metrics, run.headline
    out = [f'<h2 id="{_esc(run.name)}">{_esc(run.name)}' + (f" &middot; {_esc(run.corpus)}" if run.corpus else "") + "</h2>"]
    model = run.model
    facts = [("model", model.get("model", m.get("model"))), ("streams", "+".join(model.get("streams", m.get("streams", [])))),
             ("classes", ", ".join(run.classes)), ("fine-tuning", m.get("finetune")), ("folds", m.get("n_folds")),
             ("VGGish pretrained", model.get("vggish_pretrained", m.get("vggish_pretrained"))),
             ("YAMNet pretrained", model.get("yamnet_pretrained", m.get("yamnet_pretrained")))]
    out.append(_table(["", "value"], [[k, v] for k, v in facts if v not in (None, "")]))
    if run.folds:
        out.append("<h3>Metrics per fold</h3>")
        rows = [[f.get("fold"), f.get("accuracy"), f.get("uar"), f.get("f1_macro"), f.get("best_epoch")] for f in run.folds]
        rows.append(["mean", h["accuracy"], h["uar"], h["f1_macro"], None])
        rows.append(["std", h["accuracy_std"], h["uar_std"], h["f1_macro_std"], None])
        out.append(_table(["fold", "accuracy", "UAR", "macro F1", "best epoch"], rows))
    if isinstance(m.get("per_class"), dict) and m["per_class"]:
        out.append(_table(["class", "precision", "recall", "support"],
                          [[c, v.get("precision"), v.get("recall"), v.get("support")] for c, v in m["per_class"].items()]))
    if "confusion" in run.figures:
        out.append("<h3>Confusion matrix (all test folds pooled)</h3>" + _img(png_uri(run.figures["confusion"]), "confusion matrix"))
    elif m.get("confusion") and run.classes:
        from emolens.report.metrics_figures import plot_confusion

        out.append("<h3>Confusion matrix (all test folds pooled)</h3>"
                   + _img(png_uri(_render_png(lambda p: plot_confusion(m["confusion"], run.classes, p))), "confusion matrix"))
    if "training_curves" in run.figures or run.logs:
        out.append("<h3>Training curves</h3>")
        if "training_curves" in run.figures:
            out.append(_img(png_uri(run.figures["training_curves"]), "training curves"))
        else:
            from emolens.report.metrics_figures import plot_training_curves

            name, recs = next(iter(run.logs.items()))
            out.append(f"<p class=note>{_esc(name)}</p>" + _img(png_uri(_render_png(lambda p: plot_training_curves(recs, p))), "training curves"))
        if run.logs:
            out.append(_table(["training", "epochs", "best val UAR", "at epoch"],
                              [[k, len(v), max((r.get("val_uar") or 0) for r in v),
                                max(v, key=lambda r: r.get("val_uar") or 0).get("epoch")] for k, v in run.logs.items()]))
    out.append("<h3>Gaussian Data Selection and speech gating</h3>")
    g = run.gds
    rows = [[k.replace("_", " "), v] for k, v in g.items() if v is not None]
    for a, b in (("train_before", "train_after"), ("test_before", "test_after"), ("corpus_patches_before", "corpus_patches_after")):
        if g.get(a):
            rows.append([f"{a.replace('_before', '').replace('_', ' ')} patches dropped", f"{100.0 * (1 - g[b] / g[a]):.1f}%"])
    out.append(_table(["GDS", "value"], rows))
    if "gds" in run.figures:
        out.append(_img(png_uri(run.figures["gds"]), "what GDS drops"))
    if run.speech:
        out.append(_table(["speech gating", "value"], [[k, json.dumps(v) if isinstance(v, (dict, list)) else v]
                                                        for k, v in run.speech.items()]))
    else:
        out.append("<p class=note>This run records no speech gating.</p>")
    if examples:
        if any(ex.faithfulness for ex in examples):
            out.append("<h3>Faithfulness of the explanations (deletion / insertion vs a random order)</h3>")
            out.append(_table(FAITH_HEADER, faithfulness_rows(examples)))
            out.append(f"<p class=note>Over the {len(examples)} examples below.</p>")
        out.append("<p class=note>The final model was trained on the whole corpus, so the examples are training "
                   "utterances: they show what the model attends to, not test performance.</p>")
        out.append("<h3>One example per emotion</h3>")
        out.extend(explanation_section(ex, cfg, heading=f"{ex.true_label}: {Path(ex.file).name if ex.file else ''}",
                                       with_tf=False)
                   for ex in examples)
    return "".join(out)


def run_report_html(runs: Sequence[RunSummary], examples: dict[str, list[Explanation]] | None = None,
                    cfg: FrontEndConfig = VGGISH_16K, title: str = "emolens report") -> str:
    """The whole report page for ``runs``; ``examples[run.name]``: its explained examples."""
    examples = examples or {}
    rows = []
    for r in runs:
        kind = r.model.get("model", r.metrics.get("model"))
        rows.append([r.name, r.corpus or "", kind, r.metrics.get("n_folds"),
                     r.headline["accuracy"], r.headline["uar"], r.headline["f1_macro"]])
        # a multi-corpus run: one row per corpus (pooled over the folds that tested it)
        for corpus, m in sorted((r.metrics.get("per_corpus") or {}).items()):
            rows.append([f"{r.name} ({m.get('n', '?')} utterances)", corpus, kind, "pooled",
                         m.get("accuracy"), m.get("uar"), m.get("f1_macro")])
    body = ["<h2>Summary per run and corpus</h2>",
            _table(["run", "corpus", "model", "folds", "accuracy", "UAR", "macro F1"], rows),
            "<p class=note>Speaker-independent cross-validation: means over folds; per-corpus rows are pooled over "
            "the folds that tested each corpus. UAR = unweighted average recall.</p>"]
    body.extend(_run_section(r, examples.get(r.name, []), cfg) for r in runs)
    return _page(title, "".join(body))


def explain_report_html(folders: Sequence[Path], title: str = "emolens explanations") -> str:
    """A page for the folders written by ``emolens explain`` (each with
    ``explanation.json`` and its figures and audio)."""
    from emolens.audio.io import load_audio
    from emolens.errors import EmolensError

    body, faith = [], []
    for d in folders:
        info = json.loads((d / "explanation.json").read_text())
        faith.append(info.get("faithfulness") or {})
        head = f"{d.name}: predicted {info['label']} ({info['probability']:.2f})"
        if info.get("true_label"):
            head += f", true {info['true_label']}"
        sec = [f'<div class="example"><h3>{_esc(head)}</h3>',
               _table(["class", "probability"], [[c, p] for c, p in info["probabilities"].items()])]
        if info.get("notes"):  # odd input processed, or a decision adapted to its voice (--adapt)
            sec.append(f"<p class=note>notes: {_esc('; '.join(info['notes']))}</p>")
        for name in ("regions.png", "explanation.png", "focus.png", "faithfulness.png"):
            if (d / name).is_file():
                sec.append(_img(png_uri(d / name), name))
            if name == "regions.png":  # the regions in words (if any), the streams and prosody lines (with or without)
                sec.append(_sentence(info.get("sentence") or "", [p.get("text", "") for p in info.get("prosody", [])],
                                     (info.get("streams") or {}).get("text", "")))
        players = []
        src = info.get("file")
        if src and Path(src).is_file():
            try:
                clip = load_audio(src)
                players.append(_audio(wav_uri(clip.samples, clip.sample_rate), "original"))
            except EmolensError as exc:
                sec.append(f"<p class=note>original not playable: {_esc(exc)}</p>")
        for name, label in (("focus.wav", f"focus ({info.get('focus_method') or 'gradcam'})"), ("focus_tf.wav", "time-frequency mask")):
            if (d / name).is_file():
                players.append(f'<div><label>{_esc(label)}</label><audio controls preload="auto" src="data:audio/wav;base64,'
                               f'{base64.b64encode((d / name).read_bytes()).decode("ascii")}"></audio></div>')
        sec.append(f'<div class="players">{"".join(players)}</div></div>')
        body.append("".join(sec))
    methods = sorted({m for f in faith for m in f})
    rows = []
    for m in methods:
        vals = [f[m] for f in faith if m in f]
        rows.append([method_title(m), float(np.mean([v["deletion_auc"] for v in vals])),
                     float(np.mean([v["insertion_auc"] for v in vals])),
                     None if m == "random" else f"{100.0 * np.mean([v.get('deletion_gain', 0) > 0 and v.get('insertion_gain', 0) > 0 for v in vals]):.0f}%",
                     len(vals)])
    head = (["<h2>Faithfulness</h2>", _table(FAITH_HEADER, rows)] if rows else []) + ["<h2>Recordings</h2>"]
    return _page(title, "".join(head + body))
