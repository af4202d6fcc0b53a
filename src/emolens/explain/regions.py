"""Regions a listener can hear: time units x groups of mel bands (beyond the thesis).

A pixel-level map (one value per 10 ms frame and mel band) is a speckle nobody can
listen to. Here a recording's log-mel ``(n_frames, n_mels)`` is cut into **regions**:

* **time units**, either fixed blocks of ``block_seconds`` (:func:`fixed_units`) or
  syllable-like units (:func:`syllable_units`): boundaries at the valleys of the
  smoothed frame energy and at voicing on/offsets (a frame is "voiced" when it is
  loud and its energy sits mostly below 1 kHz), then units shorter than
  ``min_unit_seconds`` merged into a neighbour and longer ones than
  ``max_unit_seconds`` split evenly;
* crossed with ``n_bands`` **band groups** of adjacent mel bands, equal in mel width
  (:func:`band_groups`), labelled in Hz: a group runs from the crossover of its first
  band with the band below to the crossover of its last band with the one above
  (the HTK filters' crossovers lie half-way between centres on the mel scale).

Everything here is a pure function of the log-mel and returns a :class:`Regions`
data object (region id per cell, each region's seconds and Hz).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from emolens.features.mel import VGGISH_16K, FrontEndConfig, hz_to_mel, mel_band_centers, mel_to_hz

__all__ = [
    "RegionConfig",
    "Regions",
    "band_groups",
    "fixed_units",
    "syllable_units",
    "voiced_frames",
    "make_regions",
    "DEFAULT_REGIONS",
]


@dataclass(frozen=True)
class RegionConfig:
    """How a recording is cut into regions.

    Attributes:
        time_unit: ``"fixed"`` (blocks of ``block_seconds``, the default) or
            ``"syllable"`` (energy valleys and voicing changes).
        block_seconds: fixed block length in seconds (0.2; fixed 0.2-s blocks x 6 band
            groups were chosen by ``benchmarks/faithfulness.py --ship`` on the prosody model,
            0.1-s blocks on the vote model before it: see benchmarks/faithfulness.md).
        n_bands: number of mel-band groups (6; 64 bands -> groups of 10-11 bands).
        min_unit_seconds / max_unit_seconds: syllable unit length bounds (0.1 / 0.4 s).
        smooth_seconds: moving-average length of the frame energy (0.05 s).
        valley_db: a valley must lie this many dB below the lower of its two
            neighbouring peaks to become a boundary (3 dB).
        voiced_db: a voiced frame is louder than the clip's loudest frame minus this (30 dB).
        voiced_split_hz: voiced frames have more energy below than above this (1000 Hz).
    """

    time_unit: Literal["fixed", "syllable"] = "fixed"
    block_seconds: float = 0.2
    n_bands: int = 6
    min_unit_seconds: float = 0.1
    max_unit_seconds: float = 0.4
    smooth_seconds: float = 0.05
    valley_db: float = 3.0
    voiced_db: float = 30.0
    voiced_split_hz: float = 1000.0

    def __post_init__(self) -> None:
        if self.time_unit not in ("fixed", "syllable"):
            raise ValueError(f"time_unit {self.time_unit!r}: use 'fixed' or 'syllable'")
        if self.block_seconds <= 0 or self.n_bands < 1:
            raise ValueError("block_seconds must be > 0 and n_bands >= 1")
        if not 0 < self.min_unit_seconds <= self.max_unit_seconds:
            raise ValueError("need 0 < min_unit_seconds <= max_unit_seconds")


DEFAULT_REGIONS = RegionConfig()


@dataclass(frozen=True)
class Regions:
    """A recording cut into regions.

    Attributes:
        ids: ``(n_frames, n_mels)`` int64, the region of every cell (0..R-1).
        unit_frames: ``(U + 1,)`` frame boundaries of the time units (0 .. n_frames).
        band_edges: ``(G + 1,)`` mel-band boundaries of the band groups (0 .. n_mels).
        band_hz: ``(G, 2)`` low / high edge of each band group in Hz.
        frame_seconds: hop between frames in seconds (0.01).
        time_unit: how the units were found (``"fixed"`` | ``"syllable"``).

    Region ``r`` is unit ``r // G`` crossed with band group ``r % G``.
    """

    ids: np.ndarray
    unit_frames: np.ndarray
    band_edges: np.ndarray
    band_hz: np.ndarray
    frame_seconds: float
    time_unit: str = "fixed"

    @property
    def n_units(self) -> int:
        return len(self.unit_frames) - 1

    @property
    def n_groups(self) -> int:
        return len(self.band_edges) - 1

    @property
    def n(self) -> int:
        """Number of regions ``R = U x G``."""
        return self.n_units * self.n_groups

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.ids.shape)

    @property
    def unit_seconds(self) -> np.ndarray:
        """``(U, 2)`` start / end of each time unit in seconds."""
        f = np.asarray(self.unit_frames, dtype=np.float64) * self.frame_seconds
        return np.stack([f[:-1], f[1:]], axis=1)

    @property
    def times_s(self) -> np.ndarray:
        """``(R, 2)`` start / end of each region in seconds."""
        return np.repeat(self.unit_seconds, self.n_groups, axis=0)

    @property
    def hz(self) -> np.ndarray:
        """``(R, 2)`` low / high edge of each region in Hz."""
        return np.tile(np.asarray(self.band_hz, dtype=np.float64), (self.n_units, 1))

    @property
    def frames(self) -> np.ndarray:
        """``(R, 2)`` first / end (exclusive) frame of each region."""
        u = np.asarray(self.unit_frames)
        return np.repeat(np.stack([u[:-1], u[1:]], axis=1), self.n_groups, axis=0)

    @property
    def bands(self) -> np.ndarray:
        """``(R, 2)`` first / end (exclusive) mel band of each region."""
        b = np.asarray(self.band_edges)
        return np.tile(np.stack([b[:-1], b[1:]], axis=1), (self.n_units, 1))

    def mask(self, r: int) -> np.ndarray:
        """Bool ``(n_frames, n_mels)`` of region ``r``."""
        return self.ids == int(r)

    def masks(self) -> np.ndarray:
        """Bool ``(R, n_frames, n_mels)`` of every region."""
        return self.ids[None] == np.arange(self.n)[:, None, None]

    def paint(self, scores: np.ndarray, per_cell: bool = False) -> np.ndarray:
        """``(n_frames, n_mels)`` map with each cell holding its region's score
        ``(R,)`` (divided by the region's cell count when ``per_cell``)."""
        s = np.asarray(scores, dtype=np.float64)
        if s.shape != (self.n,):
            raise ValueError(f"scores must be ({self.n},), got {s.shape}")
        if per_cell:
            s = s / np.maximum(np.bincount(self.ids.ravel(), minlength=self.n), 1)
        return s[self.ids].astype(np.float32)

    def sum_map(self, utt_map: np.ndarray) -> np.ndarray:
        """Region sums ``(R,)`` of a cell map ``(n_frames, n_mels)``."""
        m = np.asarray(utt_map, dtype=np.float64)
        if m.shape != self.shape:
            raise ValueError(f"map shape {m.shape} differs from the regions' {self.shape}")
        return np.bincount(self.ids.ravel(), m.ravel(), minlength=self.n)


def band_groups(n_bands: int = 6, cfg: FrontEndConfig = VGGISH_16K) -> tuple[np.ndarray, np.ndarray]:
    """``(edges (G + 1,), hz (G, 2))``: ``n_bands`` groups of adjacent mel bands of
    (nearly) equal count, and each group's Hz range (filter crossovers, see the module)."""
    n_mels = cfg.n_mels
    g = int(min(max(1, n_bands), n_mels))
    edges = np.rint(np.linspace(0, n_mels, g + 1)).astype(np.int64)
    pts = np.linspace(hz_to_mel(cfg.fmin), hz_to_mel(cfg.fmax), n_mels + 2)  # lower edge, centres, upper edge
    centres = pts[1:-1]
    # crossover k: between band k-1 and band k (k = 0: the lowest band's lower half; k = n: the top's upper half)
    cross = np.concatenate([[(pts[0] + centres[0]) / 2], (centres[:-1] + centres[1:]) / 2, [(centres[-1] + pts[-1]) / 2]])
    hz = mel_to_hz(np.stack([cross[edges[:-1]], cross[edges[1:]]], axis=1))
    return edges, hz


def fixed_units(n_frames: int, block_seconds: float = 0.2, cfg: FrontEndConfig = VGGISH_16K) -> np.ndarray:
    """Frame boundaries ``(U + 1,)`` of fixed blocks of ``block_seconds``; a last
    block shorter than half a block is merged into the one before."""
    if n_frames < 1:
        raise ValueError(f"n_frames must be >= 1, got {n_frames}")
    step = max(1, int(round(block_seconds / cfg.frame_seconds)))
    b = list(range(0, n_frames, step)) + [n_frames]
    if len(b) > 2 and b[-1] - b[-2] < step / 2:
        del b[-2]
    return np.asarray(b, dtype=np.int64)


def _frame_db(log_mel: np.ndarray) -> np.ndarray:
    """Frame energy in dB from a natural-log mel ``(n_frames, n_mels)``."""
    lm = np.asarray(log_mel, dtype=np.float64)
    return 10.0 * np.log10(np.exp(lm).sum(axis=1) + 1e-10)


def voiced_frames(log_mel: np.ndarray, cfg: RegionConfig = DEFAULT_REGIONS,
                  fcfg: FrontEndConfig = VGGISH_16K) -> np.ndarray:
    """Bool ``(n_frames,)``: loud (within ``voiced_db`` of the loudest frame) and with
    more mel energy below ``voiced_split_hz`` than above (voiced speech's harmonics
    sit low; fricatives and noise bursts do not)."""
    lm = np.asarray(log_mel, dtype=np.float64)
    hz = mel_band_centers(fcfg)[: lm.shape[1]]
    e = np.exp(lm)
    low, high = e[:, hz < cfg.voiced_split_hz].sum(axis=1), e[:, hz >= cfg.voiced_split_hz].sum(axis=1)
    db = _frame_db(lm)
    return (db > db.max() - cfg.voiced_db) & (low > high)


def _smooth(x: np.ndarray, n: int) -> np.ndarray:
    if n <= 1 or x.size <= 1:
        return x.copy()
    k = np.ones(n) / n
    pad = np.pad(x, (n // 2, n - 1 - n // 2), mode="edge")
    return np.convolve(pad, k, mode="valid")


def syllable_units(log_mel: np.ndarray, cfg: RegionConfig = DEFAULT_REGIONS,
                   fcfg: FrontEndConfig = VGGISH_16K) -> np.ndarray:
    """Frame boundaries ``(U + 1,)`` of syllable-like units (see the module docstring):
    valleys of the smoothed energy at least ``valley_db`` below both neighbouring
    peaks, voicing on/offsets, then lengths forced into
    [``min_unit_seconds``, ``max_unit_seconds``]."""
    lm = np.asarray(log_mel, dtype=np.float64)
    n = lm.shape[0]
    if n < 1:
        raise ValueError("log_mel has no frames")
    fs = fcfg.frame_seconds
    db = _smooth(_frame_db(lm), max(1, int(round(cfg.smooth_seconds / fs))))
    cuts = set()
    # valleys: local minima whose depth below the peaks on either side is >= valley_db
    d = np.diff(db)
    minima = [i for i in range(1, n - 1) if d[i - 1] < 0 <= d[i]]
    for i in minima:  # the nearest peak on each side: walk out while the energy rises
        lo = i
        while lo > 0 and db[lo - 1] >= db[lo]:
            lo -= 1
        hi = i
        while hi < n - 1 and db[hi + 1] >= db[hi]:
            hi += 1
        left, right = db[lo], db[hi]
        if min(left, right) - db[i] >= cfg.valley_db:
            cuts.add(i)
    v = voiced_frames(lm, cfg, fcfg).astype(np.int8)
    cuts.update((np.flatnonzero(np.diff(v) != 0) + 1).tolist())
    bounds = sorted({0, n, *[c for c in cuts if 0 < c < n]})
    lo_f = max(1, int(round(cfg.min_unit_seconds / fs)))
    hi_f = max(lo_f, int(round(cfg.max_unit_seconds / fs)))
    # merge units shorter than lo_f into the neighbour across the shallower boundary
    changed = True
    while changed and len(bounds) > 2:
        changed = False
        lens = np.diff(bounds)
        k = int(np.argmin(lens))
        if lens[k] < lo_f:
            if k == 0:
                drop = 1
            elif k == len(lens) - 1:
                drop = len(bounds) - 2
            else:  # remove the boundary with the higher energy (the weaker cut)
                drop = k if db[min(bounds[k], n - 1)] > db[min(bounds[k + 1], n - 1)] else k + 1
            del bounds[drop]
            changed = True
    out = [0]
    for a, b in zip(bounds[:-1], bounds[1:]):
        parts = int(np.ceil((b - a) / hi_f))
        out += [int(round(a + (b - a) * j / parts)) for j in range(1, parts + 1)]
    return np.asarray(out, dtype=np.int64)


def make_regions(log_mel: np.ndarray, cfg: RegionConfig = DEFAULT_REGIONS,
                 fcfg: FrontEndConfig = VGGISH_16K) -> Regions:
    """Cut ``log_mel`` ``(n_frames, n_mels)`` (natural-log mel) into :class:`Regions`."""
    lm = np.asarray(log_mel)
    if lm.ndim != 2 or lm.shape[0] < 1:
        raise ValueError(f"log_mel must be (n_frames, n_mels) with frames, got shape {lm.shape}")
    n, n_mels = lm.shape
    if n_mels != fcfg.n_mels:
        raise ValueError(f"log_mel has {n_mels} bands, the front end {fcfg.n_mels}")
    units = fixed_units(n, cfg.block_seconds, fcfg) if cfg.time_unit == "fixed" else syllable_units(lm, cfg, fcfg)
    edges, hz = band_groups(cfg.n_bands, fcfg)
    unit_of = np.searchsorted(units, np.arange(n), side="right") - 1
    group_of = np.searchsorted(edges, np.arange(n_mels), side="right") - 1
    ids = unit_of[:, None] * (len(edges) - 1) + group_of[None, :]
    return Regions(ids.astype(np.int64), units, edges, hz, fcfg.frame_seconds, cfg.time_unit)
