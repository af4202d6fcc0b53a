"""Audio loading: formats, mono mix, resampling, and the one-line errors."""

import numpy as np
import pytest
import soundfile as sf

from emolens.audio import load_audio
from emolens.errors import AudioError


def _write(path, data, sr, **kw):
    sf.write(str(path), data, sr, **kw)
    return path


@pytest.mark.parametrize("ext,kw", [("wav", {}), ("flac", {}), ("ogg", {"format": "OGG", "subtype": "VORBIS"}), ("mp3", {"format": "MP3"})])
def test_formats_resample_to_16k(tmp_path, ext, kw):
    sr = 44100
    t = np.arange(sr) / sr
    x = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    clip = load_audio(_write(tmp_path / f"a.{ext}", x, sr, **kw))
    assert clip.sample_rate == 16000 and clip.samples.dtype == np.float32
    assert abs(len(clip.samples) - 16000) <= 1200  # mp3/ogg codecs add priming samples
    spec = np.abs(np.fft.rfft(clip.samples[2000:14000]))
    assert abs(np.argmax(spec) * 16000 / 12000 - 440) < 3
    assert any("resampled" in n for n in clip.notes)


def test_stereo_is_mixed(tmp_path):
    x = np.stack([np.full(1600, 0.2), np.full(1600, 0.4)], axis=1).astype(np.float32)
    clip = load_audio(_write(tmp_path / "s.wav", x, 16000, subtype="FLOAT"))
    np.testing.assert_allclose(clip.samples, 0.3, atol=1e-6)
    assert clip.source_channels == 2 and "2 channels mixed to mono" in clip.notes


def test_silent_is_valid_and_noted(tmp_path):
    clip = load_audio(_write(tmp_path / "z.wav", np.zeros(800, np.float32), 16000))
    assert clip.duration == pytest.approx(0.05)
    assert any("silent" in n for n in clip.notes)


def test_errors(tmp_path):
    with pytest.raises(AudioError, match="no such file"):
        load_audio(tmp_path / "missing.wav")
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF....not audio at all" * 10)
    with pytest.raises(AudioError, match="cannot decode"):
        load_audio(bad)
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    with pytest.raises(AudioError, match=r"empty \(0 bytes\)"):
        load_audio(empty)
    with pytest.raises(AudioError, match="zero samples"):
        load_audio(_write(tmp_path / "e.wav", np.zeros((0,), np.float32), 16000))
    nan = np.zeros(100, np.float32)
    nan[5] = np.nan
    with pytest.raises(AudioError, match="NaN"):
        load_audio(_write(tmp_path / "n.wav", nan, 16000, subtype="FLOAT"))
    with pytest.raises(AudioError, match="longer than"):
        load_audio(_write(tmp_path / "l.wav", np.zeros(16000 * 3, np.float32), 16000), max_seconds=2)
    for e in [AudioError("x")]:
        assert "\n" not in str(e)


def test_real_emodb_file(emodb_dir):
    clip = load_audio(emodb_dir / "wav" / "03a01Fa.flac")  # the original recording: 16 kHz, 1.898 s
    assert clip.source_rate == 16000 and len(clip.samples) == 30372 and clip.notes == []
    assert clip.samples.dtype == np.float32 and 0.1 < np.abs(clip.samples).max() <= 1.0
