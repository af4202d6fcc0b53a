"""CTranslate2 model.bin reader: round trips through the writer, split parts, digests, bad files."""

import hashlib

import numpy as np
import pytest

from emolens.models.ctranslate2_reader import (
    CTranslate2FormatError,
    read_ctranslate2,
    write_ctranslate2,
)


def _tensors():
    rng = np.random.default_rng(0)
    return {
        "encoder/conv1/weight": rng.standard_normal((4, 3, 3)).astype(np.float16),
        "encoder/num_heads": np.array(8, dtype=np.int16),
        "encoder/scale": rng.standard_normal(5).astype(np.float32),
        "decoder/embeddings/weight": rng.integers(-128, 127, (6, 2)).astype(np.int8),
        "decoder/ids": np.arange(7, dtype=np.int32),
    }


def test_round_trip_all_dtypes_and_aliases(tmp_path):
    f = tmp_path / "model.bin"
    write_ctranslate2(f, "WhisperSpec", 3, _tensors(), aliases={"decoder/projection/weight": "decoder/embeddings/weight"})
    m = read_ctranslate2([f])
    assert (m.version, m.spec, m.revision) == (6, "WhisperSpec", 3)
    for k, v in _tensors().items():
        assert m.tensors[k].dtype == v.dtype and m.tensors[k].shape == v.shape
        np.testing.assert_array_equal(m.tensors[k], v)
    np.testing.assert_array_equal(m.tensors["decoder/projection/weight"], _tensors()["decoder/embeddings/weight"])
    assert m.sha256 == hashlib.sha256(f.read_bytes()).hexdigest()
    kept = read_ctranslate2([f], keep="encoder/").tensors
    assert sorted(kept) == sorted(k for k in _tensors() if k.startswith("encoder/"))


@pytest.mark.parametrize("cut", [1, 17, 100])
def test_split_parts_read_as_one(tmp_path, cut):
    f = tmp_path / "model.bin"
    write_ctranslate2(f, "WhisperSpec", 3, _tensors())
    data = f.read_bytes()
    (tmp_path / "p1").write_bytes(data[:cut])
    (tmp_path / "p2").write_bytes(data[cut:])
    digest = hashlib.sha256(data).hexdigest()
    m = read_ctranslate2([tmp_path / "p1", tmp_path / "p2"], sha256=digest)
    np.testing.assert_array_equal(m.tensors["encoder/scale"], _tensors()["encoder/scale"])
    with pytest.raises(ValueError, match="differs from the expected"):
        read_ctranslate2([tmp_path / "p2", tmp_path / "p1"], sha256=digest)  # parts in the wrong order


def test_truncated_or_foreign_files_are_one_line_errors(tmp_path):
    f = tmp_path / "model.bin"
    write_ctranslate2(f, "WhisperSpec", 3, _tensors())
    (tmp_path / "cut.bin").write_bytes(f.read_bytes()[:60])
    with pytest.raises(CTranslate2FormatError, match="cut.bin: not a readable CTranslate2"):
        read_ctranslate2([tmp_path / "cut.bin"])
    (tmp_path / "v5.bin").write_bytes((5).to_bytes(4, "little") + f.read_bytes()[4:])
    with pytest.raises(CTranslate2FormatError, match="format version 5"):
        read_ctranslate2([tmp_path / "v5.bin"])
    (tmp_path / "text.bin").write_bytes(b"not a model at all")
    with pytest.raises(CTranslate2FormatError):
        read_ctranslate2([tmp_path / "text.bin"])
