"""Model architectures and pretrained-weight loaders.

* :class:`VGGish`, :class:`YAMNet`: exact PyTorch ports of Google's AudioSet networks.
* :class:`FusionNet`: the late-fusion network (and the single-backbone baselines).
* :func:`build_model`: a model kind with its pretrained backbones resolved
  (explicit path > ``$EMOLENS_WEIGHTS`` > cache; VGGish falls back to random
  initialisation with a warning and ``vggish_pretrained: false``; YAMNet never does).

The PyTorch parts are imported on first use, so that the torch-free inference modules
(:mod:`emolens.models.backends`, :mod:`emolens.models.run_files`) import without torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from emolens.models.fusion import FusionNet

_LAZY = {"VGGish": "vggish", "YAMNet": "yamnet", "load_yamnet_file": "yamnet", "FusionNet": "fusion",
         "MODEL_STREAMS": "fusion", "load_vggish": "weights", "resolve_weights": "weights"}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(f"emolens.models.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'emolens.models' has no attribute {name!r}")


def build_model(kind: str, n_classes: int, *, yamnet_weights: str | None = None,
                vggish_weights: str | None = None, seed: int = 0, **head) -> tuple[FusionNet, dict]:
    """A :class:`FusionNet` of ``kind`` (fusion | vggish | yamnet) with pretrained
    backbones, and a dict saying where each backbone's weights came from."""
    import torch

    from emolens.models.fusion import MODEL_STREAMS, FusionNet
    from emolens.models.weights import load_vggish, resolve_weights
    from emolens.models.yamnet import load_yamnet_file

    if kind not in MODEL_STREAMS:
        raise ValueError(f"unknown model {kind!r}; use one of {', '.join(MODEL_STREAMS)}")
    streams = MODEL_STREAMS[kind]
    info: dict = {}
    vgg = yam = None
    if any(s.startswith("vggish") for s in streams):
        torch.manual_seed(seed)
        vgg, pre = load_vggish(vggish_weights, allow_random=True)
        info["vggish_pretrained"] = pre
    if any(s.startswith("yamnet") for s in streams):
        path = resolve_weights("yamnet", yamnet_weights)
        yam = load_yamnet_file(path)
        info["yamnet_pretrained"] = True
        info["yamnet_weights"] = path.name
    torch.manual_seed(seed)
    model = FusionNet(n_classes, streams, vggish=vgg, yamnet=yam, **head)
    return model, info


__all__ = ["VGGish", "YAMNet", "FusionNet", "MODEL_STREAMS", "build_model", "load_vggish", "resolve_weights", "load_yamnet_file"]
