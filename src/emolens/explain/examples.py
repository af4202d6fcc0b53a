"""One explained example per emotion from a prepared corpus (for the HTML report)."""

from __future__ import annotations

import logging
from pathlib import Path

from emolens.errors import EmolensError
from emolens.explain.explanation import Explanation
from emolens.explain.pipeline import explain

log = logging.getLogger("emolens")
__all__ = ["example_explanations"]


def example_explanations(rec, work: str | Path, per_emotion: int = 1, *, candidates: int = 5,
                         max_seconds: float = 8.0, **explain_kwargs) -> list[Explanation]:
    """For each class of ``rec`` (in its order), explain ``per_emotion`` utterances of
    the work directory's manifest labelled with it: among the first ``candidates``
    files of that label no longer than ``max_seconds``, those the model classifies
    correctly come first (then the rest, so a class is never left out). ``explain_kwargs``
    go to :func:`emolens.explain.pipeline.explain`."""
    from emolens.workdir import WorkDir

    w = WorkDir.open(work)
    out: list[Explanation] = []
    for label in rec.classes:
        utts = [u for u in w.manifest if u.label == label and (u.duration is None or u.duration <= max_seconds)]
        if not utts:
            utts = [u for u in w.manifest if u.label == label]
        scored = []
        for u in utts[:candidates]:
            try:
                a = rec.analyze(u.path)
            except EmolensError as exc:
                log.warning("%s: skipped (%s)", u.path, exc)
                continue
            scored.append((a.label != label, len(scored), u, a))
        for _, _, u, a in sorted(scored, key=lambda s: s[:2])[:per_emotion]:
            out.append(explain(rec, a, true_label=label, **explain_kwargs))
    return out
