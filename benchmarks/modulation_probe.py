"""Probe: modulation-spectrum features as a stream of the default model (issue 12).

The shipped row hears *what* is in each 0.96-s patch (YAMNet) and the utterance's pitch,
loudness, voice quality and rhythm (the prosody functionals). How fast the energy in each
frequency region rises and falls, the modulation spectrum, is the classic cheap cue of
articulation rate and vocal effort in speech emotion recognition (e.g. Wu, Falk and Chan,
Speech Communication 53, 2011): 2-8 Hz follows syllables, 8-32 Hz roughness and onsets.
It costs one small FFT per band over the log-mel the front end computes anyway (about
20,000x real time here), so, unlike a second encoder, it fits `predict`'s 300x budget.

Per clip, from the YAMNet front end's 64-band mel magnitude at 100 frames a second:
8 acoustic bands (8 mel bands each, energy summed), each band's level in dB floored at
``FLOOR_DB`` below its loudest frame (so a recording's noise floor does not set the
modulation depth) and mean-removed (so a channel's fixed gain per band cancels); Welch
power spectra over 1.28-s Hann windows (half overlap; a shorter clip is zero-padded to
one window) summed into 6 octave modulation bands 0.5-32 Hz. Features: each acoustic band's
share of modulation power per octave (log10, 8 x 6) and its total modulation power (dB, 8):
56 values (:func:`modulation_features`).

    python benchmarks/modulation_probe.py extract --work-root runs/default/work --out runs/default/modulation
    python benchmarks/modulation_probe.py probe --work-root runs/default/work --out runs/default/modulation --seeds 0,1,2

Variants (``probe --variants``, comma-separated): ``ship``; ``+mod as prosody`` (the 56
values join the prosody functionals: standardised on the training rows and weighted as
they are, the shipped linear head: what would ship as is); ``+mod linear`` (layer-normalised
beside the YAMNet streams, linear head); ``+mod MLP`` (the Whisper model's head: an MLP 256
on the appended block beside the linear head); ``+mod shares as prosody`` (the 48 log shares only);
``+mod octaves as prosody`` (the 6 octaves' shares averaged over the acoustic bands).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import head_probe as hp  # noqa: E402

#: acoustic bands (groups of consecutive mel bands of the 64), modulation octaves (Hz)
N_BANDS = 8
MOD_EDGES = (0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0)
#: Welch window and hop (frames at 100 per second), level floor below each band's peak (dB)
WINDOW, HOP, FLOOR_DB = 128, 64, 30.0


def modulation_features(samples: np.ndarray) -> np.ndarray:
    """``(N_BANDS * (len(MOD_EDGES) - 1) + N_BANDS,)`` float32 modulation features of a mono
    16 kHz waveform (module docstring)."""
    from emolens.features.mel import VGGISH_16K, mel_spectrogram

    mel = mel_spectrogram(np.asarray(samples, np.float32), VGGISH_16K).astype(np.float64)  # (T, 64) magnitude
    t = mel.shape[0]
    power = (mel**2).reshape(t, N_BANDS, -1).sum(2)  # (T, 8)
    db = 10 * np.log10(power + 1e-12)
    db = np.maximum(db, db.max(0, keepdims=True) - FLOOR_DB)
    env = db - db.mean(0, keepdims=True)
    if t < WINDOW:
        env = np.pad(env, ((0, WINDOW - t), (0, 0)))
    starts = range(0, env.shape[0] - WINDOW + 1, HOP)
    win = np.hanning(WINDOW)[:, None]
    spec = np.mean([np.abs(np.fft.rfft(env[s : s + WINDOW] * win, axis=0)) ** 2 for s in starts], axis=0)  # (65, 8)
    hz = np.fft.rfftfreq(WINDOW, d=VGGISH_16K.frame_seconds)
    octaves = np.stack([spec[(hz >= lo) & (hz < hi)].sum(0) for lo, hi in zip(MOD_EDGES[:-1], MOD_EDGES[1:])], 1)  # (8, 6)
    total = octaves.sum(1, keepdims=True) + 1e-12
    return np.concatenate([np.log10(octaves / total + 1e-6).ravel(), 10 * np.log10(total.ravel())]).astype(np.float32)


def extract(work_root: Path, out: Path) -> None:
    """``out/<work dir>-modulation.npy`` ``(U, 56)`` in each work dir's manifest order."""
    hp.extract_clip_features(work_root, out, lambda name: f"{name}-modulation.npy", modulation_features, "modulation")


