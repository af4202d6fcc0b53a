"""Feature cache: content keys, resume after interruption, errors kept per file."""

import numpy as np
import pytest
import soundfile as sf

from emolens.features.cache import FeatureCache
from emolens.features.mel import THESIS_48K, mel_spectrogram


def test_cache_computes_once_and_resumes(tmp_path):
    rng = np.random.default_rng(0)
    paths = []
    for i in range(10):
        p = tmp_path / f"a{i}.wav"
        sf.write(p, (0.1 * rng.standard_normal(8000 + 1000 * i)).astype(np.float32), 16000, subtype="FLOAT")
        paths.append(p)
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"garbage" * 50)
    cache = FeatureCache(tmp_path / "cache")
    res = cache.compute(paths + [bad], progress=False, workers=2)
    assert res.computed == 10 and list(res.errors) == [str(bad)]
    x, _ = sf.read(paths[3], dtype="float32")
    np.testing.assert_allclose(res.mels[3], mel_spectrogram(x), rtol=1e-5)
    assert res.mels[10] is None
    # "interrupt": drop two entries, a second run recomputes only those
    for p in paths[:2]:
        cache.key(p).unlink()
    res2 = FeatureCache(tmp_path / "cache").compute(paths, progress=False)
    assert res2.computed == 2
    # same content under another name shares the entry; other params do not
    dup = tmp_path / "copy.wav"
    dup.write_bytes(paths[5].read_bytes())
    assert cache.key(dup) == cache.key(paths[5])
    assert FeatureCache(tmp_path / "cache", THESIS_48K).key(paths[5]) != cache.key(paths[5])


def test_thesis_profile_gives_the_same_frames(tmp_path):
    """The 48 kHz thesis profile resamples and frames to the same 10 ms grid."""
    rng = np.random.default_rng(1)
    p = tmp_path / "clip22k.wav"
    sf.write(p, (0.1 * rng.standard_normal(22050 * 2)).astype(np.float32), 22050, subtype="FLOAT")
    m16 = FeatureCache(tmp_path / "c16").compute([p], progress=False).mels[0]
    m48 = FeatureCache(tmp_path / "c48", THESIS_48K).compute([p], progress=False).mels[0]
    assert m16.shape == m48.shape == (198, 64)


def test_cached_file_vectors_keys_on_content_and_recovers_corrupt_entries(tmp_path):
    from emolens.errors import AudioError
    from emolens.features.cache import cached_file_vectors

    calls = []

    def compute(p):
        calls.append(p.name)
        return np.frombuffer(p.read_bytes()[:3].ljust(3, b"\0"), np.uint8).astype(np.float32)

    a, b = tmp_path / "a.bin", tmp_path / "b.bin"
    a.write_bytes(b"\x01\x02\x03")
    b.write_bytes(b"\x04\x05")
    cache = tmp_path / "cache"
    out = cached_file_vectors([a, b], compute, 3, cache)
    np.testing.assert_array_equal(out, [[1, 2, 3], [4, 5, 0]])
    assert calls == ["a.bin", "b.bin"] and len(list(cache.glob("*.npy"))) == 2 and not list(cache.glob("*.tmp"))
    a.rename(tmp_path / "moved.bin")  # same bytes: a hit
    np.testing.assert_array_equal(cached_file_vectors([tmp_path / "moved.bin"], compute, 3, cache), [[1, 2, 3]])
    assert len(calls) == 2
    b.write_bytes(b"\x09\x09\x09")  # edited: a miss
    np.testing.assert_array_equal(cached_file_vectors([b], compute, 3, cache), [[9, 9, 9]])
    assert calls[-1] == "b.bin" and len(calls) == 3
    for f in cache.glob("*.npy"):  # corrupt entries count as missing
        f.write_bytes(b"not numpy")
    np.testing.assert_array_equal(cached_file_vectors([b], compute, 3, cache), [[9, 9, 9]])
    assert len(calls) == 4
    with pytest.raises(AudioError, match="cannot read"):
        cached_file_vectors([tmp_path / "missing.bin"], compute, 3, cache)
