"""What the Whisper stream costs ``predict``: x real time of the stream (decode + log-mel +
encoder up to the pooled layer) next to the shipped pipeline (``emolens predict``'s
``iter_file_results`` on ONNX Runtime), measured in the same run on the same files, the same
with the encoder's linear layers quantised to int8 (``torch.ao.quantization.quantize_dynamic``)
with how far its stream moves from float32, and ``predict --model whisper`` itself (the shipped
Whisper model, when this install has it). It also counts the encoder's floating-point work per
second of audio (``torch.utils.flop_counter``) and the rate the float32 stream achieved, which
gives the compute a 300x-real-time Whisper stream would need on this machine.

    python benchmarks/whisper/whisper_speed.py [--corpus ../shared/data/emodb-original] [--files 60] [--threads 2]
"""
from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np

SHARED = Path(os.environ.get("EMOLENS_SHARED", Path(__file__).resolve().parents[3] / "shared"))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", type=Path, default=SHARED / "data" / "emodb-original")
    ap.add_argument("--files", type=int, default=60)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--layer", type=int, default=4)
    args = ap.parse_args(argv)
    files = sorted(args.corpus.rglob("*.wav")) + sorted(args.corpus.rglob("*.flac"))
    if not files:
        print(f"emolens: error: no .wav or .flac files under {args.corpus}; pass --corpus", file=sys.stderr)
        return 2
    files = files[: args.files]
    import torch

    from emolens.audio.io import load_audio
    from emolens.batch import BatchConfig, iter_file_results, predict_threads
    from emolens.errors import WeightsError
    from emolens.inference import EmotionRecognizer, resolve_model
    from emolens.models.run_files import read_config
    from emolens.models.whisper import (
        WhisperStreamConfig,
        load_whisper_encoder,
        whisper_stream,
    )
    from emolens.resources import default_model_dir

    torch.set_num_threads(args.threads)
    try:
        enc = load_whisper_encoder(args.layer)
    except WeightsError as e:
        print(f"emolens: error: {e}", file=sys.stderr)
        return 2
    with warnings.catch_warnings():  # torch 2.13 announces the quantized tensors' deprecation
        warnings.simplefilter("ignore", UserWarning)
        q8 = torch.ao.quantization.quantize_dynamic(enc, {torch.nn.Linear}, dtype=torch.qint8)
    cfg = WhisperStreamConfig(layers=(args.layer,))
    clips = [load_audio(f) for f in files]
    audio_s = sum(c.samples.size for c in clips) / 16000
    # both models run as `emolens predict` runs them: the cores split between the model's
    # threads and the decoding threads (emolens.batch.predict_threads)
    def recognizer(run: Path) -> tuple[EmotionRecognizer, BatchConfig]:
        threads, workers = predict_threads(read_config(run), "onnx", cores=args.threads)
        return EmotionRecognizer.from_dir(str(run), backend="onnx", threads=threads), BatchConfig(workers=workers)

    rec, rec_cfg = recognizer(resolve_model(None))
    rec.patch_outputs(np.zeros((8, 96, 64), np.float32))  # warm-up
    wdir = default_model_dir("whisper")
    wrec, wrec_cfg = recognizer(wdir) if wdir else (None, None)
    if wrec is not None:
        wrec.analyze_clips([clips[0]])  # warm-up (and the one-off ONNX export to the cache)
    whisper_stream(clips[0].samples, cfg, enc)
    whisper_stream(clips[0].samples, cfg, q8)
    print(f"{len(files)} files, {audio_s:.0f} s of audio from {args.corpus}; {args.threads} threads; load average "
          f"{os.getloadavg()[0]:.1f}")

    def shipped(r=rec, cfg=rec_cfg) -> float:  # noqa: ANN001
        t = time.perf_counter()
        assert sum(1 for x in iter_file_results(r, files, cfg) if x.error is None) == len(files)
        return time.perf_counter() - t

    def stream(model) -> float:
        t = time.perf_counter()
        for f in files:
            whisper_stream(load_audio(f).samples, cfg, model)
        return time.perf_counter() - t

    best = {"shipped predict (ONNX Runtime)": [], f"Whisper layer {args.layer} stream, float32": [],
            f"Whisper layer {args.layer} stream, int8 linear": []}
    runs = [shipped, lambda: stream(enc), lambda: stream(q8)]
    if wrec is not None:
        best["predict --model whisper"] = []
        runs.append(lambda: shipped(wrec, wrec_cfg))
    for _ in range(2):  # interleaved rounds, best of each
        for (name, times), run in zip(best.items(), runs):
            times.append(run())
    ref = audio_s / min(best["shipped predict (ONNX Runtime)"])
    for name, times in best.items():
        x = audio_s / min(times)
        print(f"{name:<40} {x:8.0f}x real time  ({x / ref:.3f} of the shipped pipeline)")
    f32 = np.stack([whisper_stream(c.samples, cfg, enc) for c in clips[:20]])
    i8 = np.stack([whisper_stream(c.samples, cfg, q8) for c in clips[:20]])
    cos = (f32 * i8).sum(1) / np.linalg.norm(f32, axis=1) / np.linalg.norm(i8, axis=1)
    print(f"int8 against float32 stream: cosine min {cos.min():.4f}, max abs difference {np.abs(f32 - i8).max():.3f} "
          f"(values up to {np.abs(f32).max():.1f})")
    x32 = audio_s / min(best[f'Whisper layer {args.layer} stream, float32'])
    both = 1 / (1 / ref + 1 / x32)
    print(f"predict with the stream added (float32, sequential): about {both:.0f}x real time")
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as fc:
        for c in clips:
            whisper_stream(c.samples, cfg, enc)
    per_s = fc.get_total_flops() / audio_s / 1e9  # GFLOP per second of audio
    print(f"encoder work: {per_s:.2f} GFLOP per second of audio; the float32 stream ran at {per_s * x32:.0f} GFLOP/s "
          f"on {args.threads} threads; 300x real time needs {per_s * 300:.0f} GFLOP/s for the stream alone "
          f"({per_s * 300 / (per_s * x32):.1f} times what it achieved)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