VARIANTS = ("ship", "+mod as prosody", "+mod linear", "+mod MLP", "+mod shares as prosody", "+mod octaves as prosody")


def probe(work_root: Path, out: Path, seeds: list[int], only: str | None) -> None:
    from emolens.evaluation.generalisation import layer_norm
    from emolens.features.prosody import N_PROSODY

    wanted = [v.strip() for v in only.split(",")] if only else list(VARIANTS)
    unknown = sorted(set(wanted) - set(VARIANTS))
    if unknown:
        raise ValueError(f"unknown variant(s) {', '.join(unknown)}; these exist: {', '.join(VARIANTS)}")
    dirs, rows, folds = hp.shipping_folds(work_root)
    names = {c: d.name for d, c in zip(dirs.values(), rows)}
    paths = {c: out / f"{names[c]}-modulation.npy" for c in rows}
    missing = [str(p) for p in paths.values() if not p.exists()]
    if missing:
        raise FileNotFoundError(f"{missing[0]}: not extracted; run `modulation_probe.py extract` first")
    mod = {c: np.load(p) for c, p in paths.items()}
    for c, r in rows.items():
        if len(mod[c]) != len(r["y"]):
            raise ValueError(f"{c}: {len(mod[c])} modulation rows for {len(r['y'])} utterances; extract again")
    for name in wanted:
        if name == "ship":
            hp.print_row(name, rows, folds, seeds)
        elif name.endswith("as prosody"):
            shares = N_BANDS * (len(MOD_EDGES) - 1)
            part = {"+mod as prosody": lambda m: m,  # all 56
                    "+mod shares as prosody": lambda m: m[:, :shares],  # the 48 log shares, no dB totals
                    # the 6 octaves' log shares averaged over the acoustic bands
                    "+mod octaves as prosody": lambda m: m[:, :shares].reshape(len(m), N_BANDS, -1).mean(1)}[name]
            hp.print_row(name, {c: dict(r, P=np.concatenate([r["P"], part(mod[c])], 1)) for c, r in rows.items()}, folds, seeds)
        else:
            shares = N_BANDS * (len(MOD_EDGES) - 1)  # the log shares and the dB totals, each layer-normalised
            vr = {c: dict(r, X=np.concatenate([r["X"], layer_norm(mod[c][:, :shares]), layer_norm(mod[c][:, shares:])], 1))
                  for c, r in rows.items()}
            k = next(iter(mod.values())).shape[1]
            opts = {} if name == "+mod linear" else {"parts": ((0, 0), (256, -k - N_PROSODY, -N_PROSODY, 0, 1.0))}
            hp.print_row(name, vr, folds, seeds, opts)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("step", choices=["extract", "probe"])
    ap.add_argument("--work-root", type=Path, default=Path("runs/default/work"))
    ap.add_argument("--out", type=Path, default=Path("runs/default/modulation"))
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--variants", default=None, help=f"comma-separated, of: {', '.join(VARIANTS)} (default: all)")
    args = ap.parse_args(argv)
    try:
        if args.step == "extract":
            extract(args.work_root, args.out)
        else:
            probe(args.work_root, args.out, [int(s) for s in args.seeds.split(",")], args.variants)
    except (ValueError, FileNotFoundError) as exc:
        print(f"emolens: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
