"""Files that ship inside the package (``emolens/data``), so emolens works offline.

* ``data/yamnet/``: Google's YAMNet TFLite model and class map (Apache-2.0, ``NOTICE.md``,
  ``LICENSE``, ``SHA256SUMS``); the last place :func:`~emolens.models.weights.resolve_weights`
  looks for YAMNet weights.
* ``data/default_model/``: the shipped emotion model (``model.json``, a head-only
  ``model.safetensors`` whose YAMNet backbone is the packaged TFLite, ``MODEL_CARD.md``);
  loaded by :meth:`emolens.EmotionRecognizer.default` and by the CLI when ``--model`` is omitted.
* ``data/whisper_model/``: the Whisper model (the same head's inputs and OpenAI Whisper base's
  encoder stream; ``--model whisper``; its weights come with ``emolens[whisper]``, 145 MB). No
  ``model.onnx`` ships for it: the first ONNX run exports the YAMNet graph to the cache.
* ``data/examples/``: two RAVDESS recordings (CC BY-NC-SA 4.0, ``ATTRIBUTION.md``).
"""

from __future__ import annotations

from pathlib import Path

DATA_DIR = Path(__file__).resolve().parent / "data"
YAMNET_DIR = DATA_DIR / "yamnet"
DEFAULT_MODEL_DIR = DATA_DIR / "default_model"
WHISPER_MODEL_DIR = DATA_DIR / "whisper_model"
#: ``--model NAME``: the models that ship inside the package, by name.
PACKAGED_MODELS = {"default": DEFAULT_MODEL_DIR, "whisper": WHISPER_MODEL_DIR}
EXAMPLES_DIR = DATA_DIR / "examples"


def packaged_checksums(folder: Path = YAMNET_DIR) -> dict[str, str]:
    """``{file name: sha256}`` from a folder's ``SHA256SUMS`` (``sha256sum`` format)."""
    sums = folder / "SHA256SUMS"
    if not sums.is_file():
        return {}
    out = {}
    for line in sums.read_text().splitlines():
        parts = line.split()
        if len(parts) == 2:
            out[parts[1].lstrip("*")] = parts[0]
    return out


def packaged_yamnet() -> Path | None:
    """The packaged ``yamnet.tflite``, or None when this install lacks it."""
    p = YAMNET_DIR / "yamnet.tflite"
    return p if p.is_file() else None


def default_model_dir(name: str = "default") -> Path | None:
    """The folder of the shipped model ``name`` (:data:`PACKAGED_MODELS`), or None when this
    install has none."""
    d = PACKAGED_MODELS[name]
    return d if (d / "model.json").is_file() and (d / "model.safetensors").is_file() else None


def example_clips() -> list[Path]:
    """The shipped example recordings (sorted)."""
    return sorted(EXAMPLES_DIR.glob("*.flac"))


__all__ = ["DATA_DIR", "DEFAULT_MODEL_DIR", "EXAMPLES_DIR", "PACKAGED_MODELS", "WHISPER_MODEL_DIR", "YAMNET_DIR", "default_model_dir",
           "example_clips", "packaged_checksums", "packaged_yamnet"]
