"""Probe (stop 16): Whisper-base encoder stream appended to the shipped row, shipping folds.

Compares encoder layers on the shipping folds. The encoder is emolens's
(:mod:`emolens.models.whisper`; weights from the ``whisper`` extra, or ``--model`` a
faster-whisper-base ``model.bin``); the row that ships is measured by
``benchmarks/generalisation.py --rows utt-mixup-prosody-whisper``.
    python benchmarks/whisper/whisper_probe.py extract   (about 7 min on 2 cores; resumable per corpus)
    python benchmarks/whisper/whisper_probe.py probe --seeds 0,1,2
(``--work-root``, ``--model``, ``--out``: the prepared work dirs, model.bin, the feature cache.)
Figures: benchmarks/generalisation.md, "Stop 16" and "Stop 17".
"""
import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import head_probe as hp

#: encoder layers whose frame mean and sd make a corpus's cached row (1024 values a layer)
LAYERS = (3, 4, 6)
WIDTH = 2 * 512


def layer_block(layers: tuple[int, ...]) -> np.ndarray:
    """Column indices of ``layers`` in a cached row."""
    return np.concatenate([np.arange(LAYERS.index(k) * WIDTH, (LAYERS.index(k) + 1) * WIDTH) for k in layers])


def extract(work_root: Path, model: Path | None, out: Path) -> None:
    """``out/<work dir>.npy`` ``(U, 1024 * len(LAYERS))``: per utterance, mean and sd over frames of
    each layer in :data:`LAYERS` (:func:`emolens.models.whisper.pooled_layers`: the whole clip,
    in chunks of at most 30 s; clips under 0.2 s padded to it), one encoder pass a file."""
    import torch
    from tqdm.auto import tqdm

    from emolens.audio.io import load_audio
    from emolens.models.whisper import load_whisper_encoder, pooled_layers
    from emolens.workdir import WorkDir

    torch.set_num_threads(2)
    enc = load_whisper_encoder(max(LAYERS), model)
    out.mkdir(parents=True, exist_ok=True)
    for d in hp.seeds_and_dirs("0", work_root)[1].values():
        f = out / f"{d.name}.npy"
        if f.exists():
            continue
        rows = []
        for p in tqdm(WorkDir.open(d).manifest.paths(), desc=f"{d.name} Whisper", unit="file"):
            pooled = pooled_layers(load_audio(str(p)).samples, enc, LAYERS)
            rows.append(np.concatenate([pooled[k] for k in LAYERS]))
        np.save(f, np.stack(rows).astype(np.float32))


def probe(work_root: Path, out: Path, seeds: list[int]) -> None:
    """The shipped row, and it with Whisper layers appended, on the shipping folds (head_probe's table)."""
    import torch

    from emolens.evaluation.generalisation import layer_norm, loco_folds
    from emolens.training.package import NOT_SHIPPABLE

    torch.set_num_threads(1)
    dirs = hp.seeds_and_dirs("0", work_root)[1]
    rows = hp.pooled_rows(dirs)
    W = {c: np.load(out / f"{d.name}.npy") for d, c in zip(dirs.values(), rows)}
    folds = loco_folds(list(rows), evaluate_only=sorted(set(rows) & set(NOT_SHIPPABLE)))
    print(hp.table_header(folds))
    for v, layers in (("+whisper L3,4,6 mean+sd", LAYERS), ("+whisper L4 mean+sd", (4,))):
        cols = layer_block(layers)
        vr = {c: dict(r, X=np.concatenate([r["X"], layer_norm(W[c][:, cols])], 1)) for c, r in rows.items()}
        t = time.perf_counter()
        res = np.array([[hp.run_fold(vr, list(f.train), f.test, {}, s) for f in folds] for s in seeds])
        print(hp.table_row(v, res, time.perf_counter() - t), flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("step", choices=("extract", "probe"))
    ap.add_argument("--work-root", type=Path, default=Path("runs/default/work"))
    ap.add_argument("--model", type=Path, default=None, help="a faster-whisper-base model.bin (default: the whisper extra's)")
    ap.add_argument("--out", type=Path, default=Path("runs/default/whisper"))
    ap.add_argument("--seeds", default="0,1,2")
    args = ap.parse_args(argv)
    try:
        seeds, dirs = hp.seeds_and_dirs(args.seeds, args.work_root)
    except ValueError as e:
        print(f"emolens: error: {e}", file=sys.stderr)
        return 2
    if args.step == "extract":
        from emolens.errors import WeightsError
        from emolens.models.whisper import whisper_parts

        try:
            whisper_parts(args.model)
        except WeightsError as e:
            print(f"emolens: error: {e}", file=sys.stderr)
            return 2
        extract(args.work_root, args.model, args.out)
        return 0
    missing = [d.name for d in dirs.values() if not (args.out / f"{d.name}.npy").exists()]
    if missing:
        print(f"emolens: error: no Whisper features for {', '.join(missing)} in {args.out}; run the extract "
              "step first", file=sys.stderr)
        return 2
    probe(args.work_root, args.out, seeds)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
