"""``emolens report``: one self-contained HTML file for training runs or for an
``emolens explain`` output folder."""

from __future__ import annotations

import argparse
from pathlib import Path

from emolens.errors import EmolensError


def add_parser(sub) -> None:
    p = sub.add_parser("report", help="one self-contained HTML report (opens offline) for runs or an explain folder",
                       description="Write one HTML file with embedded figures and audio. PATH: run directories "
                                   "(`emolens train --out`) or one `emolens explain --out` folder.")
    p.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="run directories, or an explain output folder")
    p.add_argument("--work", type=Path, action="append", default=None,
                   help="prepared work dir of each run, in the same order (corpus name, GDS figures, examples to explain)")
    p.add_argument("--out", type=Path, default=None, help="HTML file to write (default: PATH/report.html)")
    p.add_argument("--per-emotion", type=int, default=1, help="explained examples per emotion (needs --work; 0: none)")
    p.add_argument("--methods", default="gxi,gradcam,lime,occlusion", help="methods for the examples (comma list; the first drives the focus audio when it is the measured default)")
    p.add_argument("--layer", default="auto", help="Grad-CAM layer for the examples (auto: vggish if present, else yamnet_mid)")
    p.add_argument("--lime-samples", type=int, default=200, help="LIME samples per patch for the examples")
    p.add_argument("--no-faithfulness", action="store_true", help="skip the examples' deletion/insertion scores (faster)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_report)


def _explain_folders(path: Path) -> list[Path]:
    if (path / "explanation.json").is_file():
        return [path]
    return sorted(p.parent for p in path.glob("*/explanation.json"))


def cmd_report(args) -> int:
    from emolens.report.html import explain_report_html, run_report_html
    from emolens.report.run_summary import is_run_dir, read_run

    paths = list(args.paths)
    missing = [p for p in paths if not p.is_dir()]
    if missing:
        raise EmolensError(f"{missing[0]}: no such directory")
    out = args.out or paths[0] / "report.html"
    if len(paths) == 1 and not is_run_dir(paths[0]) and _explain_folders(paths[0]):
        page = explain_report_html(_explain_folders(paths[0]), title=f"emolens explanations: {paths[0].name}")
    else:
        bad = [p for p in paths if not is_run_dir(p)]
        if bad:
            raise EmolensError(f"{bad[0]}: neither a run directory (metrics.json/model.json) nor an explain folder (*/explanation.json)")
        works = list(args.work or [])
        if len(works) > len(paths):
            raise EmolensError(f"{len(works)} --work for {len(paths)} runs: give at most one per run, in the same order")
        runs = [read_run(p, works[i] if i < len(works) else None) for i, p in enumerate(paths)]
        examples = {}
        methods = [m.strip() for m in args.methods.split(",") if m.strip()]
        cfg = None
        for r in runs:
            if r.work is None or args.per_emotion <= 0 or not (r.root / "model.safetensors").is_file():
                continue
            from emolens.explain.examples import example_explanations
            from emolens.inference import EmotionRecognizer

            rec = EmotionRecognizer.from_dir(r.root)
            cfg = cfg or rec.frontend
            examples[r.name] = example_explanations(rec, r.work, args.per_emotion, methods=methods, layer=args.layer,
                                                    lime_samples=args.lime_samples, progress=not args.quiet,
                                                    with_faithfulness=not args.no_faithfulness)
        kw = {"cfg": cfg} if cfg is not None else {}
        page = run_report_html(runs, examples, title="emolens report: " + ", ".join(r.name for r in runs), **kw)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page, encoding="utf-8")
    print(f"{out} ({out.stat().st_size / 1e6:.1f} MB)")
    return 0
