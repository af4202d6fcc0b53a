"""Corpora: parsers → one :class:`Manifest` type, label normalisation, class sets and
speaker-independent splits."""

import importlib

# Imported on first use (PEP 562), so that e.g. the CLI's parser can list the corpora
# without importing scikit-learn (emolens.corpora.splits).
_LAZY = {
    **dict.fromkeys(["CLASS_SETS", "VOCABULARY", "is_known_label", "normalize_label", "resolve_class_set"], "labels"),
    **dict.fromkeys(["UNKNOWN_SPEAKER", "Manifest", "Utterance", "probe_duration"], "manifest"),
    **dict.fromkeys(["CORPORA", "CorpusWarning", "build_manifest", "list_corpora"], "parsers"),
    **dict.fromkeys(["Fold", "check_no_leakage", "fold_speakers", "holdout_speakers", "leave_one_corpus_out",
                     "leave_one_speaker_out", "make_folds", "random_split", "speaker_kfold"], "splits"),
}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(f"emolens.corpora.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'emolens.corpora' has no attribute {name!r}")


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
