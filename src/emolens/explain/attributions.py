"""Per-patch attribution maps (Grad-CAM, LIME, Occlusion) computed with Captum.

Every function takes a patch classifier ``model`` mapping ``(B, 1, 96, 64)`` log-mel
patches to logits ``(B, n_classes)`` and a batch of patches ``(N, 1, 96, 64)``, and
returns an :class:`Attribution`: maps ``(N, 96, 64)`` float32 on the input grid
(frames x mel bands) plus how many forward passes it took. The model is only run (in
eval mode, restored afterwards); attribution code lives here, never in the model
(Captum's separation of methods from models).

Decisions (METHOD.md s.6 leaves them open):

* **Grad-CAM** explains the target's *logit*: Captum ``LayerGradCam`` with
  ``relu_attributions=True`` at the given conv layer, upsampled bilinearly to 96 x 64
  (``LayerAttribution.interpolate``). One forward + one backward per batch of patches.
* **LIME** segments each patch into a regular grid of ``grid`` = (12 frames x 8 bands)
  cells = 8 x 8 = 64 regions (a spectrogram has no natural "superpixels"; a grid keeps
  the regions equal in time and mel extent). ``n_samples`` = 200 random on/off
  vectors (each region kept with p = 0.5); a region that is "off" is replaced by the
  **patch mean** (a flat, uninformative spectrum of the same loudness, instead of
  silence, which the model has its own opinion about). Surrogate: Captum's default
  ``Lasso(alpha=0.01)`` weighted by Captum's default exponential kernel on the cosine
  distance (width 1). The map shows each region's coefficient (signed).
* **Occlusion** slides a ``window`` = 16 frames x 8 bands (0.16 s x 1/8 of the bands)
  with ``stride`` = (8, 4) over the patch, filling it with the patch mean; each cell
  gets the mean drop of the score over the windows covering it (signed).
* LIME and Occlusion explain ``score`` = ``"logit"`` by default (the same quantity as
  Grad-CAM), or ``"prob"`` (softmax probability).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from captum.attr import LayerAttribution, LayerGradCam, Lime, Occlusion
from captum.attr._core.lime import get_exp_kernel_similarity_function
from captum._utils.models.linear_model import SkLearnLasso
from torch import nn

from emolens.errors import LabelError

__all__ = [
    "Attribution",
    "ProgressFn",
    "gradcam",
    "lime",
    "occlusion",
    "grid_segments",
    "target_index",
    "tqdm_progress",
]

#: ``progress(done, total)``, called after each patch (LIME) or chunk of patches.
ProgressFn = Callable[[int, int], None]
Score = Literal["logit", "prob"]
PATCH_SHAPE = (96, 64)


@dataclass(frozen=True)
class Attribution:
    """Maps ``(N, 96, 64)`` float32 and their cost.

    ``forward_calls``: calls of the model's forward; ``patches_evaluated``: patches
    pushed through it in total (the sum of the batch sizes); ``backward_calls``: 1
    per Grad-CAM batch, 0 for perturbation methods.
    """

    method: str
    maps: np.ndarray
    forward_calls: int
    patches_evaluated: int
    backward_calls: int = 0


class _CountingForward:
    """Wraps ``model`` as Captum's forward function, counting calls and examples."""

    def __init__(self, model: nn.Module, target: int, score: Score = "logit") -> None:
        if score not in ("logit", "prob"):
            raise ValueError(f"score {score!r}: use 'logit' or 'prob'")
        self.model, self.target, self.score = model, int(target), score
        self.calls = 0
        self.examples = 0

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        self.examples += int(x.shape[0])
        out = self.model(x)
        if out.ndim != 2 or self.target >= out.shape[1]:
            raise LabelError(
                f"target class index {self.target} but the model returns logits of shape {tuple(out.shape)}"
            )
        return torch.softmax(out, dim=1) if self.score == "prob" else out


@contextmanager
def _eval_mode(model: nn.Module) -> Iterator[None]:
    """Put every submodule in eval mode; restore each one's own flag afterwards."""
    flags = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for m, flag in flags:
            m.train(flag)


