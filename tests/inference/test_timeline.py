"""Timeline: streamed patch probabilities equal the whole-file analysis, smoothing and
segment merging by known values, silence becomes "no speech", CLI outputs."""

import csv
import json

import numpy as np
import pytest
import soundfile as sf

from emolens.cli.main import main
from emolens.inference import EmotionRecognizer
from emolens.timeline import NO_SPEECH, TimelineConfig, compute_timeline, merge_segments, moving_average, patch_intervals


def test_moving_average_known_values():
    x = np.array([[0.0], [3.0], [6.0], [9.0]])
    np.testing.assert_allclose(moving_average(x, 3)[:, 0], [1.5, 3.0, 6.0, 7.5])
    np.testing.assert_allclose(moving_average(x, 2)[:, 0], [1.5, 4.5, 7.5, 9.0])
    assert moving_average(x, 1) is x


def test_intervals_tile_the_recording_and_segments_merge():
    starts, ends = patch_intervals(5, 2.5, 0.48, 0.96)
    np.testing.assert_allclose(starts, [0.0, 0.72, 1.2, 1.68, 2.16])
    np.testing.assert_allclose(ends, [0.72, 1.2, 1.68, 2.16, 2.5])
    s1, e1 = patch_intervals(1, 0.3, 0.48, 0.96)
    assert s1.tolist() == [0.0] and e1.tolist() == [0.3]
    probs = np.array([[1, 0], [0.8, 0.2], [0, 1], [0.5, 0.5], [0.5, 0.5]], float)
    segs = merge_segments(["a", "a", "b", NO_SPEECH, NO_SPEECH], probs, starts, ends)
    assert [(s.label, s.patches) for s in segs] == [("a", 2), ("b", 1), (NO_SPEECH, 2)]
    assert (segs[0].start, segs[0].end, segs[2].end) == (0.0, 1.2, 2.5)
    np.testing.assert_allclose(segs[0].probs, [0.9, 0.1])


def _noise(rng, n):
    """Noise modulated at 3 Hz (syllable-like loudness changes), float32 ``(n,)``."""
    t = np.arange(n) / 16000
    return (0.2 * rng.standard_normal(n) * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t))).astype(np.float32)


def _speech_silence_file(path, rng):
    """3 s of modulated noise, 4 s of digital silence, 3 s of noise (16 kHz)."""
    x = np.concatenate([_noise(rng, 48000), np.zeros(64000, np.float32), _noise(rng, 48000)])
    sf.write(path, x, 16000, subtype="FLOAT")
    return x


def test_timeline_matches_whole_file_and_marks_silence(make_run, tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "rec.wav"
    _speech_silence_file(path, rng)
    from emolens.features.mel import mel_spectrogram
    from emolens.features.patches import log_mel_patches

    train = log_mel_patches(mel_spectrogram(_noise(rng, 16000 * 20)))
    rec = EmotionRecognizer.from_dir(make_run(gds_patches=train), backend="torch")
    whole = rec.analyze(path)
    tl = compute_timeline(rec, path, TimelineConfig(block_seconds=0.7))
    assert tl.patch_probs.shape == whole.patch_probs.shape == (20, 3)
    np.testing.assert_allclose(tl.patch_probs, whole.patch_probs, atol=1e-6)  # streamed = whole-file
    assert np.array_equal(tl.voting, rec.selector.select(whole.patches).keep)  # GDS per patch, no forced keep
    assert abs(tl.duration - 10.0) < 1e-9 and tl.segments[0].start == 0 and tl.segments[-1].end == tl.duration
    assert all(a.end == b.start for a, b in zip(tl.segments, tl.segments[1:]))
    mids = (tl.starts + tl.ends) / 2
    labels = np.array(tl.labels)
    assert (labels[(mids > 4.0) & (mids < 6.0)] == NO_SPEECH).all()  # inside the silence
    assert (labels[(mids < 2.0) | ((mids > 8.0) & (mids < 9.4))] != NO_SPEECH).all()  # inside the noise (not the padded tail)
    smooth = compute_timeline(rec, path, TimelineConfig(smooth=5))
    np.testing.assert_allclose(smooth.patch_probs, moving_average(whole.patch_probs, 5), atol=1e-6)


def test_timeline_cli_writes_segments_and_figure(make_run, tmp_path, capsys):
    path = tmp_path / "rec.wav"
    _speech_silence_file(path, np.random.default_rng(1))
    out = tmp_path / "tl"
    code = main(["timeline", "--model", str(make_run()), str(path), "--out", str(out), "--smooth", "3",
                 "--block-seconds", "2", "--backend", "torch"])
    assert code == 0
    rows = list(csv.DictReader(open(out / "segments.csv")))
    info = json.loads((out / "segments.json").read_text())
    assert len(rows) == len(info["segments"]) >= 1 and info["smooth_patches"] == 3
    assert float(rows[0]["start_s"]) == 0 and float(rows[-1]["end_s"]) == pytest.approx(10.0)
    assert abs(sum(info["seconds_per_label"].values()) - 10.0) < 1e-2
    for r in rows:
        assert abs(sum(float(r[f"p_{c}"]) for c in ("angry", "happy", "sad")) - 1) < 1e-4
    assert (out / "timeline.png").stat().st_size > 5_000
    code = main(["timeline", "--model", str(make_run()), str(tmp_path / "missing.wav"), "--out", str(out), "--backend", "torch"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("emolens: error:") and err.count("\n") == 1
