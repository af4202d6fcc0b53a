"""Inference backends: the one model call of prediction, behind a common interface.

``backend.run(patches (n, 96, 64) float32) -> (outputs (n, K), audioset (n, 521) or None)``

``outputs`` are :meth:`FusionNet.patch_outputs`: the emotion softmax (``K = C``) of a
voting model, the embedding (``K = D``) of a statistics-pooling one; the recognizer's
:mod:`~emolens.models.decision` turns them into the utterance decision.

* :class:`TorchBackend`: the PyTorch :class:`FusionNet` itself (imports torch).
* :class:`OnnxBackend`: the same graph exported to ONNX (:mod:`onnx_export`) run by
  ONNX Runtime with all graph optimisations and one intra-op thread per usable core;
  probabilities agree with torch to ~1e-6 (``tests/models/test_backends.py``) and it is
  several times faster on a CPU (``benchmarks/inference_speed.py``).

:func:`resolve_backend` picks ``"auto"`` = ONNX when onnxruntime is installed, else torch.
:func:`find_onnx` finds the ONNX file of a run directory without PyTorch: ``RUN/model.onnx``
when it was exported from these weights (the shipped model carries one), else a cached
export (``$EMOLENS_CACHE/onnx/<fingerprint>.onnx``, default ``~/.cache/emolens/onnx``);
:func:`onnx_for_run` also makes the cached export when there is none (that needs torch).
This module imports neither torch nor onnx at import time.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from emolens.errors import ModelError
from emolens.models.run_files import ONNX_FILE, run_fingerprint

if TYPE_CHECKING:
    from emolens.models.fusion import FusionNet

log = logging.getLogger("emolens")
BACKENDS = ("auto", "torch", "onnx")
#: Patches per forward pass (larger batches amortise per-call overhead; 256 patches
#: = 123 s of audio, ~6 MB of input).
DEFAULT_BATCH = 256


class Backend(Protocol):
    name: str

    def run(self, patches: np.ndarray, batch_size: int | None = None) -> tuple[np.ndarray, np.ndarray | None]:
        """``patches (n, 96, 64)`` -> ``(outputs (n, K), audioset (n, 521) or None)``,
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

    def run(self, patches: np.ndarray, batch_size: int | None = None) -> tuple[np.ndarray, np.ndarray | None]:
        import torch

        outs, audioset = [], []
        with_as = self.model.yamnet is not None
        with torch.no_grad():
            for x in _batches(patches, batch_size or self.batch_size):
                o, scores = self.model.patch_outputs(torch.from_numpy(x))
                outs.append(o.numpy())
                if with_as:
                    audioset.append(scores.numpy())
        if not outs:
            return np.zeros((0, self.model.head.output_width), np.float32), (np.zeros((0, 521), np.float32) if with_as else None)
        return np.concatenate(outs), (np.concatenate(audioset) if with_as else None)


class OnnxBackend:
    """ONNX Runtime inference of an exported emolens graph (:func:`onnx_export.export_onnx`)."""

    name = "onnx"

    def __init__(self, path: str | Path, threads: int | None = None, batch_size: int = DEFAULT_BATCH):
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.intra_op_num_threads = threads or usable_cores()
        so.inter_op_num_threads = 1
        # No busy-waiting between runs: predict decodes the next files in threads meanwhile, and
        # spinning workers took their cores (CLI over 339 EmoDB files, 2 cores: 6.7-7.3 s vs 7.7-8.7 s).
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        so.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own types
            raise ModelError(f"{path}: not a usable ONNX model ({str(exc).splitlines()[0][:120]}); export it again with `emolens export`") from None
        self.path = Path(path)
        self.batch_size = batch_size
        self.outputs = [o.name for o in self.session.get_outputs()]
        self.width = int(self.session.get_outputs()[0].shape[1])  # C (probs) or D (embedding)
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
            return np.zeros((0, self.width), np.float32), (np.zeros((0, 521), np.float32) if with_as else None)
        return np.concatenate(probs), (np.concatenate(audioset) if with_as else None)


def _installed(module: str) -> bool:
    """Whether ``module`` can be imported (without importing it)."""
    import importlib.util

    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def onnx_available() -> bool:
    """Whether ONNX Runtime is installed (running an export needs nothing else)."""
    return _installed("onnxruntime")


