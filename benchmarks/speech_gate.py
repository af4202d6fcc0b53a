"""Choosing the speech gate's class set, aggregation and threshold, and the gate vs GDS
on synthesised non-speech.

    python benchmarks/speech_gate.py --work emodb-orig=/work/cache/emodb-orig \\
        --work ravdess=/work/cache/ravdess --work ased=/work/cache/ased [--fit emodb-orig]

Reference patches per corpus (no manual labels exist): "loud" = no frame 40 dB under
the utterance's loudest frame and level above -15 dB re that frame (speech, the
emotional kind included); "quiet" = at least 90% of frames 40 dB under it (the
corpora's leading/trailing silence). Synthesised: 4 s each of digital silence, dither,
white noise (-60, -20 dB), pink and brown noise, 220 Hz and 1 kHz tones, 50 Hz hum with
harmonics, a C-major chord, clicks, an FM sweep, amplitude-modulated noise.

1. For each class set x aggregation x threshold: the worst class's miss rate on loud
   patches per corpus (speech called non-speech), the false-accept rate on quiet
   patches, and the highest score of any synthetic patch.
2. Per synthetic signal: the fraction of its patches the gate drops, and the fraction
   GDS drops (thesis preset and default, fitted on ``--fit``'s patches, the signal
   scored as one utterance, as ``emolens predict`` does).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gds_transfer import load_corpus  # noqa: E402

SETS = {
    "Speech (0)": (0,),
    "speech family 0-5": tuple(range(6)),
    "0-23 (to sigh)": tuple(range(24)),
    "voice (default)": None,  # filled from VOICE_CLASSES
    "0-35 (+whistling ...)": tuple(range(36)),
}


def synthetic(seconds: float = 4.0, sr: int = 16000) -> dict[str, np.ndarray]:
    """Non-speech test signals, float32 at ``sr``."""
    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * sr)) / sr

    def shaped(power: float) -> np.ndarray:
        spec = np.fft.rfft(rng.standard_normal(t.size))
        f = np.arange(spec.size, dtype=float)
        f[0] = 1.0
        x = np.fft.irfft(spec / f ** (power / 2), t.size)
        return 0.03 * x / np.sqrt(np.mean(x * x))

    sig = {
        "digital silence": np.zeros_like(t),
        "dither -90 dB": 3e-5 * rng.standard_normal(t.size),
        "white -60 dB": 1e-3 * rng.standard_normal(t.size),
        "white -20 dB": 0.1 * rng.standard_normal(t.size),
        "pink noise": shaped(1.0),
        "brown noise": shaped(2.0),
        "tone 220 Hz": 0.5 * np.sin(2 * np.pi * 220 * t),
        "tone 1 kHz": 0.5 * np.sin(2 * np.pi * 1000 * t),
        "hum 50 Hz + harmonics": sum(0.1 / k * np.sin(2 * np.pi * 50 * k * t) for k in range(1, 8)),
        "C-major chord": sum(0.15 * np.sin(2 * np.pi * f * t) for f in (261.6, 329.6, 392.0)),
        "clicks 4/s": (np.arange(t.size) % 4000 == 0).astype(float),
        "FM sweep": 0.3 * np.sin(2 * np.pi * (200 * t + 300 * t * t)),
        "AM noise 4 Hz": 0.2 * rng.standard_normal(t.size) * (0.5 + 0.5 * np.sin(2 * np.pi * 4 * t)),
    }
    return {k: v.astype(np.float32) for k, v in sig.items()}


def main() -> None:
    from emolens.features.mel import mel_spectrogram
    from emolens.features.patches import log_mel_patches
    from emolens.models.weights import resolve_weights
    from emolens.models.yamnet import load_yamnet_file
    from emolens.selection.gds import GDSConfig, GaussianDataSelector
    from emolens.selection.speech import VOICE_CLASSES, SpeechGateConfig, audioset_scores, speech_probability

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", action="append", required=True, help="NAME=WORKDIR (repeatable)")
    ap.add_argument("--fit", default=None, help="corpus NAME whose patches fit GDS for part 2 (default: the first)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    SETS["voice (default)"] = VOICE_CLASSES
    corpora = {}
    for spec in args.work:
        name, root = spec.split("=", 1)
        corpora[name] = load_corpus(root)
    yam = load_yamnet_file(resolve_weights("yamnet")).eval()
    syn = synthetic()
    syn_patches = {k: log_mel_patches(mel_spectrogram(v)) for k, v in syn.items()}
    syn_as = {k: audioset_scores(yam, p) for k, p in syn_patches.items()}

    print("1. worst-class miss on loud patches | false accepts on quiet patches, per corpus; max synthetic score")
    for set_name, classes in SETS.items():
        for agg in ("max", "noisy_or"):
            cfg = SpeechGateConfig(classes=classes, aggregation=agg)
            syn_max = max(float(speech_probability(a, cfg).max()) for a in syn_as.values())
            for thr in (0.5, 0.2):
                cells = []
                for name, d in corpora.items():
                    p = speech_probability(d["audioset"], cfg)
                    loud = (d["silent"] < 0.1) & (d["level"] > -15)
                    quiet = d["silent"] >= 0.9
                    miss = max(float(np.mean(p[loud & (d["y"] == c)] < thr)) for c in range(len(d["classes"])))
                    fa = float(np.mean(p[quiet] >= thr)) if quiet.any() else float("nan")
                    cells.append(f"{name} {miss:5.1%} | {fa:5.1%}")
                print(f"  {set_name:<22}{agg:<9} >= {thr:.1f}:  " + "   ".join(cells) + f"   synth max {syn_max:.3f}")

    fit = args.fit or next(iter(corpora))
    d = corpora[fit]
    sels = {k: GaussianDataSelector(c).fit(d["patches"], d["y"], d["utt"])
            for k, c in (("GDS thesis", GDSConfig.thesis()), ("GDS default", GDSConfig()))}
    gate = SpeechGateConfig()
    print(f"\n2. dropped fraction of each synthetic signal's patches (GDS fitted on {fit})")
    print(f"  {'signal':<24}{'patches':>8}{'gate':>7}" + "".join(f"{k:>13}" for k in sels) + f"{'speech p max':>14}")
    for k, p in syn_patches.items():
        sp = speech_probability(syn_as[k], gate)
        row = f"  {k:<24}{len(p):>8}{np.mean(sp < gate.threshold):>7.0%}"
        for sel in sels.values():
            row += f"{1 - sel.select(p, np.zeros(len(p), int)).keep.mean():>13.0%}"
        print(row + f"{sp.max():>14.3f}")


if __name__ == "__main__":
    main()
