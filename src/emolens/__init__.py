"""emolens: speech emotion recognition you can see and hear.

Public API (see README):

* audio/features: :func:`load_audio`, :func:`mel_spectrogram`, :func:`log_mel`,
  :func:`frame_patches`, :class:`FrontEndConfig`, :class:`PatchConfig`
* corpora: :class:`Manifest`, :func:`build_manifest`, :func:`make_folds`
* selection: :class:`GaussianDataSelector`, :class:`GDSConfig`
* models: :class:`FusionNet`, :class:`VGGish`, :class:`YAMNet`, :func:`build_model`
* training/inference: :class:`TrainConfig`, :class:`EmotionRecognizer`
"""

from emolens.audio import AudioClip, load_audio
from emolens.errors import AudioError, EmolensError
from emolens.features import (
    THESIS_48K,
    VGGISH_16K,
    FrontEndConfig,
    PatchConfig,
    frame_patches,
    log_mel,
    mel_spectrogram,
)

__version__ = "0.1.0"

_LAZY = {
    "Manifest": "emolens.corpora.manifest",
    "build_manifest": "emolens.corpora.parsers",
    "make_folds": "emolens.corpora.splits",
    "GaussianDataSelector": "emolens.selection.gds",
    "GDSConfig": "emolens.selection.gds",
    "FusionNet": "emolens.models.fusion",
    "VGGish": "emolens.models.vggish",
    "YAMNet": "emolens.models.yamnet",
    "build_model": "emolens.models",
    "TrainConfig": "emolens.training.trainer",
    "EmotionRecognizer": "emolens.inference",
}


def __getattr__(name: str):
    """Import the heavier parts (torch models, sklearn) on first use."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'emolens' has no attribute {name!r}")


__all__ = [
    "AudioClip", "AudioError", "EmolensError", "FrontEndConfig", "PatchConfig", "THESIS_48K",
    "VGGISH_16K", "frame_patches", "load_audio", "log_mel", "mel_spectrogram", *_LAZY,
]
