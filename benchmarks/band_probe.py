"""Probe frequency-resolved YAMNet streams on the shipping folds (stop 16; dropped).

    python benchmarks/band_probe.py --work-root runs/default/work --variants ship,l5b,l9b,l5b+l7b+l9b --seeds 0,1,2

The shipped streams pool each YAMNet layer over time *and* frequency (mean and max of the
patch), so where in frequency a pattern sits (pitch register, formant region) reaches the
head only through the prosody functionals. A band stream keeps the frequency axis: the
time-mean of a layer's map per frequency band, ``l5b`` = layer 5 ``(256, 12 x 8)`` -> 4 bands of
2 cells (1024), ``l7b``/``l9b`` = layers 7/9 ``(512, 6 x 4)`` -> 4 cells (2048 each). Each is layer
normalised per patch and averaged over the utterance's speech patches (``pool_streams``), then
appended to the shipped row and trained with ``benchmarks/head_probe.py``'s fold code (the
shipped head's settings). ``ship`` is the row without bands (0.490 / 0.429 at stop 15-16).

One YAMNet pass per corpus computes the bands (about 4 min for the six corpora on 2 threads),
cached in ``--cache`` (``<work dir name>.npz``, float16). Figures: ``benchmarks/generalisation.md``,
"Stop 16".
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import head_probe

#: band streams: name -> (YAMNet layer index, frequency cells per band, pool over time)
BANDS = {"l5b": (5, 2, "mean"), "l5bx": (5, 2, "max"), "l7b": (7, 1, "mean"), "l9b": (9, 1, "mean")}


def band_features(work_dir: Path, cache: Path, yam) -> dict[str, np.ndarray]:
    """``{stream: (P, C * bands)}`` float16 for every patch of a prepared work dir (patch-set order)."""
    import torch

    from emolens.models.fusion import vggish_to_yamnet_input
    from emolens.workdir import WorkDir

    f = cache / f"{work_dir.name}.npz"
    if f.exists():
        return dict(np.load(f))
    ps = WorkDir.open(work_dir).patchset(progress=False)
    out: dict[str, list] = {k: [] for k in BANDS}
    top = max(layer for layer, _, _ in BANDS.values())
    with torch.no_grad():
        for s in range(0, len(ps.patches), 256):
            h = vggish_to_yamnet_input(torch.from_numpy(ps.patches[s:s + 256]).unsqueeze(1))
            for i, blk in enumerate(yam.layers[:top + 1]):
                h = blk(h)
                for k, (layer, width, how) in BANDS.items():
                    if layer == i:  # (B, C, T, F) -> pooled over time -> (B, C, F / width, width) -> bands
                        m = h.mean(2) if how == "mean" else h.amax(2)
                        m = m.reshape(len(m), m.shape[1], -1, width)
                        out[k].append((m.mean(-1) if how == "mean" else m.amax(-1)).flatten(1).half())
    feats = {k: torch.cat(v).numpy() for k, v in out.items()}
    cache.mkdir(parents=True, exist_ok=True)
    np.savez(f, **feats)
    return feats


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work-root", type=Path, default=Path("runs/default/work"))
    ap.add_argument("--cache", type=Path, default=Path("runs/default/bands"))
    ap.add_argument("--variants", default="ship,l5b,l9b,l5b+l7b+l9b",
                    help="comma-separated; a variant is 'ship' or band streams joined by '+'")
    ap.add_argument("--seeds", default="0,1,2")
    args = ap.parse_args(argv)
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    bad = [v for v in variants if v != "ship" and any(k not in BANDS for k in v.split("+"))]
    if bad:
        print(f"emolens: error: unknown variant(s) {', '.join(bad)}; use 'ship' or streams of {', '.join(BANDS)} "
              "joined by '+'", file=sys.stderr)
        return 2
    try:
        seeds, dirs = head_probe.seeds_and_dirs(args.seeds, args.work_root)
    except ValueError as e:
        print(f"emolens: error: {e}", file=sys.stderr)
        return 2
    import torch

    from emolens.evaluation.generalisation import loco_folds
    from emolens.evaluation.utterance_levers import pool_streams
    from emolens.models import load_yamnet_file, resolve_weights
    from emolens.training.default_model import DEFAULT_HEAD, load_corpus_features
    from emolens.training.package import NOT_SHIPPABLE

    t0 = time.perf_counter()
    torch.set_num_threads(2)
    yam = load_yamnet_file(resolve_weights("yamnet", None)).eval()
    data = load_corpus_features(list(dirs.values()), DEFAULT_HEAD)  # same order as dirs
    rows = head_probe.pooled_rows(dirs, data)
    bands = {}
    for d, (name, cf) in zip(dirs.values(), data.items()):
        feats = {k: v.astype(np.float32) for k, v in band_features(d, args.cache, yam).items()}
        bands[name] = {k: pool_streams(feats, cf.utt, cf.speech, cf.n_utt, (k,)) for k in feats}
    torch.set_num_threads(1)
    folds = loco_folds(list(rows), evaluate_only=sorted(set(rows) & set(NOT_SHIPPABLE)))
    print(f"loaded {len(rows)} corpora and their bands in {time.perf_counter() - t0:.0f} s", flush=True)
    print(head_probe.table_header(folds))
    for v in variants:
        keys = [] if v == "ship" else v.split("+")
        vrows = {c: dict(r, X=np.concatenate([r["X"]] + [bands[c][k] for k in keys], 1)) for c, r in rows.items()}
        t = time.perf_counter()
        res = np.array([[head_probe.run_fold(vrows, list(f.train), f.test, {}, s) for f in folds] for s in seeds])
        print(head_probe.table_row(v, res, time.perf_counter() - t), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
