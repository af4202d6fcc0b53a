"""Explanations: attribution maps per patch (Grad-CAM, LIME, Occlusion via Captum),
stitched onto the utterance, the decision attributed to regions a listener can hear
(time units x mel-band groups, boxes and sentences), turned into audio, checked for
faithfulness, split between the model's input streams (how much of the decision the map can
show) and summarised per emotion over frequency (METHOD.md s.6)."""

from emolens.explain.attributions import (
    Attribution,
    gradcam,
    grid_segments,
    lime,
    occlusion,
    target_index,
    tqdm_progress,
)
from emolens.explain.faithfulness import (
    deletion_insertion,
    faithfulness,
    random_baseline,
    utterance_predictor,
)
from emolens.explain.profile import (
    BandProfile,
    centroid_hz,
    frequency_profile,
    high_low_ratio,
    leans_higher,
    profile_summary,
    write_profile_csv,
)
from emolens.explain.sonify import (
    focus_activation,
    focus_audio,
    focus_mask,
    focus_regions,
    frame_importance,
    frames_to_samples,
    smooth,
    tf_masked_audio,
    write_wav,
)
from emolens.explain.stitch import band_axis, time_axis, utterance_map, utterance_patches
from emolens.explain.regions import RegionConfig, Regions, make_regions
from emolens.explain.region_attribution import RegionAttribution, UtteranceScore, region_attribution
from emolens.explain.region_summary import RegionBox, region_sentence, top_boxes
from emolens.explain.streams import StreamShares, explain_streams, stream_shares

__all__ = [
    "Attribution", "gradcam", "grid_segments", "lime", "occlusion", "target_index", "tqdm_progress",
    "deletion_insertion", "faithfulness", "random_baseline", "utterance_predictor",
    "BandProfile", "centroid_hz", "frequency_profile", "high_low_ratio", "leans_higher",
    "profile_summary", "write_profile_csv",
    "focus_activation", "focus_audio", "focus_mask", "focus_regions", "frame_importance",
    "frames_to_samples", "smooth", "tf_masked_audio", "write_wav",
    "band_axis", "time_axis", "utterance_map", "utterance_patches",
    "RegionConfig", "Regions", "make_regions", "RegionAttribution", "UtteranceScore", "region_attribution",
    "RegionBox", "region_sentence", "top_boxes",
    "StreamShares", "explain_streams", "stream_shares",
]
