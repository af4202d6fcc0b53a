"""Gaussian Data Selection (GDS): drop log-mel patches whose value distribution is
heterogeneous compared with a reference (METHOD.md section 3).

Method, with every open choice a field of :class:`GDSConfig`:

1. **Gaussian per patch.** Each patch ``(96, 64)`` of log-mel values (VGGish offset,
   ``log(mel + 0.01)``) becomes ``N(mu_i, sigma_i)``: the mean and (population)
   standard deviation of its 6144 values (:func:`patch_gaussians`). ``sigma`` is
   floored at ``min_sigma`` (a constant patch, e.g. digital silence, has sigma 0).
   ``level="utterance"`` (default) measures ``mu`` relative to the loudest patch of
   the same utterance (:func:`relative_level`, ``mu - max mu``), so a recording's gain,
   a speaker's loudness or an emotion's vocal effort no longer make a patch atypical;
   ``level="absolute"`` (the thesis preset) keeps ``mu`` as it is.
2. **Correlation of the pdfs** (``correlation``):

   * ``"pearson"`` (default): each pdf is sampled on one common grid of
     ``grid_points`` (256) values spanning the reference's ``min(mu - 4 sigma)`` to
     ``max(mu + 4 sigma)`` (``grid_sigmas``), fixed at :meth:`fit`; the score pair is
     the Pearson correlation coefficient of the two sampled pdfs
     (:func:`pdf_correlation`). A pdf narrower than the grid step is widened to one
     step so it is always sampled; a pdf that is flat on the grid (far outside it)
     correlates 0 with everything.
   * ``"bhattacharyya"``: the Bhattacharyya coefficient of the two Gaussians, closed
     form ``sqrt(2 s1 s2 / (s1^2 + s2^2)) exp(-(m1 - m2)^2 / (4 (s1^2 + s2^2)))``
     (in [0, 1], 1 for identical Gaussians; no grid).

3. **Score** of patch ``i`` = mean correlation of its pdf with the reference pdfs
   (``scope``):

   * ``"corpus"`` (default): the reference is the training patches, a seeded random
     subsample of at most ``max_reference`` (2000). The reference itself is included,
     so a training patch in the reference also counts its self-correlation (1/2000).
   * ``"class"``: one reference per training label (each subsampled to
     ``max_reference``). A label is unknown at evaluation time, so by default
     (``class_match="best"``) every patch, training or evaluation, gets the score of
     its *best-matching* class (max over the class references): training and
     evaluation data are selected by the same label-free rule. ``class_match="label"``
     scores a patch against its own label's reference when labels are passed (an
     analysis option; patches scored without labels fall back to "best").
   * ``"utterance"``: the reference is the *other* patches of the same utterance
     (needs ``utterance_ids``; no reference from training). An utterance with one
     patch has nothing to compare with: raw score 1 (kept). :meth:`fit` only learns
     the normalisation and threshold; without a fit the scored batch normalises itself.
     With a few patches per utterance, one silent patch also lowers the scores of its
     neighbours (on EmoDB this scope catches less silence than "corpus").

   With Pearson the mean over a reference is linear, ``mean_j r(i, j) = z_i . zbar / G``
   with ``z`` the standardised pdf rows, so scoring is one matrix-vector product per
   chunk: tens of thousands of patches score in well under a second whatever the
   reference size. Bhattacharyya computes the ``(chunk, n_ref)`` matrix.

4. **Normalisation** (``normalize``): ``"zscore"`` (default) ``(s - mean) / std`` with
   the mean and std of the raw scores of *all training patches* (computed at fit);
   ``"minmax"`` ``(s - min) / (max - min)`` over the same; ``"none"``.
5. **Threshold.** Patches with normalised score ``< threshold`` are heterogeneous and
   dropped, then ``max_drop_per_utterance`` (default 0.25) caps the drop: an utterance
   of ``n`` patches loses at most ``floor(0.25 n)`` of them, its lowest-scoring ones
   (the others are kept and recorded in :attr:`GDSResult.forced`, like the
   ``keep_min_per_utterance`` (1) patches every utterance keeps).

   **Default** (``GDSConfig()``, preset "transfer"): Pearson, corpus scope, z-score,
   ``level="utterance"``, ``threshold`` :data:`DEFAULT_THRESHOLD` = 0 (below the training
   mean), cap 0.25. Measured on four corpora (``benchmarks/gds_transfer.py``; fitted on
   the whole corpus, 4 classes): dropped 16.2% of the 2-s EmoDB copy, 13.4% of EmoDB
   original, 17.3% of RAVDESS, 15.1% of ASED (11-19% of held-out speakers when fitted on
   the others); the most-dropped class loses 1.24, 1.40, 1.14, 1.09x the overall rate.
   What it drops is 19-75 dB under the utterance's loudest frame (kept: 11-18 dB) and
   mostly silent (59-100% of dropped vs 4-41% of kept patches); on RAVDESS and ASED its
   drops have a mean speech probability of 0.01 and 0.11 (YAMNet's voice classes). EmoDB
   has almost no non-speech (0.8-2.2% of patches under 0.2 speech probability), so
   there it drops the quietest patches, pauses and end padding inside speech. Without
   the cap, which class loses most follows which class pauses most (EmoDB sad: 23% of
   its patches mostly silent vs angry 6%), beyond 1.5x the overall rate.

   **Thesis preset** (:meth:`GDSConfig.thesis`, ``--gds-preset thesis``): absolute
   levels, no cap, :data:`THESIS_THRESHOLD` = -0.30, calibrated on the 2-s EmoDB copy
   (``benchmarks/gds_calibrate.py``, 1356 patches) to drop about 15%, what the thesis
   dropped (165,240 -> 140,885): 15.1% there, 77% of it mostly silence, most of it the
   end-padded 4th patch of the 2-s clips. It does not transfer: 19.9% of EmoDB original,
   36.8% of RAVDESS, 32.5% of ASED, and it drops the loud classes (RAVDESS angry 46%,
   ASED neutral 45%) because a loud patch is atypical of the corpus.

   A z-score threshold is *relative* to the training scores: on data with no outliers
   at all it still drops the low tail. For an absolute rule use ``normalize="none"``
   (raw mean Pearson). Set ``drop_fraction`` instead to drop a fixed fraction: the
   threshold becomes that quantile of the training scores.

The selector is fitted on training patches only and then applied, unchanged, to
training and evaluation patches (no leakage).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from emolens.errors import SelectionError

__all__ = [
    "CORRELATIONS",
    "DEFAULT_MAX_DROP",
    "LEVELS",
    "PRESETS",
    "THESIS_THRESHOLD",
    "DEFAULT_GRID_POINTS",
    "DEFAULT_MAX_REFERENCE",
    "DEFAULT_THRESHOLD",
    "GDSConfig",
    "GDSResult",
    "GaussianDataSelector",
    "NORMALIZATIONS",
    "SCOPES",
    "SelectionError",
    "bhattacharyya_coefficient",
    "forced_keep",
    "gaussian_pdf_grid",
    "make_grid",
    "relative_level",
    "mean_bhattacharyya",
    "pdf_correlation",
    "patch_gaussians",
]

#: Default normalised (z-score) threshold: below the training patches' mean score
#: (with level "utterance" and the per-utterance cap; see the module docstring).
DEFAULT_THRESHOLD: float = 0.0
#: Threshold of the thesis preset (:meth:`GDSConfig.thesis`), calibrated on the 2-s
#: EmoDB copy to drop ~15% of patches with absolute levels and no cap.
THESIS_THRESHOLD: float = -0.30
#: Default cap: at most this fraction of an utterance's patches is dropped.
DEFAULT_MAX_DROP: float = 0.25
#: Presets by name (``--gds-preset``).
PRESETS: tuple[str, ...] = ("transfer", "thesis")
#: Points of the common grid the pdfs are sampled on.
DEFAULT_GRID_POINTS: int = 256
#: Half-width of the grid beyond the reference's extreme pdfs, in sigmas.
DEFAULT_GRID_SIGMAS: float = 4.0
#: Most reference patches (per reference set), subsampled with ``seed``.
DEFAULT_MAX_REFERENCE: int = 2000
#: Smallest patch sigma, in log-mel units (nats).
DEFAULT_MIN_SIGMA: float = 1e-3
#: Patches each utterance keeps whatever their scores.
DEFAULT_KEEP_MIN: int = 1

SCOPES: tuple[str, ...] = ("corpus", "class", "utterance")
CORRELATIONS: tuple[str, ...] = ("pearson", "bhattacharyya")
NORMALIZATIONS: tuple[str, ...] = ("zscore", "minmax", "none")
LEVELS: tuple[str, ...] = ("absolute", "utterance")
CLASS_MATCHES: tuple[str, ...] = ("best", "label")

#: Rows scored per chunk (bounds memory to ``chunk x max(G, n_ref)`` floats).
_CHUNK: int = 8192


@dataclass(frozen=True)
class GDSConfig:
    """Parameters of Gaussian Data Selection (see the module docstring)."""

    scope: str = "corpus"
    correlation: str = "pearson"
    normalize: str = "zscore"
    threshold: float = DEFAULT_THRESHOLD
    drop_fraction: float | None = None
    grid_points: int = DEFAULT_GRID_POINTS
    grid_sigmas: float = DEFAULT_GRID_SIGMAS
    max_reference: int = DEFAULT_MAX_REFERENCE
    min_sigma: float = DEFAULT_MIN_SIGMA
    keep_min_per_utterance: int = DEFAULT_KEEP_MIN
    class_match: str = "best"
    level: str = "utterance"
    max_drop_per_utterance: float | None = DEFAULT_MAX_DROP
    seed: int = 0

    @classmethod
    def thesis(cls, **changes: Any) -> GDSConfig:
        """The thesis-calibrated setting (the former default): absolute levels,
        no per-utterance cap, z < -0.30 (15% of the 2-s EmoDB copy; 20-37% elsewhere)."""
        return cls(**{"level": "absolute", "max_drop_per_utterance": None, "threshold": THESIS_THRESHOLD, **changes})

    @classmethod
    def preset(cls, name: str, **changes: Any) -> GDSConfig:
        """``"transfer"`` (the default :class:`GDSConfig`) or ``"thesis"``."""
        if name == "thesis":
            return cls.thesis(**changes)
        if name == "transfer":
            return cls(**changes)
        raise SelectionError(f"GDS preset {name!r} is unknown; use one of {', '.join(PRESETS)}")

    def __post_init__(self) -> None:
        for name, value, allowed in (
            ("scope", self.scope, SCOPES),
            ("correlation", self.correlation, CORRELATIONS),
            ("normalize", self.normalize, NORMALIZATIONS),
            ("class_match", self.class_match, CLASS_MATCHES),
            ("level", self.level, LEVELS),
        ):
            if value not in allowed:
                raise SelectionError(f"GDS {name} {value!r} is unknown; use one of {', '.join(allowed)}")
        if self.max_drop_per_utterance is not None and not 0.0 <= self.max_drop_per_utterance <= 1.0:
            raise SelectionError(f"GDS max_drop_per_utterance {self.max_drop_per_utterance} is outside [0, 1]")
        if self.drop_fraction is not None and not 0.0 <= self.drop_fraction <= 1.0:
            raise SelectionError(f"GDS drop_fraction {self.drop_fraction} is outside [0, 1]")
        if self.grid_points < 2 or self.max_reference < 1 or self.keep_min_per_utterance < 0:
            raise SelectionError("GDS needs grid_points >= 2, max_reference >= 1, keep_min_per_utterance >= 0")
        if not (self.min_sigma > 0 and self.grid_sigmas > 0):
            raise SelectionError("GDS needs min_sigma > 0 and grid_sigmas > 0")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class GDSResult:
    """Outcome of :meth:`GaussianDataSelector.select` for ``N`` patches.

    Attributes:
        keep: bool ``(N,)``, True for patches kept.
        scores: normalised scores ``(N,)`` (higher = more homogeneous).
        mu: patch means ``(N,)`` of the log-mel values.
        sigma: patch standard deviations ``(N,)``.
        config: the selector's config.
        threshold: the normalised threshold applied (``score < threshold`` dropped).
        forced: bool ``(N,)``, kept only by ``keep_min_per_utterance``.
    """

    keep: np.ndarray
    scores: np.ndarray
    mu: np.ndarray
    sigma: np.ndarray
    config: GDSConfig
    threshold: float
    forced: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))

    @property
    def n_kept(self) -> int:
        return int(self.keep.sum())

    @property
    def dropped_fraction(self) -> float:
        return 1.0 - self.n_kept / max(1, self.keep.size)

    def to_dict(self) -> dict[str, Any]:
        """Counts and settings (no per-patch arrays), JSON-ready."""
        return {
            "patches": int(self.keep.size),
            "kept": self.n_kept,
            "dropped_fraction": float(self.dropped_fraction),
            "forced": int(self.forced.sum()),
            "threshold": float(self.threshold),
            "config": self.config.to_dict(),
        }


# ---------------------------------------------------------------- pure functions


def patch_gaussians(patches: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and population std of each patch's values: ``(N, ...)`` -> ``(N,)``, ``(N,)``."""
    x = np.asarray(patches, dtype=np.float64).reshape(len(patches), -1)
    return x.mean(axis=1), x.std(axis=1)


