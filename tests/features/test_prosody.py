"""The numpy prosody functionals on signals whose pitch, formants and level are known."""

import shutil

import numpy as np
import pytest
import scipy.signal
import soundfile as sf

from emolens.features import prosody as P
from emolens.features.prosody_files import extract_prosody

SR = 16000


def _vowel(f0: float = 150.0, formants=((700, 80), (1200, 90), (2600, 120)), seconds: float = 2.0,
           vibrato: float = 0.0) -> np.ndarray:
    """A harmonic source at ``f0`` Hz through second-order formant resonators (peak 0.5)."""
    t = np.arange(int(SR * seconds)) / SR
    f = f0 * (1 + vibrato * np.sin(2 * np.pi * 1.0 * t))
    ph = 2 * np.pi * np.cumsum(f) / SR
    x = sum(np.sin(k * ph) / k for k in range(1, int(4000 / f0)))
    for F, B in formants:
        r, th = np.exp(-np.pi * B / SR), 2 * np.pi * F / SR
        x = scipy.signal.lfilter([1.0], [1.0, -2 * r * np.cos(th), r * r], x)
    return (0.5 * x / np.abs(x).max()).astype(np.float32)


def _f(name: str, v: np.ndarray) -> float:
    return float(v[P.PROSODY_NAMES.index(name)])


def test_names_units_and_shape():
    assert len(P.PROSODY_NAMES) == len(P.PROSODY_UNITS) == P.N_PROSODY
    assert len(set(P.PROSODY_NAMES)) == P.N_PROSODY
    v = P.prosody_features(_vowel())
    assert v.shape == (P.N_PROSODY,) and v.dtype == np.float32 and np.all(np.isfinite(v))


def test_pitch_and_formants_of_a_synthetic_vowel():
    v = P.prosody_features(_vowel(150.0))
    assert _f("voiced fraction", v) > 0.95
    assert _f("pitch median", v) == pytest.approx(12 * np.log2(150 / 27.5), abs=0.1)  # semitones above 27.5 Hz
    assert _f("pitch std", v) < 0.1  # a steady tone
    for name, hz in (("F1 frequency mean", 700), ("F2 frequency mean", 1200), ("F3 frequency mean", 2600)):
        assert _f(name, v) == pytest.approx(hz, rel=0.06), name
    assert _f("HNR mean", v) > 15  # strongly periodic


def test_an_octave_is_twelve_semitones_and_vibrato_widens_the_range():
    lo, hi = P.prosody_features(_vowel(120.0)), P.prosody_features(_vowel(240.0))
    assert _f("pitch mean", hi) - _f("pitch mean", lo) == pytest.approx(12.0, abs=0.15)
    wide = P.prosody_features(_vowel(150.0, vibrato=0.1))  # +-10 %: about +-1.7 semitones
    assert 1.5 < _f("pitch range 20-80", wide) < 3.5
    assert _f("pitch rising slope", wide) > 5 * max(_f("pitch rising slope", lo), 0.1)


def test_level_features_follow_gain():
    x = _vowel()
    a, b = P.prosody_features(x * 0.25), P.prosody_features(x * 0.5)
    assert _f("equivalent sound level", b) - _f("equivalent sound level", a) == pytest.approx(20 * np.log10(2), abs=0.05)
    assert _f("loudness mean", b) > _f("loudness mean", a)
    # relative (spectral shape) descriptors do not depend on the gain
    for name in ("alpha ratio mean (voiced)", "Hammarberg index mean (voiced)", "pitch mean", "F1 frequency mean"):
        assert _f(name, b) == pytest.approx(_f(name, a), rel=1e-3, abs=1e-3), name


def test_noise_silence_and_short_input_are_finite():
    rng = np.random.default_rng(0)
    noise = P.prosody_features((0.1 * rng.standard_normal(SR)).astype(np.float32))
    assert _f("voiced fraction", noise) < 0.1
    for x in (np.zeros(SR, np.float32), np.zeros(50, np.float32), _vowel(seconds=0.03)):
        v = P.prosody_features(x)
        assert v.shape == (P.N_PROSODY,) and np.all(np.isfinite(v))
    assert _f("voiced fraction", P.prosody_features(np.zeros(SR, np.float32))) == 0.0


def test_voiced_segments_are_counted():
    x = _vowel(seconds=0.4)
    gap = np.zeros(int(0.3 * SR), np.float32)
    v = P.prosody_features(np.concatenate([gap, x, gap, x, gap]))
    assert _f("voiced segments per second", v) == pytest.approx(2 / 1.7, rel=0.15)
    assert _f("voiced segment length mean", v) == pytest.approx(0.4, abs=0.05)
    assert _f("voiced fraction", v) == pytest.approx(0.8 / 1.7, abs=0.06)


