"""Attributing the utterance decision to regions (:mod:`emolens.explain.regions`).

The decision ``predict`` makes is taken over the **voting patches**: the mean of their
softmax (the vote), or statistics pooling's ``softmax(W [mu, sigma] + b)`` of their
embeddings (:mod:`emolens.models.decision`). :class:`UtteranceScore` is that decision as
one differentiable module of the whole recording's log-mel ``(B, 1, n_frames, n_mels)``:
cut into patches (the tail padded with silence, as the front end does), only the voting
patches run, the decision is taken over them (:func:`utterance_probs`), and the output is ``log P`` ``(B, C)`` (or ``P``), or, for a
**contrast** with class ``u``, ``log P - log P_u`` (so target ``t`` explains "why
``t`` rather than ``u``"). Because it is the decision itself, every Captum method
applied to it explains exactly what the user is shown, and cells outside voting
patches get no attribution by construction.

Methods (all Captum, ``feature_mask`` = the region ids; "removed" = the utterance's
mean log-mel, the same fill deletion/insertion uses):

* ``occlusion``: :class:`captum.attr.FeatureAblation`, each region removed alone
  (R + 1 utterance evaluations; patches an ablation leaves untouched are not re-run).
* ``kernelshap``: :class:`captum.attr.KernelShap` over the regions (``n_samples`` coalitions).
* ``shapley``: :class:`captum.attr.ShapleyValueSampling` (``n_samples`` permutations; R x n evaluations).
* ``smoothgrad``: :class:`captum.attr.NoiseTunnel` (SmoothGrad) around
  :class:`captum.attr.InputXGradient` of the decision (input measured from the
  baseline), ``nt_samples`` noisy copies with Gaussian noise of ``stdev`` log-mel
  units, summed over each region's cells.
* ``gxi``: the same without noise.

Region scores are in units of the output (log-probability, or its difference).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch
from captum.attr import FeatureAblation, InputXGradient, KernelShap, NoiseTunnel, ShapleyValueSampling
from torch import nn

from emolens.explain.attributions import _eval_mode
from emolens.explain.regions import Regions
from emolens.explain.stitch import SILENCE_LOG_MEL
from emolens.features.patches import DEFAULT_PATCHES, PatchConfig, num_patches

__all__ = ["patch_outputs_of", "utterance_probs", "DEFAULT_REGION_METHOD", "UtteranceScore", "RegionAttribution", "REGION_METHODS", "region_attribution", "runner_up", "decision_predictor"]

#: The region method of ``explain``, the app and the profile (chosen by
#: ``benchmarks/faithfulness.py``: see faithfulness.json and benchmarks/faithfulness.md).
DEFAULT_REGION_METHOD = "occlusion"

#: Region methods and their default options.
REGION_METHODS: dict[str, dict] = {
    "occlusion": {},
    "kernelshap": {"n_samples": 96},
    "shapley": {"n_samples": 2},
    "smoothgrad": {"nt_samples": 8, "stdev": 1.0},
    "gxi": {},
}


def patch_outputs_of(model: nn.Module, p: torch.Tensor) -> torch.Tensor:
    """Per-patch outputs ``(K, K')`` of patches ``(K, 1, 96, M)``, the kind the model's
    utterance decision reads (:meth:`FusionNet.patch_outputs`: softmax for the vote, the
    embedding for statistics pooling; any other module: its softmax)."""
    if hasattr(model, "patch_outputs"):
        return model.patch_outputs(p, audioset=False)[0]
    return torch.softmax(model(p), dim=1)


def utterance_probs(model: nn.Module | None, outputs: torch.Tensor) -> torch.Tensor:
    """The utterance probabilities ``(..., C)`` from its voting patches' outputs
    ``(..., V, K')`` (:func:`patch_outputs_of`): their mean (the vote) or the softmax of a
    statistics-pooling head's ``W [mu, sigma] + b``. Differentiable."""
    head = getattr(model, "head", None)
    if getattr(head, "pooling", "mean") == "mean":
        return outputs.mean(dim=-2)
    return torch.softmax(head.pooled_logits(outputs), dim=-1)


class UtteranceScore(nn.Module):
    """The utterance decision of a patch model as a module of the whole log-mel.

    ``forward(x (B, 1, n_frames, n_mels))`` -> ``(B, C)``: ``log`` (``score="log_prob"``,
    default) or the value (``"prob"``) of the utterance decision over the ``voting``
    patches (:func:`utterance_probs`: the mean softmax, or statistics pooling's);
    with ``contrast = u`` the column ``u`` is subtracted from every column.
    ``probs_fn`` (patches ``(K, 96, M)`` numpy -> per-patch outputs ``(K, K')`` of the
    model's kind, e.g. ``EmotionRecognizer.patch_outputs`` on ONNX Runtime) runs the
    patches instead of ``model`` when no gradient is needed.
    ``reference`` (the original log-mel, or a list of log-mels): without autograd,
    patches identical to a reference's are not re-run (their softmax is cached),
    which makes single-region ablations cheap.
    """

    def __init__(self, model: nn.Module, n_frames: int, voting: np.ndarray | None = None, *,
                 score: str = "log_prob", contrast: int | None = None, pcfg: PatchConfig = DEFAULT_PATCHES,
                 pad_value: float = SILENCE_LOG_MEL, reference: np.ndarray | None = None, batch_size: int = 128,
                 probs_fn=None) -> None:
        super().__init__()
        if score not in ("log_prob", "prob"):
            raise ValueError(f"score {score!r}: use 'log_prob' or 'prob'")
        self.model, self.score, self.contrast, self.probs_fn = model, score, contrast, probs_fn
        self.pcfg, self.pad_value, self.batch_size = pcfg, float(pad_value), int(batch_size)
        self.n_frames = int(n_frames)
        self.n_patches = num_patches(self.n_frames, pcfg)
        v = np.ones(self.n_patches, bool) if voting is None else np.asarray(voting, bool)
        if v.shape != (self.n_patches,):
            raise ValueError(f"voting must be ({self.n_patches},) for {self.n_frames} frames, got {v.shape}")
        if not v.any():
            v = np.ones_like(v)  # nothing votes (no speech): the mean over all patches, as predict falls back
        self.voting = torch.from_numpy(np.flatnonzero(v))
        self.patch_calls = 0  # patches pushed through the model
        self._refs: list[tuple[torch.Tensor, torch.Tensor]] = []
        refs = [] if reference is None else (reference if isinstance(reference, (list, tuple)) else [reference])
        with torch.no_grad():
            for r in refs:
                p = self.patches(torch.as_tensor(np.asarray(r, np.float32))[None, None])[0]
                self._refs.append((p, self._outputs(p)))

    def patches(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 1, n_frames, M)`` -> voting patches ``(B, V, 96, M)`` (differentiable)."""
        if x.ndim == 3:
            x = x[:, None]
        total = (self.n_patches - 1) * self.pcfg.hop_frames + self.pcfg.patch_frames
        if total > x.shape[2]:
            pad = x.new_full((x.shape[0], 1, total - x.shape[2], x.shape[3]), self.pad_value)
            x = torch.cat([x, pad], dim=2)
        u = x[:, 0].unfold(1, self.pcfg.patch_frames, self.pcfg.hop_frames)  # (B, P, M, 96)
        return u.permute(0, 1, 3, 2)[:, self.voting]

    def _outputs(self, p: torch.Tensor) -> torch.Tensor:
        """``(K, 96, M)`` patches -> ``(K, K')`` outputs (:func:`patch_outputs_of`), ``batch_size`` at a time."""
        self.patch_calls += int(p.shape[0])
        if self.probs_fn is not None and not torch.is_grad_enabled():  # e.g. ONNX Runtime: same outputs, faster
            return torch.from_numpy(np.asarray(self.probs_fn(np.ascontiguousarray(p.numpy())), np.float32))
        outs = [patch_outputs_of(self.model, p[i:i + self.batch_size, None])
                for i in range(0, p.shape[0], self.batch_size)]
        return torch.cat(outs) if outs else p.new_zeros((0, 0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = self.patches(x)  # (B, V, 96, M)
        b, v = p.shape[:2]
        if self._refs and not torch.is_grad_enabled():
            todo = torch.ones((b, v), dtype=torch.bool)
            probs = None
            for rp, rprob in self._refs:
                same = (p == rp[None]).flatten(2).all(dim=2) & todo  # (B, V)
                if probs is None:
                    probs = rprob.new_zeros((b, v, rprob.shape[1]))
                probs[same] = rprob[None].expand(b, -1, -1)[same]
                todo &= ~same
            if todo.any():
                probs[todo] = self._outputs(p[todo])
        else:
            probs = self._outputs(p.reshape(b * v, *p.shape[2:])).reshape(b, v, -1)
        out = utterance_probs(self.model, probs)
        if self.score == "log_prob":
            out = torch.log(out.clamp_min(1e-12))
        if self.contrast is not None:
            out = out - out[:, int(self.contrast):int(self.contrast) + 1]
        return out


@dataclass(frozen=True)
class RegionAttribution:
    """Region scores of one explanation.

    Attributes:
        method: region method name (:data:`REGION_METHODS`).
        scores: ``(R,)`` signed contribution of each region to the explained score
            (positive = evidence for the target / for target over ``contrast``).
        regions: the :class:`~emolens.explain.regions.Regions` scored.
        target: class index explained; ``contrast``: the class it is set against (or ``None``).
        score: ``"log_prob"`` | ``"prob"``; ``seconds``: wall time; ``patch_calls``:
            patches run through the model.
    """

    method: str
    scores: np.ndarray
    regions: Regions
    target: int
    contrast: int | None = None
    score: str = "log_prob"
    seconds: float = 0.0
    patch_calls: int = 0
    options: dict = field(default_factory=dict)

    @property
    def shares(self) -> np.ndarray:
        """``(R,)``: each region's share of the positive evidence (sums to 1 over the
        positive regions; 0 for the rest, all 0 when nothing is positive)."""
        pos = np.clip(np.asarray(self.scores, np.float64), 0.0, None)
        tot = pos.sum()
        return pos / tot if tot > 0 else np.zeros_like(pos)

    def order(self) -> np.ndarray:
        """Region indices from most to least evidence (ties by index)."""
        return np.argsort(-np.asarray(self.scores, np.float64), kind="stable")

    def cell_map(self) -> np.ndarray:
        """``(n_frames, n_mels)``: each cell holds its region's score per cell."""
        return self.regions.paint(self.scores, per_cell=True)


def runner_up(probs: np.ndarray, target: int) -> int:
    """The most probable class other than ``target``."""
    p = np.asarray(probs, np.float64).copy()
    p[int(target)] = -np.inf
    return int(np.argmax(p))


def region_attribution(model: nn.Module, log_mel: np.ndarray, regions: Regions, target: int, *,
                       voting: np.ndarray | None = None, method: str = "occlusion", contrast: int | None = None,
                       score: str = "log_prob", pcfg: PatchConfig = DEFAULT_PATCHES, seed: int = 0,
                       perturbations_per_eval: int = 16, probs_fn=None, **options) -> RegionAttribution:
    """Scores ``(R,)`` of ``regions`` for the utterance decision on ``log_mel``
    ``(n_frames, n_mels)`` (natural-log mel, as ``Analysis.log_mel``), explaining class
    ``target`` (against ``contrast`` when given) over the ``voting (n_patches,)`` patches.
    ``probs_fn``: see :class:`UtteranceScore` (perturbation methods only).
    ``options`` override :data:`REGION_METHODS` defaults."""
    if method not in REGION_METHODS:
        raise ValueError(f"unknown region method {method!r}; use {', '.join(REGION_METHODS)}")
    lm = np.asarray(log_mel, np.float32)
    if lm.shape != regions.shape:
        raise ValueError(f"log_mel {lm.shape} and regions {regions.shape} differ")
    if contrast is not None and int(contrast) == int(target):
        raise ValueError("contrast class must differ from the target")
    opts = {**REGION_METHODS[method], **options}
    t0 = time.perf_counter()
    x = torch.from_numpy(lm)[None, None]
    base_v = float(lm.mean())
    base = torch.full_like(x, base_v)
    mask = torch.from_numpy(regions.ids)[None, None]
    with _eval_mode(model), torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if method in ("occlusion", "kernelshap", "shapley"):
            f = UtteranceScore(model, lm.shape[0], voting, score=score, contrast=contrast, pcfg=pcfg,
                               reference=lm if method == "occlusion" else None, probs_fn=probs_fn)
            with torch.no_grad():
                if method == "occlusion":
                    a = FeatureAblation(f).attribute(x, baselines=base_v, target=int(target), feature_mask=mask,
                                                     perturbations_per_eval=perturbations_per_eval)
                elif method == "kernelshap":
                    a = KernelShap(f).attribute(x, baselines=base_v, target=int(target), feature_mask=mask,
                                                n_samples=int(opts["n_samples"]),
                                                perturbations_per_eval=perturbations_per_eval)
                else:
                    a = ShapleyValueSampling(f).attribute(x, baselines=base_v, target=int(target), feature_mask=mask,
                                                          n_samples=int(opts["n_samples"]),
                                                          perturbations_per_eval=perturbations_per_eval)
            cells = a[0, 0].detach().numpy().astype(np.float64)
            counts = np.maximum(np.bincount(regions.ids.ravel(), minlength=regions.n), 1)
            scores = np.bincount(regions.ids.ravel(), cells.ravel(), minlength=regions.n) / counts  # every cell holds its region's value
        else:
            f = UtteranceScore(model, lm.shape[0], voting, score=score, contrast=contrast, pcfg=pcfg)
            ixg = InputXGradient(lambda z: f(z + base))
            z = (x - base).requires_grad_(True)
            if method == "smoothgrad" and int(opts["nt_samples"]) > 0:
                a = NoiseTunnel(ixg).attribute(z, nt_type="smoothgrad", nt_samples=int(opts["nt_samples"]),
                                               nt_samples_batch_size=int(opts.get("nt_batch", 4)),
                                               stdevs=float(opts["stdev"]), target=int(target))
            else:
                a = ixg.attribute(z, target=int(target))
            scores = regions.sum_map(a[0, 0].detach().numpy())
    return RegionAttribution(method, scores.astype(np.float64), regions, int(target),
                             None if contrast is None else int(contrast), score,
                             round(time.perf_counter() - t0, 4), f.patch_calls, opts)


def decision_predictor(model: nn.Module | None, log_mel: np.ndarray, voting: np.ndarray | None = None, *,
                       pcfg: PatchConfig = DEFAULT_PATCHES, batch: int = 16, probs_fn=None):
    """A :data:`~emolens.explain.faithfulness.PredictFn` for perturbed copies of one
    recording ``log_mel`` ``(n_frames, n_mels)``: the utterance probabilities ``(S, C)``
    of the decision over the ``voting`` patches, as :func:`utterance_predictor` with
    ``voting``, but only voting patches run, and patches equal to the original's or
    to the all-mean baseline's are not re-run. ``probs_fn`` (patches ``(K, 96, M)`` ->
    per-patch outputs ``(K, K')``, e.g. ``EmotionRecognizer.patch_outputs`` on ONNX
    Runtime) runs the patches instead of ``model``."""
    lm = np.asarray(log_mel, np.float32)
    refs = [lm, np.full_like(lm, float(lm.mean()))]
    if probs_fn is not None:
        from emolens.features.patches import frame_patches

        n_p = num_patches(lm.shape[0], pcfg)
        v = np.ones(n_p, bool) if voting is None else np.asarray(voting, bool)
        idx = np.flatnonzero(v) if v.any() else np.arange(n_p)
        cut = lambda x: frame_patches(x, pcfg, pad_value=SILENCE_LOG_MEL)[idx]  # noqa: E731
        cache = [(cut(r), np.asarray(probs_fn(cut(r)))) for r in refs]
        counter = {"patches": 0}

        def predict_np(x: np.ndarray) -> np.ndarray:
            xs = np.asarray(x, np.float32)
            if xs.ndim == 2:
                xs = xs[None]
            ps = np.stack([cut(u) for u in xs])  # (S, V, 96, M)
            out = np.zeros(ps.shape[:2] + (cache[0][1].shape[1],))
            todo = np.ones(ps.shape[:2], bool)
            for rp, rprob in cache:
                same = (ps == rp[None]).reshape(*ps.shape[:2], -1).all(axis=2) & todo
                out[same] = np.broadcast_to(rprob[None], out.shape)[same]
                todo &= ~same
            if todo.any():
                out[todo] = probs_fn(np.ascontiguousarray(ps[todo]))
                counter["patches"] += int(todo.sum())
            with torch.no_grad():
                return utterance_probs(model, torch.from_numpy(out.astype(np.float32))).numpy()

        predict_np.counter = counter
        return predict_np
    f = UtteranceScore(model, lm.shape[0], voting, score="prob", pcfg=pcfg, reference=refs)

    def predict(x: np.ndarray) -> np.ndarray:
        xs = torch.from_numpy(np.asarray(x, np.float32))
        was = model.training
        model.eval()
        try:
            with torch.no_grad():
                return torch.cat([f(xs[i:i + batch][:, None]) for i in range(0, len(xs), batch)]).numpy()
        finally:
            model.train(was)

    predict.scorer = f
    return predict
