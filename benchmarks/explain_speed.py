"""Speed of the explanation stage: wall time and model passes per utterance.

For each utterance length, a synthetic log-mel ``(n_frames, 64)`` is cut into patches
and explained with Grad-CAM, LIME and Occlusion (default settings of
:mod:`emolens.explain.attributions`), then the Grad-CAM map goes through the
deletion/insertion check (+ 5 random orders). Each row reports wall seconds, forward
calls, patches evaluated and backward calls.

The model comes from a factory ``() -> nn.Module`` (``(B, 1, 96, 64)`` -> logits);
the Grad-CAM layer is ``model.gradcam_layers()[layer]`` when the model has that
method, else the factory returns ``(model, layer_module)``. Without ``--factory`` a
small random CNN stands in, so the script runs on its own::

    python benchmarks/explain_speed.py --seconds 3 10
    python benchmarks/explain_speed.py --factory mypkg.models:build --layer vggish --json out.json
    python benchmarks/explain_speed.py --model runs/demo/fusion --layer vggish --seconds 4
"""

from __future__ import annotations

import argparse
import importlib
import json
import time
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn

from emolens.explain.attributions import Attribution, gradcam, lime, occlusion
from emolens.explain.faithfulness import deletion_insertion, random_baseline, utterance_predictor
from emolens.explain.stitch import utterance_map, utterance_patches
from emolens.features.mel import num_frames

ModelFactory = Callable[[], "nn.Module | tuple[nn.Module, nn.Module]"]


class _TinyCNN(nn.Module):
    """Stand-in model: 3 conv blocks, 4 classes; ``gradcam_layers()['conv']``."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(),
        )
        self.fc = nn.Linear(64, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x).mean(dim=(2, 3)))

    def gradcam_layers(self) -> dict[str, nn.Module]:
        return {"conv": self.features[7]}


def tiny_cnn() -> nn.Module:
    torch.manual_seed(0)
    return _TinyCNN()


def _resolve(factory: ModelFactory, layer_name: str | None) -> tuple[nn.Module, nn.Module]:
    built = factory()
    if isinstance(built, tuple):
        return built
    layers = built.gradcam_layers()
    return built, layers[layer_name] if layer_name else next(iter(layers.values()))


def _row(res: Attribution, seconds: float, n_patches: int, wall: float) -> dict:
    return {
        "method": res.method, "seconds": seconds, "patches": n_patches, "wall_s": round(wall, 4),
        "forward_calls": res.forward_calls, "patches_evaluated": res.patches_evaluated,
        "backward_calls": res.backward_calls, "ms_per_patch": round(1000 * wall / n_patches, 2),
    }


def run_benchmark(
    model_factory: ModelFactory = tiny_cnn,
    seconds: Sequence[float] = (3.0,),
    layer_name: str | None = None,
    target: int = 0,
    device: str = "cpu",
    lime_samples: int = 200,
    faithfulness_steps: int = 20,
) -> list[dict]:
    """One row per (length, method); see the module docstring."""
    model, layer = _resolve(model_factory, layer_name)
    model = model.to(device).eval()
    rng = np.random.default_rng(0)
    rows: list[dict] = []
    for sec in seconds:
        n_frames = num_frames(int(sec * 16000))
        log_mel = rng.normal(-3.0, 1.5, size=(n_frames, 64)).astype(np.float32)
        x = utterance_patches(log_mel).to(device)
        n = x.shape[0]
        runs: list[tuple[str, Callable[[], Attribution]]] = [
            ("Grad-CAM", lambda: gradcam(model, layer, x, target)),
            ("LIME", lambda: lime(model, x, target, n_samples=lime_samples)),
            ("Occlusion", lambda: occlusion(model, x, target)),
        ]
        cam_map = None
        for _name, fn in runs:
            t0 = time.perf_counter()
            res = fn()
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            rows.append(_row(res, sec, n, time.perf_counter() - t0))
            if res.method == "Grad-CAM":
                cam_map = utterance_map(res.maps, n_frames)
        predict = utterance_predictor(model)
        counter = {"calls": 0, "utterances": 0}

        def counted(batch: np.ndarray) -> np.ndarray:
            counter["calls"] += 1
            counter["utterances"] += len(batch)
            return predict(batch)

        t0 = time.perf_counter()
        deletion_insertion(counted, log_mel, cam_map, target, steps=faithfulness_steps)
        random_baseline(counted, log_mel, target, steps=faithfulness_steps, n_orders=5)
        wall = time.perf_counter() - t0
        rows.append({
            "method": "deletion/insertion (+5 random)", "seconds": sec, "patches": n,
            "wall_s": round(wall, 4), "forward_calls": None,
            "patches_evaluated": counter["utterances"] * n, "backward_calls": 0,
            "ms_per_patch": round(1000 * wall / n, 2), "predict_calls": counter["calls"],
        })
    return rows


def _load_factory(spec: str) -> ModelFactory:
    module, _, name = spec.partition(":")
    return getattr(importlib.import_module(module), name)


def main(argv: Sequence[str] | None = None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--factory", help="module:function returning the model (default: a tiny CNN)")
    ap.add_argument("--model", help="run directory of a trained emolens model (instead of --factory)")
    ap.add_argument("--layer", help="key of model.gradcam_layers() (default: the first)")
    ap.add_argument("--seconds", type=float, nargs="+", default=[3.0])
    ap.add_argument("--target", type=int, default=0)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, help="torch CPU threads")
    ap.add_argument("--json", help="also write the rows to this file")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.model:
        from emolens.models.io import load_model

        factory = lambda: load_model(args.model)[0]  # noqa: E731
    else:
        factory = _load_factory(args.factory) if args.factory else tiny_cnn
    rows = run_benchmark(factory, args.seconds, args.layer, args.target, args.device)
    cols = ["seconds", "method", "patches", "wall_s", "ms_per_patch", "forward_calls", "patches_evaluated",
            "backward_calls"]
    print("\t".join(cols))
    for r in rows:
        print("\t".join(str(r.get(c)) for c in cols))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)
    return rows


if __name__ == "__main__":
    main()
