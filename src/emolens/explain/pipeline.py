"""Explaining one recording end to end.

class explained (the prediction unless ``target`` is given): per-patch attribution
maps of the registered methods (:mod:`emolens.explain.methods`) stitched over the whole
recording (:func:`explain_maps`), the listenable focus (thesis figs 30-31, computed from
``DEFAULT_METHOD``'s map, positive part, not Grad-CAM's: see benchmarks/faithfulness.md;
summed over frequency -> samples -> all-ones smoothing -> keep the above-mean
activation), the time-frequency-masked audio, and deletion/insertion faithfulness of
every map against a random order on the same clip. :func:`explain_file` is ``explain``
+ the file writer of :mod:`emolens.report.explanation_files` (what ``emolens explain`` writes).
"""

from __future__ import annotations

from contextlib import nullcontext

import logging
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from emolens.explain.attributions import target_index, tqdm_progress
from emolens.explain.explanation import TITLES, Explanation
from emolens.explain.faithfulness import faithfulness, utterance_predictor
from emolens.explain.methods import DEFAULT_METHOD, METHODS as REGISTRY, layer_names, run_method
from emolens.explain.region_attribution import DEFAULT_REGION_METHOD, decision_predictor, region_attribution, runner_up
from emolens.explain.region_summary import box_mask, box_time_mask, region_sentence, top_boxes
from emolens.explain.regions import DEFAULT_REGIONS, RegionConfig, make_regions
from emolens.explain.sonify import focus_activation, focus_audio, focus_mask, tf_cells_audio, tf_masked_audio
from emolens.explain.stitch import utterance_map

log = logging.getLogger("emolens")
METHODS = tuple(dict.fromkeys((DEFAULT_METHOD, "gradcam", "lime", "occlusion")))  # the default set
__all__ = ["METHODS", "TITLES", "explain", "explain_maps", "explain_file", "patch_times", "StepProgress"]

#: ``progress(step, done, total)``: ``step`` names the running method (e.g. "lime").
StepProgress = Callable[[str, int, int], None]


def explain_maps(rec, analysis, target: int, methods=METHODS, *, layer: str = "auto",
                 lime_samples: int = 200, occlusion_stride=(8, 4), progress: bool | StepProgress = True) -> dict:
    """Utterance maps ``{method: (n_frames, 64)}``, cost per method and the Grad-CAM layer.

    ``progress``: ``True`` draws tqdm bars, a callable gets ``(method, done, total)``.
    """
    model = rec.model
    layers = layer_names(model)
    if layer in (None, "auto"):  # VGGish's fine map when the model has it, else YAMNet's mid-level
        layer = next((n for n in ("vggish", "yamnet_mid") if n in layers), next(iter(layers)))
    if layer not in layers:
        fallback = next(iter(layers))
        log.warning("Grad-CAM layer %r is not in this %s model (it has %s): using %r",
                    layer, "+".join(rec.config.get("streams", [])), ", ".join(layers), fallback)
        layer = fallback
    x = torch.from_numpy(analysis.patches).unsqueeze(1)
    n_frames = analysis.log_mel.shape[0]
    voting = getattr(analysis, "voting", None)  # only patches that enter the decision paint the map
    weights = None if voting is None else np.asarray(voting, float)
    maps, cost = {}, {}
    context = getattr(analysis, "context", None) or ()
    for m in methods:
        if m not in REGISTRY:
            raise ValueError(f"unknown method {m!r}; use {', '.join(REGISTRY)}")
        if callable(progress):
            pr = (lambda done, total, _m=m: progress(_m, done, total))
        else:
            pr = (tqdm_progress(f"{m} {Path(analysis.clip.path or '').name}")
                  if progress and m in ("lime", "kernelshap", "occlusion") else None)
        opts = {"layer": layer} if m in ("gradcam", "hirescam", "gradcampp") else {}
        if m == "lime":
            opts["n_samples"] = lime_samples
        if m == "occlusion":
            opts["stride"] = occlusion_stride
        t0 = time.perf_counter()
        with model.head.use_context(*context):  # statistics pooling: each patch's share of this utterance's logits
            att = run_method(m, model, x, target, progress=pr, **opts)
        maps[m] = utterance_map(att.maps, n_frames, rec.patch_config, weights=weights)
        cost[m] = {"forward_calls": att.forward_calls, "patches_evaluated": att.patches_evaluated,
                   "backward_calls": att.backward_calls, "seconds": round(time.perf_counter() - t0, 3)}
        if callable(progress) and pr is not None and m not in ("lime", "kernelshap", "occlusion"):
            progress(m, 1, 1)
    return {"maps": maps, "cost": cost, "layer": layer}


