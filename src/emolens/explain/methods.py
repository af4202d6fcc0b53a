"""One registry of attribution methods: ``name -> function(model, x, target, **options)``.

Every method takes a patch classifier ``model`` (``(B, 1, 96, 64)`` -> logits
``(B, C)``), patches ``x`` ``(N, 1, 96, 64)`` and a class index, and returns an
:class:`~emolens.explain.attributions.Attribution` (maps ``(N, 96, 64)`` on the input
grid). Captum does the work wherever it has the method; written here: Grad-CAM++ (not
in Captum) and the channel sum that turns Captum's ``LayerGradientXActivation`` into
HiResCAM.

Gradient methods explain ``score`` = ``"log_softmax"`` by default: the target's log
probability, ``logit_t - logsumexp(logits)``. Its gradient says what raises *this*
class against the others; the raw logit's gradient also carries whatever raises all
logits together, which the probability (what deletion/insertion and the user see)
ignores. ``"logit"`` is kept for Grad-CAM as the thesis ran it.

:data:`DEFAULT_METHOD` is chosen by ``benchmarks/faithfulness.py`` (deletion and
insertion against a random order, model/label-randomisation sanity checks, seconds per
4-s clip; the figures ship as ``faithfulness.json`` next to this module and
:func:`faithfulness_note` words them for a UI): **Gradient x Input** from the patch
mean, which beat a random order on both AUCs on most clips of every corpus for one
forward + backward pass. Grad-CAM stays available (``"gradcam"``) with its measured
score: at YAMNet's blocks 7-13 one cell's input gradient spans about half the patch
(49 of 64 bands at block 7), so Grad-CAM's map says little about *where* the model
looked (``benchmarks/faithfulness.md``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path

import numpy as np
import torch
from captum.attr import InputXGradient, IntegratedGradients, KernelShap, LayerAttribution, LayerGradientXActivation
from torch import nn

from emolens.explain.attributions import (
    PATCH_SHAPE,
    Attribution,
    _check,
    _chunks,
    _eval_mode,
    _patch_mean,
    gradcam as _gradcam,
    grid_segments,
    lime as _lime,
    occlusion as _occlusion,
)

__all__ = [
    "Method",
    "METHODS",
    "DEFAULT_METHOD",
    "DEFAULT_LAYER",
    "run_method",
    "resolve_layer",
    "layer_names",
    "scored",
    "measured_faithfulness",
    "faithfulness_note",
    "region_note",
    "region_spec",
    "MEASURED_AS",
    "method_label",
]

#: Grad-CAM family default layer: YAMNet block 7 (the ``yamnet_mid`` stream, 6 x 4 cells).
DEFAULT_LAYER = "yamnet_mid"


class _Scored(nn.Module):
    """``model`` with its logits turned into ``score`` (``logit`` | ``log_softmax`` | ``prob``)."""

    def __init__(self, model: nn.Module, score: str) -> None:
        super().__init__()
        if score not in ("logit", "log_softmax", "prob"):
            raise ValueError(f"score {score!r}: use 'logit', 'log_softmax' or 'prob'")
        self.model, self.score = model, score

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.model(x)
        if self.score == "log_softmax":
            return torch.log_softmax(out, dim=1)
        if self.score == "prob":
            return torch.softmax(out, dim=1)
        return out


def scored(model: nn.Module, score: str) -> nn.Module:
    """``model`` itself for ``"logit"``, else a wrapper returning that score ``(B, C)``."""
    return model if score == "logit" else _Scored(model, score)


def layer_names(model: nn.Module) -> list[str]:
    """Layer names :func:`resolve_layer` accepts: the model's ``gradcam_layers()`` plus
    ``yamnet.0`` .. ``yamnet.13`` (every YAMNet block) when it has a YAMNet."""
    names = list(getattr(model, "gradcam_layers", dict)())
    if getattr(model, "yamnet", None) is not None:
        names += [f"yamnet.{i}" for i in range(len(model.yamnet.layers))]
    return names


def resolve_layer(model: nn.Module, name: str | nn.Module) -> nn.Module:
    """The submodule called ``name`` (see :func:`layer_names`); a module is returned as is."""
    if isinstance(name, nn.Module):
        return name
    layers = getattr(model, "gradcam_layers", dict)()
    if name in layers:
        return layers[name]
    if name.startswith("yamnet.") and getattr(model, "yamnet", None) is not None:
        i = int(name.split(".", 1)[1])
        if 0 <= i < len(model.yamnet.layers):
            return model.yamnet.layers[i]
    raise ValueError(f"layer {name!r} is not in this model; use one of {', '.join(layer_names(model))}")


def _lname(layer) -> str:
    return layer if isinstance(layer, str) else type(layer).__name__


def _up(cam: torch.Tensor) -> np.ndarray:
    """``(N, 1, h, w)`` -> ``(N, 96, 64)`` bilinear (Captum's interpolate)."""
    return LayerAttribution.interpolate(cam.detach(), PATCH_SHAPE, interpolate_mode="bilinear")[:, 0].cpu().numpy()


def gradcam(model, x, target, *, layer: str = DEFAULT_LAYER, score: str = "log_softmax",
            relu: bool = True, batch_size: int | None = 64, progress=None) -> Attribution:
    """Grad-CAM (Captum ``LayerGradCam``) of ``score`` at ``layer``; maps ``(N, 96, 64)``."""
    att = _gradcam(scored(model, score), resolve_layer(model, layer), x, target,
                   batch_size=batch_size, progress=progress, relu=relu)
    return Attribution(f"Grad-CAM ({_lname(layer)})", att.maps, att.forward_calls, att.patches_evaluated, att.backward_calls)


def _activations_and_grads(model, layer_mod, x, target, score):
    """Activations ``A`` ``(N, K, h, w)`` of ``layer_mod`` and ``d score_target / dA``."""
    store = {}

    def hook(_m, _i, out):
        out = out[0] if isinstance(out, tuple) else out
        out.retain_grad()
        store["a"] = out

    h = layer_mod.register_forward_hook(hook)
    try:
        x = x.clone().requires_grad_(True)  # so frozen models still give layer gradients
        with torch.enable_grad():
            out = scored(model, score)(x)
            out[:, int(target)].sum().backward()
    finally:
        h.remove()
    a = store["a"]
    return a.detach(), a.grad.detach()


def hirescam(model, x, target, *, layer: str = DEFAULT_LAYER, score: str = "log_softmax",
             relu: bool = True, batch_size: int | None = 64, progress=None) -> Attribution:
    """HiResCAM (Draelos & Fan 2020): ``sum_k dS/dA_k * A_k`` per cell (no gradient
    averaging), from Captum ``LayerGradientXActivation``; maps ``(N, 96, 64)``."""
    xs = _check(model, x, target)
    m = scored(model, score)
    lga = LayerGradientXActivation(m, resolve_layer(model, layer))
    parts = []
    chunks = _chunks(xs.shape[0], batch_size)
    with _eval_mode(model):
        for i, sl in enumerate(chunks):
            a = lga.attribute(xs[sl], target=int(target))
            a = (a[0] if isinstance(a, tuple) else a).sum(dim=1, keepdim=True)
            parts.append(_up(torch.relu(a) if relu else a))
            if progress is not None:
                progress(i + 1, len(chunks))
    return Attribution(f"HiResCAM ({_lname(layer)})", np.concatenate(parts).astype(np.float32), len(chunks), xs.shape[0], len(chunks))


def gradcam_pp(model, x, target, *, layer: str = DEFAULT_LAYER, score: str = "log_softmax",
               batch_size: int | None = 64, progress=None) -> Attribution:
    """Grad-CAM++ (Chattopadhay et al. 2018, exponential-score closed form, as
    pytorch-grad-cam): ``alpha = g^2 / (2 g^2 + sum_ij A * g^3)``, channel weight
    ``sum_ij alpha * relu(g)``, map ``relu(sum_k w_k A_k)``; maps ``(N, 96, 64)``."""
    xs = _check(model, x, target)
    mod = resolve_layer(model, layer)
    parts = []
    chunks = _chunks(xs.shape[0], batch_size)
    with _eval_mode(model):
        for i, sl in enumerate(chunks):
            a, g = _activations_and_grads(model, mod, xs[sl], target, score)
            g2, g3 = g.pow(2), g.pow(3)
            denom = 2 * g2 + a.sum(dim=(2, 3), keepdim=True) * g3
            alpha = g2 / torch.where(denom != 0, denom, torch.ones_like(denom))
            w = (alpha * torch.relu(g)).sum(dim=(2, 3), keepdim=True)
            parts.append(_up(torch.relu((w * a).sum(dim=1, keepdim=True))))
            if progress is not None:
                progress(i + 1, len(chunks))
    return Attribution(f"Grad-CAM++ ({_lname(layer)})", np.concatenate(parts).astype(np.float32), len(chunks), xs.shape[0], len(chunks))


def integrated_gradients(model, x, target, *, n_steps: int = 8, score: str = "log_softmax",
                         batch_size: int | None = 16, progress=None) -> Attribution:
    """Integrated Gradients (Captum) from the **patch mean** (a flat spectrum of the
    same loudness, the fill every perturbation method here uses) to the patch, with
    ``n_steps`` Gauss-Legendre steps; maps ``(N, 96, 64)`` (signed, sum ~ score change)."""
    return _ig(model, x, target, n_steps, "gausslegendre", score, batch_size, progress,
               "Integrated Gradients")


def gradient_x_input(model, x, target, *, score: str = "log_softmax", batch_size: int | None = 64,
                     progress=None) -> Attribution:
    """Gradient x (input - patch mean): Captum ``InputXGradient`` on the patch
    measured from the same baseline as Integrated Gradients (the model is fed
    ``z + mean`` and explained in ``z``); one forward + backward per batch."""
    xs = _check(model, x, target)
    m = scored(model, score)
    parts = []
    chunks = _chunks(xs.shape[0], batch_size)
    with _eval_mode(model):
        for i, sl in enumerate(chunks):
            base = _patch_mean(xs[sl])
            ixg = InputXGradient(lambda z, base=base: m(z + base))
            a = ixg.attribute((xs[sl] - base).requires_grad_(True), target=int(target))
            parts.append(a[:, 0].detach().cpu().numpy())
            if progress is not None:
                progress(i + 1, len(chunks))
    return Attribution("Gradient x Input", np.concatenate(parts).astype(np.float32), len(chunks), xs.shape[0], len(chunks))


def _ig(model, x, target, n_steps, method, score, batch_size, progress, title) -> Attribution:
    xs = _check(model, x, target)
    ig = IntegratedGradients(scored(model, score))
    parts = []
    chunks = _chunks(xs.shape[0], batch_size)
    with _eval_mode(model):
        for i, sl in enumerate(chunks):
            a = ig.attribute(xs[sl], baselines=_patch_mean(xs[sl]), target=int(target),
                             n_steps=int(n_steps), method=method)
            parts.append(a[:, 0].detach().cpu().numpy())
            if progress is not None:
                progress(i + 1, len(chunks))
    n = xs.shape[0] * int(n_steps)
    return Attribution(title, np.concatenate(parts).astype(np.float32), len(chunks) * int(n_steps), n, len(chunks) * int(n_steps))


def kernel_shap(model, x, target, *, grid: tuple[int, int] = (12, 8), n_samples: int = 50,
                perturbations_per_eval: int = 50, score: str = "logit", seed: int = 0,
                progress=None) -> Attribution:
    """KernelSHAP (Captum) over the LIME grid regions, masked regions = patch mean;
    ``n_samples`` coalitions per patch; maps ``(N, 96, 64)`` (each region's Shapley estimate)."""
    xs = _check(model, x, target)
    m = scored(model, score)
    ks = KernelShap(m)
    mask = torch.as_tensor(grid_segments(grid), device=xs.device)[None, None]
    base = _patch_mean(xs)
    out = np.empty((xs.shape[0],) + PATCH_SHAPE, dtype=np.float32)
    with torch.random.fork_rng(devices=[]), _eval_mode(model), torch.no_grad():
        torch.manual_seed(seed)
        for p in range(xs.shape[0]):
            a = ks.attribute(xs[p : p + 1], baselines=base[p : p + 1], target=int(target), feature_mask=mask,
                             n_samples=int(n_samples), perturbations_per_eval=int(perturbations_per_eval))
            out[p] = a[0, 0].detach().cpu().numpy()
            if progress is not None:
                progress(p + 1, xs.shape[0])
    calls = xs.shape[0] * -(-int(n_samples) // int(perturbations_per_eval))
    return Attribution("KernelSHAP", out, calls, xs.shape[0] * int(n_samples))


def lime(model, x, target, *, n_samples: int = 200, **options) -> Attribution:
    """LIME (Captum, see :func:`emolens.explain.attributions.lime`)."""
    return _lime(model, x, target, n_samples=n_samples, **options)


def occlusion(model, x, target, *, window: tuple[int, int] = (16, 8), stride: tuple[int, int] | None = None,
              **options) -> Attribution:
    """Occlusion (Captum, see :func:`emolens.explain.attributions.occlusion`);
    ``stride`` defaults to half the window."""
    stride = stride or (max(1, window[0] // 2), max(1, window[1] // 2))
    att = _occlusion(model, x, target, window=tuple(window), stride=tuple(stride), **options)
    return Attribution(f"Occlusion {window[0]}x{window[1]}", att.maps, att.forward_calls, att.patches_evaluated)


@dataclass(frozen=True)
class Method:
    """A registered method: ``fn(model, x, target, **options)`` with default ``options``."""

    name: str
    title: str
    fn: Callable[..., Attribution]
    options: dict = field(default_factory=dict)

    def __call__(self, model, x, target, **options) -> Attribution:
        return self.fn(model, x, target, **{**self.options, **options})


METHODS: dict[str, Method] = {m.name: m for m in (
    Method("gradcam", "Grad-CAM", gradcam, {"score": "logit"}),  # as the thesis ran it
    Method("hirescam", "HiResCAM", hirescam),
    Method("gradcampp", "Grad-CAM++", gradcam_pp),
    Method("ig", "Integrated Gradients", integrated_gradients),
    Method("gxi", "Gradient x Input", gradient_x_input),
    Method("occlusion", "Occlusion", occlusion),
    Method("lime", "LIME", lime),
    Method("kernelshap", "KernelSHAP", kernel_shap),
)}

#: The method behind the focus audio, the TF-masked audio, the app and the profile
#: (chosen by benchmarks/faithfulness.py: <= 1 s per 4-s clip on the reference machine, best worst-corpus share
#: of clips beating random on both AUCs; its sanity-check similarity is borderline and
#: shown with it, see faithfulness.json and benchmarks/faithfulness.md).
DEFAULT_METHOD = "gxi"


def run_method(name: str, model: nn.Module, x, target: int, **options) -> Attribution:
    """Run registered method ``name``; ``options`` override its defaults."""
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; use {', '.join(METHODS)}")
    return METHODS[name](model, x, target, **options)


def method_label(name: str) -> str:
    """Display title of a registered method (the name itself when unknown)."""
    return METHODS[name].title if name in METHODS else name


#: The benchmark spec each registry name was measured as (its registry defaults, or
#: the settings named here where they differ); names missing from the shipped
#: measurement get a "not measured" note.
MEASURED_AS = {
    "gradcam": "gradcam@yamnet.7", "hirescam": "hirescam@yamnet.7", "gradcampp": "gradcampp@yamnet.7",
    "ig": "ig:n_steps=8", "gxi": "gxi", "occlusion": "occlusion:window=16x16",
    "lime": "lime:n_samples=50", "kernelshap": "kernelshap:n_samples=50",
}


def _rows(spec: str, model_dir=None) -> dict[str, dict]:
    meas = measured_faithfulness(model_dir).get("corpora", {})
    return {c: r["table"][spec] for c, r in meas.items() if spec in r.get("table", {})}


def _on(model_dir) -> str:
    """Whose measurement a note quotes."""
    return "the shipped model" if model_dir is None else "this model"


def _sanity_words(rows: dict[str, dict]) -> str:
    failed = [c for c, e in rows.items() if e.get("sanity_pass") is False]
    return (f"; fails the randomisation sanity check on {', '.join(failed)}" if failed
            else "; passes the randomisation sanity checks")


def faithfulness_note(name: str, model_dir=None) -> str:
    """One line for a UI: how often method ``name``'s map beat a random order on both
    deletion and insertion (cells, and its region sums), per corpus, as measured on
    the model in ``model_dir`` (default: the shipped default model; see
    :func:`measured_faithfulness`); ``""`` for an unknown name."""
    if name not in METHODS:
        return ""
    spec = MEASURED_AS.get(name, name)
    rows = _rows(spec, model_dir)
    if not rows:
        return (f"{method_label(name)}: not measured on {_on(model_dir)} "
                "(benchmarks/faithfulness.py --ship --model DIR measures it)")
    parts = ", ".join(f"{c} {e.get('cell_beats_random', e.get('beats_random_fraction', 0)):.0%}" for c, e in rows.items())
    return (f"{method_label(name)} ({spec}): beats a random order on both AUCs on {parts} of clips"
            f"{_sanity_words(rows)} (measured on {_on(model_dir)})")


def region_spec(region_method: str, regions="fixed") -> str:
    """The benchmark spec of a region method on regions ``regions`` (a
    :class:`~emolens.explain.regions.RegionConfig`, or just its time unit):
    ``r.occlusion``, ``r.occlusion@syllable``, ``r.occlusion:block=0.2`` (options only where
    they differ from :class:`~emolens.explain.regions.RegionConfig`'s defaults)."""
    unit = getattr(regions, "time_unit", regions)
    spec = f"r.{region_method}" + ("@syllable" if unit == "syllable" else "")
    opts = []
    from emolens.explain.regions import RegionConfig

    base = RegionConfig()  # options are written only where they differ from the defaults
    block, bands = getattr(regions, "block_seconds", base.block_seconds), getattr(regions, "n_bands", base.n_bands)
    if unit == "fixed" and block != base.block_seconds:
        opts.append(f"block={block:g}")
    if bands != base.n_bands:
        opts.append(f"bands={bands}")
    return spec + (":" + ";".join(opts) if opts else "")


def region_note(region_method: str, regions="fixed", model_dir=None) -> str:
    """The same line for a region method on ``regions`` (see :func:`region_spec`), at region level."""
    time_unit = getattr(regions, "time_unit", regions)
    rows = _rows(region_spec(region_method, regions), model_dir)
    if not rows:
        return ""
    parts = ", ".join(f"{c} {e['region_beats_random']:.0%}" for c, e in rows.items())
    kind = ("syllable-like units" if time_unit == "syllable"
            else f"{getattr(regions, 'block_seconds', 0.2):g}-s blocks")
    return (f"{region_method} over regions ({kind} x mel-band groups): beats a random region order on both AUCs on {parts} of clips"
            f"{_sanity_words(rows)} (measured on {_on(model_dir)})")


#: the measurement file's name, in this package (the default model's) and in a model's folder (its own)
FAITHFULNESS_FILE = "faithfulness.json"


def measured_faithfulness(model_dir=None) -> dict:
    """A model's measured faithfulness (``faithfulness.json``, written by
    ``python benchmarks/faithfulness.py --ship [--model DIR]``): the weight hash of the model it
    describes (``model_sha256``), and per corpus and method the region- and cell-level
    deletion/insertion AUCs, % of clips beating random on both, s per 4-s clip and the
    sanity verdicts; ``{}`` when unmeasured.

    ``model_dir`` None: the shipped default model's (next to this module). A model folder:
    its own file when it has one (the shipped Whisper model does), else the default's; either
    only when it describes this folder's weights (``model.safetensors``' sha256), so another
    model's figures, or a retrained model's old ones, are never quoted for it (``{}``)."""
    if model_dir is None:
        return _package_measurement()
    weights = Path(model_dir) / "model.safetensors"
    if not weights.is_file():
        return {}
    st = weights.stat()
    digest = _digest(str(weights.resolve()), st.st_mtime_ns, st.st_size)
    own = Path(model_dir) / FAITHFULNESS_FILE
    for meas in ((_read_measurement(str(own.resolve()), own.stat().st_mtime_ns, own.stat().st_size) if own.is_file() else {}),
                 _package_measurement()):
        if meas.get("model_sha256") == digest:
            return meas
    return {}


@lru_cache(maxsize=8)
def _digest(path: str, mtime_ns: int, size: int) -> str:
    """sha256 of a weights file, once per file version (a UI asks on every view)."""
    from emolens.models.weights import sha256_file

    return sha256_file(path)


@lru_cache(maxsize=1)
def _package_measurement() -> dict:
    try:
        return json.loads(resources.files("emolens.explain").joinpath(FAITHFULNESS_FILE).read_text())
    except (FileNotFoundError, OSError):
        return {}


@lru_cache(maxsize=4)
def _read_measurement(path: str, mtime_ns: int, size: int) -> dict:
    return json.loads(Path(path).read_text())
