"""Whole-pipeline inference speed on the CPU: emolens (torch and ONNX Runtime backends)
next to Google's YAMNet TFLite model in ai-edge-litert, measured in the same run on the
same files.

Whole pipeline = decode + resample (thread pool), front end, GDS, model, utterance
decision, i.e. what ``emolens predict`` does (:func:`emolens.batch.iter_file_results`);
the TFLite reference gets the same decoding pool and then its own front end + YAMNet
(``invoke`` per file). Figures are x real time (seconds of audio per wall second),
best of ``--repeats`` interleaved rounds, and ratios to TFLite. Then a per-stage
profile (sequential, one thread for the non-model stages) shows where time goes.

    python benchmarks/inference_speed.py [--model RUN] [--fusion RUN] [--files 200] [--threads 2] [--split-reference]
    python benchmarks/inference_speed.py --work WORKDIR --head-training   # the old head epoch timing
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

SHARED = Path(os.environ.get("EMOLENS_SHARED", Path(__file__).resolve().parents[2] / "shared"))


def tflite_pipeline(files: list[Path], model: Path, threads: int) -> float:
    """Wall seconds for decode (pool) + TFLite YAMNet on every file."""
    import ai_edge_litert.interpreter as litert

    from emolens.audio.io import load_audio

    it = litert.Interpreter(model_path=str(model), num_threads=threads)
    inp = it.get_input_details()[0]
    shape = None
    t0 = time.perf_counter()
    with ThreadPoolExecutor(2) as pool:
        for clip in pool.map(load_audio, files):
            if clip.samples.shape != shape:
                shape = clip.samples.shape
                it.resize_tensor_input(inp["index"], shape)
                it.allocate_tensors()
            it.set_tensor(inp["index"], clip.samples)
            it.invoke()
    return time.perf_counter() - t0


def emolens_pipeline(rec, files: list[Path], cfg=None) -> float:  # noqa: ANN001 - BatchConfig
    from emolens.batch import BatchConfig, iter_file_results

    t0 = time.perf_counter()
    n = sum(1 for r in iter_file_results(rec, files, cfg or BatchConfig()) if r.error is None)
    assert n == len(files)
    return time.perf_counter() - t0


def stage_profile(rec, files: list[Path]) -> dict[str, float]:
    """Sequential seconds per stage over ``files`` (BLAS single-threaded, as in predict)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1, user_api="blas"):
        return _stage_profile(rec, files)


def _stage_profile(rec, files: list[Path]) -> dict[str, float]:
    from emolens.audio.io import load_audio
    from emolens.features.mel import mel_spectrogram
    from emolens.features.patches import log_mel_patches

    t = {}
    s = time.perf_counter()
    clips = [load_audio(f) for f in files]
    t["decode+resample"] = time.perf_counter() - s
    s = time.perf_counter()
    patches = [log_mel_patches(mel_spectrogram(c.samples, rec.frontend), rec.patch_config) for c in clips]
    t["front end"] = time.perf_counter() - s
    prosody = None
    if getattr(rec, "needs_prosody", False):  # a prosody head: the functionals of every clip (own STFT here)
        s = time.perf_counter()
        prosody = [rec.clip_prosody(c.samples) for c in clips]
        t["prosody"] = time.perf_counter() - s
    s = time.perf_counter()
    keeps = [rec.selector.select(p).keep if rec.selector is not None else np.ones(len(p), bool) for p in patches]
    t["GDS"] = time.perf_counter() - s
    allp = np.concatenate(patches)
    s = time.perf_counter()
    probs = rec.patch_outputs(allp)[0]
    t["model"] = time.perf_counter() - s
    s = time.perf_counter()
    if prosody is not None:
        probs = rec.with_prosody(probs, prosody, [len(p) for p in patches])
    start = 0
    for p, k in zip(patches, keeps):
        rec.decide(probs[start : start + len(p)], k)
        start += len(p)
    t["decision"] = time.perf_counter() - s
    t["patches"] = len(allp)
    return t


