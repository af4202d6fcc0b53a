"""Calibrate the Gaussian Data Selection threshold on EmoDB and show what it drops.

Usage::

    .venv/bin/python benchmarks/gds_calibrate.py [--root ../shared/data/emodb-original]
        [--classes angry,happy,neutral,sad] [--target 0.15] [--figure out.png] [--json out.json]

Steps: every clip -> ``load_audio`` (16 kHz) -> ``mel_spectrogram`` -> ``frame_patches``
-> ``log_mel(., 'vggish')``; fit :class:`GaussianDataSelector` (scope corpus, Pearson,
z-score) on the patches of the chosen classes; then print

1. a threshold sweep: dropped fraction, forced keeps, energy of dropped vs kept patches
   (mean log-mel, level in dB re the utterance's loudest frame), the fraction of
   dropped/kept patches that are mostly silent (> 50% of frames more than 40 dB under
   the utterance's loudest frame) and the dropped fraction per patch position (each 2-s
   clip gives 4 patches; the 4th covers frames 144-239 of 198, so 42 frames of end
   padding);
2. the threshold that drops ``--target`` (the thesis dropped 15%), which is the
   ``GDSConfig.thesis()`` preset (the default before the transfer preset; the transferable
   default is measured by ``benchmarks/gds_transfer.py``);
3. the other scopes and the Bhattacharyya coefficient at the same drop fraction;
4. leave-one-speaker-out: fit on nine speakers, the default threshold applied to the
   tenth (the drop fraction on unseen data).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from emolens.audio.io import load_audio
from emolens.features.mel import log_mel, mel_spectrogram
from emolens.features.patches import frame_patches
from emolens.report.gds_report import gds_summary, patch_silence, plot_gds
from emolens.selection.gds import THESIS_THRESHOLD as DEFAULT_THRESHOLD, GDSConfig, GaussianDataSelector

REPO = Path(__file__).resolve().parents[1]
THESIS_CLASSES = "angry,happy,neutral,sad"
SWEEP = (-3.0, -2.0, -1.5, -1.0, -0.75, -0.5, -0.4, -0.35, -0.3, -0.25, -0.2, -0.1, 0.0, 0.25)


def default_root() -> Path:
    shared = Path(os.environ.get("EMOLENS_SHARED", REPO.parent / "shared"))
    return shared / "data" / "emodb-original"  # the 2-s crops (data/emodb) are being retired


def load_corpus(root: Path, classes: list[str] | None) -> dict[str, np.ndarray]:
    """Log-mel patches ``(N, 96, 64)`` of every clip, with label, utterance, speaker, position."""
    rows = list(csv.DictReader(open(root / "metadata.csv", newline="")))
    if classes:
        rows = [r for r in rows if r["emotion"] in classes]
    patches, labels, utts, speakers, pos = [], [], [], [], []
    for i, r in enumerate(rows):
        p = log_mel(frame_patches(mel_spectrogram(load_audio(root / r["path"]).samples)), "vggish")
        patches.append(p)
        labels += [r["emotion"]] * len(p)
        utts += [i] * len(p)
        speakers += [r["speaker"]] * len(p)
        pos += list(range(len(p)))
    return {
        "patches": np.concatenate(patches),
        "labels": np.array(labels),
        "utts": np.array(utts),
        "speakers": np.array(speakers),
        "pos": np.array(pos),
    }


def describe(keep: np.ndarray, mu: np.ndarray, silent: np.ndarray, level: np.ndarray, pos: np.ndarray) -> dict:
    """Energy and silence of kept vs dropped patches, and the dropped fraction per position."""
    drop = ~keep
    mostly = silent > 0.5

    def m(a: np.ndarray, mask: np.ndarray) -> float:
        return float(a[mask].mean()) if mask.any() else float("nan")

    return {
        "dropped": float(drop.mean()),
        "n_dropped": int(drop.sum()),
        "logmel_kept": m(mu, keep),
        "logmel_dropped": m(mu, drop),
        "db_kept": m(level, keep),
        "db_dropped": m(level, drop),
        "silent_of_dropped": m(mostly.astype(float), drop),
        "silent_of_kept": m(mostly.astype(float), keep),
        "silent_recall": float((drop & mostly).sum() / max(1, mostly.sum())),
        "drop_by_pos": [float(drop[pos == p].mean()) for p in range(int(pos.max()) + 1)],
    }


def row(name: str, d: dict) -> str:
    byp = " ".join(f"{100 * v:5.1f}" for v in d["drop_by_pos"])
    return (
        f"{name:>22} {100 * d['dropped']:6.1f}% {d['logmel_kept']:7.2f} {d['logmel_dropped']:7.2f} "
        f"{d['db_kept']:7.1f} {d['db_dropped']:7.1f} {100 * d['silent_of_dropped']:6.1f}% "
        f"{100 * d['silent_of_kept']:6.1f}% {100 * d['silent_recall']:6.1f}%  {byp}"
    )


HEADER = (
    f"{'':>22} {'drop':>7} {'logmel':>7} {'logmel':>7} {'dB':>7} {'dB':>7} {'silent':>7} {'silent':>7} {'silent':>7}"
    f"  dropped % by patch position\n"
    f"{'':>22} {'':>7} {'kept':>7} {'dropped':>7} {'kept':>7} {'dropped':>7} {'of drop':>7} {'of kept':>7} "
    f"{'caught':>7}  p0    p1    p2    p3"
)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", type=Path, default=default_root())
    ap.add_argument("--classes", default=THESIS_CLASSES, help="comma-separated emotions, or 'all'")
    ap.add_argument("--target", type=float, default=0.15, help="drop fraction to calibrate for")
    ap.add_argument("--figure", type=Path, default=None, help="write the GDS figure (PNG) here")
    ap.add_argument("--json", type=Path, default=None, help="write the numbers (JSON) here")
    args = ap.parse_args(argv)
    if not (args.root / "metadata.csv").exists():
        print(f"error: {args.root}/metadata.csv not found; pass --root", file=sys.stderr)
        return 2
    classes = None if args.classes == "all" else args.classes.split(",")

    t0 = time.perf_counter()
    data = load_corpus(args.root, classes)
    P, L, U, S, POS = data["patches"], data["labels"], data["utts"], data["speakers"], data["pos"]
    print(f"{len(np.unique(U))} utterances ({args.classes}), {len(P)} patches {P.shape[1:]}, "
          f"features in {time.perf_counter() - t0:.1f} s")
    silent, level = patch_silence(P, U)
    mostly = silent > 0.5
    print(f"mostly-silent patches (>50% of frames >40 dB under the utterance peak): "
          f"{100 * mostly.mean():.1f}% of all; by position "
          + " ".join(f"p{p} {100 * mostly[POS == p].mean():.1f}%" for p in range(POS.max() + 1)))
    out: dict = {"n_patches": int(len(P)), "n_utterances": int(len(np.unique(U))), "classes": args.classes,
                 "mostly_silent_fraction": float(mostly.mean())}

    # 1. sweep (corpus scope, Pearson, z-score)
    t1 = time.perf_counter()
    sel = GaussianDataSelector(GDSConfig.thesis()).fit(P, L, U)
    scores = sel.score(P, U)
    print(f"fit + score {time.perf_counter() - t1:.2f} s; raw score mean {sel.norm_[0]:.3f} std {sel.norm_[1]:.3f}")
    print("\n1. threshold sweep, scope corpus, Pearson, z-score (dB: patch level re utterance peak frame)")
    print(HEADER)
    out["sweep"] = {}
    for thr in SWEEP:
        res = GaussianDataSelector(GDSConfig.thesis(threshold=thr)).fit(P, L, U).select(P, U)
        d = describe(res.keep, res.mu, silent, level, POS)
        d["forced"] = int(res.forced.sum())
        out["sweep"][thr] = d
        print(row(f"z < {thr:+.2f} ({d['forced']} forced)", d))

    # 2. calibrated threshold
    q = float(np.quantile(scores, args.target))
    print(f"\n2. the {100 * args.target:.0f}% quantile of the normalised scores is {q:+.3f}; "
          f"GDSConfig.thesis() threshold = {DEFAULT_THRESHOLD:+.2f}")
    res = GaussianDataSelector(GDSConfig.thesis()).fit(P, L, U).select(P, U)
    summ = gds_summary(res, L, U, P)
    print(HEADER)
    print(row("default", describe(res.keep, res.mu, silent, level, POS)))
    print("per class (before -> after): " + ", ".join(
        f"{c} {v['before']}->{v['after']}" for c, v in summ["per_class"].items()))
    print(f"utterances with a forced keep: {summ['utterances_with_forced_keep']}; energy: "
          + json.dumps(summ["energy"]))
    out.update(quantile_threshold=q, default_threshold=DEFAULT_THRESHOLD, default_summary=summ)

    # 3. scopes and correlations at the same drop fraction
    print(f"\n3. scopes / correlations at drop_fraction={args.target} (Jaccard = overlap of the dropped sets "
          "with corpus+pearson)")
    print(HEADER + "  jaccard")
    ref_drop = None
    out["scopes"] = {}
    for corr in ("pearson", "bhattacharyya"):
        for scope in ("corpus", "class", "utterance"):
            cfg = GDSConfig.thesis(scope=scope, correlation=corr, drop_fraction=args.target)
            r = GaussianDataSelector(cfg).fit(P, L, U).select(P, U)
            d = describe(r.keep, r.mu, silent, level, POS)
            drop = ~r.keep
            ref_drop = drop if ref_drop is None else ref_drop
            d["jaccard"] = float((drop & ref_drop).sum() / max(1, (drop | ref_drop).sum()))
            out["scopes"][f"{scope}/{corr}"] = d
            print(row(f"{scope}/{corr[:6]}", d) + f"  {d['jaccard']:.2f}")

    # 4. leave-one-speaker-out with the default threshold
    fr = []
    for spk in np.unique(S):
        tr, te = S != spk, S == spk
        r = GaussianDataSelector(GDSConfig.thesis()).fit(P[tr], L[tr], U[tr]).select(P[te], U[te])
        fr.append(1.0 - r.keep.mean())
    print(f"\n4. leave-one-speaker-out, default threshold, dropped on the held-out speaker: "
          f"mean {100 * np.mean(fr):.1f}%, min {100 * np.min(fr):.1f}%, max {100 * np.max(fr):.1f}% "
          f"({' '.join(f'{100 * f:.0f}' for f in fr)})")
    out["loso_dropped"] = [float(f) for f in fr]

    if args.figure:
        plot_gds(res, P, L, args.figure, title=f"GDS on EmoDB ({args.classes}), default config")
        print(f"figure: {args.figure}")
    if args.json:
        args.json.write_text(json.dumps(out, indent=1, default=float))
        print(f"json: {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