def patch_times(n_patches: int, rec) -> np.ndarray:
    """``(n_patches, 2)`` start/end in seconds of each patch of ``rec``'s patching."""
    fs = rec.frontend.frame_seconds
    starts = np.arange(n_patches) * rec.patch_config.hop_frames * fs
    return np.stack([starts, starts + rec.patch_config.patch_frames * fs], axis=1) if n_patches else np.zeros((0, 2))


def _focus_method(maps: dict, focus: str | None) -> str | None:
    if focus is not None:
        if focus not in maps:
            raise ValueError(f"focus method {focus!r} was not computed (maps: {', '.join(maps)})")
        return focus
    if not maps:
        return None
    return DEFAULT_METHOD if DEFAULT_METHOD in maps else next(iter(maps))


def explain(rec, source, *, methods=METHODS, target: str | int | None = None, true_label: str | None = None,
            layer: str = "auto", lime_samples: int = 200, occlusion_stride=(8, 4),
            with_faithfulness: bool = True, focus: str | None = None, tf_keep: float = 0.3,
            progress: bool | StepProgress = True, max_seconds: float | None = None,
            faithfulness_options: dict | None = None, regions: RegionConfig | None = DEFAULT_REGIONS,
            region_method: str = DEFAULT_REGION_METHOD, contrast: bool | str | int = False) -> Explanation:
    """Compute the :class:`Explanation` of ``source`` (a path or an ``Analysis``).

    ``regions``: how to cut the recording into regions (``None``: no regions); the
    decision over the voting patches is attributed to them with ``region_method``
    (:data:`~emolens.explain.region_attribution.REGION_METHODS`), the top ones become
    boxes and a sentence, and the focus audio and the TF-masked audio follow the boxes.
    ``contrast``: ``True`` explains the target against the runner-up class ("why angry
    rather than happy": the log-probability difference), or name the class.
    ``focus``: the method whose map drives the focus audio instead of the boxes (default
    without regions: the registry's default method when computed, else the first of
    ``methods``); signed maps are clipped at 0 first. ``tf_keep``: share of STFT cells kept in the TF-masked audio.
    ``faithfulness_options``: keyword arguments of
    :func:`emolens.explain.faithfulness.faithfulness` (``steps``, ``n_orders``, ...).
    """
    if isinstance(source, (str, Path)):
        a = rec.analyze(source) if max_seconds is None else rec.analyze(source, max_seconds=max_seconds)
    else:
        a = source
    # the decision's context (statistics pooling's (mu, sigma), the prosody head's (q, mu)):
    # every region score, predictor and curve below decides as predict did
    head = getattr(getattr(rec, "model", None), "head", None) if getattr(a, "context", None) else None
    with head.use_context(*a.context) if head is not None else nullcontext():
        t = target_index(rec.classes, target) if target is not None else int(np.argmax(a.probs))
        res = explain_maps(rec, a, t, methods, layer=layer, lime_samples=lime_samples,
                           occlusion_stride=occlusion_stride, progress=progress)
        maps = res["maps"]
        sr, wave = a.clip.sample_rate, a.clip.samples
        speech = getattr(a, "speech", None)  # speech probability per patch (speech gating), or flags
        if speech is not None:
            speech = np.asarray(speech)
            if speech.dtype != bool:
                gate = getattr(rec, "speech_gate", None)
                speech = speech >= (gate.threshold if gate is not None else 0.5)
        voting = getattr(a, "voting", None)
        if voting is None:
            voting = a.keep & speech if speech is not None and speech.shape == a.keep.shape else a.keep
        ex = Explanation(file=a.clip.path, classes=list(rec.classes), probs=np.asarray(a.probs),
                         patch_probs=np.asarray(a.patch_probs), keep=np.asarray(a.keep, bool),
                         voting=np.asarray(voting, bool), speech=speech,
                         patch_times=patch_times(len(a.keep), rec), target=t, log_mel=a.log_mel, maps=maps,
                         wave=wave, sample_rate=sr, cost=res["cost"], layer=res["layer"], true_label=true_label,
                         target_given=target is not None, notes=list(a.clip.notes),
                         extra={"vggish_pretrained": rec.config.get("vggish_pretrained")},
                         has_speech=bool(getattr(a, "has_speech", True)))
        fm = _focus_method(maps, focus)
        u = None  # the contrast class, if any (regions, prosody lines and stream shares explain t against it)
        if contrast is not False and contrast is not None:
            u = runner_up(a.probs, t) if contrast is True else target_index(rec.classes, contrast)
            if u == t:
                u = runner_up(a.probs, t)
        from emolens.explain.prosody import explain_prosody
        from emolens.explain.streams import explain_streams

        ex.prosody = explain_prosody(rec, a, t, u)  # [] unless the model has a prosody stream
        ex.streams = explain_streams(rec, a, t, u)  # how much of the decision the map can show; None for a vote
        if regions is not None:
            if callable(progress):
                progress(f"regions ({region_method})", 0, 1)
            reg = make_regions(a.log_mel, regions, rec.frontend)
            fast = ((lambda p: rec.patch_outputs(p)[0])  # the recognizer's backend
                    if getattr(rec, "normalize", "none") == "none" else None)
            ra = region_attribution(rec.model, a.log_mel, reg, t, voting=ex.voting, method=region_method, contrast=u,
                                    pcfg=rec.patch_config, probs_fn=fast)
            ex.regions, ex.boxes = ra, top_boxes(ra)
            ex.sentence = region_sentence(ra, ex.boxes, list(rec.classes))
            ex.cost[f"regions ({region_method})"] = {"forward_calls": 0, "patches_evaluated": ra.patch_calls,
                                                     "backward_calls": 0, "seconds": ra.seconds}
            if callable(progress):
                progress(f"regions ({region_method})", 1, 1)
            if focus is None and any(b.sign > 0 for b in ex.boxes):  # the focus audio follows the top regions
                ex.focus_method = f"regions ({region_method})"
                ex.focus_mask = box_time_mask(ex.boxes, len(wave), sr)
                ex.focus_activation = focus_activation(np.clip(ra.cell_map(), 0.0, None), len(wave), cfg=rec.frontend)
                ex.focus_audio = focus_audio(wave, ex.focus_mask, sr)
                ex.tf_audio = tf_cells_audio(wave, box_mask(ex.boxes, a.log_mel.shape), rec.frontend)
                fm = None
            if with_faithfulness:
                from emolens.explain.faithfulness import region_faithfulness

                fo = {k: v for k, v in (faithfulness_options or {}).items() if k in ("steps", "n_orders", "seed")}
                ex.region_faithfulness = region_faithfulness(decision_predictor(rec.model, a.log_mel, ex.voting, pcfg=rec.patch_config,
                                                                                probs_fn=fast),
                                                             a.log_mel, reg.ids, {"regions": ra.scores}, t,
                                                             **{"steps": 10, "n_orders": 3, **fo})
        if fm is not None:
            g = np.clip(maps[fm], 0.0, None)
            ex.focus_method = fm
            ex.focus_mask = focus_mask(g, len(wave), cfg=rec.frontend)
            ex.focus_activation = focus_activation(g, len(wave), cfg=rec.frontend)
            ex.focus_audio = focus_audio(wave, ex.focus_mask, sr)
            ex.tf_audio = tf_masked_audio(wave, g, tf_keep, rec.frontend)
        if with_faithfulness and maps:
            if callable(progress):
                progress("faithfulness", 0, 1)
            ex.faithfulness = faithfulness(utterance_predictor(rec.model, rec.patch_config, voting=ex.voting), a.log_mel, maps, t,
                                           **(faithfulness_options or {}))
            if callable(progress):
                progress("faithfulness", 1, 1)
        return ex


def explain_file(rec, path: str | Path, out: str | Path, *, methods=METHODS, target: str | None = None,
                 true_label: str | None = None, layer: str = "auto", lime_samples: int = 200,
                 occlusion_stride=(8, 4), with_faithfulness: bool = True, progress: bool = True,
                 regions: RegionConfig | None = DEFAULT_REGIONS, region_method: str = DEFAULT_REGION_METHOD,
                 contrast: bool | str = False) -> dict:
    """Write the explanation files of ``path`` into ``out`` and return explanation.json's dict."""
    from emolens.report.explanation_files import write_explanation

    ex = explain(rec, path, methods=methods, target=target, true_label=true_label, layer=layer,
                 lime_samples=lime_samples, occlusion_stride=occlusion_stride,
                 with_faithfulness=with_faithfulness, progress=progress, regions=regions,
                 region_method=region_method, contrast=contrast)
    return write_explanation(ex, out, cfg=rec.frontend)
