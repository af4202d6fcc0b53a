"""Audio input: read any common format, mix to mono, resample to 16 kHz."""

from emolens.audio.io import AudioClip, load_audio, validate_waveform, DEFAULT_MAX_SECONDS

__all__ = ["AudioClip", "load_audio", "validate_waveform", "DEFAULT_MAX_SECONDS"]
