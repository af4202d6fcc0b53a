"""Inference real-time factor on the CPU and head training time per epoch.

Real-time factor = seconds of audio classified per wall second, for a batch of clips
through the whole pipeline (front end, GDS, backbones, head), per model kind.
Head-mode training time per epoch is measured on cached features of a prepared work dir.

    python benchmarks/inference_speed.py --work runs/demo/work [--clips 32] [--seconds 4]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch


def main() -> None:
    from emolens.audio.io import AudioClip
    from emolens.inference import EmotionRecognizer
    from emolens.models import build_model
    from emolens.training.data import backbone_features
    from emolens.training.trainer import TrainConfig, fit
    from emolens.workdir import WorkDir

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", required=True)
    ap.add_argument("--clips", type=int, default=32)
    ap.add_argument("--seconds", type=float, default=4.0)
    args = ap.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    work = WorkDir.open(args.work)
    classes = work.classes
    rng = np.random.default_rng(0)
    clips = [AudioClip((0.1 * rng.standard_normal(int(args.seconds * 16000))).astype(np.float32), 16000, 16000, 1)
             for _ in range(args.clips)]
    audio_s = args.clips * args.seconds
    print(f"threads {torch.get_num_threads()}, {args.clips} clips x {args.seconds:.0f} s = {audio_s:.0f} s audio")
    ps = work.patchset(progress=False)
    for kind in ("yamnet", "vggish", "fusion"):
        model, _ = build_model(kind, len(classes))
        cfg = {"classes": classes, "frontend": work.info["frontend"], "patches": work.info["patches"],
               "gds": {"enabled": False}}
        rec = EmotionRecognizer(model, cfg)
        rec.analyze_clip(clips[0])
        t0 = time.perf_counter()
        for c in clips:
            rec.analyze_clip(c)
        dt = time.perf_counter() - t0
        feats = backbone_features(model, ps.patches, work.root / "embeddings", progress=False)
        idx = np.arange(len(ps.utt))
        head = model.head
        inputs = lambda i, t=False: {k: torch.from_numpy(v[i]) for k, v in feats.items()}
        res = fit(head, inputs, ps.y, idx, None, ps.utt, len(classes), TrainConfig(epochs=3, patience=99), progress=False)
        print(f"{kind:<7} inference RTF {audio_s / dt:7.1f}x real time ({dt / args.clips * 1000:.0f} ms per clip)   "
              f"head training {res.seconds / 3:.3f} s/epoch on {len(idx)} patches")


if __name__ == "__main__":
    main()
