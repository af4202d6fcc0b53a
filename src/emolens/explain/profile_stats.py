"""Uncertainty for the per-emotion frequency profile: bootstrap confidence intervals,
permutation tests per pair of emotions, and a verdict on the thesis's claim.

Each recording contributes its band distribution ``d_i`` ``(64,)`` (its clipped map
summed over time, normalised to sum 1, as :mod:`emolens.explain.profile`). An
emotion's centroid is ``sum(mean_i(d_i) * hz)``, which equals the mean of the
recordings' own centroids ``c_i = d_i . hz`` (the centroid is linear in the profile),
so the tests work on the ``c_i``:

* **bootstrap** (``n_boot`` = 2000 resamples of the recordings with replacement,
  percentile interval at ``1 - alpha``): CI of each emotion's centroid and of its
  high/low mass ratio (``split_hz`` = 1000 Hz);
* **permutation test** per pair of emotions (``n_perm`` = 2000 relabellings of the
  pooled recordings): two-sided p-value of the centroid difference, ``(1 + #{|diff*|
  >= |diff|}) / (1 + n_perm)``;
* **thesis verdict**: the thesis says angry and happy lean to higher bands than
  neutral and sad. Over the 4 (high, low) pairs, with Holm's correction at ``alpha``:
  ``supported`` when every pair's difference is positive and significant,
  ``contradicted`` when some pair is significant the other way, ``partly supported``
  when some pairs are significant and positive and the rest inconclusive, else
  ``not shown`` (the differences are within noise).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import combinations

import numpy as np

from emolens.explain.profile import _band_distribution

__all__ = [
    "ProfileStatsConfig",
    "EmotionStats",
    "PairTest",
    "ProfileStats",
    "band_distributions",
    "profile_stats",
    "holm",
    "thesis_verdict",
    "format_profile_stats",
]


@dataclass(frozen=True)
class ProfileStatsConfig:
    """``n_boot`` bootstrap resamples (2000), ``n_perm`` permutations (2000), ``alpha``
    (0.05: 95% intervals, 5% tests), ``split_hz`` for the high/low ratio (1000 Hz),
    ``seed`` (0), and the thesis's ``high`` / ``low`` emotions."""

    n_boot: int = 2000
    n_perm: int = 2000
    alpha: float = 0.05
    split_hz: float = 1000.0
    seed: int = 0
    high: tuple[str, ...] = ("angry", "happy")
    low: tuple[str, ...] = ("neutral", "sad")


@dataclass(frozen=True)
class EmotionStats:
    """One emotion: ``n`` recordings, centroid (Hz) and high/low ratio with CIs."""

    n: int
    centroid_hz: float
    centroid_ci: tuple[float, float]
    high_low_ratio: float
    ratio_ci: tuple[float, float]


@dataclass(frozen=True)
class PairTest:
    """Centroid difference ``a - b`` (Hz) and its two-sided permutation p-value."""

    a: str
    b: str
    diff_hz: float
    p_value: float


@dataclass(frozen=True)
class ProfileStats:
    emotions: dict[str, EmotionStats]
    pairs: list[PairTest]
    verdict: str
    verdict_detail: list[dict] = field(default_factory=list)
    config: ProfileStatsConfig = ProfileStatsConfig()

    def as_dict(self) -> dict:
        return {
            "emotions": {k: {"n": v.n, "centroid_hz": v.centroid_hz, "centroid_ci": list(v.centroid_ci),
                             "high_low_ratio": v.high_low_ratio, "ratio_ci": list(v.ratio_ci)}
                         for k, v in self.emotions.items()},
            "pairs": [{"a": p.a, "b": p.b, "diff_hz": p.diff_hz, "p_value": p.p_value} for p in self.pairs],
            "thesis_verdict": self.verdict, "thesis_pairs": self.verdict_detail,
            "n_boot": self.config.n_boot, "n_perm": self.config.n_perm, "alpha": self.config.alpha,
        }


def band_distributions(maps: Sequence[np.ndarray], labels: Sequence[str]) -> dict[str, np.ndarray]:
    """``label -> (n, n_mels)``: each recording's band distribution (all-zero maps skipped)."""
    if len(maps) != len(labels):
        raise ValueError(f"{len(maps)} maps but {len(labels)} labels")
    groups: dict[str, list[np.ndarray]] = {}
    for m, lab in zip(maps, labels):
        d = _band_distribution(m)
        if d is not None:
            groups.setdefault(str(lab), []).append(d)
    return {k: np.stack(groups[k]) for k in sorted(groups)}


