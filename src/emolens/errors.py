"""Typed exceptions. Every user-facing failure is an :class:`EmolensError` whose
message is one line saying what is wrong and what to do; the CLI prints it and exits 2."""

from __future__ import annotations


class EmolensError(Exception):
    """Base class: a one-line, user-facing problem (CLI exit code 2)."""


class AudioError(EmolensError):
    """An audio file is missing, undecodable, empty, non-finite or too long."""


class LabelError(EmolensError):
    """A label is unknown or a class set is invalid."""


class CorpusError(EmolensError):
    """A corpus root or manifest is missing or unusable."""


class SplitError(EmolensError):
    """A split is impossible (too few speakers) or leaks speakers."""


class WeightsError(EmolensError):
    """Pretrained weights are missing, corrupt or of the wrong layout."""


class ModelError(EmolensError):
    """A saved emolens model/run directory is missing or inconsistent."""


class SelectionError(EmolensError):
    """Gaussian Data Selection was given unusable input or used before it was fitted."""
