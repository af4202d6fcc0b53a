"""Probe (stops 16 and 19): which Whisper-base encoder state to append to the shipped row, on the shipping folds.

Compares the encoder's states (the conv stem and blocks 1-6; one at a time, or averaged) as
the utterance stream appended to the shipped row. The encoder is emolens's
(:mod:`emolens.models.whisper`; weights from the ``whisper`` extra, or ``--model`` a
faster-whisper-base ``model.bin``); the row that ships is measured by
``benchmarks/generalisation.py --rows utt-mixup-prosody-whisper``.
    python benchmarks/whisper/whisper_probe.py extract   (about 16 min on 2 cores; resumable per corpus)
    python benchmarks/whisper/whisper_probe.py probe --seeds 0,1,2   (about 1 min a variant)
    python benchmarks/whisper/whisper_probe.py extract-speed && ... probe-speed   (9 + 3 min: speed-perturbed training copies)
    python benchmarks/whisper/whisper_probe.py extract-pool && ... probe-pool   (layer 4's frame dynamics, max and range)
    python benchmarks/whisper/whisper_probe.py extract-gate && ... probe-gate   (energy-gated frames, common level)
    python benchmarks/whisper/whisper_probe.py extract-avg && ... probe-avg   (layers 3-5 averaged, with the MLP head; stop 25)
(``--work-root``, ``--model``, ``--out``: the prepared work dirs, model.bin, the feature cache.)
Figures: benchmarks/generalisation.md, "Stop 16", "Stop 19" and "Stop 20".
"""
import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import head_probe as hp

#: encoder states whose frame mean and sd make a corpus's cached row (1024 values a state;
#: 0 is the conv stem with positions, k the output of block k)
LAYERS = (0, 1, 2, 3, 4, 5, 6)
WIDTH = 2 * 512


def layer_block(layers: tuple[int, ...]) -> np.ndarray:
    """Column indices of ``layers`` in a cached row."""
    return np.concatenate([np.arange(LAYERS.index(k) * WIDTH, (LAYERS.index(k) + 1) * WIDTH) for k in layers])


def extract_rows(work_root: Path, model: Path | None, out: Path, suffix: str, layer: int, row, desc: str,
                 skip: tuple[str, ...] = ()) -> None:
    """The loop every ``extract*`` command runs: for each prepared work dir (corpus order; not the
    corpora in ``skip``), ``out/<work dir><suffix>.npy`` ``(U, D)``: ``row(i, samples, encoder)`` of its
    i-th file (mono 16 kHz samples), one row a file; an existing file is kept (resumable per
    corpus). The encoder runs up to ``layer`` on two threads."""
    import torch
    from tqdm.auto import tqdm

    from emolens.audio.io import load_audio
    from emolens.models.whisper import load_whisper_encoder

    torch.set_num_threads(2)
    enc = load_whisper_encoder(layer, model)
    out.mkdir(parents=True, exist_ok=True)
    for c, d in hp.seeds_and_dirs("0", work_root)[1].items():
        f = out / f"{d.name}{suffix}.npy"
        if f.exists() or c in skip:
            continue
        rows = [row(i, load_audio(str(p)).samples, enc)
                for i, p in enumerate(tqdm(workdir_paths(d), desc=f"{d.name} {desc}", unit="file"))]
        np.save(f, np.stack(rows).astype(np.float32))


def extract(work_root: Path, model: Path | None, out: Path) -> None:
    """``out/<work dir>.npy`` ``(U, 1024 * len(LAYERS))``: per utterance, mean and sd over frames of
    each layer in :data:`LAYERS` (:func:`emolens.models.whisper.pooled_layers`: the whole clip,
    in chunks of at most 30 s; clips under 0.2 s padded to it), one encoder pass a file."""
    from emolens.models.whisper import pooled_layers

    def row(i: int, x: np.ndarray, enc) -> np.ndarray:
        pooled = pooled_layers(x, enc, LAYERS)
        return np.concatenate([pooled[k] for k in LAYERS])

    extract_rows(work_root, model, out, "", max(LAYERS), row, "Whisper")