def random_fusion_run(default_run: str, tflite: str, dest: Path) -> str:
    """A fusion run for timing only: published YAMNet, random VGGish and head (speed
    does not depend on the weights' values), the default run's classes/front end/GDS."""
    import json

    import torch

    from emolens.models.fusion import MODEL_STREAMS, FusionNet
    from emolens.models.io import load_model, save_model
    from emolens.models.yamnet import yamnet_from_tflite

    if (dest / "model.json").exists():
        return str(dest)
    _, cfg, gds = load_model(default_run)
    torch.manual_seed(0)
    model = FusionNet(len(cfg["classes"]), MODEL_STREAMS["fusion"], yamnet=yamnet_from_tflite(tflite)).eval()
    cfg = {k: v for k, v in json.loads(json.dumps(cfg)).items() if k not in ("backbones", "card")}
    cfg.update(model="fusion", streams=list(MODEL_STREAMS["fusion"]), vggish_pretrained=False)
    save_model(dest, model, cfg, gds)
    return str(dest)


def int8_recognizer(run: str, threads: int, calib_files: list[Path]):
    """The fusion run with its VGGish branch quantised to int8 (calibrated on files
    not in the timed set)."""
    from emolens.audio.io import load_audio
    from emolens.features.mel import mel_spectrogram
    from emolens.features.patches import log_mel_patches
    from emolens.inference import EmotionRecognizer
    from emolens.models.backends import OnnxBackend
    from emolens.models.io import load_model
    from emolens.models.onnx_export import quantize_vggish

    rec = EmotionRecognizer.from_dir(run, backend="onnx", threads=threads)
    dest = Path(tempfile.gettempdir()) / "emolens-bench-fusion-int8.onnx"
    calib = np.concatenate([log_mel_patches(mel_spectrogram(load_audio(f).samples)) for f in calib_files])
    quantize_vggish(rec.backend.path, dest, calib)
    model, cfg, gds = load_model(run)
    q = EmotionRecognizer(model, cfg, gds, OnnxBackend(dest, threads))
    q.patch_outputs(np.zeros((8, 96, 64), np.float32))
    return q


