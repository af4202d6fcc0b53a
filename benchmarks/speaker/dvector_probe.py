"""Probe (stop 21): a speaker-verification embedding (GE2E d-vector) as one more utterance stream.

Speaker embeddings carry voice quality (breathiness, tension, register), which acted emotion
changes; x-vectors are a known SER front end. Resemblyzer 0.1.4 (Apache-2.0, PyPI) ships a
GE2E encoder (3-layer LSTM 256, 40 mel bands, trained for speaker verification on
LibriSpeech and VoxCeleb 1/2; ``pretrained.pt``, 17 MB). This probe appends its utterance
embedding (the L2-normed mean of the 1.6-s partial embeddings, as ``embed_utterance``) to the
shipped row and to the Whisper row, on the shipping folds.

    pip download resemblyzer==0.1.4 --no-deps -d /tmp/rz && unzip -o /tmp/rz/*.whl -d /tmp/rz
    python benchmarks/speaker/dvector_probe.py extract --weights /tmp/rz/resemblyzer/pretrained.pt
    python benchmarks/speaker/dvector_probe.py probe --seeds 0,1,2

The encoder is re-implemented here in PyTorch (``torch.load(..., weights_only=True)``), with
its mel front end in numpy (librosa ``melspectrogram`` defaults: centred 400-sample frames every
160, periodic Hann, power, 40 Slaney bands; not log); the clip is scaled up to -30 dBFS as
resemblyzer's ``preprocess_wav`` does (its webrtcvad silence trimming is left out).
"""
import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "whisper"))
import head_probe as hp

PARTIAL = 160  # frames (1.6 s)


def dvector_mel(x: np.ndarray) -> np.ndarray:
    """``(frames, 40)`` power mel of a 16 kHz clip (librosa melspectrogram's defaults)."""
    from emolens.features.whisper_mel import slaney_mel_filterbank

    x = np.pad(np.asarray(x, np.float32), 200)
    n = 1 + (x.size - 400) // 160
    frames = np.lib.stride_tricks.as_strided(x, (n, 400), (x.strides[0] * 160, x.strides[0]))
    win = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(400) / 400)).astype(np.float32)
    power = np.abs(np.fft.rfft(frames * win, axis=1)) ** 2
    return (power @ slaney_mel_filterbank(16000, 400, 40).T).astype(np.float32)


def load_encoder(weights: Path):
    import torch
    from torch import nn

    class GE2E(nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = nn.LSTM(40, 256, 3, batch_first=True)
            self.linear = nn.Linear(256, 256)

        def forward(self, mels):
            _, (h, _) = self.lstm(mels)
            e = torch.relu(self.linear(h[-1]))
            return e / torch.norm(e, dim=1, keepdim=True).clamp_min(1e-9)

    sd = torch.load(weights, map_location="cpu", weights_only=True)
    sd = sd.get("model_state", sd)
    m = GE2E()
    m.load_state_dict({k: v for k, v in sd.items() if k.startswith(("lstm.", "linear."))})
    return m.eval()


def embed(x: np.ndarray, enc, rate: float = 1.3, min_coverage: float = 0.75) -> np.ndarray:
    """``(256,)``: resemblyzer's ``embed_utterance`` of a 16 kHz clip."""
    import torch

    x = np.asarray(x, np.float32)
    rms = np.sqrt(np.mean(x.astype(np.float64) ** 2)) + 1e-12
    if 20 * np.log10(rms) < -30:
        x = x * (10 ** (-30 / 20) / rms)
    n_frames = int(np.ceil((x.size + 1) / 160))
    step = int(np.round(16000 / rate / 160))
    starts = list(range(0, max(1, n_frames - PARTIAL + step + 1), step))
    cov = (x.size - starts[-1] * 160) / (PARTIAL * 160)
    if cov < min_coverage and len(starts) > 1:
        starts = starts[:-1]
    need = (starts[-1] + PARTIAL) * 160
    if need >= x.size:
        x = np.pad(x, (0, need - x.size))
    mel = dvector_mel(x)
    mels = np.stack([mel[s:s + PARTIAL] for s in starts])
    with torch.inference_mode():
        e = enc(torch.from_numpy(mels)).numpy().mean(0)
    return (e / (np.linalg.norm(e) + 1e-12)).astype(np.float32)


def extract(work_root: Path, weights: Path, out: Path) -> None:
    import torch

    torch.set_num_threads(1)
    enc = load_encoder(weights)
    hp.extract_clip_features(work_root, out, lambda name: f"{name}.npy", lambda x: embed(x, enc), "d-vectors")


def probe(work_root: Path, out: Path, whisper: Path, seeds: list[int]) -> None:
    from emolens.evaluation.generalisation import layer_norm

    dirs, rows, folds = hp.shipping_folds(work_root)
    D = {c: np.load(out / f"{d.name}.npy") for d, c in zip(dirs.values(), rows)}
    variants = [("ship + d-vector", lambda c, r: [r["X"], layer_norm(D[c])])]
    if all((whisper / f"{d.name}-gate.npy").exists() for d in dirs.values()):
        W = {c: np.load(whisper / f"{d.name}-gate.npy")[:, :1024] for d, c in zip(dirs.values(), rows)}
        variants += [("+whisper L4 (ships)", lambda c, r: [r["X"], layer_norm(W[c])]),
                     ("+whisper L4 + d-vector", lambda c, r: [r["X"], layer_norm(W[c]), layer_norm(D[c])])]
    for name, build in variants:
        hp.print_row(name, {c: dict(r, X=np.concatenate(build(c, r), 1)) for c, r in rows.items()}, folds, seeds)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("step", choices=("extract", "probe"))
    ap.add_argument("--work-root", type=Path, default=Path("runs/default/work"))
    ap.add_argument("--weights", type=Path, default=Path("/tmp/rz/resemblyzer/pretrained.pt"))
    ap.add_argument("--out", type=Path, default=Path("runs/default/dvector"))
    ap.add_argument("--whisper", type=Path, default=Path("runs/default/whisper-layers"),
                    help="whisper_probe.py extract-gate's folder (for the Whisper rows)")
    ap.add_argument("--seeds", default="0,1,2")
    a = ap.parse_args(argv)
    try:
        seeds, dirs = hp.seeds_and_dirs(a.seeds, a.work_root)
    except ValueError as e:
        print(f"emolens: error: {e}", file=sys.stderr)
        return 2
    if a.step == "extract":
        if not a.weights.is_file():
            print(f"emolens: error: no resemblyzer weights at {a.weights}; see the docstring", file=sys.stderr)
            return 2
        extract(a.work_root, a.weights, a.out)
        return 0
    missing = [d.name for d in dirs.values() if not (a.out / f"{d.name}.npy").exists()]
    if missing:
        print(f"emolens: error: no d-vectors for {', '.join(missing)} in {a.out}; run the extract step first",
              file=sys.stderr)
        return 2
    probe(a.work_root, a.out, a.whisper, seeds)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