def tqdm_progress(desc: str) -> ProgressFn:
    """A :data:`ProgressFn` drawing a tqdm bar (created on the first call)."""
    from tqdm.auto import tqdm

    state: dict = {}

    def update(done: int, total: int) -> None:
        bar = state.get("bar")
        if bar is None:
            bar = state["bar"] = tqdm(total=total, desc=desc, leave=False)
        bar.update(done - bar.n)
        if done >= total:
            bar.close()

    return update


def target_index(class_names: list[str], label: str | int) -> int:
    """Index of ``label`` (a class name or an index) in ``class_names``."""
    if isinstance(label, (int, np.integer)):
        if not 0 <= int(label) < len(class_names):
            raise LabelError(f"class index {label} is outside 0..{len(class_names) - 1}")
        return int(label)
    if label not in class_names:
        raise LabelError(f"class {label!r} is not one of {', '.join(class_names)}")
    return class_names.index(label)


def _check(model: nn.Module, patches: torch.Tensor, target: int) -> torch.Tensor:
    """Validate ``patches`` ``(N, 1, 96, 64)`` and ``target``; return a detached float copy."""
    if not isinstance(patches, torch.Tensor):
        patches = torch.as_tensor(np.asarray(patches))
    if patches.ndim != 4 or patches.shape[1] != 1 or tuple(patches.shape[2:]) != PATCH_SHAPE:
        raise ValueError(f"patches must be (N, 1, 96, 64), got {tuple(patches.shape)}")
    if patches.shape[0] == 0:
        raise ValueError("no patches to explain")
    if int(target) < 0:
        raise LabelError(f"target class index {target} is negative")
    device = next((p.device for p in model.parameters()), patches.device)
    return patches.detach().to(device=device, dtype=torch.float32)


def _chunks(n: int, size: int | None) -> list[slice]:
    size = n if size is None or size <= 0 else size
    return [slice(i, min(n, i + size)) for i in range(0, n, size)]


def _patch_mean(patches: torch.Tensor) -> torch.Tensor:
    """Per-patch mean, broadcast to the patches' shape: the "masked" fill value."""
    return patches.mean(dim=(1, 2, 3), keepdim=True).expand_as(patches).contiguous()


def gradcam(
    model: nn.Module,
    layer: nn.Module,
    patches: torch.Tensor,
    target: int,
    *,
    batch_size: int | None = 64,
    progress: ProgressFn | None = None,
    relu: bool = True,
) -> Attribution:
    """Grad-CAM of class ``target`` at conv ``layer`` (a submodule of ``model``).

    ``relu(sum_k mean_ij(d y_target / d A_k) * A_k)`` upsampled bilinearly from the
    layer's (h, w) grid to 96 x 64. ``batch_size`` patches share one forward and one
    backward pass (``None``: all at once). Returns maps ``(N, 96, 64)`` >= 0 (signed
    with ``relu=False``).
    """
    x = _check(model, patches, target)
    fwd = _CountingForward(model, target, "logit")
    cam = LayerGradCam(fwd, layer)
    parts, backward = [], 0
    chunks = _chunks(x.shape[0], batch_size)
    with _eval_mode(model):
        for i, sl in enumerate(chunks):
            attr = cam.attribute(x[sl], target=int(target), relu_attributions=bool(relu))
            if isinstance(attr, tuple):  # a layer with several outputs: use the first
                attr = attr[0]
            up = LayerAttribution.interpolate(attr.detach(), PATCH_SHAPE, interpolate_mode="bilinear")
            parts.append(up[:, 0].cpu().numpy())
            backward += 1
            if progress is not None:
                progress(i + 1, len(chunks))
    maps = np.concatenate(parts).astype(np.float32)
    return Attribution("Grad-CAM", maps, fwd.calls, fwd.examples, backward)


def grid_segments(grid: tuple[int, int] = (12, 8), shape: tuple[int, int] = PATCH_SHAPE) -> np.ndarray:
    """LIME regions: integer ids ``(frames, bands)`` of a regular grid of cells of
    ``grid`` = (frames, bands) each, numbered row-major (time-major) from 0."""
    gf, gb = int(grid[0]), int(grid[1])
    if gf < 1 or gb < 1:
        raise ValueError(f"grid cells must be >= 1 frame and band, got {grid}")
    nb = math.ceil(shape[1] / gb)
    f = np.arange(shape[0])[:, None] // gf
    b = np.arange(shape[1])[None, :] // gb
    return (f * nb + b).astype(np.int64)


