"""Probe (stop 25): the Whisper stream from an int8 ONNX Runtime encoder instead of float32 torch.

``speed``: Whisper base's encoder up to the stream's layer exported to ONNX, run by ONNX Runtime
in float32 and with its weights quantised to int8 (``onnxruntime.quantization.quantize_dynamic``),
next to the torch encoder that ships, on the same clips in the same run (x real time of the
encoder on precomputed log-mels, and how far the int8 stream moves: cosine of each clip's mean
frame and of its pooled stream).

``extract``: the int8 stream (layer 4 mean and sd over frames, as the shipped stream) of every
file of the ``scripts/train_default`` work dirs, cached in each work dir's ``whisper-int8/``. Then
the Whisper model's head on it, 3 seeds on the shipping folds::

    python benchmarks/whisper/whisper_int8_probe.py speed [--files 40]
    python benchmarks/whisper/whisper_int8_probe.py extract            # about 2 minutes, six corpora
    python benchmarks/whisper/distil_probe.py --variants true-mlp --whisper-dir whisper-int8 --seeds 0,1,2

Figures: benchmarks/generalisation.md, "Stop 25" (dropped: -0.5 / -0.4 pt, the worst corpus below 0.45).
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SHARED = Path(os.environ.get("EMOLENS_SHARED", Path(__file__).resolve().parents[3] / "shared"))


def export_encoder(layer: int, folder: Path) -> tuple[Path, Path]:
    """``(float32 .onnx, int8 .onnx)`` of the encoder up to ``layer`` (input ``mel (1, 80, T)``,
    output ``h (1, ceil(T / 2), 512)``) in ``folder``."""
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from emolens.models.whisper import load_whisper_encoder, whisper_log_mel

    class Top(torch.nn.Module):
        def __init__(self, encoder):
            super().__init__()
            self.encoder = encoder

        def forward(self, mel):
            return self.encoder(mel)[-1]

    f32, i8 = folder / f"whisper-l{layer}.onnx", folder / f"whisper-l{layer}-int8.onnx"
    mel = torch.from_numpy(whisper_log_mel(np.zeros(16000, np.float32) + 1e-3))[None]
    torch.onnx.export(Top(load_whisper_encoder(layer)), (mel,), str(f32), input_names=["mel"], output_names=["h"],
                      dynamic_axes={"mel": {2: "t"}, "h": {1: "f"}}, opset_version=17, dynamo=False)
    quantize_dynamic(str(f32), str(i8), weight_type=QuantType.QInt8)
    return f32, i8


def session(path: Path, threads: int):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def int8_stream(audio: np.ndarray, sess) -> np.ndarray:
    """``(1024,)``: the pooled layer stream of a mono 16 kHz clip from the ONNX encoder ``sess``
    (chunks and pooling as :func:`emolens.models.whisper.whisper_stream`)."""
    from emolens.models.whisper import chunks, pool_frames, whisper_log_mel
    from emolens.threads import one_blas_thread

    with one_blas_thread():
        frames = np.concatenate([sess.run(None, {"mel": whisper_log_mel(c)[None]})[0][0] for c in chunks(audio)])
    return pool_frames(frames)


def speed(args: argparse.Namespace, f32: Path, i8: Path) -> None:
    import torch

    from emolens.audio.io import load_audio
    from emolens.models.whisper import (
        WhisperStreamConfig,
        load_whisper_encoder,
        whisper_log_mel,
        whisper_stream,
    )
    from emolens.threads import one_blas_thread

    torch.set_num_threads(args.threads)
    files = sorted(args.corpus.rglob("*.flac")) + sorted(args.corpus.rglob("*.wav"))
    clips = [load_audio(f).samples for f in files[: args.files]]
    seconds = sum(c.size for c in clips) / 16000
    mels = [whisper_log_mel(c) for c in clips]
    enc = load_whisper_encoder(args.layer)
    s32, s8 = session(f32, args.threads), session(i8, args.threads)
    runs = {"torch float32 (ships)": lambda m: enc(torch.from_numpy(m)[None])[-1],
            "ONNX Runtime float32": lambda m: s32.run(None, {"mel": m[None]})[0],
            "ONNX Runtime int8": lambda m: s8.run(None, {"mel": m[None]})[0]}
    best = {k: [] for k in runs}
    with torch.inference_mode(), one_blas_thread():
        for run in runs.values():
            run(mels[0])
        for _ in range(2):  # interleaved rounds, best of each
            for name, run in runs.items():
                t = time.perf_counter()
                for m in mels:
                    run(m)
                best[name].append(time.perf_counter() - t)
    print(f"{len(clips)} clips, {seconds:.0f} s of audio; encoder up to layer {args.layer} on precomputed log-mels; "
          f"{args.threads} threads")
    ref = seconds / min(best["torch float32 (ships)"])
    for name, times in best.items():
        x = seconds / min(times)
        print(f"{name:<24} {x:6.0f}x real time  ({x / ref:.2f} of torch)")
    cfg = WhisperStreamConfig(layers=(args.layer,))
    a = np.stack([whisper_stream(c, cfg, enc) for c in clips])
    b = np.stack([int8_stream(c, s8) for c in clips])
    cos = lambda u, v: (u * v).sum(1) / np.linalg.norm(u, axis=1) / np.linalg.norm(v, axis=1)
    print(f"int8 against float32: cosine of the mean frame min {cos(a[:, :512], b[:, :512]).min():.4f}, "
          f"of the pooled stream (mean and sd) min {cos(a, b).min():.4f}")


def extract(args: argparse.Namespace, i8: Path, dirs: dict[str, Path]) -> None:
    from emolens.audio.io import load_audio
    from emolens.features.cache import cached_file_vectors
    from emolens.workdir import WorkDir

    sess = session(i8, args.threads)
    t = time.perf_counter()
    for c, d in dirs.items():
        paths = WorkDir.open(d).manifest.paths()
        cached_file_vectors(paths, lambda p: int8_stream(load_audio(p, sample_rate=16000, max_seconds=None).samples, sess),
                            1024, d / "whisper-int8", desc=c, progress=True)
        print(f"{c}: {len(paths)} files, {time.perf_counter() - t:.0f} s so far", flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("what", choices=("speed", "extract"))
    ap.add_argument("--corpus", type=Path, default=SHARED / "data" / "emodb-original")
    ap.add_argument("--files", type=int, default=40)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--layer", type=int, default=4)
    ap.add_argument("--work-root", type=Path, default=Path("runs/default/work"))
    args = ap.parse_args(argv)
    from emolens.errors import WeightsError

    dirs = {}
    if args.what == "extract":  # the prepared work dirs (one-line error when there are none)
        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
        import head_probe as hp

        try:
            dirs = hp.seeds_and_dirs("0", args.work_root)[1]
        except ValueError as e:
            print(f"emolens: error: {e}", file=sys.stderr)
            return 2

    with tempfile.TemporaryDirectory() as tmp:
        try:
            f32, i8 = export_encoder(args.layer, Path(tmp))
        except WeightsError as e:
            print(f"emolens: error: {e}", file=sys.stderr)
            return 2
        speed(args, f32, i8) if args.what == "speed" else extract(args, i8, dirs)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
