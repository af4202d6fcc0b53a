"""Seconds per 4-s clip of every registered attribution method, at 1 and 2 torch threads.

    python benchmarks/method_speed.py --model /work/cache/runs/yamnet-emodb \
        --audio /work/shared/data/emodb-original/wav/03a01Wa.flac [--repeats 3] [--threads 1 2]

The recording is looped/cropped to exactly 4.0 s, analysed once, and each method
(``emolens.explain.methods.METHODS`` with its registry defaults, Grad-CAM family at
``yamnet_mid``) explains the predicted class; the table gives the median wall time of
``--repeats`` runs per thread count (map only: no stitching, no faithfulness), and the
patches pushed through the model per patch explained.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch


def main() -> None:
    from emolens.audio.io import AudioClip, load_audio
    from emolens.explain.methods import DEFAULT_METHOD, METHODS, run_method
    from emolens.inference import EmotionRecognizer

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--audio", required=True)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--methods", default=",".join(METHODS))
    args = ap.parse_args()
    rec = EmotionRecognizer.from_dir(args.model)
    clip = load_audio(args.audio)
    n = int(round(4.0 * clip.sample_rate))
    wave = np.resize(clip.samples, n).astype(np.float32)  # loop / crop to 4.0 s
    a = rec.analyze_clip(AudioClip(wave, clip.sample_rate, clip.sample_rate, 1, clip.path))
    x = torch.from_numpy(a.patches).unsqueeze(1)
    t = int(np.argmax(a.probs))
    print(f"4.0 s clip, {len(x)} patches, model {args.model}, explaining {rec.classes[t]}")
    print(f"{'method':<12}" + "".join(f"{f's ({k} thr)':>12}" for k in args.threads) + f"{'evals/patch':>13}")
    for name in args.methods.split(","):
        opts = {"layer": "yamnet_mid"} if name in ("gradcam", "hirescam", "gradcampp") else {}
        row, evals = [], 0.0
        for k in args.threads:
            torch.set_num_threads(k)
            run_method(name, rec.model, x[:1], t, **opts)  # warm-up
            times = []
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                att = run_method(name, rec.model, x, t, **opts)
                times.append(time.perf_counter() - t0)
            row.append(float(np.median(times)))
            evals = att.patches_evaluated / len(x)
        mark = " (default)" if name == DEFAULT_METHOD else ""
        print(f"{name:<12}" + "".join(f"{v:>12.3f}" for v in row) + f"{evals:>13.0f}{mark}")


if __name__ == "__main__":
    main()