#: (name, states, how, head options): ``concat`` appends each state's 1024 values, ``avg`` their
#: average, ``only`` replaces the YAMNet streams with them (prosody and Whisper alone); the
#: options are head_probe.run_fold's (``wd`` weight decay, ``epochs``, ``pw`` prosody weight,
#: ``cnap`` corpus directions projected out, ``hidden`` an MLP, ``hiddens`` heads of these sizes
#: averaged, ``adv`` the MLP's corpus adversary), the shipped head's where not given; ``sd``
#: appends the frames' sd alone, ``sd-after`` the first state's mean and sd and the next ones' sd
VARIANTS = (
    ("+whisper L4 (ships)", (4,), "concat", {}),
    ("+whisper L2", (2,), "concat", {}),
    ("+whisper L3", (3,), "concat", {}),
    ("+whisper L5", (5,), "concat", {}),
    ("+whisper L6", (6,), "concat", {}),
    ("+whisper avg L3-5", (3, 4, 5), "avg", {}),
    ("+whisper avg L1-6", (1, 2, 3, 4, 5, 6), "avg", {}),
    ("whisper L4 without YAMNet", (4,), "only", {}),
    ("+whisper L4 wd 1e-3", (4,), "concat", {"wd": 1e-3}),
    ("+whisper L4 wd 1e-2", (4,), "concat", {"wd": 1e-2}),
    ("+whisper L4 20 epochs", (4,), "concat", {"epochs": 20}),
    ("+whisper L4 80 epochs", (4,), "concat", {"epochs": 80}),
    ("+whisper L4 prosody weight 1", (4,), "concat", {"pw": 1.0}),
    ("+whisper L4 prosody weight 0.5", (4,), "concat", {"pw": 0.5}),
    ("+whisper L4 cnap 2", (4,), "concat", {"cnap": 2}),
    ("+whisper L4 sd alone", (4,), "sd", {}),
    ("+whisper L4 MLP 128", (4,), "concat", {"hidden": 128}),
    ("+whisper L4 MLP 128 + corpus adversary 0.3", (4,), "concat", {"hidden": 128, "adv": 0.3}),
    ("+whisper L4 linear and MLP 128 heads averaged", (4,), "concat", {"hiddens": (0, 128)}),
    ("+whisper L4 linear and MLP 256 heads averaged", (4,), "concat", {"hiddens": (0, 256)}),
    ("+whisper L4 + L3 sd", (4, 3), "sd-after", {}),
    ("+whisper L4 + L5 sd", (4, 5), "sd-after", {}),
    # stop 25: the states again, now with the Whisper model's head (``mlp``: an MLP 256 on the
    # appended Whisper columns beside the linear head, as shipped since stop 21)
    ("+whisper L4 MLP (ships)", (4,), "concat", {"mlp": 256}),
    ("+whisper L3 MLP", (3,), "concat", {"mlp": 256}),
    ("+whisper L5 MLP", (5,), "concat", {"mlp": 256}),
    ("+whisper avg L3-5 MLP", (3, 4, 5), "avg", {"mlp": 256}),
    ("+whisper L3 and L4 MLP", (3, 4), "concat", {"mlp": 256}),
    ("+whisper L4 and L5 MLP", (4, 5), "concat", {"mlp": 256}),
)


#: speed perturbation of the training copies (tempo and pitch together, as Kaldi's speed
#: perturbation): file i of a corpus is played ``SPEEDS[i % 2]`` times as fast
SPEEDS = (0.9, 1.1)


def speed_copy(samples: np.ndarray, factor: float, sr: int = 16000) -> np.ndarray:
    """``samples`` played ``factor`` times as fast (duration / factor, pitch x factor): read as
    if sampled at ``sr * factor`` and resampled to ``sr`` (soxr)."""
    import soxr

    return soxr.resample(np.asarray(samples, np.float32), sr * factor, sr).astype(np.float32)


def extract_speed(work_root: Path, model: Path | None, out: Path) -> None:
    """``out/<work dir>-speed.npy`` ``(U, 1024)``: layer 4's mean and sd of a speed-perturbed copy
    of every file of the corpora trained on (:data:`SPEEDS`, alternating); CASIA and TurEV-DB are only tested."""
    from emolens.models.whisper import pooled_layers
    from emolens.training.package import NOT_SHIPPABLE

    extract_rows(work_root, model, out, "-speed", 4,
                 lambda i, x, enc: pooled_layers(speed_copy(x, SPEEDS[i % 2]), enc, (4,))[4], "speed",
                 skip=tuple(NOT_SHIPPABLE))  # only tested on the shipping folds


