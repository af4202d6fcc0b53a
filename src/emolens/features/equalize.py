"""Per-utterance spectral equalisation of log-mel patches (a front-end lever of issue 12).

Patches are VGGish log-mels ``log(mel + 0.01)`` of shape ``(P, 96, 64)`` (frames, mel
bands). An utterance's *profile* is the mean log-mel per band over its loud frames
(frame energy at or above the utterance's median). :func:`equalize_patches` applies,
per utterance, the gain (in the linear mel domain) that moves its profile onto a
reference profile: one gain per band (``band``: channel EQ, also removes spectral tilt)
or one overall gain (``gain``: loudness only). Measured on the leave-one-corpus-out
yardstick: neither paid (``benchmarks/generalisation.md``), so the shipped front end
does not equalise.
"""

from __future__ import annotations

import numpy as np

#: VGGish log offset of the patches.
LOG_OFFSET = 0.01
#: Accepted equalisation modes.
EQ_MODES = ("gain", "band")


def loud_frame_profile(patches: np.ndarray, quantile: float = 0.5) -> np.ndarray:
    """``(bands,)`` mean log-mel of the frames of ``patches (n, frames, bands)`` whose
    energy is at or above the ``quantile`` of their frame energies."""
    fr = patches.reshape(-1, patches.shape[-1]).astype(np.float64)
    e = np.log(np.exp(fr).sum(1))
    return fr[e >= np.quantile(e, quantile)].mean(0)


def utterance_profiles(patches: np.ndarray, utt: np.ndarray, n_utt: int) -> np.ndarray:
    """``(U, bands)`` :func:`loud_frame_profile` of every utterance's patches."""
    return np.stack([loud_frame_profile(patches[utt == u]) for u in range(n_utt)])


def equalize_patches(patches: np.ndarray, utt: np.ndarray, profiles: np.ndarray, ref: np.ndarray,
                     mode: str = "band") -> np.ndarray:
    """``patches`` with each utterance's linear mel scaled so that its profile
    (``profiles (U, bands)``) matches ``ref (bands,)`` (``band``) or matches it on
    average over bands (``gain``). Same shape, float32."""
    if mode not in EQ_MODES:
        raise ValueError(f"equalisation mode {mode!r}: use one of {', '.join(EQ_MODES)}")
    d = ref[None, :] - profiles
    if mode == "gain":
        d = np.repeat(d.mean(1, keepdims=True), profiles.shape[1], 1)
    g = np.exp(d)[utt][:, None, :]
    lin = np.maximum(np.exp(patches.astype(np.float64)) - LOG_OFFSET, 0)
    return np.log(lin * g + LOG_OFFSET).astype(np.float32)


__all__ = ["EQ_MODES", "LOG_OFFSET", "equalize_patches", "loud_frame_profile", "utterance_profiles"]
