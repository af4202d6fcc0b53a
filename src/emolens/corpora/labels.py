"""One English emotion vocabulary for every corpus, and named class sets.

Every parser maps its corpus codes to a raw word, and :func:`normalize_label` maps
that word (English synonym, Korean AI-Hub / CSU label, any case) to the vocabulary.
Unknown words raise :class:`~emolens.errors.LabelError`; nothing is guessed.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from emolens.errors import LabelError

#: The canonical labels, sorted. Only what the supported corpora use.
VOCABULARY: tuple[str, ...] = (
    "angry",
    "boredom",
    "calm",
    "chagrin",
    "disgust",
    "fear",
    "happy",
    "neutral",
    "sad",
    "surprise",
)

_SYNONYMS: dict[str, tuple[str, ...]] = {
    "angry": ("anger", "분노", "화남"),
    "boredom": ("bored",),
    "calm": (),
    # CSU 2022 억울 ("feeling wronged"); kept as its own class.
    "chagrin": ("억울",),
    "disgust": ("disgusted", "혐오", "역겨움"),
    "fear": ("fearful", "공포"),
    "happy": ("happiness", "joy", "기쁨", "행복"),
    "neutral": ("중립", "무감정"),
    "sad": ("sadness", "슬픔"),
    # TESS "ps" (pleasant surprise) is mapped by its parser; the words are here.
    "surprise": ("surprised", "pleasant surprise", "pleasant surprised", "놀람"),
}

_LOOKUP: dict[str, str] = {
    key: label for label, words in _SYNONYMS.items() for key in (label, *words)
}

#: Named class sets; ``None`` means every label present in the manifest.
CLASS_SETS: dict[str, tuple[str, ...] | None] = {
    "4class": ("angry", "happy", "neutral", "sad"),
    "all": None,
}


def _key(raw: str) -> str:
    """Lower-case, trim, and treat ``_``/``-`` as spaces (``pleasant_surprise``)."""
    return " ".join(raw.strip().lower().replace("_", " ").replace("-", " ").split())


def normalize_label(raw: str) -> str:
    """Map a raw emotion word (any case, English or Korean) to the vocabulary."""
    label = _LOOKUP.get(_key(str(raw)))
    if label is None:
        raise LabelError(
            f"unknown emotion label {raw!r}; known labels: {', '.join(VOCABULARY)} "
            "(or a listed synonym) — fix the label or drop the file"
        )
    return label


def is_known_label(raw: str) -> bool:
    """True if :func:`normalize_label` accepts ``raw``."""
    return _key(str(raw)) in _LOOKUP


def _parse_names(name_or_list: str | Sequence[str]) -> tuple[str | None, list[str]]:
    """Split a class-set argument into (set name, []) or (None, raw labels)."""
    if isinstance(name_or_list, str):
        if name_or_list in CLASS_SETS:
            return name_or_list, []
        if "," in name_or_list:
            return None, [p for p in (s.strip() for s in name_or_list.split(",")) if p]
        raise LabelError(
            f"unknown class set {name_or_list!r}; use one of {', '.join(CLASS_SETS)} "
            "or a comma-separated list of labels such as 'angry,happy,sad'"
        )
    return None, list(name_or_list)


def resolve_class_set(
    name_or_list: str | Sequence[str], available_labels: Iterable[str]
) -> tuple[str, ...]:
    """The sorted classes named by a class-set name, ``"a,b,c"`` or a list of labels.

    Every class must occur in ``available_labels`` (the manifest's labels) and at
    least two classes are required; otherwise :class:`LabelError`.
    """
    available = set(available_labels)
    name, raw = _parse_names(name_or_list)
    if name is not None:
        wanted = CLASS_SETS[name]
        classes = sorted(available) if wanted is None else list(wanted)
    else:
        classes = [normalize_label(r) for r in raw]
        dupes = sorted({c for c in classes if classes.count(c) > 1})
        if dupes:
            raise LabelError(
                f"class list names {', '.join(dupes)} more than once (synonyms count as "
                "the same class); list each class once"
            )
    missing = [c for c in classes if c not in available]
    if missing:
        raise LabelError(
            f"class(es) {', '.join(missing)} not in this corpus (it has "
            f"{', '.join(sorted(available)) or 'no labels'}); choose another class set"
        )
    if len(classes) < 2:
        raise LabelError(
            f"class set {list(classes)} has fewer than 2 classes; choose at least two"
        )
    return tuple(sorted(classes))