def lime(
    model: nn.Module,
    patches: torch.Tensor,
    target: int,
    *,
    grid: tuple[int, int] = (12, 8),
    n_samples: int = 200,
    perturbations_per_eval: int = 50,
    alpha: float = 0.01,
    score: Score = "logit",
    seed: int = 0,
    progress: ProgressFn | None = None,
) -> Attribution:
    """LIME of class ``target``: one Lasso surrogate per patch over grid regions.

    Each patch is explained on its own (as Captum's ``Lime`` does internally), with
    ``n_samples`` perturbations evaluated ``perturbations_per_eval`` at a time, so
    ``ceil(n_samples / perturbations_per_eval)`` forward calls per patch. Masked
    regions take the patch mean. Seeded (``seed``) without touching the global RNG.
    Returns maps ``(N, 96, 64)``: each cell holds its region's coefficient.
    """
    x = _check(model, patches, target)
    fwd = _CountingForward(model, target, score)
    explainer = Lime(
        fwd,
        interpretable_model=SkLearnLasso(alpha=alpha),
        similarity_func=get_exp_kernel_similarity_function("cosine", 1.0),
    )
    mask = torch.as_tensor(grid_segments(grid), device=x.device)[None, None]
    base = _patch_mean(x)
    out = np.empty((x.shape[0],) + PATCH_SHAPE, dtype=np.float32)
    with torch.random.fork_rng(devices=[]), _eval_mode(model), torch.no_grad():
        torch.manual_seed(seed)
        for p in range(x.shape[0]):
            attr = explainer.attribute(
                x[p : p + 1],
                baselines=base[p : p + 1],
                target=int(target),
                feature_mask=mask,
                n_samples=int(n_samples),
                perturbations_per_eval=int(perturbations_per_eval),
            )
            out[p] = attr[0, 0].detach().cpu().numpy()
            if progress is not None:
                progress(p + 1, x.shape[0])
    return Attribution("LIME", out, fwd.calls, fwd.examples)


def occlusion(
    model: nn.Module,
    patches: torch.Tensor,
    target: int,
    *,
    window: tuple[int, int] = (16, 8),
    stride: tuple[int, int] = (8, 4),
    baseline: Literal["mean"] | float = "mean",
    perturbations_per_eval: int = 32,
    patches_per_call: int | None = 8,
    score: Score = "logit",
    progress: ProgressFn | None = None,
) -> Attribution:
    """Occlusion sensitivity of class ``target`` with Captum ``Occlusion``.

    A ``window`` (frames, bands) slides with ``stride`` and is filled with
    ``baseline`` ("mean": the patch mean, or a constant log-mel value). Each call
    evaluates ``perturbations_per_eval`` window positions for ``patches_per_call``
    patches at once. Returns maps ``(N, 96, 64)``: score(original) - score(occluded),
    averaged over the windows covering each cell (positive = evidence for ``target``).
    """
    x = _check(model, patches, target)
    if baseline != "mean" and not isinstance(baseline, (int, float)):
        raise ValueError(f"baseline {baseline!r}: use 'mean' or a number")
    fwd = _CountingForward(model, target, score)
    explainer = Occlusion(fwd)
    parts = []
    chunks = _chunks(x.shape[0], patches_per_call)
    with _eval_mode(model), torch.no_grad():
        for i, sl in enumerate(chunks):
            xs = x[sl]
            base = _patch_mean(xs) if baseline == "mean" else float(baseline)
            attr = explainer.attribute(
                xs,
                sliding_window_shapes=(1, int(window[0]), int(window[1])),
                strides=(1, int(stride[0]), int(stride[1])),
                baselines=base,
                target=int(target),
                perturbations_per_eval=int(perturbations_per_eval),
            )
            parts.append(attr[:, 0].detach().cpu().numpy())
            if progress is not None:
                progress(i + 1, len(chunks))
    return Attribution("Occlusion", np.concatenate(parts).astype(np.float32), fwd.calls, fwd.examples)
