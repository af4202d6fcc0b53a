"""Files shipped inside the package: the YAMNet TFLite (checksummed) and the examples."""

from __future__ import annotations

import shutil

import pytest

from emolens import resources
from emolens.errors import WeightsError
from emolens.models.weights import resolve_weights, sha256_file


def test_packaged_yamnet_matches_its_checksum() -> None:
    p = resources.packaged_yamnet()
    assert p is not None and p.stat().st_size == 3_963_312
    assert sha256_file(p) == resources.packaged_checksums()["yamnet.tflite"] == (
        "2d5e1e0577beb1fd3b6ba4cf89a7b8813340added8dae72f64fe8cd18731dd4a")
    assert "Apache License" in (resources.YAMNET_DIR / "LICENSE").read_text()
    assert "Apache License 2.0" in (resources.YAMNET_DIR / "NOTICE.md").read_text()


def test_resolution_falls_back_to_the_packaged_yamnet(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("EMOLENS_WEIGHTS", raising=False)
    monkeypatch.setenv("EMOLENS_CACHE", str(tmp_path / "cache"))
    assert resolve_weights("yamnet") == resources.packaged_yamnet()
    # a corrupt packaged copy is refused, not loaded
    fake = tmp_path / "yamnet"
    shutil.copytree(resources.YAMNET_DIR, fake)
    with open(fake / "yamnet.tflite", "r+b") as f:
        f.seek(1000)
        f.write(b"\x00\x01\x02")
    monkeypatch.setattr(resources, "YAMNET_DIR", fake)
    with pytest.raises(WeightsError, match="corrupt"):
        resolve_weights("yamnet")


def test_examples_are_shipped_with_attribution() -> None:
    clips = resources.example_clips()
    assert [c.name for c in clips] == ["03-01-04-02-01-01-12.flac", "03-01-05-02-01-01-12.flac"]
    text = (resources.EXAMPLES_DIR / "ATTRIBUTION.md").read_text()
    assert "CC BY-NC-SA 4.0" in text and "Livingstone" in text
