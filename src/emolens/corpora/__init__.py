"""Corpora: parsers → one :class:`Manifest` type, label normalisation, class sets and
speaker-independent splits."""

from emolens.corpora.labels import CLASS_SETS, VOCABULARY, is_known_label, normalize_label, resolve_class_set
from emolens.corpora.manifest import UNKNOWN_SPEAKER, Manifest, Utterance, probe_duration
from emolens.corpora.parsers import CORPORA, CorpusWarning, build_manifest, list_corpora
from emolens.corpora.splits import (
    Fold,
    check_no_leakage,
    fold_speakers,
    holdout_speakers,
    leave_one_corpus_out,
    leave_one_speaker_out,
    make_folds,
    random_split,
    speaker_kfold,
)

__all__ = [
    "CLASS_SETS",
    "CORPORA",
    "UNKNOWN_SPEAKER",
    "VOCABULARY",
    "CorpusWarning",
    "Fold",
    "Manifest",
    "Utterance",
    "build_manifest",
    "check_no_leakage",
    "fold_speakers",
    "holdout_speakers",
    "is_known_label",
    "leave_one_corpus_out",
    "leave_one_speaker_out",
    "list_corpora",
    "make_folds",
    "normalize_label",
    "probe_duration",
    "random_split",
    "resolve_class_set",
    "speaker_kfold",
]
