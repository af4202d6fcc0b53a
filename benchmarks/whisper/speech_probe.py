"""Probe (stop 18): the Whisper stream pooled over the speech only.

The shipped Whisper model pools encoder layer 4 over every frame of the clip, silence included
(RAVDESS clips carry about a second of it). Here the frames are summed per 0.48-s segment
(:class:`emolens.models.whisper.SegmentStats`, the timeline's running sums) and only the
segments under a speech patch (YAMNet's speech gate, as the patches' vote uses it; a patch
covers its own segment and the next) are pooled; a clip without speech patches pools them all.
The row is then the shipped Whisper row (``utt-mixup-prosody-whisper``) with that stream in its
place, trained and scored on the shipping folds by the yardstick's own fold code.

    python benchmarks/whisper/speech_probe.py extract [--work-root runs/default/work]   (~16 min on 2 cores)
    python benchmarks/whisper/speech_probe.py probe --seeds 0,1,2

Figures: benchmarks/generalisation.md, "Stop 18".
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

SEGMENT = 24  # Whisper frames (20 ms) per segment: one patch hop of 0.48 s


def speech_pooled(sums: np.ndarray, squares: np.ndarray, counts: np.ndarray, speech: np.ndarray) -> np.ndarray:
    """``(1024,)`` mean and sd of the frames of the segments under a speech patch (patch ``i``
    covers segments ``i`` and ``i + 1``), of all segments when no patch is speech."""
    from emolens.models.whisper import window_stats

    keep = np.zeros(len(counts), bool)
    for i in np.flatnonzero(speech):
        keep[i: i + 2] = True
    if not keep.any():
        keep[:] = True
    s, q, c = sums[keep], squares[keep], counts[keep]
    return window_stats(s, q, c, np.array([0]), np.array([len(c)]))[0]


def extract(work_root: Path, out: Path) -> None:
    """``out/<work dir>.npy`` ``(U, 1024)``: each utterance's speech-pooled stream (resumable per corpus)."""
    import torch
    from tqdm.auto import tqdm

    from emolens.audio.io import load_audio
    from emolens.evaluation.generalisation import corpus_features
    from emolens.models.whisper import SegmentStats, shared_encoder
    from emolens.training.default_model import prepared_dirs

    torch.set_num_threads(2)
    enc = shared_encoder(4)
    out.mkdir(parents=True, exist_ok=True)
    for d in prepared_dirs(work_root).values():
        f = out / f"{d.name}.npy"
        if f.exists():
            continue
        cf = corpus_features(d)
        rows = []
        for u, p in enumerate(tqdm(cf.paths, desc=f"{d.name} Whisper segments", unit="file")):
            acc = SegmentStats(enc, 4, SEGMENT)
            acc.add(load_audio(str(p), max_seconds=None).samples)
            rows.append(speech_pooled(*acc.finish(), cf.speech[cf.utt == u]))
        np.save(f, np.stack(rows).astype(np.float32))


def probe(work_root: Path, out: Path, seeds: list[int]) -> None:
    """The shipped Whisper row with the all-frames stream and with the speech-pooled one."""
    from emolens.evaluation.generalisation import run_loco, summarise
    from emolens.training.default_model import WHISPER_HEAD, load_corpus_features, prepared_dirs

    dirs = prepared_dirs(work_root)
    data = load_corpus_features(dirs.values(), WHISPER_HEAD)
    by_dir = {Path(d).name: name for name, d in zip(data, dirs.values())}
    streams = {"all frames": {c: cf.whisper for c, cf in data.items()},
               "speech frames": {by_dir[f.stem]: np.load(f) for f in out.glob("*.npy")}}
    held = ["casia", "turev"]
    for label, w in streams.items():
        runs = []
        for seed in seeds:
            for c, cf in data.items():
                cf.whisper = w[c]
            t = time.perf_counter()
            s = summarise(run_loco(WHISPER_HEAD, data, seed=seed, out=None, log=None, evaluate_only=held))
            runs.append(s)
            print(f"{label} seed {seed}: mean {s['mean_uar']:.3f} worst {s['worst_uar']:.3f} "
                  + " ".join(f"{c} {m['uar']:.3f}" for c, m in s["per_corpus"].items()) + f" ({time.perf_counter() - t:.0f} s)")
        mean, worst = [r["mean_uar"] for r in runs], [r["worst_uar"] for r in runs]
        per = {c: np.mean([r["per_corpus"][c]["uar"] for r in runs]) for c in runs[0]["per_corpus"]}
        print(f"| {label} | {np.mean(mean):.3f} ± {np.std(mean):.3f} | {np.mean(worst):.3f} ± {np.std(worst):.3f} | "
              + " | ".join(f"{per[c]:.3f}" for c in per) + " |")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("step", choices=["extract", "probe"])
    ap.add_argument("--work-root", type=Path, default=Path("runs/default/work"))
    ap.add_argument("--out", type=Path, default=Path("runs/default/whisper-speech"))
    ap.add_argument("--seeds", default="0,1,2")
    args = ap.parse_args(argv)
    try:
        seeds = [int(s) for s in args.seeds.split(",")]
    except ValueError:
        print(f"emolens: error: --seeds {args.seeds!r} is not a comma-separated list of integers", file=sys.stderr)
        return 2
    try:
        if args.step == "extract":
            extract(args.work_root, args.out)
        else:
            probe(args.work_root, args.out, seeds)
    except ValueError as e:
        print(f"emolens: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
