"""Probe (stop 24): Google's keyword-spotting ``speech_embedding`` as one more utterance stream.

YAMNet was trained on AudioSet's sound classes; the one speech-trained encoder small enough for
the default model's 10 MB found on PyPI is Google's
``speech_embedding`` (TF-Hub, Apache-2.0; trained on a large speech corpus for few-shot
keyword spotting, arXiv:2002.01322), which ``openwakeword==0.4.0`` re-packages as two ONNX
files (``melspectrogram.onnx``, 1.1 MB, and ``embedding_model.onnx``, 1.3 MB; 32 mel bands every
10 ms; one 96-d embedding per 76-frame window, every 80 ms). Note: openWakeWord's README puts
its *bundled* models under CC BY-NC-SA 4.0 while naming Google's Apache-2.0 for this one, so
shipping it would need that settled first.

This probe appends the mean and standard deviation over a clip's windows of the 96-d
embedding (192 values, layer-normalised) to the shipped row, on the shipping folds:

    pip download openwakeword==0.4.0 --no-deps -d /tmp/oww && unzip -o /tmp/oww/*.whl -d /tmp/oww
    python benchmarks/backbones/speech_embedding_probe.py extract
    python benchmarks/backbones/speech_embedding_probe.py probe --seeds 0,1,2

A clip shorter than one window (0.775 s) is zero-padded to one window (TurEV-DB's words). With
overlapping windows every 80 ms it ran at about 75x real time on one thread (decoding included),
so it would not have fit the 300x budget without a coarser step either.
"""
import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import head_probe as hp

WINDOW, STEP = 76, 8  # mel frames (10 ms each)


def load_models(folder: Path):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    mel = ort.InferenceSession(str(folder / "melspectrogram.onnx"), opts, providers=["CPUExecutionProvider"])
    emb = ort.InferenceSession(str(folder / "embedding_model.onnx"), opts, providers=["CPUExecutionProvider"])
    return mel, emb


def embed(x: np.ndarray, models) -> np.ndarray:
    """``(windows, 96)`` speech embeddings of a 16 kHz clip (floats in [-1, 1])."""
    mel_s, emb_s = models
    x = np.asarray(x, np.float32)
    need = (WINDOW + 2) * 160 + 480
    if x.size < need:
        pad = need - x.size
        x = np.pad(x, (pad // 2, pad - pad // 2))
    pcm = np.clip(np.round(x * 32767), -32768, 32767).astype(np.float32)[None]
    spec = np.squeeze(mel_s.run(None, {"input": pcm})[0]) / 10 + 2  # (frames, 32)
    starts = range(0, spec.shape[0] - WINDOW + 1, STEP)
    batch = np.stack([spec[s:s + WINDOW] for s in starts])[..., None].astype(np.float32)
    return emb_s.run(None, {"input_1": batch})[0].reshape(len(batch), -1)


def extract(work_root: Path, models_dir: Path, out: Path) -> None:
    models = load_models(models_dir)

    def feature(x: np.ndarray) -> np.ndarray:
        e = embed(x, models)
        return np.concatenate([e.mean(0), e.std(0)]).astype(np.float32)

    hp.extract_clip_features(work_root, out, lambda name: f"{name}.npy", feature, "speech embeddings")


def probe(work_root: Path, out: Path, seeds: list[int]) -> None:
    from emolens.evaluation.generalisation import layer_norm

    dirs, rows, folds = hp.shipping_folds(work_root)
    E = {c: np.load(out / f"{d.name}.npy") for d, c in zip(dirs.values(), rows)}
    variants = [("ship", lambda c, r: [r["X"]]),
                ("ship + speech_embedding mean+sd", lambda c, r: [r["X"], layer_norm(E[c])]),
                ("ship + speech_embedding mean", lambda c, r: [r["X"], layer_norm(E[c][:, :96])])]
    for name, build in variants:
        hp.print_row(name, {c: dict(r, X=np.concatenate(build(c, r), 1)) for c, r in rows.items()}, folds, seeds)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("step", choices=("extract", "probe"))
    ap.add_argument("--work-root", type=Path, default=Path("runs/default/work"))
    ap.add_argument("--models", type=Path, default=Path("/tmp/oww/openwakeword/resources/models"))
    ap.add_argument("--out", type=Path, default=Path("runs/default/speech-embedding"))
    ap.add_argument("--seeds", default="0,1,2")
    a = ap.parse_args(argv)
    try:
        seeds, dirs = hp.seeds_and_dirs(a.seeds, a.work_root)
    except ValueError as e:
        print(f"emolens: error: {e}", file=sys.stderr)
        return 2
    if a.step == "extract":
        if not (a.models / "embedding_model.onnx").is_file():
            print(f"emolens: error: no speech_embedding ONNX files in {a.models}; see the docstring", file=sys.stderr)
            return 2
        extract(a.work_root, a.models, a.out)
        return 0
    missing = [d.name for d in dirs.values() if not (a.out / f"{d.name}.npy").exists()]
    if missing:
        print(f"emolens: error: no embeddings for {', '.join(missing)} in {a.out}; run the extract step first",
              file=sys.stderr)
        return 2
    probe(a.work_root, a.out, seeds)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
