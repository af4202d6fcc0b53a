"""Inference backends: the one model call of prediction, behind a common interface.

``backend.run(patches (n, 96, 64) float32) -> (probs (n, C), audioset (n, 521) or None)``

* :class:`TorchBackend`: the PyTorch :class:`FusionNet` itself.
* :class:`OnnxBackend`: the same graph exported to ONNX (:mod:`onnx_export`) run by
  ONNX Runtime with all graph optimisations and one intra-op thread per usable core;
  probabilities agree with torch to ~1e-6 (``tests/models/test_backends.py``) and it is
  several times faster on a CPU (``benchmarks/inference_speed.py``).

:func:`resolve_backend` picks ``"auto"`` = ONNX when onnxruntime is installed, else torch.
:func:`onnx_for_run` finds or makes the ONNX file of a run directory: ``RUN/model.onnx``
when it was exported from these weights, else a cached export
(``$EMOLENS_CACHE/onnx/<fingerprint>.onnx``, default ``~/.cache/emolens/onnx``).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from emolens.errors import ModelError
from emolens.models.fusion import FusionNet

log = logging.getLogger("emolens")
BACKENDS = ("auto", "torch", "onnx")
#: Patches per forward pass (larger batches amortise per-call overhead; 256 patches
#: = 123 s of audio, ~6 MB of input).
DEFAULT_BATCH = 256


class Backend(Protocol):
    name: str

    def run(self, patches: np.ndarray, batch_size: int | None = None) -> tuple[np.ndarray, np.ndarray | None]:
        """``patches (n, 96, 64)`` -> ``(probs (n, C), audioset (n, 521) or None)``,
        ``batch_size`` patches per forward pass (default: the backend's)."""


def usable_cores() -> int:
    """CPU cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def _batches(patches: np.ndarray, batch_size: int):
    for s in range(0, len(patches), batch_size):
        yield np.ascontiguousarray(patches[s : s + batch_size, None], dtype=np.float32)


class TorchBackend:
    """PyTorch inference (``torch.no_grad``, eval mode)."""

    name = "torch"

    def __init__(self, model: FusionNet, batch_size: int = 64):
        self.model = model.eval()
        self.batch_size = batch_size

    @torch.no_grad()
    def run(self, patches: np.ndarray, batch_size: int | None = None) -> tuple[np.ndarray, np.ndarray | None]:
        probs, audioset = [], []
        with_as = self.model.yamnet is not None
        for x in _batches(patches, batch_size or self.batch_size):
            t = torch.from_numpy(x)
            if with_as:
                logits, scores = self.model.forward_with_audioset(t)
                audioset.append(scores.numpy())
            else:
                logits = self.model(t)
            probs.append(torch.softmax(logits, 1).numpy())
        n_classes = self.model.head.classifier[-1].out_features
        if not probs:
            return np.zeros((0, n_classes), np.float32), (np.zeros((0, 521), np.float32) if with_as else None)
        return np.concatenate(probs), (np.concatenate(audioset) if with_as else None)


class OnnxBackend:
    """ONNX Runtime inference of an exported emolens graph (:func:`onnx_export.export_onnx`)."""

    name = "onnx"

    def __init__(self, path: str | Path, threads: int | None = None, batch_size: int = DEFAULT_BATCH):
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.intra_op_num_threads = threads or usable_cores()
        so.inter_op_num_threads = 1
        so.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own types
            raise ModelError(f"{path}: not a usable ONNX model ({str(exc).splitlines()[0][:120]}); export it again with `emolens export`") from None
        self.path = Path(path)
        self.batch_size = batch_size
        self.outputs = [o.name for o in self.session.get_outputs()]
        self.n_classes = int(self.session.get_outputs()[0].shape[1])
        meta = self.session.get_modelmeta().custom_metadata_map
        self.fingerprint = meta.get("emolens_weights_sha256")
        self.quantized = meta.get("emolens_quantized")  # e.g. "int8-vggish", None for float

    def run(self, patches: np.ndarray, batch_size: int | None = None) -> tuple[np.ndarray, np.ndarray | None]:
        with_as = "audioset" in self.outputs
        probs, audioset = [], []
        for x in _batches(patches, batch_size or self.batch_size):
            out = self.session.run(None, {"patches": x})
            probs.append(out[0])
            if with_as:
                audioset.append(out[1])
        if not probs:
            return np.zeros((0, self.n_classes), np.float32), (np.zeros((0, 521), np.float32) if with_as else None)
        return np.concatenate(probs), (np.concatenate(audioset) if with_as else None)


def onnx_available() -> bool:
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def resolve_backend(name: str) -> str:
    """``auto`` -> ``onnx`` when onnxruntime (and onnx) import, else ``torch``."""
    if name not in BACKENDS:
        raise ModelError(f"unknown backend {name!r}; use {', '.join(BACKENDS)}")
    if name == "auto":
        return "onnx" if onnx_available() else "torch"
    if name == "onnx" and not onnx_available():
        raise ModelError("the onnx backend needs the onnx and onnxruntime packages (pip install onnx onnxruntime)")
    return name


def onnx_cache_dir() -> Path:
    """``$EMOLENS_CACHE/onnx``, else ``~/.cache/emolens/onnx``."""
    root = os.environ.get("EMOLENS_CACHE")
    return (Path(root).expanduser() if root else Path.home() / ".cache" / "emolens") / "onnx"


def onnx_for_run(run_dir: str | Path, model: FusionNet, threads: int | None = None) -> OnnxBackend:
    """An :class:`OnnxBackend` for the run in ``run_dir`` whose ``model`` is loaded:
    ``RUN/model.onnx`` when exported from the same weights, else the cached export,
    exporting it (a few seconds, once per model) when there is none."""
    from emolens.models.onnx_export import export_onnx, run_fingerprint

    fp = run_fingerprint(run_dir)
    for cand in (Path(run_dir) / "model.onnx", onnx_cache_dir() / f"{fp[:32]}.onnx"):
        if cand.exists():
            try:
                be = OnnxBackend(cand, threads)
            except ModelError:
                continue
            if be.fingerprint == fp:
                if be.quantized:
                    log.info("using %s (%s, made by `emolens export --int8`)", cand, be.quantized)
                return be
    dest = onnx_cache_dir() / f"{fp[:32]}.onnx"
    log.info("exporting %s to ONNX once (%s)", run_dir, dest)
    export_onnx(model, dest, fp)
    return OnnxBackend(dest, threads)


def make_backend(name: str, model: FusionNet, run_dir: str | Path | None = None,
                 threads: int | None = None) -> TorchBackend | OnnxBackend:
    """A backend by name (``auto``, ``torch`` or ``onnx``) for a loaded model.

    ``onnx`` needs ``run_dir`` (to find/cache the export) or exports to a temporary
    file keyed by nothing (in-memory models, e.g. in tests)."""
    name = resolve_backend(name)
    if name == "torch":
        if threads:
            torch.set_num_threads(threads)
        return TorchBackend(model)
    if run_dir is not None:
        return onnx_for_run(run_dir, model, threads)
    import tempfile

    from emolens.models.onnx_export import export_onnx

    tmp = Path(tempfile.mkdtemp(prefix="emolens-onnx-")) / "model.onnx"
    return OnnxBackend(export_onnx(model, tmp), threads)


__all__ = ["Backend", "TorchBackend", "OnnxBackend", "make_backend", "resolve_backend", "onnx_for_run",
           "onnx_available", "onnx_cache_dir", "usable_cores", "BACKENDS"]