#: layer 4's frame statistics in a ``-pool`` row, 512 values each (``extract-pool``)
POOLS = ("mean", "sd", "dsd", "max", "range")


def frame_pools(frames: np.ndarray) -> np.ndarray:
    """``(512 * len(POOLS),)``: of ``frames (T, 512)``, the mean, sd, sd of the frame-to-frame
    differences (how fast the state moves), max, and 90th minus 10th percentile."""
    f = frames.astype(np.float64)
    d = np.diff(f, axis=0) if len(f) > 1 else np.zeros_like(f)
    p10, p90 = np.percentile(f, [10, 90], axis=0)
    return np.concatenate([f.mean(0), f.std(0), d.std(0), f.max(0), p90 - p10])


def extract_pool(work_root: Path, model: Path | None, out: Path) -> None:
    """``out/<work dir>-pool.npy`` ``(U, 512 * len(POOLS))``: :func:`frame_pools` of layer 4."""
    from emolens.models.whisper import encoder_states

    extract_rows(work_root, model, out, "-pool", 4, lambda i, x, enc: frame_pools(encoder_states(x, enc, (4,))[4]),
                 "pools")


#: the energy gate's range below the clip's loudest 20-ms frame (dB), and the active level
#: ``extract-gate`` scales clips to (dBFS of the gated frames' mean power)
GATE_TOP_DB = 40.0
TARGET_DBFS = -26.0


