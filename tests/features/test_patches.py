"""Patch counts, padding and the time mapping round trips."""

import numpy as np
import pytest

from emolens.features import patches as P
from emolens.features.mel import VGGISH_16K, num_frames


@pytest.mark.parametrize("n_frames,expected", [(1, 1), (96, 1), (97, 2), (144, 2), (145, 3), (198, 4), (240, 4)])
def test_num_patches(n_frames, expected):
    assert P.num_patches(n_frames) == expected


def test_frame_patches_content_and_padding():
    spec = np.arange(198 * 64, dtype=np.float32).reshape(198, 64)
    pt = P.frame_patches(spec)
    assert pt.shape == (4, 96, 64)
    np.testing.assert_array_equal(pt[1], spec[48:144])
    np.testing.assert_array_equal(pt[3, :54], spec[144:198])
    assert np.all(pt[3, 54:] == 0)
    short = P.frame_patches(spec[:10])
    assert short.shape == (1, 96, 64) and np.all(short[0, 10:] == 0)


def test_every_frame_is_covered_and_mapping_round_trips():
    n_frames = num_frames(16000 * 3)
    n = P.num_patches(n_frames)
    for t in range(n_frames):
        ps = P.frame_to_patches(t, n)
        assert ps, t
        for p in ps:
            f0, f1 = P.patch_frame_span(p)
            assert f0 <= t < f1
    for s in [0, 159, 160, 12345, 47999]:
        t = P.sample_to_frame(s)
        f0, _ = P.frame_sample_span(t)
        assert f0 <= s < f0 + VGGISH_16K.hop_length


def test_patch_spans_in_samples_and_seconds():
    assert P.patch_sample_span(0) == (0, 95 * 160 + 400)
    assert P.patch_sample_span(2) == (96 * 160, 96 * 160 + 95 * 160 + 400)
    t0, t1 = P.patch_time_span(1)
    assert t0 == pytest.approx(0.48) and t1 == pytest.approx(0.48 + 0.975)


def test_overlap_average_inverts_patching():
    rng = np.random.default_rng(0)
    spec = rng.standard_normal((250, 64)).astype(np.float32)
    back = P.overlap_average(P.frame_patches(spec), 250)
    np.testing.assert_allclose(back, spec, rtol=1e-6)


def test_log_mel_patches_pads_with_silence():
    mel = np.full((100, 64), 2.0, dtype=np.float32)
    p = P.log_mel_patches(mel)
    assert p.shape == (2, 96, 64)
    np.testing.assert_allclose(p[1, :52], np.log(2.01), rtol=1e-6)
    np.testing.assert_allclose(p[1, 52:], np.log(0.01), rtol=1e-6)