def gaussian_pdf_grid(mu: np.ndarray, sigma: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Normal pdfs ``N(mu_i, sigma_i)`` sampled at ``grid``: ``(N,)``, ``(N,)``, ``(G,)`` -> ``(N, G)``."""
    mu = np.asarray(mu, dtype=np.float64)[:, None]
    sigma = np.asarray(sigma, dtype=np.float64)[:, None]
    u = (np.asarray(grid, dtype=np.float64)[None, :] - mu) / sigma
    return np.exp(-0.5 * u * u) / (sigma * np.sqrt(2.0 * np.pi))


def _standardize_rows(p: np.ndarray) -> np.ndarray:
    """Rows minus their mean over their std (ddof 0); a flat row becomes zeros."""
    p = np.asarray(p, dtype=np.float64)
    centred = p - p.mean(axis=-1, keepdims=True)
    sd = np.sqrt(np.mean(centred * centred, axis=-1, keepdims=True))
    scale = np.max(np.abs(p), axis=-1, keepdims=True)
    flat = sd <= 1e-12 * np.maximum(scale, np.finfo(np.float64).tiny)
    return np.where(flat, 0.0, centred / np.where(flat, 1.0, sd))


def pdf_correlation(a: np.ndarray, b: np.ndarray) -> np.ndarray | float:
    """Pearson correlation of sampled pdfs (rows over the grid).

    ``(G,)``, ``(G,)`` -> float; ``(N, G)``, ``(M, G)`` -> ``(N, M)``. A flat row
    correlates 0 with everything.
    """
    a2, b2 = np.atleast_2d(a), np.atleast_2d(b)
    if a2.shape[-1] != b2.shape[-1]:
        raise SelectionError(f"pdfs sampled on different grids ({a2.shape[-1]} vs {b2.shape[-1]} points)")
    r = _standardize_rows(a2) @ _standardize_rows(b2).T / a2.shape[-1]
    if np.ndim(a) == 1 and np.ndim(b) == 1:
        return float(r[0, 0])
    return r


def bhattacharyya_coefficient(
    mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray
) -> np.ndarray:
    """Bhattacharyya coefficient of 1-D Gaussians (broadcasting), in [0, 1]."""
    v = np.asarray(sigma1, dtype=np.float64) ** 2 + np.asarray(sigma2, dtype=np.float64) ** 2
    d = np.asarray(mu1, dtype=np.float64) - np.asarray(mu2, dtype=np.float64)
    return np.sqrt(2.0 * np.asarray(sigma1) * np.asarray(sigma2) / v) * np.exp(-d * d / (4.0 * v))


def mean_bhattacharyya(
    mu: np.ndarray, sigma: np.ndarray, ref_mu: np.ndarray, ref_sigma: np.ndarray, chunk: int = 1024
) -> np.ndarray:
    """Mean Bhattacharyya coefficient of each ``N(mu_i, sigma_i)`` with a reference set: ``(N,)``.

    Same values as :func:`bhattacharyya_coefficient` averaged over the reference, computed
    in place on ``(chunk, n_ref)`` blocks.
    """
    out = np.empty(mu.size)
    ref_var = ref_sigma * ref_sigma
    for s in range(0, mu.size, chunk):
        m, sd = mu[s : s + chunk, None], sigma[s : s + chunk, None]
        v = sd * sd + ref_var
        e = m - ref_mu
        e *= e
        e /= v
        e *= -0.25
        np.exp(e, out=e)
        r = (2.0 * sd) * ref_sigma
        r /= v
        np.sqrt(r, out=r)
        e *= r
        out[s : s + chunk] = e.mean(axis=1)
    return out


def relative_level(mu: np.ndarray, utterance_ids: np.ndarray | None = None) -> np.ndarray:
    """Patch means relative to their utterance's loudest patch: ``mu - max(mu of the
    utterance)`` ``(N,)`` (<= 0). Without ids the whole batch is one utterance."""
    mu = np.asarray(mu, dtype=np.float64)
    if utterance_ids is None:
        return mu - mu.max()
    _, inv = np.unique(np.asarray(utterance_ids), return_inverse=True)
    peak = np.full(inv.max() + 1, -np.inf)
    np.maximum.at(peak, inv, mu)
    return mu - peak[inv]


def make_grid(mu: np.ndarray, sigma: np.ndarray, points: int, n_sigmas: float) -> np.ndarray:
    """Common grid ``(points,)`` from ``min(mu - k sigma)`` to ``max(mu + k sigma)``."""
    lo = float(np.min(mu - n_sigmas * sigma))
    hi = float(np.max(mu + n_sigmas * sigma))
    if hi - lo < 1e-9:
        lo, hi = lo - 1.0, hi + 1.0
    return np.linspace(lo, hi, points)


def forced_keep(scores: np.ndarray, keep: np.ndarray, groups: np.ndarray, k: int,
                max_drop: float | None = None) -> np.ndarray:
    """Patches to add so each group keeps ``min(k, size)`` patches (its best scores)
    and, with ``max_drop``, drops at most ``floor(max_drop * size)`` (keeps its best
    ``size - floor(max_drop * size)``): bool ``(N,)``."""
    forced = np.zeros(keep.shape, dtype=bool)
    if keep.size == 0 or (k <= 0 and max_drop is None):
        return forced
    _, inv = np.unique(groups, return_inverse=True)
    if max_drop is not None:
        size = np.bincount(inv)
        need_u = np.maximum(size - np.floor(max_drop * size + 1e-9).astype(np.int64), k)
    else:
        need_u = np.full(inv.max() + 1, k)
    order = np.lexsort((-scores, inv))  # by group, best score first
    inv_sorted = inv[order]
    starts = np.r_[0, np.flatnonzero(np.diff(inv_sorted)) + 1]
    rank = np.arange(len(order)) - np.repeat(starts, np.diff(np.r_[starts, len(order)]))
    kept_per_group = np.bincount(inv, weights=keep.astype(np.float64), minlength=inv.max() + 1)
    kk = need_u[inv_sorted]
    need = (rank < kk) & (kept_per_group[inv_sorted] < kk) & ~keep[order]
    forced[order[need]] = True
    return forced


# ---------------------------------------------------------------- the selector


def _as_patches(patches: np.ndarray) -> np.ndarray:
    x = np.asarray(patches)
    if x.ndim < 2 or x.shape[0] == 0:
        raise SelectionError(f"GDS needs patches shaped (N, frames, bands), got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise SelectionError("GDS patches contain NaN or infinite values; pass log-mel patches (log(mel + 0.01))")
    return x


def _ids(values: Sequence | np.ndarray | None, n: int, what: str) -> np.ndarray | None:
    if values is None:
        return None
    arr = np.asarray(values)
    if arr.shape != (n,):
        raise SelectionError(f"GDS {what} has shape {arr.shape}; expected one per patch ({n},)")
    return arr


class GaussianDataSelector:
    """Fit on training patches, then :meth:`score` / :meth:`select` any patches.

    Fitted attributes: ``grid_`` ``(G,)``, ``reference_index_`` (training indices of
    the reference patches, per reference key), ``train_raw_scores_`` ``(N_train,)``,
    ``norm_`` (loc, scale), ``threshold_``.
    """

    def __init__(self, config: GDSConfig | None = None) -> None:
        self.config = config or GDSConfig()
        self.grid_: np.ndarray | None = None
        self.reference_index_: dict[str, np.ndarray] = {}
        self._refs: dict[str, dict[str, np.ndarray]] = {}
        self.train_raw_scores_: np.ndarray | None = None
        self.norm_: tuple[float, float] | None = None
        self.threshold_: float | None = None

    # ------------------------------------------------------------ fitting
    @property
    def is_fitted(self) -> bool:
        return self.norm_ is not None

    def fit(
        self,
        patches: np.ndarray,
        labels: Sequence | np.ndarray | None = None,
        utterance_ids: Sequence | np.ndarray | None = None,
    ) -> GaussianDataSelector:
        """Learn the reference, grid, normalisation and threshold from training patches.

        ``patches``: ``(N, 96, 64)`` log-mel. ``labels`` needed for scope "class",
        ``utterance_ids`` for scope "utterance".
        """
        cfg = self.config
        x = _as_patches(patches)
        n = x.shape[0]
        labels_arr = _ids(labels, n, "labels")
        utt = _ids(utterance_ids, n, "utterance_ids")
        mu, sigma = self._gaussians(x, utt)
        rng = np.random.default_rng(cfg.seed)
        if cfg.scope == "corpus":
            groups = {"corpus": np.arange(n)}
        elif cfg.scope == "class":
            if labels_arr is None:
                raise SelectionError("GDS scope 'class' needs labels at fit")
            groups = {str(c): np.flatnonzero(labels_arr == c) for c in np.unique(labels_arr)}
        else:
            if utt is None:
                raise SelectionError("GDS scope 'utterance' needs utterance_ids")
            groups = {}
        self.reference_index_ = {
            key: np.sort(rng.choice(idx, size=cfg.max_reference, replace=False)) if len(idx) > cfg.max_reference else idx
            for key, idx in groups.items()
        }
        grid_idx = np.concatenate(list(self.reference_index_.values())) if groups else np.arange(n)
        self.grid_ = make_grid(mu[grid_idx], sigma[grid_idx], cfg.grid_points, cfg.grid_sigmas)
        self._refs = {}
        for key, idx in self.reference_index_.items():
            ref = {"mu": mu[idx], "sigma": sigma[idx]}
            if cfg.correlation == "pearson":
                ref["zbar"] = self._z(mu[idx], sigma[idx]).mean(axis=0)
            self._refs[key] = ref
        raw = self._raw_scores(mu, sigma, utt, labels_arr)
        self.train_raw_scores_ = raw
        self.norm_ = self._norm_stats(raw)
        self.threshold_ = self._threshold(self._normalize(raw, self.norm_))
        return self

    # ------------------------------------------------------------ persistence
    def state_dict(self) -> dict[str, np.ndarray]:
        """Fitted state as flat numpy arrays (for safetensors; no pickles): the
        config as JSON bytes, the grid, each reference's Gaussians, the
        normalisation and the threshold."""
        import json

        if not self.is_fitted:
            raise SelectionError("GDS selector is not fitted; call fit() first")
        state = {
            "config_json": np.frombuffer(json.dumps(self.config.to_dict()).encode(), dtype=np.uint8).copy(),
            "grid": np.asarray(self.grid_, dtype=np.float64),
            "norm": np.asarray(self.norm_, dtype=np.float64),
            "threshold": np.asarray([self.threshold_], dtype=np.float64),
        }
        for key, ref in self._refs.items():
            for name, arr in ref.items():
                state[f"ref.{key}.{name}"] = np.asarray(arr, dtype=np.float64)
        return state

    @classmethod
    def from_state(cls, state: dict[str, np.ndarray]) -> GaussianDataSelector:
        """Rebuild a fitted selector from :meth:`state_dict` (scores identically)."""
        import json

        try:
            saved = json.loads(bytes(np.asarray(state["config_json"], dtype=np.uint8)).decode())
            # selectors saved before these fields existed used absolute levels and no cap
            saved.setdefault("level", "absolute")
            saved.setdefault("max_drop_per_utterance", None)
            cfg = GDSConfig(**saved)
            sel = cls(cfg)
            sel.grid_ = np.asarray(state["grid"])
            loc, scale = (float(v) for v in state["norm"])
            sel.norm_ = (loc, scale)
            sel.threshold_ = float(state["threshold"][0])
        except (KeyError, ValueError, TypeError) as exc:
            raise SelectionError(f"saved GDS state is incomplete ({exc}); retrain the model") from None
        refs: dict[str, dict[str, np.ndarray]] = {}
        for k, v in state.items():
            if k.startswith("ref."):
                key, name = k[4:].rsplit(".", 1)
                refs.setdefault(key, {})[name] = np.asarray(v)
        sel._refs = refs
        return sel

    # ------------------------------------------------------------ scoring
    def score(
        self,
        patches: np.ndarray,
        utterance_ids: Sequence | np.ndarray | None = None,
        labels: Sequence | np.ndarray | None = None,
    ) -> np.ndarray:
        """Normalised scores ``(N,)`` of ``patches`` ``(N, 96, 64)`` (higher = more typical)."""
        x = _as_patches(patches)
        mu, sigma = self._gaussians(x, _ids(utterance_ids, x.shape[0], "utterance_ids"))
        return self._score_gaussians(mu, sigma, utterance_ids, labels)[0]

    def select(
        self,
        patches: np.ndarray,
        utterance_ids: Sequence | np.ndarray | None = None,
        labels: Sequence | np.ndarray | None = None,
    ) -> GDSResult:
        """Score and threshold ``patches``; each utterance keeps ``keep_min_per_utterance``.

        Without ``utterance_ids`` there is no per-utterance guarantee.
        """
        x = _as_patches(patches)
        mu, sigma = self._gaussians(x, _ids(utterance_ids, x.shape[0], "utterance_ids"))
        scores, threshold = self._score_gaussians(mu, sigma, utterance_ids, labels)
        keep = scores >= threshold
        utt = _ids(utterance_ids, x.shape[0], "utterance_ids")
        forced = (
            forced_keep(scores, keep, utt, self.config.keep_min_per_utterance, self.config.max_drop_per_utterance)
            if utt is not None
            else np.zeros_like(keep)
        )
        return GDSResult(keep | forced, scores, mu, sigma, self.config, float(threshold), forced)

    def to_dict(self) -> dict[str, Any]:
        """Config and fitted state summary, JSON-ready."""
        out: dict[str, Any] = {"config": self.config.to_dict(), "fitted": self.is_fitted}
        if self.is_fitted:
            assert self.grid_ is not None and self.train_raw_scores_ is not None and self.norm_ is not None
            out.update(
                threshold=float(self.threshold_),  # type: ignore[arg-type]
                norm_loc=float(self.norm_[0]),
                norm_scale=float(self.norm_[1]),
                grid_range=[float(self.grid_[0]), float(self.grid_[-1])],
                n_train=int(self.train_raw_scores_.size),
                n_reference={k: int(v.size) for k, v in self.reference_index_.items()},
            )
        return out

    # ------------------------------------------------------------ internals
    def _gaussians(self, x: np.ndarray, utt: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        mu, sigma = patch_gaussians(x)
        if self.config.level == "utterance":
            mu = relative_level(mu, utt)
        return mu, np.maximum(sigma, self.config.min_sigma)

    def _z(self, mu: np.ndarray, sigma: np.ndarray, grid: np.ndarray | None = None) -> np.ndarray:
        """Standardised pdf rows ``(N, G)`` on ``grid`` (default the fitted one); width >= one step."""
        grid = self.grid_ if grid is None else grid
        assert grid is not None
        step = float(grid[1] - grid[0])
        return _standardize_rows(gaussian_pdf_grid(mu, np.maximum(sigma, step), grid))

    def _score_gaussians(
        self, mu: np.ndarray, sigma: np.ndarray, utterance_ids: Any, labels: Any
    ) -> tuple[np.ndarray, float]:
        n = mu.size
        utt = _ids(utterance_ids, n, "utterance_ids")
        labels_arr = _ids(labels, n, "labels")
        if self.is_fitted:
            assert self.norm_ is not None and self.threshold_ is not None
            return self._normalize(self._raw_scores(mu, sigma, utt, labels_arr), self.norm_), self.threshold_
        if self.config.scope != "utterance":
            raise SelectionError(f"GDS scope {self.config.scope!r} is not fitted; call fit(training patches) first")
        if utt is None:
            raise SelectionError("GDS scope 'utterance' needs utterance_ids")
        grid = make_grid(mu, sigma, self.config.grid_points, self.config.grid_sigmas)
        raw = self._utterance_scores(mu, sigma, utt, grid)
        scores = self._normalize(raw, self._norm_stats(raw))
        return scores, self._threshold(scores)

    def _raw_scores(
        self, mu: np.ndarray, sigma: np.ndarray, utt: np.ndarray | None, labels: np.ndarray | None
    ) -> np.ndarray:
        cfg = self.config
        if cfg.scope == "utterance":
            if utt is None:
                raise SelectionError("GDS scope 'utterance' needs utterance_ids")
            return self._utterance_scores(mu, sigma, utt, self.grid_)
        keys = list(self._refs)
        per_ref = np.empty((mu.size, len(keys)))
        for j, key in enumerate(keys):
            per_ref[:, j] = self._mean_correlation(mu, sigma, self._refs[key])
        if cfg.scope == "class" and cfg.class_match == "label" and labels is not None:
            col = {k: j for j, k in enumerate(keys)}
            idx = np.array([col.get(str(c), -1) for c in labels])
            best = per_ref.max(axis=1)
            own = per_ref[np.arange(mu.size), np.maximum(idx, 0)]
            return np.where(idx >= 0, own, best)
        return per_ref.max(axis=1)

    def _mean_correlation(self, mu: np.ndarray, sigma: np.ndarray, ref: dict[str, np.ndarray]) -> np.ndarray:
        """Mean correlation ``(N,)`` of each pdf with one reference set."""
        if self.config.correlation == "bhattacharyya":
            return mean_bhattacharyya(mu, sigma, ref["mu"], ref["sigma"])
        out = np.empty(mu.size)
        for s in range(0, mu.size, _CHUNK):
            sl = slice(s, s + _CHUNK)
            out[sl] = self._z(mu[sl], sigma[sl]) @ ref["zbar"] / self.config.grid_points
        return out

    def _utterance_scores(
        self, mu: np.ndarray, sigma: np.ndarray, utt: np.ndarray, grid: np.ndarray | None
    ) -> np.ndarray:
        """Mean correlation with the other patches of the same utterance (1 if alone)."""
        _, inv = np.unique(utt, return_inverse=True)
        counts = np.bincount(inv)
        others = counts[inv] - 1
        if self.config.correlation == "pearson":
            g = self.config.grid_points
            sums = np.zeros((counts.size, g))
            for s in range(0, mu.size, _CHUNK):
                sl = slice(s, s + _CHUNK)
                np.add.at(sums, inv[sl], self._z(mu[sl], sigma[sl], grid))
            total = np.empty(mu.size)
            for s in range(0, mu.size, _CHUNK):
                sl = slice(s, s + _CHUNK)
                z = self._z(mu[sl], sigma[sl], grid)
                total[sl] = (np.einsum("ij,ij->i", z, sums[inv[sl]]) - np.einsum("ij,ij->i", z, z)) / g
        else:
            total = np.zeros(mu.size)
            order = np.argsort(inv, kind="stable")
            bounds = np.r_[0, np.cumsum(counts)]
            for u in range(counts.size):
                idx = order[bounds[u] : bounds[u + 1]]
                bc = bhattacharyya_coefficient(mu[idx, None], sigma[idx, None], mu[None, idx], sigma[None, idx])
                total[idx] = bc.sum(axis=1) - np.diag(bc)
        return np.where(others > 0, total / np.maximum(others, 1), 1.0)

    def _norm_stats(self, raw: np.ndarray) -> tuple[float, float]:
        mode = self.config.normalize
        if mode == "zscore":
            loc, scale = float(raw.mean()), float(raw.std())
        elif mode == "minmax":
            loc, scale = float(raw.min()), float(raw.max() - raw.min())
        else:
            loc, scale = 0.0, 1.0
        return loc, (scale if scale > 1e-12 else 1.0)

    @staticmethod
    def _normalize(raw: np.ndarray, norm: tuple[float, float]) -> np.ndarray:
        return (raw - norm[0]) / norm[1]

    def _threshold(self, train_scores: np.ndarray) -> float:
        """The configured threshold, or the ``drop_fraction`` quantile of ``train_scores``."""
        frac = self.config.drop_fraction
        if frac is None:
            return float(self.config.threshold)
        k = int(round(frac * train_scores.size))
        if k <= 0:
            return -np.inf
        if k >= train_scores.size:
            return np.inf
        return float(np.partition(train_scores, k)[k])