def frame_power(samples: np.ndarray, n_frames: int) -> np.ndarray:
    """``(n_frames,)`` mean power of each 20-ms (320-sample) Whisper frame; 0 past the samples' end."""
    x = np.asarray(samples, np.float64)
    n = min(n_frames, x.size // 320)
    p = np.zeros(n_frames)
    p[:n] = (x[: n * 320].reshape(n, 320) ** 2).mean(1)
    return p


def frame_gate(samples: np.ndarray, n_frames: int, top_db: float = GATE_TOP_DB) -> np.ndarray:
    """``(n_frames,)`` bool: the Whisper frames (20 ms, 320 samples each) whose energy is within
    ``top_db`` of the loudest frame's (all frames where fewer than 5 pass)."""
    db = 10 * np.log10(frame_power(samples, n_frames) + 1e-12)
    db[np.size(samples) // 320:] = -np.inf  # frames past the samples' end never pass
    gate = db > db.max() - top_db
    return gate if gate.sum() >= 5 else np.ones(n_frames, bool)


def level_normalised(samples: np.ndarray, target_dbfs: float = TARGET_DBFS) -> np.ndarray:
    """The clip scaled so that its gated frames' mean power is ``target_dbfs`` (silent clips as they are)."""
    x = np.asarray(samples, np.float32)
    n = x.size // 320
    if n == 0:
        return x
    p = frame_power(x, n)[frame_gate(x, n)].mean()
    return x if p <= 1e-12 else (x * np.sqrt(10 ** (target_dbfs / 10) / p)).astype(np.float32)


#: ``extract-gate`` row blocks (1024 values each: layer 4's frame mean and sd)
GATES = ("raw all", "raw gated", "level all", "level gated")


def extract_gate(work_root: Path, model: Path | None, out: Path) -> None:
    """``out/<work dir>-gate.npy`` ``(U, 1024 * len(GATES))``: layer 4's mean and sd over all
    frames and over the energy-gated frames (:func:`frame_gate`), of the clip as recorded and
    scaled to a common active level (:func:`level_normalised`); two encoder passes a file."""
    from emolens.models.whisper import chunks, encoder_states, pool_frames

    def row(i: int, x: np.ndarray, enc) -> np.ndarray:
        parts = []
        for clip in (x, level_normalised(x)):
            fr = encoder_states(clip, enc, (4,))[4]
            g = frame_gate(np.concatenate(chunks(clip)), len(fr))  # of what was encoded (short clips padded)
            parts += [pool_frames(fr), pool_frames(fr[g])]
        return np.concatenate(parts)

    extract_rows(work_root, model, out, "-gate", 4, row, "gates")


#: (name, GATES block, head options) probed after the blocks: the stop-20 linear + MLP 256 average
#: (the MLP reads every column), and the same with the MLP on the per-clip streams only (Whisper and
#: prosody, or Whisper alone: the utterance logits stay the patches' linear shares plus one per-clip
#: term; with Whisper alone the prosody lines stay linear too)
GATE_HEADS = (
    ("raw all: linear and MLP 256 averaged", 0, {"hiddens": (0, 256)}),
    ("raw all: linear + MLP 256 on Whisper and prosody", 0, {"parts": ((0, 0), (256, -(WIDTH + 82)))}),
    ("raw all: linear + MLP 256 on Whisper", 0, {"parts": ((0, 0), (256, -(WIDTH + 82), -82))}),
)


#: (name, blocks, head options): GATES blocks side by side (a tuple of indices), or averaged
#: (``("avg", i, j)``)
GATE_MIXES = (
    ("raw all and raw gated", (0, 1), {}),
    ("raw all and raw gated averaged", ("avg", 0, 1), {}),
    ("level all and level gated averaged", ("avg", 2, 3), {}),
    ("raw all and gated averaged: linear and MLP 256 averaged", ("avg", 0, 1), {"hiddens": (0, 256)}),
    ("raw all and gated averaged: linear + MLP 256 on Whisper", ("avg", 0, 1), {"parts": ((0, 0), (256, -(WIDTH + 82), -82))}),
)


def probe_gate(work_root: Path, out: Path, seeds: list[int], only: str | None = None) -> None:
    """The shipped row with each :data:`GATES` block as its Whisper stream, then :data:`GATE_HEADS`
    and :data:`GATE_MIXES` (``only``: comma-separated names)."""
    from emolens.evaluation.generalisation import layer_norm

    dirs, rows, folds = hp.shipping_folds(work_root)
    W = {c: np.load(out / f"{d.name}-gate.npy") for d, c in zip(dirs.values(), rows)}
    block = lambda c, i: W[c][:, i * WIDTH:(i + 1) * WIDTH]  # noqa: E731 - GATES block i of corpus c
    for name, i, opts in [(g, i, {}) for i, g in enumerate(GATES)] + list(GATE_HEADS) + list(GATE_MIXES):
        if only is not None and name not in only.split(","):
            continue
        if isinstance(i, tuple) and i[0] == "avg":  # the blocks' average, one stream
            stream = {c: layer_norm(np.mean([block(c, k) for k in i[1:]], 0)) for c in rows}
        elif isinstance(i, tuple):  # the blocks side by side, each normalised apart
            stream = {c: np.concatenate([layer_norm(block(c, k)) for k in i], 1) for c in rows}
        else:
            stream = {c: layer_norm(block(c, i)) for c in rows}
        vr = {c: dict(r, X=np.concatenate([r["X"], stream[c]], 1)) for c, r in rows.items()}
        hp.print_row(f"+whisper L4, {name}", vr, folds, seeds, opts)


#: stop 25: the encoder states whose frames are averaged before pooling (``extract-avg``)
AVG_LAYERS = (3, 4, 5)


def extract_avg(work_root: Path, model: Path | None, out: Path) -> None:
    """``out/<work dir>-avg.npy`` ``(U, 1024)``: mean and sd over frames of the frame-by-frame
    average of the states :data:`AVG_LAYERS` (one pooled stream, as a single state's is; the
    ``avg`` variants of ``probe`` average the states' pooled vectors instead)."""
    from emolens.models.whisper import encoder_states, pool_frames

    def row(i: int, x: np.ndarray, enc) -> np.ndarray:
        states = encoder_states(x, enc, AVG_LAYERS)
        return pool_frames(np.mean([states[k] for k in AVG_LAYERS], 0))

    extract_rows(work_root, model, out, "-avg", max(AVG_LAYERS), row, "Whisper avg")


def probe_avg(work_root: Path, out: Path, seeds: list[int]) -> None:
    """The Whisper model's head on layer 4 (ships), on the pooled vectors of :data:`AVG_LAYERS`
    averaged, and on the pooled average of their frames (``extract-avg``)."""
    from emolens.evaluation.generalisation import layer_norm

    dirs, rows, folds = hp.shipping_folds(work_root)
    names = {c: d.name for d, c in zip(dirs.values(), rows)}
    W = {c: np.load(out / f"{names[c]}.npy") for c in rows}
    streams = {
        "+whisper L4 MLP (ships)": {c: W[c][:, layer_block((4,))] for c in rows},
        "+whisper L3-5 pooled, averaged, MLP": {c: np.mean([W[c][:, layer_block((k,))] for k in AVG_LAYERS], 0)
                                                for c in rows},
        "+whisper L3-5 frames averaged, pooled, MLP": {c: np.load(out / f"{names[c]}-avg.npy") for c in rows},
    }
    for name, stream in streams.items():
        vr = {c: dict(r, X=np.concatenate([r["X"], layer_norm(stream[c])], 1)) for c, r in rows.items()}
        hp.print_row(name, vr, folds, seeds, {"parts": ((0, 0), (256, -WIDTH - 82, -82, 0, 1.0))})


def workdir_paths(d: Path) -> list:
    from emolens.workdir import WorkDir

    return list(WorkDir.open(d).manifest.paths())


#: (name, pools appended after the shipped mean+sd block, each layer-normalised apart)
POOL_VARIANTS = (
    ("+whisper L4 (ships)", ()),
    ("+whisper L4 + dsd", ("dsd",)),
    ("+whisper L4 + max", ("max",)),
    ("+whisper L4 + range", ("range",)),
    ("+whisper L4 + dsd and range", ("dsd", "range")),
)


def probe_pool(work_root: Path, out: Path, seeds: list[int]) -> None:
    """The shipped Whisper row with more of layer 4's frame statistics appended (:data:`POOL_VARIANTS`)."""
    from emolens.evaluation.generalisation import layer_norm

    dirs, rows, folds = hp.shipping_folds(work_root)
    W = {c: np.load(out / f"{d.name}-pool.npy") for d, c in zip(dirs.values(), rows)}
    part = lambda c, k: W[c][:, POOLS.index(k) * 512:(POOLS.index(k) + 1) * 512]  # noqa: E731
    for name, extra in POOL_VARIANTS:
        vr = {c: dict(r, X=np.concatenate([r["X"], layer_norm(np.concatenate([part(c, "mean"), part(c, "sd")], 1))]
                                          + [layer_norm(part(c, k)) for k in extra], 1)) for c, r in rows.items()}
        hp.print_row(name, vr, folds, seeds)


def probe_speed(work_root: Path, out: Path, seeds: list[int]) -> None:
    """The shipped Whisper row, and it trained on each corpus twice: as recorded, and with the
    Whisper stream of its speed-perturbed copy (the YAMNet streams and functionals of the
    recording; each copy weighs as one more corpus). Test corpora as recorded."""
    from emolens.evaluation.generalisation import layer_norm

    dirs, rows, folds = hp.shipping_folds(work_root)
    W = {c: np.load(out / f"{d.name}.npy")[:, layer_block((4,))] for d, c in zip(dirs.values(), rows)}
    A = {c: np.load(out / f"{d.name}-speed.npy") for d, c in zip(dirs.values(), rows) if (out / f"{d.name}-speed.npy").exists()}
    vr = {c: dict(r, X=np.concatenate([r["X"], layer_norm(W[c])], 1)) for c, r in rows.items()}
    aug = {f"{c}~speed": dict(rows[c], X=np.concatenate([rows[c]["X"], layer_norm(A[c])], 1)) for c in A}
    for name, extra in (("+whisper L4 (ships)", False), ("+whisper L4, speed-perturbed copies in training", True)):
        t = time.perf_counter()
        both = {**vr, **aug}
        res = np.array([[hp.run_fold(both, list(f.train) + ([f"{c}~speed" for c in f.train if c in A] if extra else []),
                                     f.test, {}, s) for f in folds] for s in seeds])
        print(hp.table_row(name, res, time.perf_counter() - t), flush=True)


def probe(work_root: Path, out: Path, seeds: list[int], only: str | None = None) -> None:
    """The shipped row, and it with Whisper layers appended, on the shipping folds (head_probe's table)."""
    from emolens.evaluation.generalisation import layer_norm

    dirs, rows, folds = hp.shipping_folds(work_root)
    W = {c: np.load(out / f"{d.name}.npy") for d, c in zip(dirs.values(), rows)}
    for v, layers, how, opts in [v for v in VARIANTS if only is None or v[0] in only.split(",")]:
        if how in ("concat", "only"):
            block = {c: W[c][:, layer_block(layers)] for c in rows}
        elif how == "sd":  # the second half of each state's block: the sd over frames
            block = {c: W[c][:, layer_block(layers)[512:]] for c in rows}
        elif how == "sd-after":  # the first state's mean and sd, then the next states' sd, each normalised apart
            block = {c: np.concatenate([layer_norm(W[c][:, layer_block(layers[:1])])]
                                       + [layer_norm(W[c][:, layer_block((k,))[512:]]) for k in layers[1:]], 1)
                     for c in rows}
        else:  # the layers' pooled vectors averaged (one 1024-value block)
            block = {c: np.mean([W[c][:, layer_block((k,))] for k in layers], 0) for c in rows}
        keep = (lambda r: []) if how == "only" else (lambda r: [r["X"]])  # noqa: E731
        vr = {c: dict(r, X=np.concatenate([*keep(r), layer_norm(block[c])], 1)) for c, r in rows.items()}
        if "mlp" in opts:  # linear head on every column, the MLP on the Whisper block (before the 82 functionals)
            k = next(iter(block.values())).shape[1]
            opts = {"parts": ((0, 0), (opts["mlp"], -k - 82, -82, 0, 1.0))}
        hp.print_row(v, vr, folds, seeds, opts)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("step", choices=("extract", "probe", "extract-speed", "probe-speed", "extract-pool", "probe-pool",
                                        "extract-gate", "probe-gate", "extract-avg", "probe-avg"))
    ap.add_argument("--work-root", type=Path, default=Path("runs/default/work"))
    ap.add_argument("--model", type=Path, default=None, help="a faster-whisper-base model.bin (default: the whisper extra's)")
    ap.add_argument("--out", type=Path, default=Path("runs/default/whisper-layers"))
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--variants", default=None, help="comma-separated variant names (default: all)")
    args = ap.parse_args(argv)
    try:
        seeds, dirs = hp.seeds_and_dirs(args.seeds, args.work_root)
    except ValueError as e:
        print(f"emolens: error: {e}", file=sys.stderr)
        return 2
    extractors = {"extract": extract, "extract-speed": extract_speed, "extract-pool": extract_pool,
                  "extract-gate": extract_gate, "extract-avg": extract_avg}
    if args.step in extractors:
        from emolens.errors import WeightsError
        from emolens.models.whisper import whisper_parts

        try:
            whisper_parts(args.model)
        except WeightsError as e:
            print(f"emolens: error: {e}", file=sys.stderr)
            return 2
        extractors[args.step](args.work_root, args.model, args.out)
        return 0
    # each probe reads its extract step's files ("probe-gate": "<work dir>-gate.npy"); probe-speed also
    # reads extract's, and has speed copies of the trained-on corpora only
    from emolens.training.package import NOT_SHIPPABLE

    suffix = args.step.removeprefix("probe")  # "", "-speed", "-pool", "-gate" or "-avg"
    for sfx in ("", suffix) if suffix in ("-speed", "-avg") else (suffix,):
        missing = [d.name for c, d in dirs.items() if not (args.out / f"{d.name}{sfx}.npy").exists()
                   and not (sfx == "-speed" and c in NOT_SHIPPABLE)]
        if missing:
            print(f"emolens: error: no Whisper features for {', '.join(missing)} in {args.out}; run "
                  f"`extract{sfx}` first", file=sys.stderr)
            return 2
    if args.step == "probe-gate":
        probe_gate(args.work_root, args.out, seeds, args.variants)
    elif args.step == "probe-pool":
        probe_pool(args.work_root, args.out, seeds)
    elif args.step == "probe-speed":
        probe_speed(args.work_root, args.out, seeds)
    elif args.step == "probe-avg":
        probe_avg(args.work_root, args.out, seeds)
    else:
        probe(args.work_root, args.out, seeds, args.variants)
    return 0

if __name__ == "__main__":
    raise SystemExit(main())
