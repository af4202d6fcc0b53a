"""Within-corpus and leave-one-corpus-out UAR of a YAMNet head next to eGeMAPS + SVM on
the same folds, and the stream-normalisation comparison, on a multi-corpus work dir.

    emolens prepare --corpus emodb:../shared/data/emodb-original --corpus ravdess:../shared/data/ravdess \\
                    --corpus ased:../shared/data/ased --out work/all3
    python benchmarks/cross_corpus.py --work work/all3 --out runs/xcorpus --seeds 0,1,2 \\
           [--model yamnet-layers] [--normalize none,speaker,corpus,utterance] [--no-gds]

Prints (a) within-corpus speaker-grouped 5-fold UAR per corpus (the model trained on
that corpus alone) next to eGeMAPS + SVM on the same folds, (b) leave-one-corpus-out
UAR per held-out corpus next to eGeMAPS + SVM, both with the first ``--normalize``
mode, and (c) every ``--normalize`` mode side by side. Figures are means over the
seeds (± std across seeds when there are several). Runs are resumable: finished folds
under ``--out`` are reused.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import numpy as np

from emolens.corpora.multi import corpus_array
from emolens.evaluation.baseline import run_egemaps_cv
from emolens.training.experiment import RunConfig, cross_validate
from emolens.training.trainer import TrainConfig
from emolens.workdir import WorkDir


def corpus_subset(work: WorkDir, corpus: str) -> WorkDir:
    """The work dir restricted to one corpus (same caches)."""
    return WorkDir(work.root, work.manifest[corpus_array(work.manifest) == corpus], work.info, work.classes)


def _fmt(values: list[float]) -> str:
    return f"{np.mean(values):.3f}" + (f" ± {np.std(values):.3f}" if len(values) > 1 else "")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", required=True, type=Path, help="multi-corpus work dir (emolens prepare --corpus A:DIR --corpus B:DIR ...)")
    ap.add_argument("--out", required=True, type=Path, help="folder for the runs (resumable)")
    ap.add_argument("--model", default="yamnet-layers")
    ap.add_argument("--normalize", default="none,speaker,corpus,utterance", help="comma list; the first is used in tables (a) and (b)")
    ap.add_argument("--seeds", default="0", help="comma list of seeds (folds, head initialisation, validation speakers)")
    ap.add_argument("--no-gds", action="store_true")
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--skip", default="", help="comma list of parts to skip: within, loco, egemaps")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    work = WorkDir.open(args.work)
    corpora = list(work.manifest.corpora)
    seeds = [int(s) for s in args.seeds.split(",")]
    modes = [m.strip() for m in args.normalize.split(",") if m.strip()]
    skip = set(args.skip.split(","))
    gds = not args.no_gds
    tag = f"{args.model}{'-gds' if gds else '-nogds'}"
    # results[(mode, kind)][corpus] -> list over seeds
    res: dict[tuple[str, str], dict[str, list[float]]] = {}
    t_total = time.perf_counter()
    seconds: dict[tuple[str, str], float] = {}

    def cfg_for(mode: str, seed: int, folds: str) -> RunConfig:
        tc = TrainConfig(epochs=args.epochs, lr=args.lr, seed=seed)
        return RunConfig(model=args.model, gds=gds, folds=folds, seed=seed, train=tc, hidden=args.hidden,
                         normalize=mode, final_model=False)

    for seed in seeds:
        for mode in modes + ["egemaps"]:
            if mode == "egemaps" and "egemaps" in skip:
                continue
            if "within" not in skip:
                for c in corpora:
                    sub = corpus_subset(work, c)
                    d = args.out / f"seed{seed}" / "within" / c / (tag + "-" + mode if mode != "egemaps" else "egemaps")
                    t0 = time.perf_counter()
                    m = (run_egemaps_cv(sub, "5", d, seed=seed, progress=False) if mode == "egemaps"
                         else cross_validate(sub, cfg_for(mode, seed, "5"), d, progress=False))
                    seconds[(mode, "within")] = seconds.get((mode, "within"), 0.0) + time.perf_counter() - t0
                    res.setdefault((mode, "within"), {}).setdefault(c, []).append(m["uar"])
            if "loco" not in skip:
                d = args.out / f"seed{seed}" / "loco" / (tag + "-" + mode if mode != "egemaps" else "egemaps")
                t0 = time.perf_counter()
                m = (run_egemaps_cv(work, "locorpus", d, seed=seed, progress=False) if mode == "egemaps"
                     else cross_validate(work, cfg_for(mode, seed, "locorpus"), d, progress=False))
                seconds[(mode, "loco")] = seconds.get((mode, "loco"), 0.0) + time.perf_counter() - t0
                for c, pc in m["per_corpus"].items():
                    res.setdefault((mode, "loco"), {}).setdefault(c, []).append(pc["uar"])
            print(f"seed {seed} {mode}: done ({time.perf_counter() - t_total:.0f} s so far)", flush=True)

    first = modes[0]
    print(f"\nmodel {args.model}, GDS {'on' if gds else 'off'}, normalize {first}, seeds {args.seeds}, 4 classes: {', '.join(work.classes)}")
    for kind, title in (("within", "(a) within-corpus, speaker-grouped 5-fold UAR"), ("loco", "(b) leave-one-corpus-out UAR (held-out corpus)")):
        if kind in skip:
            continue
        print(f"\n{title}")
        print(f"{'corpus':<10}{'model':>18}{'eGeMAPS+SVM':>18}{'difference':>12}")
        for c in corpora:
            a = res.get((first, kind), {}).get(c, [])
            b = res.get(("egemaps", kind), {}).get(c, [])
            diff = f"{np.mean(a) - np.mean(b):+.3f}" if a and b else "-"
            print(f"{c:<10}{_fmt(a) if a else '-':>18}{_fmt(b) if b else '-':>18}{diff:>12}")
    print("\n(c) stream normalisation (UAR; mean over seeds)")
    head = "".join(f"{'w-' + c:>10}" for c in corpora) + "".join(f"{'lo-' + c:>11}" for c in corpora)
    print(f"{'normalize':<12}{head}{'within':>9}{'loco':>8}{'train s':>9}")
    for mode in modes + ([] if "egemaps" in skip else ["egemaps"]):
        w = [np.mean(res.get((mode, "within"), {}).get(c, [np.nan])) for c in corpora]
        lo = [np.mean(res.get((mode, "loco"), {}).get(c, [np.nan])) for c in corpora]
        secs = sum(seconds.get((mode, k), 0.0) for k in ("within", "loco")) / len(seeds)
        print(f"{mode:<12}" + "".join(f"{v:>10.3f}" for v in w) + "".join(f"{v:>11.3f}" for v in lo)
              + f"{np.nanmean(w):>9.3f}{np.nanmean(lo):>8.3f}{secs:>9.0f}")
    print(f"\ntotal {time.perf_counter() - t_total:.0f} s (train s: wall seconds per seed incl. feature loading and GDS)")


if __name__ == "__main__":
    main()
