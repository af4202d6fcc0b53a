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
    p.add_argument("--int8", action="store_true",
                   help="quantise the VGGish branch to int8 (fusion/vggish models: ~2.4x faster, max |delta p| ~0.03); needs --calibrate")
    p.add_argument("--calibrate", nargs="+", type=Path, default=None,
                   help="audio files/folders whose patches set the int8 activation ranges (e.g. 30 training recordings)")
    p.add_argument("--calibrate-files", type=int, default=30, help="use at most this many calibration files (default 30)")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_export)


def cmd_export(args) -> int:
    import numpy as np

    from emolens.errors import ModelError
    from emolens.models.backends import OnnxBackend, TorchBackend, resolve_backend
    from emolens.models.io import load_model
    from emolens.models.onnx_export import export_onnx, run_fingerprint

    resolve_backend("onnx")  # clear error when onnx/onnxruntime are missing
    if args.int8 and not args.calibrate:
        raise ModelError("--int8 needs --calibrate FILES_OR_FOLDER (recordings like the ones you will classify)")
    model, config, _ = load_model(args.run)
    dest = args.onnx or Path(args.run) / "model.onnx"
    export_onnx(model, dest, run_fingerprint(args.run))
    x = np.random.default_rng(0).normal(-2.0, 2.0, (8, 96, 64)).astype(np.float32)
    if args.int8:
        x, calib = _calibration_patches(args, config)
        from emolens.models.onnx_export import quantize_vggish

        quantize_vggish(dest, dest, calib)
    ref, ref_as = TorchBackend(model).run(x)
    got, got_as = OnnxBackend(dest).run(x)
    delta = float(np.abs(ref - got).max())
    if ref_as is not None:
        delta = max(delta, float(np.abs(ref_as - got_as).max()))
    same = float(np.mean(ref.argmax(1) == got.argmax(1)))
    if not args.int8 and delta > 1e-4:
        raise ModelError(f"{dest}: ONNX outputs differ from PyTorch by {delta:.2g}; the export is not usable")
    kind = "VGGish int8, " if args.int8 else ""
    print(f"written: {dest} ({dest.stat().st_size / 1e6:.1f} MB, {kind}classes {', '.join(config['classes'])}; "
          f"vs PyTorch on {len(x)} patches: max |delta| {delta:.1e}, same argmax {same:.1%})")
    return 0


def _calibration_patches(args, config: dict):  # noqa: ANN202 - (held-out patches, calibration patches)
    """Patches of ``--calibrate`` files: every 4th file held out to check the result."""
    import numpy as np

    from emolens.audio.io import load_audio
    from emolens.cli.inputs import expand_inputs
    from emolens.features.mel import frontend_from_dict, mel_spectrogram
    from emolens.features.patches import PatchConfig, log_mel_patches

    fe, pc = frontend_from_dict(config["frontend"]), PatchConfig(**config["patches"])
    files = expand_inputs(args.calibrate)[: max(2, args.calibrate_files)]
    parts = [log_mel_patches(mel_spectrogram(load_audio(f, sample_rate=fe.sample_rate).samples, fe), pc) for f in files]
    held = [p for i, p in enumerate(parts) if i % 4 == 3] or parts[-1:]
    calib = [p for i, p in enumerate(parts) if i % 4 != 3] or parts
    return np.concatenate(held), np.concatenate(calib)
