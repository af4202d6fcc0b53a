"""Model-card sections for calibration (``model.json["calibration"]``) and speaker
adaptation (``model.json["adaptation"]``), as Markdown lines."""

from __future__ import annotations


def _f(v) -> str:  # noqa: ANN001
    return f"{v:.3f}" if isinstance(v, (int, float)) and v == v else "–"


def confidence_lines(config: dict) -> list[str]:
    """Markdown lines (empty when the model has neither section)."""
    lines: list[str] = []
    cal = config.get("calibration")
    if cal:
        lines += ["## Confidence (calibration)", "",
                  f"Temperature scaling on the utterance probabilities, `p = softmax(log(p) / T)` with T = "
                  f"{cal['temperature']:.3f}, fitted on {cal.get('fitted_on', 'out-of-fold predictions')} "
                  f"({cal.get('n', '?')} clips). Expected calibration error ({cal.get('n_bins', 15)} equal-width bins): "
                  f"{_f(cal.get('ece_before'))} before, {_f(cal.get('ece_after'))} after"
                  + (f" ({_f(cal['ece_after_crossfit'])} with T fitted on the other folds)" if "ece_after_crossfit" in cal else "")
                  + ".", "",
                  f"A clip is called **uncertain** when its top probability is below {cal.get('uncertain_threshold', 0.5):.2f} "
                  f"({cal.get('threshold_rule', 'the measured default')}; `emolens predict --uncertain-below P` changes it).", ""]
        rows = cal.get("coverage") or []
        if rows:
            lines += ["| threshold | coverage | accuracy on covered | UAR on covered |", "|---|---|---|---|"]
            lines += [f"| {r['threshold']:.2f} | {_f(r['coverage'])} | {_f(r['accuracy'])} | {_f(r['uar'])} |" for r in rows]
            lines.append("")
    ad = config.get("adaptation")
    if ad:
        if ad.get("method") == "gated":
            what = (f"Method `gated`: the mean offset of a voice's speech patches from the training mean (balanced over "
                    f"emotions), shrunk by S / (S + {ad.get('shrink_seconds')} s) for S seconds of speech, is subtracted "
                    "only when the voice's clips spread along the emotion directions more than one emotion's clips do "
                    "(a spread gate fitted on the training corpora, each held out in turn; a `timeline` recording's "
                    f"{ad.get('gate_window_seconds', 3.0):g}-s stretches count as its clips): a voice that may hold one "
                    "steady emotion is classified clip by clip, so adapting cannot erase that emotion.")
        else:
            what = (f"Method `{ad.get('method')}`: the mean offset of a voice's speech patches from the training mean, "
                    f"projected on the {ad.get('k')} directions per stream that separate training speakers with emotion "
                    f"removed (orthogonal to the {ad.get('q')} main within-speaker emotion directions), shrunk by "
                    f"S / (S + {ad.get('shrink_seconds')} s) for S seconds of speech, is subtracted.")
        lines += ["## Adaptation to a voice (`--adapt`)", "", what + " Needs "
                  f">= {ad.get('min_clips')} clips of the voice (one folder or `--speakers` group; a `timeline` recording "
                  f"counts as enough) and >= {ad.get('min_speech_seconds')} s of speech; otherwise clips are classified one by one."
                  + (f" Statistics learned from: {', '.join(ad['fitted_on'])}." if ad.get("fitted_on") else ""), ""]
        if "enrol_shrink_seconds" in ad:
            ref = ad.get("reference", "neutral")
            lines += [f"With `--neutral FILE` (a recording of the voice in class {ref!r}; or a "
                      "`neutral` column in the `--speakers` CSV): every patch of the voice is shifted by the offset of the "
                      f"enrolment clips' mean from the training {ref!r} mean, shrunk by S / (S + "
                      f"{ad.get('enrol_shrink_seconds')} s) for S seconds of neutral speech"
                      + ("; the prosody functionals of its clips are shifted the same way, by the offset of the "
                         f"enrolment clips' functionals from the training {ref!r} mean" if ad.get("prosody") else "")
                      + ". The reference is a clip whose emotion is known, so a steady emotion is kept; the enrolment "
                      "clips are not classified.", ""]
        for t in ad.get("results", []):
            lines += [t, ""]
    return lines


__all__ = ["confidence_lines"]
