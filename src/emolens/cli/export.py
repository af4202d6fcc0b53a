"""``emolens export RUN --onnx FILE``: the trained model as an ONNX graph (ONNX Runtime,
other languages, or `predict --backend onnx` without the first-use export)."""

from __future__ import annotations

from pathlib import Path


def add_parser(sub) -> None:  # noqa: ANN001 - argparse sub-parsers
    p = sub.add_parser("export", help="export a trained model to ONNX",
                       description="Write RUN's model as ONNX: input 'patches' (n, 1, 96, 64) log(mel + 0.01); outputs "
                                   "'probs' (n, C) and, with a YAMNet branch, 'audioset' (n, 521). The export is checked "
                                   "against PyTorch on random patches.")
    p.add_argument("run", type=Path, help="run directory written by `emolens train`")
    p.add_argument("--onnx", type=Path, default=None, help="output file (default RUN/model.onnx)")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_export)


def cmd_export(args) -> int:
    import numpy as np

    from emolens.errors import ModelError
    from emolens.models.backends import OnnxBackend, TorchBackend, resolve_backend
    from emolens.models.io import load_model
    from emolens.models.onnx_export import export_onnx, run_fingerprint

    resolve_backend("onnx")  # clear error when onnx/onnxruntime are missing
    model, config, _ = load_model(args.run)
    dest = args.onnx or Path(args.run) / "model.onnx"
    export_onnx(model, dest, run_fingerprint(args.run))
    x = np.random.default_rng(0).normal(-2.0, 2.0, (8, 96, 64)).astype(np.float32)
    ref, ref_as = TorchBackend(model).run(x)
    got, got_as = OnnxBackend(dest).run(x)
    delta = float(np.abs(ref - got).max())
    if ref_as is not None:
        delta = max(delta, float(np.abs(ref_as - got_as).max()))
    if delta > 1e-4:
        raise ModelError(f"{dest}: ONNX outputs differ from PyTorch by {delta:.2g}; the export is not usable")
    print(f"written: {dest} ({dest.stat().st_size / 1e6:.1f} MB, classes {', '.join(config['classes'])}; "
          f"max |delta| vs PyTorch {delta:.1e})")
    return 0
