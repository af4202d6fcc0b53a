"""Block-wise streaming gives exactly the whole-file front end's patches."""

import numpy as np
import pytest
import soundfile as sf

from emolens.audio.io import load_audio
from emolens.errors import AudioError
from emolens.features.mel import mel_spectrogram
from emolens.features.patches import log_mel_patches
from emolens.features.stream import StreamInfo, stream_patches


def _whole(path):
    return log_mel_patches(mel_spectrogram(load_audio(path, max_seconds=None).samples))


def _streamed(path, block, info=None):
    parts = list(stream_patches(path, block_seconds=block, info=info))
    starts = [s for s, _ in parts]
    got = np.concatenate([p for _, p in parts])
    assert starts == list(np.cumsum([0] + [len(p) for _, p in parts[:-1]]))  # chunk indices are consecutive
    return got


@pytest.mark.parametrize("n", [100, 399, 400, 560, 15440, 16000 * 3 + 77, 16000 * 7 + 5000])
def test_stream_equals_whole_file(tmp_path, n):
    x = (0.1 * np.random.default_rng(n).standard_normal(n)).astype(np.float32)
    path = tmp_path / "a.wav"
    sf.write(path, x, 16000, subtype="FLOAT")
    ref = _whole(path)
    for block in (0.01, 0.37, 1.0, 60.0):  # blocks shorter than a frame, than a patch, and the whole file
        got = _streamed(path, block)
        assert got.shape == ref.shape and np.array_equal(got, ref), (n, block)


def test_stream_resamples_and_mixes_seamlessly(tmp_path):
    rng = np.random.default_rng(1)
    x = (0.1 * rng.standard_normal((44100 * 5, 2))).astype(np.float32)
    path = tmp_path / "s44.wav"
    sf.write(path, x, 44100, subtype="FLOAT")
    info = StreamInfo()
    got = _streamed(path, 0.5, info)
    ref = _whole(path)
    assert got.shape == ref.shape == (10, 96, 64)
    assert np.abs(got - ref).max() < 1e-4  # one continuous soxr stream: no seams at block edges
    assert info.samples == 80000 and info.source_rate == 44100 and info.channels == 2
    assert any("resampled" in n for n in info.notes) and any("mixed to mono" in n for n in info.notes)


def test_stream_errors(tmp_path):
    with pytest.raises(AudioError, match="no such file"):
        list(stream_patches(tmp_path / "missing.wav"))
    (tmp_path / "bad.wav").write_bytes(b"nope" * 10)
    with pytest.raises(AudioError, match="cannot decode"):
        list(stream_patches(tmp_path / "bad.wav"))
    (tmp_path / "zero-bytes.wav").write_bytes(b"")
    with pytest.raises(AudioError, match=r"empty \(0 bytes\)"):
        list(stream_patches(tmp_path / "zero-bytes.wav"))
    sf.write(tmp_path / "empty.wav", np.zeros(0, np.float32), 16000)
    with pytest.raises(AudioError, match="zero samples"):
        list(stream_patches(tmp_path / "empty.wav"))
    x = np.zeros(32000, np.float32)
    x[20000] = np.nan
    sf.write(tmp_path / "nan.wav", x, 16000, subtype="FLOAT")
    with pytest.raises(AudioError, match="NaN"):
        list(stream_patches(tmp_path / "nan.wav", block_seconds=0.5))
