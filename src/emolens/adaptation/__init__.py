"""Test-time speaker adaptation from the user's own unlabelled recordings (``--adapt``)."""

from emolens.adaptation.transform import ADAPT_METHODS, AdaptConfig, SpeakerAdapter, adapt_rule

__all__ = ["ADAPT_METHODS", "AdaptConfig", "SpeakerAdapter", "adapt_rule"]