def test_extract_prosody_caches_by_content(tmp_path):
    f = tmp_path / "a.wav"
    sf.write(f, _vowel(), SR, subtype="FLOAT")
    cache = tmp_path / "cache"
    first = extract_prosody([f], cache_dir=cache)
    np.testing.assert_array_equal(first[0], P.prosody_features(_vowel()))
    entries = list(cache.rglob("*.npy"))
    assert len(entries) == 1
    np.save(entries[0], np.full(P.N_PROSODY, 7.0, np.float32))  # a cached value is what a hit returns
    moved = tmp_path / "b.wav"
    shutil.copy(f, moved)
    assert np.all(extract_prosody([moved], cache_dir=cache) == 7.0)  # same bytes, other name: a hit


def test_unvoiced_means_cover_pauses_unless_audible_only():
    """``unvoiced_frames``: 'all' averages the pauses in, 'audible' keeps only frames within
    ``voicing_floor_db`` of the loudest (a hiss-like fricative here, a dull murmur 60 dB down as the pause)."""
    rng = np.random.default_rng(1)
    hiss = (0.05 * rng.standard_normal(int(0.4 * SR))).astype(np.float32)
    murmur = scipy.signal.lfilter([1.0], [1.0, -0.99], rng.standard_normal(int(0.8 * SR)))
    murmur = (5e-5 * murmur / np.abs(murmur).max()).astype(np.float32)
    x = np.concatenate([_vowel(seconds=0.5), hiss, murmur])
    name = "spectral slope 0-500 Hz mean (unvoiced and pauses)"
    audible = _f(name, P.prosody_features(x, P.ProsodyConfig(unvoiced_frames="audible")))
    every = _f(name, P.prosody_features(x))  # the default: 'all'
    hiss_only = _f(name, P.prosody_features(np.concatenate([_vowel(seconds=0.5), hiss]), P.ProsodyConfig(unvoiced_frames="audible")))
    murmur_only = _f(name, P.prosody_features(np.concatenate([_vowel(seconds=0.5), murmur]), P.ProsodyConfig()))
    assert audible == pytest.approx(hiss_only, abs=0.1 * abs(hiss_only - murmur_only))
    lo, hi = sorted((hiss_only, murmur_only))
    assert lo + 0.2 * (hi - lo) < every < hi - 0.05 * (hi - lo)  # mostly murmur frames (0.8 s against 0.4 s)
    with pytest.raises(ValueError, match="unvoiced_frames"):
        P.ProsodyConfig(unvoiced_frames="quiet")


@pytest.mark.parametrize("context", [1, 4, 5])
def test_window_prosody_streamed_equals_whole_recording(context):
    """WindowProsody fed chunk by chunk (as the timeline streams) gives exactly the rows of
    window_prosody on the whole recording, and both the functionals of each window's frames."""
    from emolens.features.patches import window_bounds

    rng = np.random.default_rng(0)
    parts = []
    for f0 in (110, 180, 240, 140, 200):  # voiced stretches and pauses of random length
        parts += [_vowel(f0, seconds=rng.uniform(0.8, 2.5), vibrato=0.05), np.zeros(int(SR * rng.uniform(0.2, 1.0)), np.float32)]
    x = np.concatenate(parts)
    hop, patch = 48, 96  # frames (10 ms): YAMNet's 0.48-s hop and 0.96-s patch
    chunks = [P.prosody_llds(x[s : s + 3 * SR]) for s in range(0, len(x), 3 * SR)]  # 3-s blocks
    whole = P.concat_llds(chunks)
    n_frames = len(whole["voiced"])
    n_patches = (n_frames - patch) // hop + 1
    lo, hi = window_bounds(n_patches, context)
    ref = np.stack([P.prosody_functionals(P.slice_llds(whole, a * hop, (b - 1) * hop + patch)) for a, b in zip(lo, hi)])

    w = P.WindowProsody(patch, hop, context)
    seen = frames = 0
    early = []
    for c in chunks:
        w.add(c)
        frames += len(c["voiced"])
        seen = min(n_patches, max(0, (frames - patch) // hop + 1))
        w.advance(seen)
        early.append(len(w.rows))
    got = w.finish(n_patches)
    assert got.shape == (n_patches, P.N_PROSODY)
    assert np.array_equal(got, ref)
    assert np.array_equal(P.window_prosody(whole, n_patches, patch, hop, context), ref)
    assert 0 < early[0] < early[-1] <= n_patches  # rows were computed while the chunks came in
    assert w._base > 0 and len(w._tail["voiced"]) < n_frames / 2  # and old frames were let go


def test_window_prosody_of_no_patches():
    w = P.WindowProsody(96, 48, 5)
    assert w.finish(0).shape == (0, P.N_PROSODY)