def _ratio(mean_profiles: np.ndarray, high_mask: np.ndarray) -> np.ndarray:
    hi = mean_profiles[..., high_mask].sum(axis=-1)
    lo = mean_profiles[..., ~high_mask].sum(axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(lo > 0, hi / np.where(lo > 0, lo, 1), np.inf)


def _perm_p(ca: np.ndarray, cb: np.ndarray, n_perm: int, rng: np.random.Generator) -> tuple[float, float]:
    diff = float(ca.mean() - cb.mean())
    pooled = np.concatenate([ca, cb])
    na = ca.size
    idx = np.argsort(rng.random((n_perm, pooled.size)), axis=1)
    perm = pooled[idx]
    d = perm[:, :na].mean(axis=1) - perm[:, na:].mean(axis=1)
    return diff, float((1 + np.sum(np.abs(d) >= abs(diff) - 1e-12)) / (1 + n_perm))


def holm(p: Sequence[float]) -> np.ndarray:
    """Holm step-down adjusted p-values (monotone, capped at 1)."""
    p = np.asarray(p, dtype=np.float64)
    order = np.argsort(p)
    m = p.size
    adj = np.empty(m)
    run = 0.0
    for k, i in enumerate(order):
        run = max(run, min(1.0, (m - k) * p[i]))
        adj[i] = run
    return adj


def thesis_verdict(pairs: dict[tuple[str, str], PairTest], cfg: ProfileStatsConfig) -> tuple[str, list[dict]]:
    """Verdict over the (high, low) pairs (see the module docstring) and per-pair detail."""
    keys = [(h, l) for h in cfg.high for l in cfg.low]
    tests = []
    for h, l in keys:
        t = pairs.get((h, l))
        if t is None and (l, h) in pairs:
            r = pairs[(l, h)]
            t = PairTest(h, l, -r.diff_hz, r.p_value)
        if t is None:
            return "not testable (emotions missing)", []
        tests.append(t)
    adj = holm([t.p_value for t in tests])
    detail = [{"high": t.a, "low": t.b, "diff_hz": t.diff_hz, "p_value": t.p_value, "p_holm": float(a),
               "significant": bool(a < cfg.alpha)} for t, a in zip(tests, adj)]
    sig_pos = [d["significant"] and d["diff_hz"] > 0 for d in detail]
    sig_neg = [d["significant"] and d["diff_hz"] < 0 for d in detail]
    if any(sig_neg):
        verdict = "contradicted"
    elif all(sig_pos):
        verdict = "supported"
    elif any(sig_pos):
        verdict = "partly supported"
    else:
        verdict = "not shown"
    return verdict, detail


def profile_stats(dists: dict[str, np.ndarray], band_hz: np.ndarray,
                  cfg: ProfileStatsConfig = ProfileStatsConfig()) -> ProfileStats:
    """Bootstrap CIs per emotion, permutation tests per pair, and the thesis verdict
    from ``dists`` (:func:`band_distributions`) on bands centred at ``band_hz`` (Hz)."""
    hz = np.asarray(band_hz, dtype=np.float64)
    high_mask = hz >= cfg.split_hz
    rng = np.random.default_rng(cfg.seed)
    q = (100 * cfg.alpha / 2, 100 * (1 - cfg.alpha / 2))
    emo: dict[str, EmotionStats] = {}
    cents: dict[str, np.ndarray] = {}
    for lab, d in dists.items():
        d = np.asarray(d, dtype=np.float64)
        if d.ndim != 2 or d.shape[1] != hz.size:
            raise ValueError(f"{lab}: distributions {d.shape} do not match {hz.size} bands")
        c = d @ hz
        cents[lab] = c
        boot = rng.integers(0, len(d), size=(cfg.n_boot, len(d)))
        bm = d[boot].mean(axis=1)  # (n_boot, n_mels)
        bc = bm @ hz
        br = _ratio(bm, high_mask)
        mean = d.mean(axis=0)
        with np.errstate(invalid="ignore"):  # a ratio may be inf (no low-band mass)
            ci_c, ci_r = np.percentile(bc, q), np.percentile(br, q)
        emo[lab] = EmotionStats(len(d), float(mean @ hz), tuple(float(v) for v in ci_c),
                                float(_ratio(mean, high_mask)), tuple(float(v) for v in ci_r))
    pairs: dict[tuple[str, str], PairTest] = {}
    for a, b in combinations(sorted(dists), 2):
        diff, p = _perm_p(cents[a], cents[b], cfg.n_perm, rng)
        pairs[(a, b)] = PairTest(a, b, diff, p)
    verdict, detail = thesis_verdict(pairs, cfg)
    return ProfileStats(emo, list(pairs.values()), verdict, detail, cfg)


def format_profile_stats(st: ProfileStats, title: str = "") -> str:
    """The tables and the verdict as plain text."""
    pct = round(100 * (1 - st.config.alpha))
    lines = [title] if title else []
    lines.append(f"{'emotion':<10}{'n':>5}{'centroid Hz':>13}{f'{pct}% CI':>18}{'high/low':>10}{f'{pct}% CI':>16}")
    for lab, e in st.emotions.items():
        lines.append(f"{lab:<10}{e.n:>5}{e.centroid_hz:>13.0f}{f'[{e.centroid_ci[0]:.0f}, {e.centroid_ci[1]:.0f}]':>18}"
                     f"{e.high_low_ratio:>10.2f}{f'[{e.ratio_ci[0]:.2f}, {e.ratio_ci[1]:.2f}]':>16}")
    lines.append(f"{'pair':<20}{'centroid diff Hz':>18}{'p (permutation)':>17}")
    for p in st.pairs:
        lines.append(f"{p.a + ' - ' + p.b:<20}{p.diff_hz:>18.1f}{p.p_value:>17.4f}")
    lines.append(f"thesis claim (angry/happy in higher bands than neutral/sad): {st.verdict.upper()} "
                 f"(Holm-corrected, alpha {st.config.alpha})")
    return "\n".join(lines)
