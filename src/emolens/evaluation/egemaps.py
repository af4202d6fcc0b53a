"""The eGeMAPS + SVM baseline: 88 openSMILE functionals, standardised, RBF-SVM.

:class:`EgemapsSVM` follows scikit-learn conventions (``fit``/``predict``/
``decision_function``, parameters stored unchanged in ``__init__``, fitted state in
attributes ending in ``_``). Feature extraction needs the optional ``opensmile``
package (``pip install opensmile`` or ``pip install emolens[baseline]``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.model_selection import GridSearchCV, GroupKFold
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC
from sklearn.utils.validation import check_is_fitted

from emolens.audio import load_audio
from emolens.errors import AudioError, EmolensError, SplitError
from emolens.evaluation.metrics import aggregate_folds, classification_report_dict
from emolens.features.cache import cached_file_vectors

__all__ = [
    "EGEMAPS_SAMPLE_RATE",
    "N_EGEMAPS_FEATURES",
    "EgemapsSVM",
    "cross_validate_egemaps",
    "extract_egemaps",
]

#: Number of eGeMAPSv02 functionals.
N_EGEMAPS_FEATURES: int = 88
#: Rate the audio is resampled to before openSMILE.
EGEMAPS_SAMPLE_RATE: int = 16000
#: Sub-folder of the cache dir; change it when the extraction recipe changes.
_CACHE_TAG = "egemapsv02-functionals-16k-hq"
DEFAULT_C_GRID: tuple[float, ...] = (0.1, 1.0, 10.0)


def _make_smile():
    """An openSMILE eGeMAPSv02 functionals extractor, or a one-line install hint."""
    try:
        import opensmile
    except ImportError:
        raise EmolensError(
            "the eGeMAPS baseline needs openSMILE: pip install opensmile (or emolens[baseline])"
        ) from None
    return opensmile.Smile(
        feature_set=opensmile.FeatureSet.eGeMAPSv02,
        feature_level=opensmile.FeatureLevel.Functionals,
    )


def extract_egemaps(
    paths: Sequence[str | Path], cache_dir: str | Path | None = None, progress: bool = True
) -> np.ndarray:
    """eGeMAPSv02 functionals of each file as a float32 array of shape (N, 88).

    Audio is read with :func:`emolens.audio.load_audio` (mono, soxr 'HQ' to 16 kHz).
    With ``cache_dir``, features are stored per file under the sha1 of its bytes, so
    renamed or moved files hit the cache and edited files do not.
    """
    smile = None

    def compute(path: Path) -> np.ndarray:
        nonlocal smile
        smile = smile or _make_smile()
        clip = load_audio(path, sample_rate=EGEMAPS_SAMPLE_RATE)
        feats = smile.process_signal(clip.samples, EGEMAPS_SAMPLE_RATE).to_numpy(np.float32)[0]
        if feats.shape != (N_EGEMAPS_FEATURES,) or not np.all(np.isfinite(feats)):
            raise AudioError(f"{path}: openSMILE returned no usable eGeMAPS features; is it speech?")
        return feats

    cache = Path(cache_dir) / _CACHE_TAG if cache_dir is not None else None
    return cached_file_vectors(paths, compute, N_EGEMAPS_FEATURES, cache, desc="eGeMAPS", progress=progress)


class EgemapsSVM(ClassifierMixin, BaseEstimator):
    """Standardised eGeMAPS functionals + RBF SVC with balanced class weights.

    Parameters:
        C: SVM penalty; ``None`` picks it from ``C_grid`` by speaker-grouped inner
            CV (balanced accuracy) when ``fit`` gets ``groups``, else uses 1.0.
        C_grid: candidate values of C for the inner search.
        inner_splits: folds of the inner GroupKFold (capped by the number of groups).
        cache_dir: where :meth:`extract` caches features (``None``: no cache).

    Fitted attributes: ``pipeline_`` (StandardScaler + SVC), ``classes_``, ``C_``,
    ``inner_scores_`` (``{C: mean inner balanced accuracy}``, empty without a search).
    """

    def __init__(
        self,
        C: float | None = None,
        C_grid: Sequence[float] = DEFAULT_C_GRID,
        inner_splits: int = 3,
        cache_dir: str | Path | None = None,
    ) -> None:
        self.C = C
        self.C_grid = C_grid
        self.inner_splits = inner_splits
        self.cache_dir = cache_dir

    def extract(self, paths: Sequence[str | Path], progress: bool = True) -> np.ndarray:
        """eGeMAPSv02 functionals, (N, 88); see :func:`extract_egemaps`."""
        return extract_egemaps(paths, cache_dir=self.cache_dir, progress=progress)

    @staticmethod
    def _pipeline(C: float) -> Pipeline:
        return make_pipeline(StandardScaler(), SVC(kernel="rbf", C=C, class_weight="balanced"))

    def _choose_C(self, X: np.ndarray, y: np.ndarray, groups: np.ndarray | None) -> tuple[float, dict]:
        """C and the inner-CV scores per candidate (empty dict when nothing was searched)."""
        if self.C is not None:
            return float(self.C), {}
        if groups is None:
            return 1.0, {}
        n_groups = np.unique(groups).size
        if n_groups < 2:
            raise SplitError("choosing C needs at least 2 speakers in groups; pass C explicitly")
        search = GridSearchCV(
            self._pipeline(1.0),
            {"svc__C": [float(c) for c in self.C_grid]},
            scoring="balanced_accuracy",
            cv=GroupKFold(n_splits=min(self.inner_splits, n_groups)),
        )
        search.fit(X, y, groups=groups)
        scores = dict(zip(search.cv_results_["param_svc__C"], search.cv_results_["mean_test_score"]))
        return float(search.best_params_["svc__C"]), {float(c): float(s) for c, s in scores.items()}

    def fit(self, X: np.ndarray, y: np.ndarray, groups: np.ndarray | None = None) -> EgemapsSVM:
        """Fit scaler + SVC on (N, 88) features; ``groups`` (speakers) enable the C search."""
        X = np.asarray(X, dtype=np.float64)
        y = np.asarray(y)
        if X.ndim != 2 or X.shape[0] != y.shape[0]:
            raise ValueError(f"X must be (n_samples, n_features) matching y; got {X.shape} and {y.shape}")
        if np.unique(y).size < 2:
            raise SplitError("training data has fewer than 2 classes; check the labels or the split")
        groups = None if groups is None else np.asarray(groups)
        self.C_, self.inner_scores_ = self._choose_C(X, y, groups)
        self.pipeline_ = self._pipeline(self.C_).fit(X, y)
        self.classes_ = self.pipeline_.classes_
        self.n_features_in_ = X.shape[1]
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Predicted class labels."""
        check_is_fitted(self, "pipeline_")
        return self.pipeline_.predict(np.asarray(X, dtype=np.float64))

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        """One-vs-rest SVC decision values, (N, n_classes) (or (N,) for two classes)."""
        check_is_fitted(self, "pipeline_")
        return self.pipeline_.decision_function(np.asarray(X, dtype=np.float64))


