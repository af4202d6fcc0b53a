"""Mapping a corpus's own emotion words onto the classes of a setup (``--label-map``).

Corpora do not share a vocabulary: TurEV-DB says *calm* where a 4-class
angry/happy/neutral/sad setup wants *neutral*. A mapping is explicit, recorded in the
work dir (``prepare.json`` → ``label_map``) and carried into the model card; nothing is
mapped silently. Syntax of one ``--label-map`` value (repeatable)::

    calm=neutral                      every corpus in the work dir
    turev:calm=neutral                only TurEV-DB
    turev:calm=neutral,boredom=sad    several pairs for one scope

A corpus-scoped pair wins over a global one for the same source label. Both sides must
be known emotion words (:func:`emolens.corpora.labels.normalize_label`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from emolens.corpora.labels import is_known_label, normalize_label
from emolens.corpora.manifest import Manifest, Utterance
from emolens.errors import LabelError

#: ``{scope: {source: target}}``; scope ``"*"`` applies to every corpus.
LabelMap = dict[str, dict[str, str]]
ALL = "*"


def parse_label_map(values: Iterable[str], corpora: Sequence[str] | None = None) -> LabelMap:
    """Parse ``--label-map`` values into ``{scope: {source: target}}`` (canonical words).

    ``corpora``: when given, a corpus scope must be one of them. Raises LabelError for a
    malformed pair, an unknown word, an unknown corpus or a source mapped twice."""
    out: LabelMap = {}
    for value in values:
        scope, sep, pairs = value.partition(":")
        if not sep:
            scope, pairs = ALL, value
        scope = scope.strip().lower() or ALL
        if corpora is not None and scope != ALL and scope not in corpora:
            raise LabelError(f"--label-map {value!r} names corpus {scope!r}, which is not prepared here "
                             f"(corpora: {', '.join(corpora)}); use CORPUS:FROM=TO with one of them")
        for pair in (p.strip() for p in pairs.split(",")):
            src, eq, dst = pair.partition("=")
            if not eq or not src.strip() or not dst.strip():
                raise LabelError(f"--label-map {value!r}: {pair!r} is not FROM=TO (e.g. calm=neutral or turev:calm=neutral)")
            for word in (src, dst):
                if not is_known_label(word):
                    normalize_label(word)  # raises the one-line unknown-label error
            s, d = normalize_label(src), normalize_label(dst)
            if s == d:
                raise LabelError(f"--label-map {value!r}: {pair!r} maps a label onto itself; drop it")
            scoped = out.setdefault(scope, {})
            if s in scoped and scoped[s] != d:
                raise LabelError(f"--label-map maps {s!r} to both {scoped[s]!r} and {d!r} for "
                                 f"{'every corpus' if scope == ALL else scope}; keep one")
            scoped[s] = d
    return out


def effective_map(label_map: LabelMap, corpus: str) -> dict[str, str]:
    """The pairs that apply to ``corpus`` (its own over the global ones)."""
    return {**label_map.get(ALL, {}), **label_map.get(corpus, {})}


def apply_label_map(manifest: Manifest, label_map: LabelMap) -> tuple[Manifest, dict[str, dict[str, int]]]:
    """Relabel every utterance by its corpus's pairs (one step, no chains).

    Returns the new manifest and ``{corpus: {"calm->neutral": n}}`` (files relabelled)."""
    counts: dict[str, dict[str, int]] = {}
    utts: list[Utterance] = []
    for u in manifest:
        m = effective_map(label_map, u.corpus)
        if u.label in m:
            key = f"{u.label}->{m[u.label]}"
            counts.setdefault(u.corpus, {}).setdefault(key, 0)
            counts[u.corpus][key] += 1
            u = Utterance(u.path, m[u.label], u.speaker, u.corpus, u.duration, u.gender, u.text)
        utts.append(u)
    return Manifest(utts), counts


def unused_pairs(label_map: LabelMap, applied: dict[str, dict[str, int]], corpora: Sequence[str]) -> list[str]:
    """Pairs that relabelled nothing (worth a note: a typo or the wrong corpus)."""
    used = {(c, k.split("->")[0]) for c, d in applied.items() for k in d}
    out = []
    for scope, pairs in label_map.items():
        for s, d in pairs.items():
            targets = corpora if scope == ALL else [scope]
            if not any((c, s) in used for c in targets):
                out.append(f"{'' if scope == ALL else scope + ':'}{s}={d}")
    return out


__all__ = ["LabelMap", "parse_label_map", "effective_map", "apply_label_map", "unused_pairs"]
