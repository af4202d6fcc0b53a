"""Explaining one recording end to end (what ``emolens explain`` writes per file).

For the class explained (the prediction unless ``target`` is given): per-patch
maps of the registered methods (:mod:`emolens.explain.methods`) stitched over the whole
recording, the four-panel figure (thesis figs 26-29), the listenable focus (thesis figs
30-31, computed from ``DEFAULT_METHOD``'s map, positive part, not Grad-CAM's: see
benchmarks/faithfulness.md; summed over frequency -> samples -> all-ones smoothing ->
keep the above-mean activation),
the time-frequency-masked audio, and deletion/insertion faithfulness of every map
against a random order on the same clip.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import torch

from emolens.explain.attributions import target_index, tqdm_progress
from emolens.explain.faithfulness import faithfulness, utterance_predictor
from emolens.explain.methods import DEFAULT_METHOD, METHODS as REGISTRY, layer_names, run_method
from emolens.explain.sonify import focus_activation, focus_audio, focus_mask, focus_regions, tf_masked_audio, write_wav
from emolens.explain.stitch import utterance_map
from emolens.report.explain_figures import plot_faithfulness, plot_focus, plot_four_panel

log = logging.getLogger("emolens")
METHODS = tuple(dict.fromkeys((DEFAULT_METHOD, "gradcam", "lime", "occlusion")))  # the default set
TITLES = {k: m.title for k, m in REGISTRY.items()}


def explain_maps(rec, analysis, target: int, methods=METHODS, *, layer: str = "vggish",
                 lime_samples: int = 200, occlusion_stride=(8, 4), progress: bool = True) -> dict:
    """Utterance maps ``{method: (n_frames, 64)}`` and forward-pass counts."""
    model = rec.model
    layers = layer_names(model)
    if layer not in layers:
        fallback = next(iter(layers))
        log.warning("Grad-CAM layer %r is not in this %s model (it has %s): using %r",
                    layer, "+".join(rec.config.get("streams", [])), ", ".join(layers), fallback)
        layer = fallback
    x = torch.from_numpy(analysis.patches).unsqueeze(1)
    n_frames = analysis.log_mel.shape[0]
    maps, cost = {}, {}
    for m in methods:
        if m not in REGISTRY:
            raise ValueError(f"unknown method {m!r}; use {', '.join(REGISTRY)}")
        pr = tqdm_progress(f"{m} {Path(analysis.clip.path or '').name}") if progress and m in ("lime", "kernelshap", "occlusion") else None
        opts = {"layer": layer} if m in ("gradcam", "hirescam", "gradcampp") else {}
        if m == "lime":
            opts["n_samples"] = lime_samples
        if m == "occlusion":
            opts["stride"] = occlusion_stride
        att = run_method(m, model, x, target, progress=pr, **opts)
        maps[m] = utterance_map(att.maps, n_frames)
        cost[m] = {"forward_calls": att.forward_calls, "patches_evaluated": att.patches_evaluated,
                   "backward_calls": att.backward_calls}
    return {"maps": maps, "cost": cost, "layer": layer}


def explain_file(rec, path: str | Path, out: str | Path, *, methods=METHODS, target: str | None = None,
                 true_label: str | None = None, layer: str = "vggish", lime_samples: int = 200,
                 occlusion_stride=(8, 4), with_faithfulness: bool = True, progress: bool = True) -> dict:
    """Write the explanation files of ``path`` into ``out`` and return explanation.json's dict."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    a = rec.analyze(path)
    t = target_index(rec.classes, target) if target is not None else int(np.argmax(a.probs))
    res = explain_maps(rec, a, t, methods, layer=layer, lime_samples=lime_samples,
                       occlusion_stride=occlusion_stride, progress=progress)
    maps = res["maps"]
    sr, wave = a.clip.sample_rate, a.clip.samples
    title = (f"true: {true_label} | " if true_label else "") + f"predicted: {a.label} ({a.confidence:.2f})"
    if target is not None:
        title += f" | explaining: {rec.classes[t]}"
    plot_four_panel(a.log_mel, {TITLES[m]: maps[m] for m in maps}, out / "explanation.png", title=title, cfg=rec.frontend)
    info = {**a.as_dict(), "true_label": true_label, "target": rec.classes[t], "methods": list(maps),
            "gradcam_layer": res["layer"], "cost": res["cost"],
            "vggish_pretrained": rec.config.get("vggish_pretrained")}
    focus = DEFAULT_METHOD if DEFAULT_METHOD in maps else next(iter(maps), None)
    if focus is not None:  # focus audio from the measured default method (Grad-CAM only if asked alone)
        g = np.clip(maps[focus], 0.0, None)
        mask = focus_mask(g, len(wave), cfg=rec.frontend)
        write_wav(out / "focus.wav", focus_audio(wave, mask, sr), sr)
        plot_focus(wave, sr, mask, out / "focus.png", title=f"{TITLES[focus]} focus: {rec.classes[t]}",
                   activation=focus_activation(g, len(wave), cfg=rec.frontend))
        write_wav(out / "focus_tf.wav", tf_masked_audio(wave, g, 0.3, rec.frontend), sr)
        info["focus_regions_s"] = [[round(s0, 3), round(s1, 3)] for s0, s1 in focus_regions(mask, sr)]
        info["focus_fraction"] = float(mask.mean())
        info["focus_method"] = focus
    if with_faithfulness and maps:
        fa = faithfulness(utterance_predictor(rec.model), a.log_mel, maps, t)
        plot_faithfulness(fa, out / "faithfulness.png", title=f"deletion / insertion: {rec.classes[t]}")
        info["faithfulness"] = {k: {kk: float(v[kk]) for kk in ("deletion_auc", "insertion_auc", "deletion_gain", "insertion_gain") if kk in v}
                                for k, v in fa.items()}
    (out / "explanation.json").write_text(json.dumps(info, indent=2))
    return info
