"""emolens: speech emotion recognition you can see and hear.

Public API (see README):

* audio/features: :func:`load_audio`, :func:`mel_spectrogram`, :func:`log_mel`,
  :func:`frame_patches`, :class:`FrontEndConfig`, :class:`PatchConfig`,
  :func:`prosody_features`, :data:`PROSODY_NAMES`, :func:`whisper_log_mel`
* corpora: :class:`Manifest`, :func:`build_manifest`, :func:`make_folds`
* selection: :class:`GaussianDataSelector`, :class:`GDSConfig`
* models: :class:`FusionNet`, :class:`VGGish`, :class:`YAMNet`, :func:`build_model`,
  :func:`whisper_stream`, :class:`WhisperStreamConfig` (``emolens[whisper]``)
* training/inference: :class:`TrainConfig`, :class:`EmotionRecognizer`
* explanations: :class:`RegionConfig`, :func:`make_regions`, :func:`region_attribution`,
  :func:`top_boxes`, :func:`region_sentence`, :func:`explain_streams` (how much of a decision
  each input stream carries, so how much the map can show)
* batch inference on Ray (``emolens[ray]``): :class:`RayBatchConfig`, :func:`run_ray_batch`
"""

__version__ = "0.1.0"

_LAZY = {
    "AudioClip": "emolens.audio.io",
    "load_audio": "emolens.audio.io",
    "AudioError": "emolens.errors",
    "EmolensError": "emolens.errors",
    "THESIS_48K": "emolens.features.mel",
    "VGGISH_16K": "emolens.features.mel",
    "FrontEndConfig": "emolens.features.mel",
    "mel_spectrogram": "emolens.features.mel",
    "log_mel": "emolens.features.mel",
    "PatchConfig": "emolens.features.patches",
    "frame_patches": "emolens.features.patches",
    "prosody_features": "emolens.features.prosody",
    "PROSODY_NAMES": "emolens.features.prosody",
    "whisper_log_mel": "emolens.features.whisper_mel",
    "WhisperStreamConfig": "emolens.models.whisper",
    "whisper_stream": "emolens.models.whisper",
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
    "RegionConfig": "emolens.explain.regions",
    "make_regions": "emolens.explain.regions",
    "region_attribution": "emolens.explain.region_attribution",
    "top_boxes": "emolens.explain.region_summary",
    "region_sentence": "emolens.explain.region_summary",
    "explain_streams": "emolens.explain.streams",
    "StreamShares": "emolens.explain.streams",
    "RayBatchConfig": "emolens.distributed.ray_batch",
    "run_ray_batch": "emolens.distributed.ray_batch",
}


def __getattr__(name: str):
    """Import each part on first use (``emolens --help`` and inference stay light:
    torch models and scikit-learn are imported only by what needs them)."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'emolens' has no attribute {name!r}")


__all__ = [*_LAZY]
