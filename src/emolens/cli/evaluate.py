"""``emolens evaluate``: a trained model's metrics on another corpus (work dir or
labelled files), through the same inference path as ``emolens predict``."""

from __future__ import annotations

import argparse
from pathlib import Path

from emolens.errors import EmolensError


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("evaluate", help="metrics of a trained model on a prepared work dir or labelled files",
                       description="Score a trained model on recordings it was not trained on; writes OUT/metrics.json "
                                   "(with per_corpus), confusion.csv, confusion.png and predictions.csv.")
    p.add_argument("--model", required=True, type=Path, help="run directory written by `emolens train`")
    p.add_argument("inputs", nargs="*", type=Path, help="audio files or folders (with --labels)")
    p.add_argument("--work", type=Path, default=None, help="prepared work dir: evaluate on its whole manifest")
    p.add_argument("--labels", type=Path, default=None, help="CSV with columns path,label[,speaker,corpus] (with files/folders, or alone for every row)")
    p.add_argument("--drop-unknown", action="store_true", help="leave out files whose label is not a class of the model (default: error)")
    p.add_argument("--out", type=Path, default=None, help="output folder (default MODEL/evaluate-<name>)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_evaluate)
    return p


def cmd_evaluate(args) -> int:
    from emolens.evaluation.external import evaluate_recognizer, manifest_from_labels, write_evaluation
    from emolens.evaluation.groups import format_group_table
    from emolens.inference import EmotionRecognizer
    from emolens.workdir import WorkDir

    if (args.work is None) == (args.labels is None):
        raise EmolensError("give either --work WORKDIR or --labels CSV [FILES/DIRS]")
    if args.work is not None and args.inputs:
        raise EmolensError("with --work the work dir's manifest is evaluated; give files only with --labels")
    rec = EmotionRecognizer.from_dir(args.model)
    if args.work is not None:
        manifest, name = WorkDir.open(args.work).manifest, Path(args.work).name
    else:
        manifest, name = manifest_from_labels(args.labels, args.inputs or None), Path(args.labels).stem
    out = args.out or Path(args.model) / f"evaluate-{name}"
    ev = evaluate_recognizer(rec, manifest, drop_unknown=args.drop_unknown, progress=not args.quiet)
    m = write_evaluation(ev, out, args.model)
    print(f"\n{Path(args.model).name} on {name}: {m['n']} files   accuracy {m['accuracy']:.3f}   UAR {m['uar']:.3f}   "
          f"macro F1 {m['f1_macro']:.3f}   ({m['seconds']:.0f} s)")
    if ev.dropped_labels:
        print("left out (label not a model class): " + ", ".join(f"{k} {v}" for k, v in sorted(ev.dropped_labels.items())))
    for path, why in list(ev.unreadable.items())[:5]:
        print(f"unreadable, left out: {why}")
    if len(m["per_corpus"]) > 1:
        print(format_group_table(m["per_corpus"]))
    print(f"written: {out / 'metrics.json'}, {out / 'confusion.png'}, {out / 'confusion.csv'}, {out / 'predictions.csv'}")
    return 0
