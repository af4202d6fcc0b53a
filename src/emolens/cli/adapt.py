"""``--adapt``, ``--speakers`` and ``--neutral`` of ``predict`` and ``explain``: the
options, their checks and the one-line notes, in one place.

Voice groups are the files of one folder, or of one ``--speakers`` speaker
(:func:`emolens.adaptation.groups.voice_groups`); ``--neutral`` clips enrol their voice
and are not classified (:mod:`emolens.adaptation.transform`).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from emolens.errors import EmolensError


def add_adapt_arguments(p, what: str = "classified") -> None:
    """The three options; ``what``: the verb of the help texts (``classified``, ``explained``)."""
    p.add_argument("--adapt", action="store_true",
                   help="adapt to each voice: files of one folder (or one --speakers speaker) are one voice; needs >= 3 "
                        "clips and >= 10 s of speech per voice, else clip by clip (a note says so)")
    p.add_argument("--speakers", type=Path, default=None,
                   help="with --adapt: CSV with path,speaker columns naming each file's voice (and optionally neutral=1 "
                        "marking a speaker's neutral enrolment clips, as --neutral)")
    p.add_argument("--neutral", type=Path, action="append", default=None, metavar="FILE",
                   help=f"with --adapt: a recording of the voice speaking neutrally (repeatable; not {what}): the voice "
                        "is enrolled with it instead of its own clips' statistics, which cannot erase a steady emotion; "
                        "with several voices each file belongs to its folder's (or --speakers) voice")


@dataclass
class AdaptRequest:
    """What the options asked for: ``adapt``, ``speakers`` (``{path: speaker}`` or None),
    ``neutral`` (enrolment files) and ``files`` (the inputs minus the enrolment clips)."""

    adapt: bool
    speakers: dict[str, str] | None
    neutral: list[Path]
    files: list[Path]


def adapt_request(args, rec, files: list[Path], quiet: bool = False) -> AdaptRequest:
    """Check the options against each other and the model (one-line errors), print the
    model's measured note on stderr, and drop the ``--neutral`` clips from ``files``."""
    adapt = bool(getattr(args, "adapt", False))
    if getattr(args, "speakers", None) is not None and not adapt:
        raise EmolensError("--speakers names voices for --adapt: add --adapt")
    neutral = [Path(f) for f in (getattr(args, "neutral", None) or [])]
    speakers = None
    if getattr(args, "speakers", None) is not None:
        from emolens.adaptation.groups import read_neutral, read_speakers

        speakers = read_speakers(args.speakers)  # a one-line error for a bad CSV before anything runs
        neutral += [Path(f) for f in read_neutral(args.speakers)]  # rows with neutral=1: enrolment clips
    if neutral and not adapt:
        raise EmolensError("--neutral enrols a voice for --adapt: add --adapt")
    if adapt:
        from emolens.adaptation.runtime import (
            enrolment_note,
            measured_note,
            require_adapter,
        )

        require_adapter(rec, unlabelled=not neutral)
        note = enrolment_note(rec) if neutral else measured_note(rec)
        if note and not quiet:
            print(f"adapt: note: {note}", file=sys.stderr)
    if neutral:
        for f in neutral:
            if not f.is_file():
                raise EmolensError(f"--neutral {f}: no such file; check the path")
        ref = {f.resolve() for f in neutral}
        files = [f for f in files if Path(f).resolve() not in ref]  # enrolment clips are not classified
        if not files:
            raise EmolensError("nothing to classify besides the --neutral clips; give the recordings to classify too")
    return AdaptRequest(adapt, speakers, neutral, list(files))


__all__ = ["AdaptRequest", "adapt_request", "add_adapt_arguments"]
