"""The generalisation yardstick: leave-one-corpus-out over emodb-original, ravdess, ased,
nemo and turev (train on four, test on the fifth), CASIA tested by the head trained on
all five (never trained on), next to eGeMAPS + SVM on the same folds; one ablation row
per lever.

    python benchmarks/generalisation.py [--shared ../shared] [--work-root work/gen] \\
        [--out runs/generalisation] [--rows baseline,balance,...|all] [--seeds 0,1,2] [--list]

Missing work dirs are prepared first (``emolens prepare``, 4 classes, TurEV calm→neutral);
YAMNet features are computed once per corpus and cached in each work dir; every row's
folds are cached under ``--out/<row>/seed<k>/`` (resumable: a re-run only computes what
is missing). Prints, per row, the mean and worst UAR over the six test corpora, the mean
over the five development corpora, UAR per test corpus (± std over seeds), mean macro F1
and mean expected calibration error; then the eGeMAPS + SVM row and a detail table
(UAR, macro F1, ECE per corpus) for the first row. ``--markdown FILE`` also writes the
tables.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from emolens.evaluation.generalisation import HeadConfig, corpus_features, egemaps_loco, run_loco, summarise
from emolens.workdir import WorkDir

#: (work-dir name, parser, folder in ../shared/data, extra prepare arguments)
CORPORA = (("emodb-original", "emodb", "emodb-original", []), ("ravdess", "ravdess", "ravdess", []),
           ("ased", "ased", "ased", []), ("nemo", "nemo", "nemo", []),
           ("turev", "turev", "turev", ["--label-map", "turev:calm=neutral"]), ("casia", "casia", "casia", []))

B = HeadConfig()
ALL3 = ("yamnet_l5", "yamnet_mid", "yamnet_l9")
#: name -> (config, what it tests). ``baseline`` is today's shipped recipe on these folds.
ROWS: dict[str, tuple[HeadConfig, str]] = {
    "baseline": (B, "today's recipe: layers 5/7/9, MLP 256, class-balanced loss, mean vote of speech patches"),
    "balance": (replace(B, balance="corpus-class"), "every corpus x class cell weighs the same"),
    "balance-utt": (replace(B, balance="corpus-class", per_utterance=True), "+ each utterance weighs the same"),
    "speech-train": (replace(B, speech_train=True), "train on speech patches only"),
    "smooth": (replace(B, label_smoothing=0.1), "label smoothing 0.1"),
    "mixup": (replace(B, mixup=0.4), "mixup of feature pairs, Beta(0.4, 0.4)"),
    "center": (replace(B, corpus_center=True), "each training corpus shifted to the pooled mean"),
    "linear": (replace(B, hidden=0, dropout=0.0), "linear classifier (logistic regression) on the streams"),
    "dropout5": (replace(B, dropout=0.5), "dropout 0.5"),
    "wd": (replace(B, weight_decay=1e-2), "weight decay 1e-2"),
    "epochs4": (replace(B, epochs=4), "4 epochs"),
    "l7": (replace(B, streams=("yamnet_mid",)), "layer 7 alone"),
    "l9-l11": (replace(B, streams=("yamnet_l9", "yamnet_l11")), "layers 9 and 11"),
    "emb": (replace(B, streams=("yamnet",)), "the 1024-d embedding alone"),
    "all5": (replace(B, streams=("yamnet_l5", "yamnet_mid", "yamnet_l9", "yamnet_l11", "yamnet")), "layers 5/7/9/11 + embedding"),
    "test-corpus-norm": (replace(B, test_norm="corpus"), "REFERENCE, not single clip: test corpus standardised by its own statistics"),
}


def prepare_missing(shared: Path, work_root: Path) -> dict[str, Path]:
    """Work dir per corpus (prepared with ``emolens prepare`` when missing)."""
    from emolens.cli.main import main as cli

    dirs = {}
    for name, parser, folder, extra in CORPORA:
        d = work_root / name
        if not (d / "prepare.json").exists():
            src = shared / "data" / folder
            print(f"preparing {d} from {src}", flush=True)
            code = cli(["prepare", "--corpus", f"{parser}:{src}", *extra, "--classes", "4class", "--out", str(d), "--quiet"])
            if code:
                sys.exit(code)
        dirs[name] = d
    return dirs


def _ms(values: list[float]) -> str:
    return f"{np.mean(values):.3f}" + (f" ± {np.std(values):.3f}" if len(values) > 1 else "")


def table(rows: dict[str, list[dict]], base: dict, corpora: list[str]) -> str:
    """Markdown ablation table: one row per lever (means over seeds)."""
    head = "| row | mean UAR | worst UAR | mean UAR (5 dev) | " + " | ".join(corpora) + " | mean F1 | mean ECE | seeds |"
    lines = [head, "|" + "---|" * (7 + len(corpora))]
    for name, sums in rows.items():
        per = [" " + _ms([s["per_corpus"][c]["uar"] for s in sums]) + " " for c in corpora]
        lines.append(f"| {name} | {_ms([s['mean_uar'] for s in sums])} | {_ms([s['worst_uar'] for s in sums])} | "
                     f"{_ms([s['mean_uar_dev'] for s in sums])} |" + "|".join(per)
                     + f"| {np.mean([s['mean_f1'] for s in sums]):.3f} | {np.mean([s['mean_ece'] for s in sums]):.3f} | {len(sums)} |")
    u = [base[c]["uar"] for c in corpora]
    dev = [base[c]["uar"] for c in corpora if c != "casia"]
    lines.append(f"| eGeMAPS + SVM | {np.mean(u):.3f} | {np.min(u):.3f} | {np.mean(dev):.3f} | "
                 + " | ".join(f"{base[c]['uar']:.3f}" for c in corpora)
                 + f" | {np.mean([base[c]['f1_macro'] for c in corpora]):.3f} | - | - |")
    return "\n".join(lines)


def detail(name: str, sums: list[dict], base: dict, corpora: list[str]) -> str:
    lines = [f"| test corpus ({name}) | UAR | macro F1 | ECE | eGeMAPS+SVM UAR | eGeMAPS+SVM F1 | gain (pt) |",
             "|---|---|---|---|---|---|---|"]
    for c in corpora:
        u = [s["per_corpus"][c]["uar"] for s in sums]
        lines.append(f"| {c} | {_ms(u)} | {_ms([s['per_corpus'][c]['f1_macro'] for s in sums])} | "
                     f"{_ms([s['per_corpus'][c]['ece'] for s in sums])} | {base[c]['uar']:.3f} | {base[c]['f1_macro']:.3f} | "
                     f"{100 * (np.mean(u) - base[c]['uar']):+.1f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shared", type=Path, default=Path(__file__).resolve().parents[2] / "shared")
    ap.add_argument("--work-root", type=Path, default=Path("work/gen"), help="one prepared work dir per corpus (made when missing)")
    ap.add_argument("--out", type=Path, default=Path("runs/generalisation"))
    ap.add_argument("--rows", default="baseline", help="comma list of row names or 'all'")
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--no-egemaps", action="store_true")
    ap.add_argument("--markdown", type=Path, default=None)
    ap.add_argument("--list", action="store_true", help="list the rows and exit")
    args = ap.parse_args(argv)
    if args.list:
        for k, (cfg, what) in ROWS.items():
            print(f"{k:<18}{what}")
        return 0
    import torch

    torch.set_num_threads(2)
    names = list(ROWS) if args.rows == "all" else [r.strip() for r in args.rows.split(",") if r.strip()]
    unknown = [n for n in names if n not in ROWS]
    if unknown:
        print(f"emolens: error: unknown row(s) {', '.join(unknown)}; --list shows them", file=sys.stderr)
        return 2
    seeds = [int(s) for s in args.seeds.split(",")]
    t0 = time.perf_counter()
    dirs = prepare_missing(args.shared, args.work_root)
    data = {}
    for name, d in dirs.items():
        cf = corpus_features(d, progress=True)
        data[cf.name] = cf
    corpora = list(data)
    print(f"features ready ({time.perf_counter() - t0:.0f} s): " + ", ".join(f"{c} {data[c].n_utt} files" for c in corpora), flush=True)
    base = {} if args.no_egemaps else egemaps_loco({WorkDir.open(d).manifest[0].corpus: WorkDir.open(d) for d in dirs.values()},
                                                   args.out, progress=True)
    if not base:
        base = {c: {"uar": float("nan"), "f1_macro": float("nan")} for c in corpora}
    rows: dict[str, list[dict]] = {}
    for name in names:
        cfg = ROWS[name][0]
        for seed in seeds:
            t = time.perf_counter()
            print(f"{name} seed {seed}:", flush=True)
            res = run_loco(cfg, data, seed=seed, out=args.out / f"{name}-{cfg.key()}" / f"seed{seed}",
                           log=lambda s: print(s, flush=True))
            s = summarise(res)
            rows.setdefault(name, []).append(s)
            print(f"  mean {s['mean_uar']:.3f} worst {s['worst_uar']:.3f} ({time.perf_counter() - t:.0f} s)", flush=True)
    md = table(rows, base, corpora)
    det = detail(names[0], rows[names[0]], base, corpora)
    print("\nLeave-one-corpus-out UAR (casia: trained on the five others, never on casia); chance 0.25\n")
    print(md)
    print()
    print(det)
    print(f"\ntotal {time.perf_counter() - t0:.0f} s")
    if args.markdown:
        args.markdown.write_text(md + "\n\n" + det + "\n")
    (args.out / "summary.json").write_text(json.dumps({n: {"config": ROWS[n][0].to_dict(), "seeds": seeds, "summaries": rows[n]}
                                                       for n in names}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
