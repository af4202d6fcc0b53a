"""``emolens timeline`` on a long recording: wall time, peak memory, x real time.

Builds a recording of ``--minutes`` (default 60) from corpus clips (4 classes) separated
by 0.5-4 s of silence, written block by block to a 16-bit WAV, then runs the timeline
in a fresh process per length and prints wall time, peak resident memory (whole
process, model included) and the real-time factor. A 1-minute file run the same way
shows how much of the memory is the model and how much grows with the length. It also
scores the segments against the known layout: speech vs silence, and the emotion of
the clips' time (the default model was trained on these EmoDB speakers, so that
figure is optimistic; use ``--corpus ravdess`` for a cross-corpus one).

    python benchmarks/timeline_speed.py [--model RUN] [--minutes 60] [--backend onnx]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

CLASSES = ("angry", "happy", "neutral", "sad")


def build_recording(corpus: Path, minutes: float, dest: Path, seed: int = 0) -> list[tuple[float, float, str]]:
    """Write ``dest`` (16 kHz 16-bit mono) and return the clips' (start_s, end_s, label)."""
    rows = [r for r in csv.DictReader(open(corpus / "metadata.csv")) if r["emotion"] in CLASSES]
    rng = np.random.default_rng(seed)
    target = int(minutes * 60 * 16000)
    layout, n = [], 0
    with sf.SoundFile(str(dest), "w", 16000, 1, subtype="PCM_16") as out:
        while n < target:
            gap = np.zeros(int(rng.uniform(0.5, 4.0) * 16000), np.float32)
            out.write(gap[: target - n])
            n += min(len(gap), target - n)
            r = rows[int(rng.integers(len(rows)))]
            x, sr = sf.read(str(corpus / r["path"]), dtype="float32", always_2d=True)
            x = x.mean(1)[: target - n]
            if sr != 16000 or not len(x):
                continue
            out.write(x)
            layout.append((n / 16000, (n + len(x)) / 16000, r["emotion"]))
            n += len(x)
    return layout


CHILD = r"""
import json, resource, sys, time
from emolens.inference import EmotionRecognizer
from emolens.models.run_files import read_config
from emolens.timeline import TimelineConfig, compute_timeline
model, path, backend, block, out = sys.argv[1:6]
rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:  # the threads `emolens timeline` gives the model (since stop 38)
    from emolens.timeline import timeline_threads
    threads = timeline_threads(read_config(model), backend)
except ImportError:  # an older emolens: all cores
    threads = None
rec = EmotionRecognizer.from_dir(model, backend=backend, threads=threads)
rec.patch_outputs(__import__("numpy").zeros((4, 96, 64), "float32"))  # warm-up
rss_model = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t = time.perf_counter()
tl = compute_timeline(rec, path, TimelineConfig(block_seconds=float(block)))
wall = time.perf_counter() - t
json.dump({"wall": wall, "duration": tl.duration, "rss_start_kb": rss0, "rss_model_kb": rss_model,
           "rss_peak_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
           "starts": tl.starts.tolist(), "ends": tl.ends.tolist(), "labels": tl.labels}, open(out, "w"))
"""


def run_child(model: str, wav: Path, backend: str, block: float, tmp: Path) -> dict:
    out = tmp / f"{wav.stem}.json"
    subprocess.run([sys.executable, "-c", CHILD, model, str(wav), backend, str(block), str(out)], check=True)
    return json.loads(out.read_text())


def score(res: dict, layout: list[tuple[float, float, str]]) -> tuple[float, float, float]:
    """(speech/no-speech agreement, emotion accuracy on patches inside clips, share of clip patches voting)."""
    mids = (np.array(res["starts"]) + np.array(res["ends"])) / 2
    truth = np.array(["no speech"] * len(mids), dtype=object)
    for s, e, lab in layout:
        truth[(mids >= s) & (mids < e)] = lab
    pred = np.array(res["labels"], dtype=object)
    speech_t, speech_p = truth != "no speech", pred != "no speech"
    both = speech_t & speech_p
    return float(np.mean(speech_t == speech_p)), float(np.mean(pred[both] == truth[both])), float(speech_p[speech_t].mean())


def main() -> None:
    from emolens.inference import resolve_model

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="run dir (default: the shipped model)")
    ap.add_argument("--corpus", default=str(Path(os.environ.get("EMOLENS_SHARED", Path(__file__).resolve().parents[2] / "shared")) / "data" / "emodb-original"))
    ap.add_argument("--minutes", type=float, default=60.0)
    ap.add_argument("--backend", default="auto")
    ap.add_argument("--block-seconds", type=float, default=60.0)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="emolens-timeline-") as d:
        tmp = Path(d)
        print(f"{'recording':<12}{'wall s':>9}{'x real time':>13}{'peak RSS MB':>13}{'model loaded MB':>17}"
              f"{'speech/silence':>16}{'emotion acc':>13}")
        for minutes in (1.0, args.minutes):
            wav = tmp / f"rec{minutes:g}.wav"
            layout = build_recording(Path(args.corpus), minutes, wav)
            res = run_child(str(resolve_model(args.model)), wav, args.backend, args.block_seconds, tmp)
            sp, acc, vote = score(res, layout)
            print(f"{minutes:>6g} min{'':<2}{res['wall']:>9.1f}{res['duration'] / res['wall']:>13.0f}"
                  f"{res['rss_peak_kb'] / 1024:>13.0f}{res['rss_model_kb'] / 1024:>17.0f}{sp:>16.3f}{acc:>13.3f}")
            wav.unlink()
        print(f"(backend {args.backend}, blocks of {args.block_seconds:g} s, {os.cpu_count()} cores; corpus {args.corpus}; "
              "speech/silence = patch labels vs the layout, emotion acc = on patches inside clips labelled with an emotion)")


if __name__ == "__main__":
    main()
