"""Time to a first answer, as a user meets it: whole processes, start-up included.

Measures in one run (best of ``--repeats`` interleaved rounds, wall seconds):

* ``emolens --help`` (goal <= 0.3 s);
* ``emolens predict ONE.wav`` with the shipped model (goal <= 1.0 s);
* ``emolens predict --json`` over the 339 4-class files of EmoDB (original recordings,
  ``../shared/data/emodb-original``), next to a reference process that imports
  ``ai_edge_litert``, loads Google's ``yamnet.tflite`` and runs it on the same files
  (decoded the same way). Prints x real time of both and their ratio (goal >= 1.0x).

Each figure also has its CPU seconds (user + sys of the process): on a machine shared with
other jobs, wall time measures the contention, and the CPU ratio says which would be faster
on an idle one.

    python benchmarks/first_answer.py [--repeats 3] [--files 339] [--tflite PATH]

Uses the ``emolens`` and ``python`` of the running interpreter's environment (``.venv``).
"""

from __future__ import annotations

import argparse
import csv
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("EMOLENS_SHARED", REPO.parent / "shared"))
FOUR = {"angry", "happy", "neutral", "sad"}

_TFLITE_CHILD = """
import sys, time
t0 = time.perf_counter()
import ai_edge_litert.interpreter as litert
from emolens.audio.io import load_audio
it = litert.Interpreter(model_path=sys.argv[1], num_threads=int(sys.argv[2]))
inp = it.get_input_details()[0]
shape = None
n = 0
for f in open(sys.argv[3]).read().split("\\n"):
    if not f:
        continue
    clip = load_audio(f)
    if clip.samples.shape != shape:
        shape = clip.samples.shape
        it.resize_tensor_input(inp["index"], shape)
        it.allocate_tensors()
    it.set_tensor(inp["index"], clip.samples)
    it.invoke()
    n += 1
print(n, it.get_tensor(it.get_output_details()[0]["index"]).shape)
"""


def emodb_files(limit: int) -> tuple[list[Path], float]:
    """The 4-class EmoDB recordings (sorted) and their total duration in seconds."""
    root = SHARED / "data" / "emodb-original"
    if not (root / "metadata.csv").is_file():
        raise SystemExit(f"no EmoDB recordings at {root} (set EMOLENS_SHARED to the folder holding data/)")
    rows = [r for r in csv.DictReader(open(root / "metadata.csv")) if r["emotion"] in FOUR]
    rows = sorted(rows, key=lambda r: r["path"])[:limit]
    return [root / r["path"] for r in rows], sum(float(r["duration_s"]) for r in rows)


def _cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def wall(cmd: list[str], env: dict) -> tuple[float, float, str]:
    """(wall seconds, CPU seconds, stdout) of one process."""
    c0, t0 = _cpu(), time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    dt, cpu = time.perf_counter() - t0, _cpu() - c0
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[:3])} ... failed ({r.returncode}): {r.stderr.strip()[-400:]}")
    return dt, cpu, r.stdout


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--files", type=int, default=339)
    ap.add_argument("--threads", type=int, default=2, help="TFLite interpreter threads (emolens uses all usable cores)")
    ap.add_argument("--tflite", type=Path, default=REPO / "src/emolens/data/yamnet/yamnet.tflite")
    args = ap.parse_args()
    bindir = Path(sys.executable).parent
    emolens = str(bindir / "emolens")
    files, seconds = emodb_files(args.files)
    one = files[0]
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "MPLBACKEND": "Agg", "EMOLENS_CACHE": str(Path(tmp) / "cache")}
        lst = Path(tmp) / "files.txt"
        lst.write_text("\n".join(map(str, files)) + "\n")
        best: dict[str, float] = {}
        cpu: dict[str, float] = {}
        out = ""
        for _ in range(args.repeats):
            for name, cmd in [("help", [emolens, "--help"]),
                              ("one", [emolens, "predict", str(one)]),
                              ("cli", [emolens, "predict", "--json", *map(str, files)]),
                              ("tflite", [sys.executable, "-c", _TFLITE_CHILD, str(args.tflite), str(args.threads), str(lst)])]:
                dt, c, o = wall(cmd, env)
                best[name] = min(best.get(name, float("inf")), dt)
                cpu[name] = min(cpu.get(name, float("inf")), c)
                if name == "cli":
                    out = o
        n_ok = sum(1 for line in out.splitlines() if '"label"' in line)
    print(f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}; best of {args.repeats}; "
          "seconds per process, start-up included: wall (CPU = user + sys)")
    print(f"emolens --help                          {best['help']:6.2f} s ({cpu['help']:5.2f})   goal <= 0.3 s")
    print(f"emolens predict {one.name:<23} {best['one']:6.2f} s ({cpu['one']:5.2f})   goal <= 1.0 s")
    print(f"emolens predict, {len(files)} EmoDB files ({seconds:.0f} s): {best['cli']:6.2f} s ({cpu['cli']:5.2f}) = "
          f"{seconds / best['cli']:4.0f}x real time, {n_ok} answered")
    print(f"ai_edge_litert YAMNet, same files:       {best['tflite']:6.2f} s ({cpu['tflite']:5.2f}) = "
          f"{seconds / best['tflite']:4.0f}x real time")
    print(f"emolens CLI vs TFLite reference:         {best['tflite'] / best['cli']:6.2f}x wall, "
          f"{cpu['tflite'] / cpu['cli']:.2f}x CPU   goal >= 1.0x")


if __name__ == "__main__":
    main()