def cross_validate_egemaps(
    X: np.ndarray,
    y: np.ndarray,
    groups: np.ndarray,
    labels: Sequence[str],
    n_splits: int = 5,
    estimator: EgemapsSVM | None = None,
) -> dict:
    """Speaker-grouped k-fold evaluation; returns :func:`aggregate_folds` plus ``"folds"``.

    Each outer fold fits a clone of ``estimator`` (default :class:`EgemapsSVM`, which
    picks C by inner grouped CV on the training speakers only) and is scored with
    :func:`classification_report_dict`; ``"folds"`` lists each fold's report with its
    ``test_groups`` and chosen ``C``.
    """
    from sklearn.base import clone

    X = np.asarray(X)
    y = np.asarray(y)
    groups = np.asarray(groups)
    n_groups = np.unique(groups).size
    if n_groups < n_splits:
        raise SplitError(f"{n_splits}-fold grouped CV needs at least {n_splits} speakers, got {n_groups}")
    base = estimator if estimator is not None else EgemapsSVM()
    folds = []
    for train, test in GroupKFold(n_splits=n_splits).split(X, y, groups):
        model = clone(base).fit(X[train], y[train], groups=groups[train])
        report = classification_report_dict(y[test], model.predict(X[test]), labels)
        report["test_groups"] = sorted(str(g) for g in np.unique(groups[test]))
        report["C"] = model.C_
        folds.append(report)
    result = aggregate_folds(folds)
    result["folds"] = folds
    return result
