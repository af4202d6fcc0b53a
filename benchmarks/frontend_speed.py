"""Front-end throughput: seconds of audio per wall second for emolens's log-mel, side by
side with ``librosa.feature.melspectrogram`` (same window/hop/FFT/bands) in the same run.

    python benchmarks/frontend_speed.py [--seconds 600] [--repeat 5]
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def best_of(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    import librosa

    from emolens.features.mel import log_mel, mel_spectrogram

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=600.0, help="audio length (default 10 min)")
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    sr = 16000
    x = (0.1 * np.random.default_rng(0).standard_normal(int(args.seconds * sr))).astype(np.float32)
    ours = best_of(lambda: log_mel(mel_spectrogram(x), "vggish"), args.repeat)

    def lib():
        m = librosa.feature.melspectrogram(y=x, sr=sr, n_fft=512, hop_length=160, win_length=400, window="hann",
                                           center=False, power=1.0, n_mels=64, fmin=125, fmax=7500, htk=True, norm=None)
        return np.log(m + 0.01)

    lib()  # warm-up (numba/filters cache)
    theirs = best_of(lib, args.repeat)
    print(f"audio: {args.seconds:.0f} s at 16 kHz, best of {args.repeat}")
    print(f"emolens log-mel : {args.seconds / ours:10.0f} s audio / s  ({ours * 1000:.1f} ms)")
    print(f"librosa log-mel : {args.seconds / theirs:10.0f} s audio / s  ({theirs * 1000:.1f} ms)")
    print(f"ratio emolens / librosa throughput: {theirs / ours:.2f}x")


if __name__ == "__main__":
    main()
