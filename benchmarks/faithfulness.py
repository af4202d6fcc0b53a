"""Faithfulness of each explanation method over many clips: deletion and insertion AUC
of Grad-CAM, LIME and Occlusion vs a random order on the same clip, plus seconds per
clip and forward passes per method.

    python benchmarks/faithfulness.py --model runs/demo/fusion --work runs/demo/work \
        [--per-class 10] [--layer vggish] [--lime-samples 200] [--out faith.json]

Lower deletion AUC and higher insertion AUC than random = the map points at what the
model uses. A method no better than random shows gains near 0.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict

import numpy as np
from tqdm.auto import tqdm


def main() -> None:
    from emolens.audio.io import load_audio
    from emolens.explain.faithfulness import faithfulness, utterance_predictor
    from emolens.explain.pipeline import METHODS, explain_maps
    from emolens.inference import EmotionRecognizer
    from emolens.workdir import WorkDir

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--per-class", type=int, default=10)
    ap.add_argument("--layer", default="vggish")
    ap.add_argument("--lime-samples", type=int, default=200)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    rec = EmotionRecognizer.from_dir(args.model)
    work = WorkDir.open(args.work)
    rng = np.random.default_rng(0)
    chosen = []
    for lab in rec.classes:
        idx = [i for i, u in enumerate(work.manifest) if u.label == lab]
        chosen += list(rng.choice(idx, size=min(args.per_class, len(idx)), replace=False))
    predict = utterance_predictor(rec.model)
    rows = defaultdict(lambda: defaultdict(list))
    secs, passes = defaultdict(list), defaultdict(list)
    for i in tqdm(chosen, desc="clips"):
        u = work.manifest[int(i)]
        a = rec.analyze_clip(load_audio(u.path))
        t = int(np.argmax(a.probs))
        maps = {}
        for m in METHODS:
            t0 = time.perf_counter()
            res = explain_maps(rec, a, t, (m,), layer=args.layer, lime_samples=args.lime_samples, progress=False)
            secs[m].append((time.perf_counter() - t0) / a.clip.duration * 4.0)  # per 4 s of audio
            passes[m].append(res["cost"][m]["patches_evaluated"] / len(a.patches))
            maps[m] = res["maps"][m]
        fa = faithfulness(predict, a.log_mel, maps, t)
        for k, v in fa.items():
            rows[k]["deletion"].append(v["deletion_auc"])
            rows[k]["insertion"].append(v["insertion_auc"])
            if k != "random":
                rows[k]["beats_random"].append(v["deletion_gain"] > 0 and v["insertion_gain"] > 0)
    print(f"\n{len(chosen)} clips, model {args.model} ({rec.config['model']}), Grad-CAM layer {args.layer}")
    print(f"{'method':<10}{'deletion AUC':>14}{'insertion AUC':>15}{'beats random':>14}{'s / 4 s clip':>14}{'evals/patch':>13}")
    table = {}
    for k in (*METHODS, "random"):
        d, ins = np.array(rows[k]["deletion"]), np.array(rows[k]["insertion"])
        br = float(np.mean(rows[k]["beats_random"])) if k != "random" else None
        s = float(np.mean(secs[k])) if k in secs else None
        ev = float(np.mean(passes[k])) if k in passes else None
        table[k] = {"patch_evaluations_per_patch": ev, "deletion_auc": float(d.mean()), "deletion_sd": float(d.std()), "insertion_auc": float(ins.mean()),
                    "insertion_sd": float(ins.std()), "beats_random_fraction": br, "seconds_per_4s_clip": s}
        print(f"{k:<10}{d.mean():>8.3f} ±{d.std():.3f}{ins.mean():>9.3f} ±{ins.std():.3f}"
              f"{'' if br is None else f'{br:>13.0%}':>14}{'' if s is None else f'{s:>13.2f}':>14}"
              f"{'' if ev is None else f'{ev:>12.0f}':>13}")
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"clips": len(chosen), "model": args.model, "layer": args.layer, "table": table}, f, indent=2)


if __name__ == "__main__":
    main()
