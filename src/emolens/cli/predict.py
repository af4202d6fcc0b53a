"""``emolens predict``: classify files and folders, streaming results as they come.

Folders are walked recursively; files are decoded in parallel and classified in
batches; each result is printed (a table row, or a JSON line with ``--json``) and, with
``--out FILE.jsonl|.csv``, appended to that file at once. Re-running with the same
``--out`` skips the files it already holds (same path, size and mtime), so a killed
run resumes where it stopped. A bad file is one error line/record; the run goes on.

``--adapt`` classifies voice groups (a folder, or ``--speakers CSV``) with statistics of the
group's own clips (:mod:`emolens.adaptation`); a clip whose top calibrated probability is
below ``--uncertain-below`` (default: the model's measured threshold) is shown as
"uncertain" and flagged ``uncertain`` in JSON/CSV (its emotion and probabilities stay).
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

log = logging.getLogger("emolens")


def add_arguments(p) -> None:  # noqa: ANN001 - argparse parser
    """Options of ``predict`` beyond the original ``--model INPUTS --json --max-seconds``."""
    p.add_argument("--out", type=Path, default=None,
                   help="also write results to FILE.jsonl or FILE.csv as they come; re-running with the same file resumes")
    p.add_argument("--backend", default="auto", choices=["auto", "torch", "onnx"],
                   help="inference backend (default auto: ONNX Runtime when installed, the faster one)")
    p.add_argument("--workers", type=int, default=None,
                   help="decoding threads (default: half the usable cores, all of them for the Whisper model, at least 1); with --engine ray: model actors, one ONNX Runtime session each (default 1)")
    p.add_argument("--threads", type=int, default=None,
                   help="inference threads (default: the usable cores the decoding threads leave, at least 1; with --engine ray: per actor, default 1)")
    p.add_argument("--batch-files", type=int, default=None,
                   help="files whose patches share forward passes (default 8; with --engine ray 16, also the least rows per shard)")
    from emolens.cli.adapt import add_adapt_arguments

    add_adapt_arguments(p, "classified")
    p.add_argument("--uncertain-below", type=float, default=None,
                   help="call a clip uncertain when its top probability is below P (default: the model's measured threshold)")
    g = p.add_argument_group("batch inference on Ray (pip install 'emolens[ray]')")
    g.add_argument("--engine", default="local", choices=["local", "ray"],
                   help="local (default): this process; ray: a Ray Data job (local Ray, or --address) writing "
                        "result shards to the folder --out; re-running with the same --out skips finished files")
    g.add_argument("--address", default=None, help="Ray cluster to join (default: $RAY_ADDRESS, else a local Ray)")
    g.add_argument("--format", default="parquet", choices=["parquet", "jsonl"], help="result shards (default parquet)")
    g.add_argument("--segments-over", type=float, default=60.0,
                   help="recordings at least this many seconds long also get timeline segments (default 60)")
    # With --engine ray recordings of any length are processed (streamed) unless --max-seconds is given.
    p.set_defaults(max_seconds=None)


def cmd_predict(args) -> int:
    if getattr(args, "engine", "local") == "ray":
        from emolens.distributed.ray_batch import cmd_predict_ray

        if args.batch_files is None:
            args.batch_files = 16
        return cmd_predict_ray(args)
    from emolens.audio.io import DEFAULT_MAX_SECONDS
    from emolens.batch import BatchConfig, file_key, iter_file_results, predict_threads
    from emolens.cli.inputs import expand_inputs
    from emolens.inference import EmotionRecognizer, resolve_model
    from emolens.report.results_file import ResultsFile, result_record

    from emolens.models.run_files import read_config

    backend = "torch" if getattr(args, "adapt", False) else getattr(args, "backend", "auto")  # --adapt runs the head in torch
    run_dir = resolve_model(args.model)
    threads, workers = predict_threads(read_config(run_dir), backend, getattr(args, "threads", None), getattr(args, "workers", None))
    rec = EmotionRecognizer.from_dir(run_dir, backend=backend, threads=threads)
    from emolens.errors import EmolensError

    thr = getattr(args, "uncertain_below", None)
    if thr is not None:
        if not 0.0 <= thr <= 1.0:
            raise EmolensError(f"--uncertain-below {thr}: give a probability between 0 and 1")
        rec.uncertain_threshold = thr
    from emolens.cli.adapt import adapt_request

    req = adapt_request(args, rec, expand_inputs(args.inputs), quiet=getattr(args, "quiet", False))
    adapt, speakers, neutral, files = req.adapt, req.speakers, req.neutral, req.files
    out_path = getattr(args, "out", None)
    sink = ResultsFile(out_path, rec.classes) if out_path is not None else None
    todo = files
    if sink is not None and sink.done:
        todo = [f for f in files if not sink.is_done(file_key(f))]
        print(f"resuming: {len(files) - len(todo)} of {len(files)} files already in {out_path}", file=sys.stderr)
    if not args.json:
        print(f"{'file':<40} {'emotion':<9} {'p':>5} {'speech':>6}  " + " ".join(f"{c[:7]:>7}" for c in rec.classes))
    failures = 0
    max_seconds = DEFAULT_MAX_SECONDS if args.max_seconds is None else args.max_seconds
    cfg = BatchConfig(workers=workers, files_per_batch=max(1, getattr(args, "batch_files", None) or BatchConfig.files_per_batch),
                      max_seconds=max_seconds)
    if adapt:
        from emolens.adaptation.groups import iter_adapted_results

        done = set(files) - set(todo)
        results = iter_adapted_results(rec, files, speakers,
                                       workers=cfg.workers, max_seconds=cfg.max_seconds,
                                       on_group=lambda m: print(f"adapt: {m}", file=sys.stderr, flush=True),
                                       skip=lambda f: f in done, neutral=[Path(f) for f in neutral] if neutral else None)
    else:
        results = iter_file_results(rec, todo, cfg)
    try:
        for r in results:
            record = sink.write(r) if sink is not None else result_record(r, rec.classes)
            if r.error is not None:
                failures += 1
                if args.json:
                    print(json.dumps({"file": record["file"], "error": r.error}), flush=True)
                else:
                    print(f"emolens: error: {r.error}", file=sys.stderr, flush=True)
                continue
            a = r.analysis
            if args.json:
                print(json.dumps(a.as_dict()), flush=True)
            else:
                f = str(r.path)
                name = f if len(f) <= 40 else "…" + f[-39:]
                note = f"  ({'; '.join(a.clip.notes)})" if a.clip.notes else ""
                label = "uncertain" if a.uncertain else a.label
                if a.uncertain:
                    note = f"  (uncertain: most likely {a.emotion}, p {a.confidence:.2f} < {rec.uncertain_threshold:.2f}" \
                           + (f"; {'; '.join(a.clip.notes)})" if a.clip.notes else ")")
                print(f"{name:<40} {label:<9} {a.confidence:>5.2f} {a.speech_fraction:>6.2f}  " + " ".join(f"{p:>7.2f}" for p in a.probs) + note,
                      flush=True)
    except BrokenPipeError:  # stdout closed early (e.g. `| head`): results so far are in --out
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    finally:
        if sink is not None:
            sink.close()
    if rec.config.get("vggish_pretrained") is False and not args.json:
        print("note: this model's VGGish branch was trained from random initialisation (no pretrained weights)")
    return 2 if todo and failures == len(todo) else 0
