"""Cutting a spectrogram into fixed-size overlapping patches, and mapping between
samples, frames and patches (the explanations use these to turn maps into audio).

Conventions (10 ms frames at 16 kHz): frame ``t`` covers samples
``[t * hop_length, t * hop_length + win_length)``; patch ``p`` covers frames
``[p * hop_frames, p * hop_frames + patch_frames)``. The default is VGGish/YAMNet's
96-frame (0.96 s) patch. The patch hop is **open** in the thesis; the default is
YAMNet's own 48 frames (50% overlap).

Padding decision: the last patch is padded at the end (with zeros in the *linear* mel,
i.e. silence) so that every frame of the recording lies in at least one patch; a clip
shorter than one patch becomes one padded patch.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from emolens.features.mel import VGGISH_16K, FrontEndConfig, log_mel


@dataclass(frozen=True)
class PatchConfig:
    """Patch size and hop, in frames."""

    patch_frames: int = 96
    hop_frames: int = 48

    def __post_init__(self) -> None:
        if self.patch_frames < 1 or self.hop_frames < 1:
            raise ValueError("patch_frames and hop_frames must be >= 1")

    def to_dict(self) -> dict:
        return asdict(self)


DEFAULT_PATCHES = PatchConfig()


def num_patches(n_frames: int, pcfg: PatchConfig = DEFAULT_PATCHES) -> int:
    """Patches needed to cover ``n_frames`` frames (at least 1)."""
    extra = max(0, n_frames - pcfg.patch_frames)
    return 1 + -(-extra // pcfg.hop_frames)


def frame_patches(spec: np.ndarray, pcfg: PatchConfig = DEFAULT_PATCHES, pad_value: float = 0.0,
                  pad_end: bool = True) -> np.ndarray:
    """Cut ``spec`` ``(n_frames, n_mels)`` into ``(n_patches, patch_frames, n_mels)``.

    ``pad_end=True`` (emolens): the end is padded with ``pad_value`` (0 for a linear
    mel = silence) so the last patch is full and every frame is covered.
    ``pad_end=False`` (YAMNet's ``tf.signal.frame``): a tail shorter than a patch is
    dropped, ``n = 1 + (n_frames - patch_frames) // hop`` (0 when too short).
    """
    n_frames, n_mels = spec.shape
    if not pad_end:
        n = max(0, 1 + (n_frames - pcfg.patch_frames) // pcfg.hop_frames)
        if n == 0:
            return np.zeros((0, pcfg.patch_frames, n_mels), dtype=spec.dtype)
        view = np.lib.stride_tricks.sliding_window_view(spec, (pcfg.patch_frames, n_mels))[:, 0]
        return np.ascontiguousarray(view[:: pcfg.hop_frames][:n])
    n = num_patches(n_frames, pcfg)
    total = (n - 1) * pcfg.hop_frames + pcfg.patch_frames
    if total > n_frames:
        spec = np.concatenate(
            [spec, np.full((total - n_frames, n_mels), pad_value, dtype=spec.dtype)], axis=0
        )
    view = np.lib.stride_tricks.sliding_window_view(spec, (pcfg.patch_frames, n_mels))[:, 0]
    return np.ascontiguousarray(view[:: pcfg.hop_frames][:n])


def log_mel_patches(mel: np.ndarray, pcfg: PatchConfig = DEFAULT_PATCHES, offset: float | str = "vggish") -> np.ndarray:
    """Model input from a *linear* mel ``(n_frames, n_mels)``: patches
    ``(n_patches, patch_frames, n_mels)`` of ``log(mel + offset)``, the tail padded
    with silence (zeros before the log)."""
    return log_mel(frame_patches(mel, pcfg), offset)


def patch_frame_span(p: int, pcfg: PatchConfig = DEFAULT_PATCHES) -> tuple[int, int]:
    """Frames ``[start, stop)`` of patch ``p``."""
    start = p * pcfg.hop_frames
    return start, start + pcfg.patch_frames


def frame_sample_span(t: int, cfg: FrontEndConfig = VGGISH_16K) -> tuple[int, int]:
    """Samples ``[start, stop)`` of frame ``t``."""
    start = t * cfg.hop_length
    return start, start + cfg.win_length


def patch_sample_span(
    p: int, pcfg: PatchConfig = DEFAULT_PATCHES, cfg: FrontEndConfig = VGGISH_16K
) -> tuple[int, int]:
    """Samples ``[start, stop)`` covered by patch ``p``."""
    f0, f1 = patch_frame_span(p, pcfg)
    return frame_sample_span(f0, cfg)[0], frame_sample_span(f1 - 1, cfg)[1]


def patch_time_span(
    p: int, pcfg: PatchConfig = DEFAULT_PATCHES, cfg: FrontEndConfig = VGGISH_16K
) -> tuple[float, float]:
    """Seconds ``[start, stop)`` covered by patch ``p``."""
    s0, s1 = patch_sample_span(p, pcfg, cfg)
    return s0 / cfg.sample_rate, s1 / cfg.sample_rate


def sample_to_frame(sample: int, cfg: FrontEndConfig = VGGISH_16K) -> int:
    """The frame whose hop-interval ``[t*hop, (t+1)*hop)`` contains ``sample``."""
    return int(sample) // cfg.hop_length


def frame_to_patches(t: int, n_patches: int, pcfg: PatchConfig = DEFAULT_PATCHES) -> list[int]:
    """Indices of the patches (of ``n_patches``) that contain frame ``t``."""
    lo = max(0, -(-(t - pcfg.patch_frames + 1) // pcfg.hop_frames))
    hi = min(n_patches - 1, t // pcfg.hop_frames)
    return list(range(lo, hi + 1))


def frame_times(n_frames: int, cfg: FrontEndConfig = VGGISH_16K) -> np.ndarray:
    """Centre time of each frame in seconds, shape ``(n_frames,)``."""
    return (np.arange(n_frames) * cfg.hop_length + cfg.win_length / 2.0) / cfg.sample_rate


def overlap_average(
    patch_maps: np.ndarray, n_frames: int, pcfg: PatchConfig = DEFAULT_PATCHES
) -> np.ndarray:
    """Stitch per-patch maps ``(n_patches, patch_frames, F)`` back to ``(n_frames, F)``.

    Each frame gets the mean over the patches that contain it (padding beyond
    ``n_frames`` is discarded).
    """
    n, pf, f = patch_maps.shape
    total = (n - 1) * pcfg.hop_frames + pf
    acc = np.zeros((max(total, n_frames), f), dtype=np.float64)
    cnt = np.zeros((max(total, n_frames), 1), dtype=np.float64)
    for p in range(n):
        s = p * pcfg.hop_frames
        acc[s : s + pf] += patch_maps[p]
        cnt[s : s + pf] += 1.0
    return (acc[:n_frames] / np.maximum(cnt[:n_frames], 1.0)).astype(np.float32)


def window_bounds(n_patches: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """``(lo, hi)`` ``(P,)``: the centred window of ``n`` patches around every patch,
    clipped to the recording (patches ``lo[i]:hi[i]``; what a long recording's pooled
    decisions and prosody windows span)."""
    n = max(1, int(n))
    i = np.arange(n_patches)
    return np.maximum(0, i - (n - 1) // 2), np.minimum(n_patches, i + n // 2 + 1)
