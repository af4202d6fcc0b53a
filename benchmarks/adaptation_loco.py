"""``--adapt`` variants on the shipped recipe's leave-one-corpus-out folds (balanced and
one-emotion-per-speaker test corpora), as ``scripts/train_default`` measures them for
the card, with research variants next to the shipped one.

    python benchmarks/adaptation_loco.py --work-root /work/cache/gen [--methods nap,mean,prior,enrol] [--seed 0] \
        [--prior-iterations 3] [--enrol-clips 1]

Work dirs: one prepared corpus each (as ``benchmarks/generalisation.py`` makes them, with
the cached YAMNet features); CASIA and TurEV-DB are tested by the head trained on the
shippable corpora, as in the card.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work-root", type=Path, default=Path("work/gen"))
    ap.add_argument("--methods", default="nap,mean,prior")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--draws", type=int, default=3)
    ap.add_argument("--prior-iterations", type=int, default=None, help="re-estimations of the emotion mix (method prior)")
    ap.add_argument("--enrol-clips", type=int, default=1, help="neutral clips per speaker for method enrol (--neutral)")
    ap.add_argument("--head", default="prosody", help="the shipped head's recipe: prosody (the default model) or whisper")
    ap.add_argument("--enrol-whisper", action="store_true", help="--neutral shifts the Whisper stream too (head whisper)")
    args = ap.parse_args(argv)
    import torch

    from emolens.evaluation.adaptation_loco import PRIOR_ITERATIONS, adaptation_loco
    from emolens.training.default_model import HEADS, load_corpus_features, prepared_dirs
    from emolens.training.package import NOT_SHIPPABLE

    torch.set_num_threads(1)
    t0 = time.perf_counter()
    try:
        dirs = prepared_dirs(args.work_root)
    except ValueError as e:
        print(f"emolens: error: {e}", file=sys.stderr)
        return 2
    if args.head not in HEADS:
        print(f"emolens: error: unknown head {args.head!r}; use {', '.join(HEADS)}", file=sys.stderr)
        return 2
    head = HEADS[args.head]
    data = load_corpus_features(list(dirs.values()), head)
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    res = adaptation_loco(head, data, seed=args.seed, evaluate_only=sorted(set(data) & set(NOT_SHIPPABLE)),
                          methods=methods, draws=args.draws, prior_iterations=args.prior_iterations or PRIOR_ITERATIONS,
                          enrol_clips=args.enrol_clips, enrol_whisper=args.enrol_whisper)
    plain = [m for m in methods if m != "enrol"]
    keys = ["single", *plain, *[f"{c}_{m}" for c in ("one", "two") for m in ("single", *plain)]]
    if "enrol" in methods:
        keys += ["enrol_single", "enrol", "one_enrol_single", "one_enrol"]
    print("| corpus | " + " | ".join(k.replace("one_", "one emotion: ").replace("two_", "two emotions: ") for k in keys) + " |")
    print("|" + "---|" * (len(keys) + 1))
    for c, r in res["per_corpus"].items():
        print(f"| {c} | " + " | ".join(f"{r[k]:.3f}" for k in keys) + " |")
    print("| **mean** | " + " | ".join(f"**{res['mean'][k]:.3f}**" for k in keys) + " |")
    m = res["mean"]
    for meth in plain:
        print(f"{meth}: {100 * (m[meth] - m['single']):+.1f} pt balanced, "
              f"{100 * (m[f'one_{meth}'] - m['one_single']):+.1f} pt one emotion, "
              f"{100 * (m[f'two_{meth}'] - m['two_single']):+.1f} pt two emotions")
    if "enrol" in methods:
        print(f"enrol ({args.enrol_clips} neutral clip(s)): {100 * (m['enrol'] - m['enrol_single']):+.1f} pt balanced, "
              f"{100 * (m['one_enrol'] - m['one_enrol_single']):+.1f} pt one emotion (on the clips that are not enrolment)")
    print(f"total {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
