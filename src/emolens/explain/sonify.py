"""Listening to an explanation (METHOD.md s.6, thesis figures 30-31).

Thesis recipe, on an utterance map ``(n_frames, 64)`` (Grad-CAM, >= 0):

1. :func:`frame_importance`: sum over the mel bands -> one value per 10 ms frame;
2. :func:`frames_to_samples`: each frame's value is spread over the samples its STFT
   window covers (``[t * hop, t * hop + win)``), averaged where windows overlap;
3. :func:`smooth`: moving average (convolution with a normalised all-ones kernel of
   ``kernel_seconds`` = 0.1 s) so the selection does not flicker;
4. :func:`focus_mask`: keep the samples whose smoothed activation is "positive".
   Grad-CAM is ReLU'd, so almost every frame is > 0 and the literal rule keeps the
   whole clip. **Decision**: "positive" means *above the clip's mean* smoothed
   activation (``threshold="mean"``); ``"median"``, or a number ``t`` in [0, 1]
   (keep where activation > ``t`` x max; ``t = 0`` is the literal thesis rule) are
   the alternatives;
5. :func:`focus_audio`: zero everything else, with 5 ms linear fades inside each kept
   region so the cuts do not click; :func:`write_wav` saves it.

Beyond the thesis, :func:`tf_masked_audio` keeps the most important *time-frequency*
cells rather than whole time spans (see its docstring).
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import scipy.signal as ss
import soundfile as sf

from emolens.features.mel import VGGISH_16K, FrontEndConfig, mel_band_centers, mel_filterbank, num_frames, periodic_hann

__all__ = [
    "frame_importance",
    "frames_to_samples",
    "smooth",
    "focus_activation",
    "focus_mask",
    "focus_regions",
    "focus_audio",
    "mel_to_stft_bins",
    "stft_keep_mask",
    "tf_masked_audio",
    "tf_cells_audio",
    "write_wav",
]


def frame_importance(utt_map: np.ndarray) -> np.ndarray:
    """Importance per frame: ``utt_map`` ``(n_frames, n_mels)`` summed over bands -> ``(n_frames,)``."""
    m = np.asarray(utt_map, dtype=np.float64)
    if m.ndim != 2:
        raise ValueError(f"map must be (n_frames, n_mels), got shape {m.shape}")
    return m.sum(axis=1)


def frames_to_samples(importance: np.ndarray, n_samples: int, win: int = 400, hop: int = 160) -> np.ndarray:
    """Per-frame values ``(n_frames,)`` -> per-sample values ``(n_samples,)`` float64.

    Frame ``t`` covers samples ``[t * hop, t * hop + win)``; each sample gets the mean
    of the frames covering it, and 0 where no frame does (the few tail samples after
    the last full window).
    """
    imp = np.asarray(importance, dtype=np.float64).ravel()
    acc = np.zeros(n_samples + 1)
    cnt = np.zeros(n_samples + 1)
    starts = np.arange(imp.size) * hop
    ok = starts < n_samples
    starts, vals = starts[ok], imp[ok]
    stops = np.minimum(starts + win, n_samples)
    np.add.at(acc, starts, vals)
    np.add.at(acc, stops, -vals)
    np.add.at(cnt, starts, 1.0)
    np.add.at(cnt, stops, -1.0)
    acc, cnt = np.cumsum(acc)[:n_samples], np.cumsum(cnt)[:n_samples]
    cnt = np.rint(cnt)  # the cumulative counts are integers
    out = np.zeros(n_samples)
    np.divide(acc, cnt, out=out, where=cnt > 0)
    return out


def smooth(x: np.ndarray, kernel_len: int) -> np.ndarray:
    """Moving average: convolution with ``ones(kernel_len) / kernel_len``, same length
    as ``x`` (zeros assumed beyond the ends, so the ends taper)."""
    x = np.asarray(x, dtype=np.float64)
    k = int(kernel_len)
    if k <= 1 or x.size == 0:
        return x.copy()
    return ss.oaconvolve(x, np.full(k, 1.0 / k), mode="same")


def focus_activation(
    utt_map: np.ndarray, n_samples: int, kernel_seconds: float = 0.1, cfg: FrontEndConfig = VGGISH_16K
) -> np.ndarray:
    """Smoothed per-sample activation ``(n_samples,)``: steps 1-3 of the recipe."""
    per_sample = frames_to_samples(frame_importance(utt_map), n_samples, cfg.win_length, cfg.hop_length)
    return smooth(per_sample, int(round(kernel_seconds * cfg.sample_rate)))


def focus_mask(
    utt_map: np.ndarray,
    n_samples: int,
    *,
    kernel_seconds: float = 0.1,
    threshold: str | float = "mean",
    cfg: FrontEndConfig = VGGISH_16K,
) -> np.ndarray:
    """Samples the model focused on, bool ``(n_samples,)``.

    ``threshold``: ``"mean"`` (default) keeps activation > its clip mean, ``"median"``
    > its median, a number ``t`` keeps activation > ``t * max`` (``0``: the thesis's
    literal "positive activation"). An all-zero map keeps nothing.
    """
    act = focus_activation(utt_map, n_samples, kernel_seconds, cfg)
    if act.size == 0 or not np.any(act > 0):
        return np.zeros(n_samples, dtype=bool)
    if threshold == "mean":
        level = float(act.mean())
    elif threshold == "median":
        level = float(np.median(act))
    elif isinstance(threshold, (int, float)) and not isinstance(threshold, bool):
        level = float(threshold) * float(act.max())
    else:
        raise ValueError(f"threshold {threshold!r}: use 'mean', 'median' or a number in [0, 1]")
    return act > level


def focus_regions(mask: np.ndarray, sr: int = 16000) -> list[tuple[float, float]]:
    """Kept spans of ``mask`` as ``(start_s, end_s)`` in seconds, end exclusive."""
    m = np.asarray(mask, dtype=bool).astype(np.int8)
    edges = np.diff(np.concatenate([[0], m, [0]]))
    starts, stops = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    return [(s / sr, e / sr) for s, e in zip(starts, stops)]


def focus_audio(wave: np.ndarray, mask: np.ndarray, sr: int = 16000, fade_ms: float = 5.0) -> np.ndarray:
    """``wave`` with everything outside ``mask`` set to 0, float32 ``(n_samples,)``.

    Each kept region fades in and out linearly over ``fade_ms`` (at most half the
    region), *inside* the region, so samples outside the mask are exactly 0.
    """
    w = np.asarray(wave, dtype=np.float64)
    m = np.asarray(mask, dtype=bool)
    if w.shape != m.shape or w.ndim != 1:
        raise ValueError(f"wave {w.shape} and mask {m.shape} must be the same 1-D shape")
    gain = m.astype(np.float64)
    fade = max(0, int(round(fade_ms * sr / 1000.0)))
    for s0, s1 in focus_regions(m, 1):
        s0, s1 = int(s0), int(s1)
        n = min(fade, (s1 - s0) // 2)
        if n > 0:
            ramp = (np.arange(n) + 1.0) / (n + 1.0)
            gain[s0 : s0 + n] = ramp
            gain[s1 - n : s1] = ramp[::-1]
    return (w * gain).astype(np.float32)


def mel_to_stft_bins(utt_map: np.ndarray, cfg: FrontEndConfig = VGGISH_16K) -> np.ndarray:
    """Map ``(n_frames, n_mels)`` onto the STFT grid ``(n_frames, n_fft // 2 + 1)``.

    Each bin gets the filterbank-weighted mean of the bands that contain it
    (``W^T`` normalised per bin, so a constant map stays constant and values stay
    within the map's range, unlike the pseudo-inverse); bins no band covers
    (DC, < 125 Hz, > 7500 Hz) take the value of the band with the nearest centre.
    """
    m = np.asarray(utt_map, dtype=np.float64)
    w = mel_filterbank(cfg)  # (n_bins, n_mels)
    if m.ndim != 2 or m.shape[1] != w.shape[1]:
        raise ValueError(f"map must be (n_frames, {w.shape[1]}), got shape {m.shape}")
    norm = w.sum(axis=1)
    covered = norm > 0
    out = np.empty((m.shape[0], w.shape[0]))
    out[:, covered] = (m @ w[covered].T) / norm[covered]
    bin_hz = np.linspace(0.0, cfg.sample_rate / 2.0, w.shape[0])
    nearest = np.argmin(np.abs(bin_hz[~covered, None] - mel_band_centers(cfg)[None, :]), axis=1)
    out[:, ~covered] = m[:, nearest]
    return out


def stft_keep_mask(utt_map: np.ndarray, keep_fraction: float = 0.3, cfg: FrontEndConfig = VGGISH_16K) -> np.ndarray:
    """Bool ``(n_frames, n_fft // 2 + 1)``: the ``keep_fraction`` most important STFT
    cells (ties at the cut are all kept)."""
    if not 0.0 <= keep_fraction <= 1.0:
        raise ValueError(f"keep_fraction must be in [0, 1], got {keep_fraction}")
    grid = mel_to_stft_bins(utt_map, cfg)
    k = int(math.ceil(keep_fraction * grid.size))
    if k <= 0:
        return np.zeros(grid.shape, dtype=bool)
    if k >= grid.size:
        return np.ones(grid.shape, dtype=bool)
    cut = np.partition(grid.ravel(), grid.size - k)[grid.size - k]
    return grid >= cut


def _stft_kwargs(cfg: FrontEndConfig) -> dict:
    return dict(
        fs=cfg.sample_rate,
        window=periodic_hann(cfg.win_length),
        nperseg=cfg.win_length,
        noverlap=cfg.win_length - cfg.hop_length,
        nfft=cfg.n_fft,
    )


def tf_masked_audio(
    wave: np.ndarray, utt_map: np.ndarray, keep_fraction: float = 0.3, cfg: FrontEndConfig = VGGISH_16K
) -> np.ndarray:
    """Keep only the most important time-frequency cells of ``wave``, float32 ``(n_samples,)``.

    The map ``(n_frames, 64)`` is spread onto the STFT grid (:func:`mel_to_stft_bins`;
    frames are 1:1 with the front end's: same 400-sample periodic Hann, hop 160,
    n_fft 512, no centring), the top ``keep_fraction`` cells are kept (binary mask),
    the wave's STFT is multiplied by it with its original phase and inverted
    (``scipy.signal.istft``, weighted overlap-add). ``keep_fraction = 1`` gives the
    input back except the first sample and the tail after the last full window,
    which no (non-zero) window reaches and are returned as 0.
    """
    x = np.asarray(wave, dtype=np.float64)
    if x.ndim != 1 or x.size == 0:
        raise ValueError(f"wave must be a non-empty 1-D array, got shape {x.shape}")
    n = x.size
    padded = np.pad(x, (0, max(0, cfg.win_length - n)))
    n_frames = num_frames(padded.size, cfg)
    m = np.asarray(utt_map)
    if m.ndim != 2 or m.shape[0] != n_frames:
        raise ValueError(f"map has {m.shape[0] if m.ndim else 0} frames but the wave has {n_frames}")
    return _apply_stft_mask(x, padded, stft_keep_mask(m, keep_fraction, cfg), cfg)


def tf_cells_audio(wave: np.ndarray, keep_cells: np.ndarray, cfg: FrontEndConfig = VGGISH_16K) -> np.ndarray:
    """Keep only the time-frequency cells ``keep_cells`` (bool ``(n_frames, n_mels)``,
    e.g. the top region boxes) of ``wave``, float32 ``(n_samples,)``: the mask is spread
    onto the STFT grid (:func:`mel_to_stft_bins`, a bin is kept where its bands' weighted
    mean is >= 0.5) and applied as in :func:`tf_masked_audio`."""
    x = np.asarray(wave, dtype=np.float64)
    if x.ndim != 1 or x.size == 0:
        raise ValueError(f"wave must be a non-empty 1-D array, got shape {x.shape}")
    padded = np.pad(x, (0, max(0, cfg.win_length - x.size)))
    n_frames = num_frames(padded.size, cfg)
    m = np.asarray(keep_cells)
    if m.ndim != 2 or m.shape[0] != n_frames:
        raise ValueError(f"mask has {m.shape[0] if m.ndim else 0} frames but the wave has {n_frames}")
    return _apply_stft_mask(x, padded, mel_to_stft_bins(m.astype(np.float64), cfg) >= 0.5, cfg)


def _apply_stft_mask(x: np.ndarray, padded: np.ndarray, keep: np.ndarray, cfg: FrontEndConfig) -> np.ndarray:
    n = x.size
    kw = _stft_kwargs(cfg)
    _, _, spec = ss.stft(padded, boundary=None, padded=False, **kw)
    with warnings.catch_warnings():  # sample 0 has zero window weight (no boundary padding)
        warnings.simplefilter("ignore", UserWarning)
        _, y = ss.istft(spec * keep.T, boundary=False, **kw)
    out = np.zeros(n)
    out[: min(n, y.size)] = y[:n]
    return out.astype(np.float32)


def write_wav(path: str | Path, wave: np.ndarray, sr: int = 16000, subtype: str = "PCM_16") -> Path:
    """Save a mono wave (clipped to [-1, 1]) with soundfile; ``subtype`` PCM_16 or FLOAT."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(p), np.clip(np.asarray(wave, dtype=np.float32), -1.0, 1.0), int(sr), subtype=subtype)
    return p
