"""How much of each shipped model's decisions the map can show: the streams' Shapley shares
(:mod:`emolens.explain.streams`) per corpus, on the clips ``benchmarks/faithfulness.py`` explains.

    python benchmarks/stream_shares.py                       # both shipped models, 3 clips per class per corpus
    python benchmarks/stream_shares.py --models whisper --per-class 6

Per corpus and model: the mean share of the evidence for the predicted class (|Shapley value|
over the sum of |values|) of each stream, and how often the spectrogram (the map's stream) holds
the largest share. Figures: benchmarks/faithfulness.md, "Stop 19".
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from faithfulness import CORPORA, pick_clips  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="default,whisper", help="shipped model names or run directories")
    ap.add_argument("--data", default=str(Path(os.environ.get("EMOLENS_SHARED", Path(__file__).resolve().parents[2] / "shared"))
                                          / "data"))
    ap.add_argument("--corpora", default=",".join(CORPORA))
    ap.add_argument("--per-class", type=int, default=3)
    args = ap.parse_args(argv)
    import torch

    from emolens.errors import EmolensError
    from emolens.explain.streams import STREAM_LABELS, explain_streams
    from emolens.inference import EmotionRecognizer, resolve_model

    torch.set_num_threads(2)
    for name in [m for m in args.models.split(",") if m]:
        try:
            rec = EmotionRecognizer.from_dir(resolve_model(name))
        except EmolensError as e:
            print(f"emolens: error: {e}", file=sys.stderr)
            return 2
        rows, t0 = [], time.perf_counter()
        for corpus in [c for c in args.corpora.split(",") if c]:
            shares, top = [], 0
            for path, _ in pick_clips(Path(args.data), corpus, list(rec.classes), args.per_class):
                a = rec.analyze(path)
                s = explain_streams(rec, a, int(np.argmax(a.probs)))
                if s is None:
                    print(f"{name}: the model has no streams to split (a vote or statistics head)")
                    return 0
                shares.append(s.shares)
                top += int(np.argmax(s.shares) == s.names.index("spectrogram"))
            rows.append((corpus, np.mean(shares, 0), top / len(shares), len(shares)))
        names = s.names
        print(f"\n{name} ({len(rows)} corpora, {time.perf_counter() - t0:.0f} s): mean share of the evidence for the "
              "predicted class")
        print("| corpus | clips | " + " | ".join(STREAM_LABELS.get(n, n) for n in names) + " | spectrogram largest |")
        print("|---" * (len(names) + 3) + "|")
        for corpus, m, top, n in rows:
            print(f"| {corpus} | {n} | " + " | ".join(f"{v:.0%}" for v in m) + f" | {top:.0%} |")
        mean = np.mean([r[1] for r in rows], 0)
        print("| **mean** | | " + " | ".join(f"{v:.0%}" for v in mean) + f" | {np.mean([r[2] for r in rows]):.0%} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