def needs_torch(what: str) -> ModelError:
    """The one-line error of a step that needs PyTorch in an install without it."""
    return ModelError(f"{what} needs PyTorch, which this install lacks: pip install 'emolens[train]'")


def resolve_backend(name: str) -> str:
    """``auto`` -> ``onnx`` when onnxruntime is installed, else ``torch``."""
    if name not in BACKENDS:
        raise ModelError(f"unknown backend {name!r}; use {', '.join(BACKENDS)}")
    if name == "auto":
        return "onnx" if onnx_available() else "torch"
    if name == "onnx" and not onnx_available():
        raise ModelError("the onnx backend needs the onnxruntime package (pip install onnxruntime)")
    if name == "torch" and not _installed("torch"):
        raise needs_torch("--backend torch")
    return name


def onnx_cache_dir() -> Path:
    """``$EMOLENS_CACHE/onnx``, else ``~/.cache/emolens/onnx``."""
    root = os.environ.get("EMOLENS_CACHE")
    return (Path(root).expanduser() if root else Path.home() / ".cache" / "emolens") / "onnx"


def find_onnx(run_dir: str | Path, threads: int | None = None) -> OnnxBackend | None:
    """An :class:`OnnxBackend` of ``RUN/model.onnx`` or of the cached export, whichever
    was made from the run's current weights (its recorded fingerprint); None when
    neither was. Needs only onnxruntime."""
    fp = run_fingerprint(run_dir)
    for cand in (Path(run_dir) / ONNX_FILE, onnx_cache_dir() / f"{fp[:32]}.onnx"):
        if cand.exists():
            try:
                be = OnnxBackend(cand, threads)
            except ModelError:
                continue
            if be.fingerprint == fp:
                if be.quantized:
                    log.info("using %s (%s, made by `emolens export --int8`)", cand, be.quantized)
                return be
    return None


def onnx_for_run(run_dir: str | Path, model: FusionNet | None = None, threads: int | None = None) -> OnnxBackend:
    """An :class:`OnnxBackend` for the run in ``run_dir``: :func:`find_onnx`, else a new
    cached export (a few seconds, once per model; loads ``model`` from ``run_dir`` with
    PyTorch when not given)."""
    found = find_onnx(run_dir, threads)
    if found is not None:
        return found
    if not (_installed("torch") and _installed("onnx")):
        raise needs_torch(f"{run_dir} has no ONNX export of its current weights; making one")
    from emolens.models.onnx_export import export_onnx

    if model is None:
        from emolens.models.io import load_model

        model = load_model(run_dir)[0]
    fp = run_fingerprint(run_dir)
    dest = onnx_cache_dir() / f"{fp[:32]}.onnx"
    log.info("exporting %s to ONNX once (%s)", run_dir, dest)
    export_onnx(model, dest, fp)
    return OnnxBackend(dest, threads)


def make_backend(name: str, model: FusionNet | None, run_dir: str | Path | None = None,
                 threads: int | None = None) -> TorchBackend | OnnxBackend:
    """A backend by name (``auto``, ``torch`` or ``onnx``) for a model.

    ``torch`` needs the loaded ``model``; ``onnx`` needs ``run_dir`` (to find/cache the
    export; ``model`` may then be None) or exports ``model`` to a temporary file keyed by
    nothing (in-memory models, e.g. in tests)."""
    name = resolve_backend(name)
    if name == "torch":
        import torch

        if threads:
            torch.set_num_threads(threads)
        if model is None:
            from emolens.models.io import load_model

            model = load_model(run_dir)[0]
        return TorchBackend(model)
    if run_dir is not None:
        return onnx_for_run(run_dir, model, threads)
    import tempfile

    from emolens.models.onnx_export import export_onnx

    tmp = Path(tempfile.mkdtemp(prefix="emolens-onnx-")) / "model.onnx"
    return OnnxBackend(export_onnx(model, tmp), threads)


__all__ = ["Backend", "TorchBackend", "OnnxBackend", "make_backend", "resolve_backend", "onnx_for_run", "find_onnx", "needs_torch",
           "onnx_available", "onnx_cache_dir", "usable_cores", "BACKENDS"]
