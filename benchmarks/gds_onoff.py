"""Does Gaussian Data Selection help? UAR with GDS off / the transfer default / the
thesis preset / the speech gate instead of GDS (trained and evaluated on speech
patches: "gate"; trained on all, evaluated with prediction's voting rule: "vote"), per
corpus, over seeds (yamnet model, head mode, speaker-grouped 5-fold).

    python benchmarks/gds_onoff.py --work emodb-orig=/work/cache/emodb-orig \\
        --work ravdess=/work/cache/ravdess --work ased=/work/cache/ased \\
        [--seeds 0,1,2] [--arms off,transfer,thesis,gate] [--out runs/gds_onoff]

Each (corpus, arm, seed) is ``emolens train --work W --model yamnet --folds 5 --seed S
[--gds --gds-preset P | --speech-gate]`` without the final model (``RunConfig(final_model=False)``);
finished folds are kept under ``--out`` so a re-run resumes. Prints, per corpus and arm,
the mean and std of UAR over seeds, the mean difference to "off" (paired by seed: the
same folds and head initialisation), patches used for training and head-training
seconds, then writes ``--out/gds_onoff.json``. Work dirs are only read (the backbone
feature cache under ``W/embeddings`` is reused when present).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch


def main() -> None:
    from emolens.selection.gds import GDSConfig
    from emolens.training.experiment import RunConfig, cross_validate
    from emolens.training.trainer import TrainConfig
    from emolens.workdir import WorkDir

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", action="append", required=True, help="NAME=WORKDIR (repeatable)")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--arms", default="off,transfer,thesis,gate", help="comma list of off, transfer, thesis, gate (trained and evaluated on speech patches), vote (trained on all, evaluated with prediction's speech voting)")
    ap.add_argument("--model", default="yamnet")
    ap.add_argument("--folds", default="5")
    ap.add_argument("--out", default="runs/gds_onoff")
    args = ap.parse_args()
    torch.set_num_threads(1)
    seeds = [int(s) for s in args.seeds.split(",")]
    arms = args.arms.split(",")
    out = Path(args.out)
    results: dict = {}
    for spec in args.work:
        name, root = spec.split("=", 1)
        work = WorkDir.open(root)
        for seed in seeds:
            for arm in arms:
                cfg = RunConfig(model=args.model, gds=arm in ("transfer", "thesis"), folds=args.folds, seed=seed,
                                train=TrainConfig(seed=seed), final_model=False, speech_gate=arm == "gate",
                                speech_vote=arm == "vote",
                                gds_config=GDSConfig.preset(arm if arm == "thesis" else "transfer"))
                t0 = time.perf_counter()
                m = cross_validate(work, cfg, out / name / f"{arm}-s{seed}", progress=False)
                r = {"uar": m["uar"], "accuracy": m["accuracy"], "train_seconds": m["train_seconds"],
                     "train_patches": m["patches"]["train_after"], "train_patches_before": m["patches"]["train_before"],
                     "test_patches": m["patches"]["test_after"], "wall_seconds": time.perf_counter() - t0}
                results.setdefault(name, {}).setdefault(arm, {})[seed] = r
                print(f"{name:12s} {arm:9s} seed {seed}: UAR {r['uar']:.3f}  train patches {r['train_patches']}"
                      f"/{r['train_patches_before']}  head {r['train_seconds']:.1f} s", flush=True)
    print(f"\n{'corpus':12s} {'arm':9s} {'UAR mean':>9s} {'std':>6s} {'vs off':>8s} {'min diff':>9s} {'train patches':>14s} {'head s':>7s}")
    summary: dict = {}
    for name, by_arm in results.items():
        off = by_arm.get("off", {})
        for arm, by_seed in by_arm.items():
            u = np.array([by_seed[s]["uar"] for s in sorted(by_seed)])
            diffs = [by_seed[s]["uar"] - off[s]["uar"] for s in sorted(by_seed) if s in off]
            row = {"uar_mean": float(u.mean()), "uar_std": float(u.std()), "seeds": sorted(by_seed),
                   "diff_vs_off_mean": float(np.mean(diffs)) if diffs else None,
                   "diff_vs_off_min": float(np.min(diffs)) if diffs else None,
                   "train_patches": float(np.mean([r["train_patches"] for r in by_seed.values()])),
                   "train_seconds": float(np.mean([r["train_seconds"] for r in by_seed.values()]))}
            summary.setdefault(name, {})[arm] = row
            d = f"{row['diff_vs_off_mean'] * 100:+7.1f}pt" if diffs else f"{'-':>9s}"
            dm = f"{row['diff_vs_off_min'] * 100:+8.1f}pt" if diffs else f"{'-':>10s}"
            print(f"{name:12s} {arm:9s} {row['uar_mean']:9.3f} {row['uar_std']:6.3f} {d} {dm} {row['train_patches']:14.0f} {row['train_seconds']:7.1f}")
    out.mkdir(parents=True, exist_ok=True)
    (out / "gds_onoff.json").write_text(json.dumps({"runs": results, "summary": summary}, indent=2))
    print(f"written: {out / 'gds_onoff.json'}")


if __name__ == "__main__":
    main()
