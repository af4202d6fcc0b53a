"""Feature cache: content keys, resume after interruption, errors kept per file."""

import numpy as np
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
