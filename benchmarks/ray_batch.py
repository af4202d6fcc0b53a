"""Batch inference on Ray (``emolens predict --engine ray``) against single-process
``predict`` on the same files, in the same run.

Single process = :func:`emolens.batch.iter_file_results` (what ``emolens predict`` runs:
2 decoding threads, ONNX Runtime with ``T`` intra-op threads); Ray = :func:`run_ray_batch`
with ``W`` model actors of one thread each (decoding in Ray tasks), writing Parquet
shards to a fresh folder. The local Ray is started once before the timed runs (its
start-up is printed on its own); each Ray figure is a whole job: planning, actor
start-up (ONNX session load), decoding, model, writing. Figures: files/s, x real time
(seconds of audio per wall second), the ratio to single process on as many cores, and
the peak RSS (VmHWM) of each model actor and decoding worker process, read from /proc
while the job runs. Each Ray setting also runs a job of 8 files: its time is the fixed
cost of a job (worker and actor start-up, planning), and the difference between the two
jobs gives the marginal rate per file, what a long job approaches.

    python benchmarks/ray_batch.py [--files 120] [--workers 1,2] [--batch-files 16]
"""

from __future__ import annotations

import argparse
import os
import re
import tempfile
import threading
import time
from pathlib import Path

SHARED = Path(os.environ.get("EMOLENS_SHARED", Path(__file__).resolve().parents[2] / "shared"))


class ProcessPeaks:
    """Polls /proc for Ray worker processes whose title matches ``pattern`` and keeps the
    largest VmHWM (peak resident set, MB) seen for each pid."""

    def __init__(self, patterns: dict[str, str], interval: float = 0.2):
        self.patterns = {k: re.compile(v) for k, v in patterns.items()}
        self.peaks: dict[str, dict[int, float]] = {k: {} for k in patterns}
        self.interval = interval
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _poll(self) -> None:
        for d in os.listdir("/proc"):
            if not d.isdigit():
                continue
            try:
                title = Path(f"/proc/{d}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                kinds = [k for k, rx in self.patterns.items() if rx.search(title)]
                if not kinds:
                    continue
                hwm = next(ln for ln in Path(f"/proc/{d}/status").read_text().splitlines() if ln.startswith("VmHWM"))
                mb = int(hwm.split()[1]) / 1024
            except (OSError, StopIteration, ValueError):
                continue
            for k in kinds:
                self.peaks[k][int(d)] = max(mb, self.peaks[k].get(int(d), 0.0))

    def _run(self) -> None:
        while not self._stop.is_set():
            self._poll()
            self._stop.wait(self.interval)

    def __enter__(self) -> "ProcessPeaks":
        self._poll()  # processes of an earlier job still shutting down are not this job's
        self._old = {k: set(v) for k, v in self.peaks.items()}
        self._t.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._t.join()
        self.peaks = {k: {p: v for p, v in d.items() if p not in self._old[k]} for k, d in self.peaks.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=120, help="EmoDB (original) files (default 120)")
    ap.add_argument("--workers", default="1,2", help="comma list of Ray model actors = single-process threads (default 1,2)")
    ap.add_argument("--batch-files", type=int, default=16, help="files per model call / shard (default 16)")
    args = ap.parse_args()

    import soundfile as sf

    from emolens.batch import BatchConfig, iter_file_results
    from emolens.distributed.ray_batch import RayBatchConfig, init_ray, run_ray_batch
    from emolens.inference import EmotionRecognizer, resolve_model

    files = sorted((SHARED / "data" / "emodb-original" / "wav").glob("*.flac"))[: args.files]
    if not files:
        raise SystemExit(f"no EmoDB files under {SHARED}/data/emodb-original (set EMOLENS_SHARED)")
    audio = sum(sf.info(str(f)).duration for f in files)
    workers = [int(w) for w in args.workers.split(",")]
    print(f"{len(files)} files, {audio:.0f} s of audio; {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}")

    t0 = time.perf_counter()
    init_ray(RayBatchConfig(workers=max(workers)))
    print(f"local Ray start-up: {time.perf_counter() - t0:.1f} s (not in the figures below)")

    rows, marginal = [], {}
    for w in workers:
        rec = EmotionRecognizer.from_dir(resolve_model(None), backend="onnx", threads=w)
        t0 = time.perf_counter()
        n = sum(1 for r in iter_file_results(rec, files, BatchConfig(workers=2, files_per_batch=32)) if r.error is None)
        local = time.perf_counter() - t0
        assert n == len(files)
        rows.append(("single process", w, local, None, None))
        rec1 = EmotionRecognizer.from_dir(resolve_model(None), backend="onnx", threads=1)
        timed = {}
        for part in (files[:8], files):
            with tempfile.TemporaryDirectory(prefix="emolens-ray-bench-") as tmp, \
                    ProcessPeaks({"actor": r"ray::.*Classifier", "decode": r"ray::.*decode_rows"}) as peaks:
                s = run_ray_batch(rec1, part, Path(tmp) / "out",
                              RayBatchConfig(workers=w, files_per_batch=args.batch_files, progress=False))
            assert s.classified == len(part) and s.errors == 0
            timed[len(part)] = s.seconds
        rows.append(("ray", w, s.seconds, peaks.peaks["actor"], peaks.peaks["decode"]))
        (n1, t1), (n2, t2) = sorted(timed.items())
        marginal[w] = ((n2 - n1) / max(t2 - t1, 1e-9), t1)

    print(f"\n| engine | model cores (threads / actors) | wall s | files/s | x real time | vs single process | "
          f"peak RSS per model actor, MB | peak RSS per decoding worker, MB |")
    print("|---|---|---|---|---|---|---|---|")
    ref = {w: sec for eng, w, sec, _, _ in rows if eng == "single process"}
    for eng, w, sec, actor, dec in rows:
        fmt = lambda d: ", ".join(f"{v:.0f}" for v in sorted(d.values())) if d else "-"  # noqa: E731
        print(f"| {eng} | {w} | {sec:.1f} | {len(files) / sec:.2f} | {audio / sec:.0f} | {ref[w] / sec:.2f} | "
              f"{fmt(actor) if actor is not None else '-'} | {fmt(dec) if dec is not None else '-'} |")
    print("\nRay, fixed cost per job (the 8-file job) and marginal rate (the other files: full job minus the 8-file job):")
    for w, (rate, fixed) in marginal.items():
        print(f"  {w} actor(s): {rate:.1f} files/s = {rate * audio / len(files):.0f} x real time; fixed {fixed:.1f} s per job")
    import ray

    ray.shutdown()


if __name__ == "__main__":
    main()
