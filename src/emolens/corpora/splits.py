"""Speaker-independent train/validation/test splits of a :class:`Manifest`.

Every speaker-based builder puts whole speakers on one side only, carves the
validation part from the *training* speakers (whole speakers, chosen so that training
keeps every class and validation covers as many classes as possible; deterministic
given ``seed``), and calls :func:`check_no_leakage` on each fold. A plain stratified
random split (``random``) mixes speakers across sides and is refused unless
``allow_speaker_overlap=True``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sklearn.model_selection import LeaveOneGroupOut, StratifiedGroupKFold, StratifiedKFold, train_test_split

from emolens.corpora.manifest import UNKNOWN_SPEAKER, Manifest
from emolens.errors import SplitError

SPEC_HELP = "an int k (speaker k-fold), 'loso', 'locorpus', 'holdout:<spk>,<spk>' or 'random[:k]'"


@dataclass
class Fold:
    """Sorted utterance indices into a manifest for one train/val/test split."""

    name: str
    train: np.ndarray
    test: np.ndarray
    val: np.ndarray | None = None


# --- checks ----------------------------------------------------------------------------
def _require_speakers(manifest: Manifest) -> np.ndarray:
    """The speaker array; SplitError if empty or any speaker is unknown."""
    if len(manifest) == 0:
        raise SplitError("cannot split an empty manifest; check the corpus and class set")
    speakers = manifest.speaker_array()
    unknown = int(np.sum(speakers == UNKNOWN_SPEAKER))
    if unknown:
        raise SplitError(
            f"{unknown} utterances have speaker 'unknown'; speaker-independent splits need real "
            "speaker ids (give a speaker map/column), or use 'random' with allow_speaker_overlap"
        )
    return speakers


def fold_speakers(manifest: Manifest, fold: Fold) -> dict[str, tuple[str, ...]]:
    """Sorted speaker ids on each side of a fold (``val`` empty when there is none)."""
    speakers = manifest.speaker_array()
    parts = {"train": fold.train, "val": fold.val, "test": fold.test}
    return {k: tuple(sorted({str(s) for s in speakers[v]})) if v is not None else () for k, v in parts.items()}


def check_no_leakage(manifest: Manifest, fold: Fold) -> None:
    """SplitError if a speaker or utterance is on two sides, or a side is empty/invalid."""
    parts = {"train": fold.train, "val": fold.val, "test": fold.test}
    for side, idx in parts.items():
        if idx is None:
            continue
        idx = np.asarray(idx)
        if idx.size and (idx.min() < 0 or idx.max() >= len(manifest)):
            raise SplitError(f"fold {fold.name}: {side} indices outside 0..{len(manifest) - 1}; rebuild the folds")
    for side in ("train", "test"):
        if len(parts[side]) == 0:  # type: ignore[arg-type]
            raise SplitError(f"fold {fold.name}: empty {side} set; use fewer folds or other speakers")
    speakers = fold_speakers(manifest, fold)
    if any(UNKNOWN_SPEAKER in s for s in speakers.values()):
        raise SplitError(f"fold {fold.name}: speaker 'unknown' cannot be checked for leakage; give speaker ids")
    names = [s for s in ("train", "val", "test") if parts[s] is not None]
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            shared_idx = np.intersect1d(parts[a], parts[b])  # type: ignore[arg-type]
            if shared_idx.size:
                raise SplitError(
                    f"fold {fold.name}: {shared_idx.size} utterances in both {a} and {b}; rebuild the folds"
                )
            shared = sorted(set(speakers[a]) & set(speakers[b]))
            if shared:
                raise SplitError(
                    f"fold {fold.name}: speaker(s) {', '.join(shared)} in both {a} and {b}; "
                    "speaker-independent evaluation needs disjoint speakers — rebuild with make_folds"
                )


# --- validation carving ----------------------------------------------------------------
def _val_score(
    picked: list[str], candidates: Sequence[str], label_sets: dict[str, set[str]], all_labels: set[str]
) -> tuple[bool, int]:
    """(training keeps every class, number of classes validation covers) for a pick."""
    rest = set().union(*(label_sets[s] for s in candidates if s not in picked))
    covered = set().union(*(label_sets[s] for s in picked))
    return rest == all_labels, len(covered)


def _choose_val_speakers(
    candidates: Sequence[str], label_sets: dict[str, set[str]], n_val: int, rng: np.random.Generator
) -> list[str]:
    """Greedily pick ``n_val`` speakers: keep every class in training, cover most classes in val.

    Ties are broken by a seeded shuffle, so folds differ but are reproducible.
    """
    order = [str(s) for s in rng.permutation(np.asarray(candidates, dtype=object))]
    all_labels = set().union(*(label_sets[s] for s in candidates))
    chosen: list[str] = []
    for _ in range(n_val):
        scored = [
            (*_val_score([*chosen, s], candidates, label_sets, all_labels), -rank, s)
            for rank, s in enumerate(order)
            if s not in chosen
        ]
        chosen.append(max(scored)[-1])
    return sorted(chosen)


def _carve_val(
    manifest: Manifest, train: np.ndarray, n_val: int, rng: np.random.Generator, name: str
) -> tuple[np.ndarray, np.ndarray | None]:
    """Move ``n_val`` whole training speakers to a validation set."""
    train = np.sort(np.asarray(train, dtype=np.int64))
    if n_val < 0:
        raise SplitError(f"val_speakers must be >= 0, got {n_val}")
    if n_val == 0:
        return train, None
    speakers = manifest.speaker_array()
    labels = np.asarray([u.label for u in manifest], dtype=object)
    candidates = sorted(set(speakers[train]))
    if len(candidates) - n_val < 1:
        raise SplitError(
            f"fold {name}: only {len(candidates)} training speaker(s), cannot hold out {n_val} for "
            "validation; use fewer val speakers (val_speakers=0) or fewer folds"
        )
    label_sets = {s: set(labels[train][speakers[train] == s]) for s in candidates}
    val_spk = _choose_val_speakers(candidates, label_sets, n_val, rng)
    in_val = np.isin(speakers[train], val_spk)
    return train[~in_val], train[in_val]


def _finish(manifest: Manifest, name: str, train: np.ndarray, test: np.ndarray,
            val_speakers: int, rng: np.random.Generator) -> Fold:
    train, val = _carve_val(manifest, train, val_speakers, rng, name)
    fold = Fold(name, train, np.sort(np.asarray(test, dtype=np.int64)), val)
    check_no_leakage(manifest, fold)
    return fold


# --- builders --------------------------------------------------------------------------
def speaker_kfold(manifest: Manifest, k: int = 5, seed: int = 0, val_speakers: int = 1) -> list[Fold]:
    """k folds stratified by label and grouped by speaker (StratifiedGroupKFold)."""
    speakers = _require_speakers(manifest)
    n = len(set(speakers))
    if k < 2:
        raise SplitError(f"k-fold needs k >= 2, got {k}")
    if n < k:
        raise SplitError(
            f"{k}-fold speaker split needs at least {k} speakers; this manifest has {n} "
            f"({', '.join(manifest.speakers)}); use k <= {n} or 'loso'"
        )
    labels = np.asarray([u.label for u in manifest], dtype=object)
    splitter = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    rng = np.random.default_rng(seed)
    folds = []
    for i, (train, test) in enumerate(splitter.split(np.zeros(len(manifest)), labels, speakers)):
        folds.append(_finish(manifest, f"fold-{i + 1}", train, test, val_speakers, rng))
    return folds


def leave_one_speaker_out(manifest: Manifest, val_speakers: int = 1, seed: int = 0) -> list[Fold]:
    """One fold per speaker (sorted), testing on that speaker alone."""
    speakers = _require_speakers(manifest)
    n = len(set(speakers))
    if n < 2 + val_speakers:
        raise SplitError(
            f"leave-one-speaker-out with {val_speakers} validation speaker(s) needs at least "
            f"{2 + val_speakers} speakers; this manifest has {n}"
        )
    rng = np.random.default_rng(seed)
    folds = []
    for train, test in LeaveOneGroupOut().split(np.zeros(len(manifest)), groups=speakers):
        folds.append(_finish(manifest, f"loso-{speakers[test[0]]}", train, test, val_speakers, rng))
    return folds


def holdout_speakers(
    manifest: Manifest, test_speakers: Sequence[str], val_speakers: int = 1, seed: int = 0
) -> list[Fold]:
    """One fold testing on the named speakers; the rest train (minus validation speakers)."""
    speakers = _require_speakers(manifest)
    wanted = sorted({str(s).strip() for s in test_speakers})
    if not wanted:
        raise SplitError("holdout needs at least one test speaker, e.g. 'holdout:03,08'")
    missing = [s for s in wanted if s not in set(speakers)]
    if missing:
        raise SplitError(
            f"test speaker(s) {', '.join(missing)} not in this manifest; its speakers are "
            f"{', '.join(manifest.speakers)}"
        )
    is_test = np.isin(speakers, wanted)
    if is_test.all():
        raise SplitError("holdout names every speaker as test; leave some for training")
    name = "holdout-" + "-".join(wanted)
    rng = np.random.default_rng(seed)
    return [_finish(manifest, name, np.flatnonzero(~is_test), np.flatnonzero(is_test), val_speakers, rng)]


def leave_one_corpus_out(manifest: Manifest, val_speakers: int = 1, seed: int = 0) -> list[Fold]:
    """One fold per corpus (sorted by name): train on the other corpora, test on it.

    Validation speakers are carved from the training corpora (``val_speakers`` whole
    speakers *per training corpus*, so early stopping sees every training corpus).
    SplitError when the manifest holds fewer than two corpora."""
    speakers = _require_speakers(manifest)
    corpora = np.asarray([u.corpus for u in manifest], dtype=str)
    names = sorted(set(corpora))
    if len(names) < 2:
        raise SplitError(
            f"leave-one-corpus-out needs at least 2 corpora in the work dir; it has {len(names)} "
            f"({', '.join(names)}); prepare several with --corpus NAME:DIR --corpus NAME:DIR"
        )
    owners: dict[str, set[str]] = {}
    for spk, c in zip(speakers, corpora):
        owners.setdefault(str(spk), set()).add(str(c))
    clash = sorted(s for s, cs in owners.items() if len(cs) > 1)
    if clash:
        raise SplitError(f"speaker id(s) {', '.join(clash[:5])} appear in several corpora; prepare the corpora "
                         "together (--corpus NAME:DIR ...) so ids become CORPUS/SPEAKER")
    rng = np.random.default_rng(seed)
    folds = []
    for c in names:
        test = np.flatnonzero(corpora == c)
        train_parts, val_parts = [], []
        for other in names:
            if other == c:
                continue
            tr, va = _carve_val(manifest, np.flatnonzero(corpora == other), val_speakers, rng, f"locorpus-{c}")
            train_parts.append(tr)
            if va is not None:
                val_parts.append(va)
        train = np.sort(np.concatenate(train_parts))
        val = np.sort(np.concatenate(val_parts)) if val_parts else None
        fold = Fold(f"locorpus-{c}", train, test, val)
        check_no_leakage(manifest, fold)
        folds.append(fold)
    return folds


def random_split(
    manifest: Manifest, k: int = 5, seed: int = 0, val_fraction: float = 0.1,
    *, allow_speaker_overlap: bool = False,
) -> list[Fold]:
    """Stratified random k-fold that ignores speakers; refused unless ``allow_speaker_overlap``."""
    if not allow_speaker_overlap:
        raise SplitError(
            "a random split puts the same speakers on both sides and inflates accuracy; use a "
            "speaker split (k, 'loso', 'holdout:...') or pass allow_speaker_overlap=True "
            "(--allow-speaker-overlap)"
        )
    if k < 2 or len(manifest) < k:
        raise SplitError(f"random split needs 2 <= k <= {len(manifest)} utterances, got k={k}")
    labels = np.asarray([u.label for u in manifest], dtype=object)
    splitter = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    folds = []
    for i, (train, test) in enumerate(splitter.split(np.zeros(len(manifest)), labels)):
        val = None
        if val_fraction > 0:
            strat = labels[train] if min(np.unique(labels[train], return_counts=True)[1]) >= 2 else None
            try:
                train, val = train_test_split(train, test_size=val_fraction, random_state=seed, stratify=strat)
            except ValueError:  # too few per class to stratify the validation slice
                train, val = train_test_split(train, test_size=val_fraction, random_state=seed)
            val = np.sort(val)
        folds.append(Fold(f"random-{i + 1}", np.sort(train), np.sort(test), val))
    return folds


def make_folds(
    manifest: Manifest,
    spec: str | int,
    seed: int = 0,
    allow_speaker_overlap: bool = False,
    val_speakers: int = 1,
) -> list[Fold]:
    """Folds from a spec: int k, ``'loso'``, ``'locorpus'``, ``'holdout:03,08'`` or ``'random[:k]'``."""
    if isinstance(spec, bool):
        raise SplitError(f"split spec must be {SPEC_HELP}, got {spec!r}")
    text = str(spec).strip().lower() if not isinstance(spec, int) else str(spec)
    if text.isdigit():
        return speaker_kfold(manifest, int(text), seed, val_speakers)
    if text == "loso":
        return leave_one_speaker_out(manifest, val_speakers, seed)
    if text == "locorpus":
        return leave_one_corpus_out(manifest, val_speakers, seed)
    if text.startswith("holdout:"):
        ids = [s.strip() for s in str(spec).strip().split(":", 1)[1].split(",") if s.strip()]
        return holdout_speakers(manifest, ids, val_speakers, seed)
    if text == "random" or (text.startswith("random:") and text[7:].isdigit()):
        k = int(text[7:]) if ":" in text else 5
        return random_split(
            manifest, k, seed, 0.1 if val_speakers else 0.0, allow_speaker_overlap=allow_speaker_overlap
        )
    raise SplitError(f"unknown split spec {spec!r}; use {SPEC_HELP}")
