"""Features: the log-mel front end, patches and the on-disk feature cache."""

from emolens.features.mel import (
    LOG_OFFSETS,
    PROFILES,
    THESIS_48K,
    VGGISH_16K,
    FrontEndConfig,
    log_mel,
    mel_band_centers,
    mel_filterbank,
    mel_spectrogram,
    num_frames,
)
from emolens.features.patches import (
    DEFAULT_PATCHES,
    PatchConfig,
    frame_patches,
    frame_sample_span,
    frame_times,
    num_patches,
    overlap_average,
    patch_frame_span,
    patch_sample_span,
    patch_time_span,
)

__all__ = [
    "LOG_OFFSETS", "PROFILES", "THESIS_48K", "VGGISH_16K", "FrontEndConfig", "log_mel",
    "mel_band_centers", "mel_filterbank", "mel_spectrogram", "num_frames", "DEFAULT_PATCHES",
    "PatchConfig", "frame_patches", "frame_sample_span", "frame_times", "num_patches",
    "overlap_average", "patch_frame_span", "patch_sample_span", "patch_time_span",
]
