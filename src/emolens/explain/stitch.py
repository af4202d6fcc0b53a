"""Between an utterance and its patches: cut a log-mel into model patches, stitch
per-patch maps back onto the utterance, and the axes (seconds, Hz) to draw them on.

Patches overlap (96 frames, hop 48); a frame's value in the utterance map is the mean
over the patches that contain it (:func:`emolens.features.patches.overlap_average`).
"""

from __future__ import annotations

import numpy as np
import torch

from emolens.features.mel import VGGISH_16K, FrontEndConfig, LOG_OFFSETS, mel_band_centers
from emolens.features.patches import DEFAULT_PATCHES, PatchConfig, frame_patches, frame_times, overlap_average

__all__ = [
    "SILENCE_LOG_MEL",
    "utterance_patches",
    "utterance_map",
    "time_axis",
    "band_axis",
    "time_extent",
]

#: ``log(0 + 0.01)``: the VGGish log-mel of silence, used to pad the last patch.
SILENCE_LOG_MEL = float(np.log(LOG_OFFSETS["vggish"]))


def utterance_patches(
    log_mel: np.ndarray,
    pcfg: PatchConfig = DEFAULT_PATCHES,
    pad_value: float = SILENCE_LOG_MEL,
) -> torch.Tensor:
    """Cut an utterance log-mel ``(n_frames, 64)`` into model input ``(N, 1, 96, 64)``
    float32; the last patch is padded with ``pad_value`` (silence by default)."""
    spec = np.asarray(log_mel, dtype=np.float32)
    if spec.ndim != 2:
        raise ValueError(f"log_mel must be (n_frames, n_mels), got shape {spec.shape}")
    patches = np.array(frame_patches(spec, pcfg, pad_value=pad_value), dtype=np.float32)  # writable copy
    return torch.from_numpy(patches).unsqueeze(1)


def utterance_map(
    patch_maps: np.ndarray, n_frames: int, pcfg: PatchConfig = DEFAULT_PATCHES,
    weights: np.ndarray | None = None,
) -> np.ndarray:
    """Stitch per-patch maps ``(N, 96, 64)`` to an utterance map ``(n_frames, 64)``
    float32 (mean over overlapping patches; padding beyond ``n_frames`` dropped).

    ``weights (N,)``: weighted mean instead, e.g. the voting mask, so that patches that
    do not enter the utterance decision (non-speech, GDS-dropped) do not paint the map;
    frames covered by no weighted patch get 0."""
    maps = np.asarray(patch_maps, dtype=np.float64)
    if maps.ndim == 4 and maps.shape[1] == 1:
        maps = maps[:, 0]
    if maps.ndim != 3:
        raise ValueError(f"patch_maps must be (N, frames, bands), got shape {maps.shape}")
    if n_frames < 1:
        raise ValueError(f"n_frames must be >= 1, got {n_frames}")
    if weights is None:
        return overlap_average(maps, int(n_frames), pcfg)
    w = np.asarray(weights, dtype=np.float64)
    if w.shape != (maps.shape[0],):
        raise ValueError(f"weights must be ({maps.shape[0]},), got shape {w.shape}")
    num = overlap_average(maps * w[:, None, None], int(n_frames), pcfg)
    den = overlap_average(np.broadcast_to(w[:, None, None], maps.shape), int(n_frames), pcfg)
    out = np.zeros_like(num)
    np.divide(num, den, out=out, where=den > 0)
    return out.astype(np.float32)


def time_axis(n_frames: int, cfg: FrontEndConfig = VGGISH_16K) -> np.ndarray:
    """Centre time of each frame in seconds, shape ``(n_frames,)``."""
    return frame_times(n_frames, cfg)


def band_axis(cfg: FrontEndConfig = VGGISH_16K) -> np.ndarray:
    """Centre frequency of each mel band in Hz, shape ``(n_mels,)``."""
    return mel_band_centers(cfg)


def time_extent(n_frames: int, cfg: FrontEndConfig = VGGISH_16K) -> tuple[float, float]:
    """Seconds ``(start, stop)`` spanned by ``n_frames`` frames (first to last hop
    interval; the image extent for a map drawn against time)."""
    return 0.0, n_frames * cfg.hop_length / cfg.sample_rate