def speed_table(args) -> None:
    import soundfile as sf

    from emolens.inference import EmotionRecognizer, resolve_model

    args.model = str(resolve_model(args.model))
    files = sorted((Path(args.corpus) / "wav").glob("*.flac")) or sorted(Path(args.corpus).rglob("*.flac"))
    all_files, files = files, files[: args.files]
    audio_s = sum(sf.info(str(f)).duration for f in files)
    print(f"{len(files)} files, {audio_s:.0f} s of audio from {args.corpus}; {args.threads} threads; "
          f"{os.cpu_count()} cores; load average {os.getloadavg()[0]:.1f}")
    if args.fusion == "random":
        args.fusion = random_fusion_run(args.model, args.tflite, Path(tempfile.gettempdir()) / "emolens-bench-fusion")
    from emolens.batch import BatchConfig, predict_threads
    from emolens.models.run_files import read_config

    models = [("default", args.model)] + ([("fusion", args.fusion)] if args.fusion else [])
    recs, cfgs, references = {}, {}, set()
    for name, run in models:
        # the ONNX rows run as `emolens predict` does: args.threads cores split between the
        # model's threads and the decoding threads (emolens.batch.predict_threads); torch as before
        threads, workers = predict_threads(read_config(run), "onnx", cores=args.threads)
        variants = [("torch", args.threads, 2, ""), ("onnx", threads, workers, "")]
        if args.split_reference:  # the configuration before the split, measured in the same rounds
            variants.append(("onnx", args.threads, 2, f" ({args.threads} + 2 threads, 32 files/batch)"))
        for backend, th, w, label in variants:
            rec = EmotionRecognizer.from_dir(run, backend=backend, threads=th)
            rec.analyze_clips([])  # no-op
            rec.patch_outputs(np.zeros((8, 96, 64), np.float32))  # warm-up (ORT builds its kernels)
            key = f"{name} {backend}{label}"
            recs[key] = rec
            cfgs[key] = BatchConfig(workers=w, files_per_batch=32 if label else BatchConfig.files_per_batch)
            if label:
                references.add(key)
    if args.fusion and not args.no_int8:
        recs["fusion onnx int8-vggish"] = int8_recognizer(args.fusion, args.threads, all_files[-30:])
    best: dict[str, float] = {}
    for _ in range(args.repeats):  # interleaved, so load changes hit every row alike
        best["TFLite YAMNet (ai-edge-litert)"] = min(best.get("TFLite YAMNet (ai-edge-litert)", 1e9),
                                                     tflite_pipeline(files, args.tflite, args.threads))
        for key, rec in recs.items():
            best[key] = min(best.get(key, 1e9), emolens_pipeline(rec, files, cfgs.get(key)))
    ref = audio_s / best["TFLite YAMNet (ai-edge-litert)"]
    width = max(34, *(len(k) + 2 for k in best))
    print(f"\n{'whole pipeline':<{width}}{'x real time':>12}{'vs TFLite':>11}")
    for key, dt in best.items():
        print(f"{key:<{width}}{audio_s / dt:>12.0f}{audio_s / dt / ref:>11.2f}")
    print(f"\nper stage, sequential (x real time of each stage alone; model = the backend's batched forward passes)")
    for key, rec in recs.items():
        if key in references:  # the same stages as its row without the label
            continue
        t = stage_profile(rec, files)
        n = t.pop("patches")
        print(f"{key:<16} " + "  ".join(f"{k} {audio_s / v:.0f}x" for k, v in t.items()) + f"  ({n} patches)")


def head_training(args) -> None:
    """Head-mode training time per epoch on cached features of a prepared work dir."""
    import torch

    from emolens.models import build_model
    from emolens.training.data import backbone_features
    from emolens.training.trainer import TrainConfig, fit
    from emolens.workdir import WorkDir

    work = WorkDir.open(args.work)
    ps = work.patchset(progress=False)
    for kind in ("yamnet", "vggish", "fusion"):
        model, _ = build_model(kind, len(work.classes))
        feats = backbone_features(model, ps.patches, work.root / "embeddings", progress=False)
        idx = np.arange(len(ps.utt))
        inputs = lambda i, t=False: {k: torch.from_numpy(v[i]) for k, v in feats.items()}  # noqa: E731
        res = fit(model.head, inputs, ps.y, idx, None, ps.utt, len(work.classes), TrainConfig(epochs=3, patience=99), progress=False)
        print(f"{kind:<7} head training {res.seconds / 3:.3f} s/epoch on {len(idx)} patches")


def main() -> None:
    from emolens.models.backends import usable_cores

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="the YAMNet-based model's run dir (default: the shipped model)")
    ap.add_argument("--fusion", default=None, help="a fusion model's run dir, or 'random' (published YAMNet + random VGGish/head: same speed)")
    ap.add_argument("--corpus", default=str(SHARED / "data" / "emodb-original"))
    ap.add_argument("--tflite", default=str(SHARED / "weights" / "yamnet.tflite"))
    ap.add_argument("--files", type=int, default=200)
    ap.add_argument("--threads", type=int, default=usable_cores())
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--no-int8", action="store_true", help="skip the int8-VGGish fusion row")
    ap.add_argument("--split-reference", action="store_true",
                    help="also time the ONNX rows as predict ran them before stop 38: every side all threads, 2 decoding threads, 32 files a batch")
    ap.add_argument("--work", default=None, help="prepared work dir (only with --head-training)")
    ap.add_argument("--head-training", action="store_true", help="time head training epochs instead")
    args = ap.parse_args()
    if args.head_training:
        head_training(args)
    else:
        speed_table(args)


if __name__ == "__main__":
    main()
