"""Group-wise z-scoring of stream features."""

import numpy as np
import pytest

from emolens.errors import EmolensError
from emolens.features.normalize import group_keys, normalize_streams, standardize_groups


def test_standardize_groups_matches_numpy():
    rng = np.random.default_rng(0)
    x = rng.normal(3.0, 2.0, (50, 6)).astype(np.float32)
    g = np.repeat([7, 2, 9], [10, 25, 15])
    z = standardize_groups(x, g)
    for k in (7, 2, 9):
        ref = (x[g == k] - x[g == k].mean(0)) / (x[g == k].std(0) + 1e-5)
        np.testing.assert_allclose(z[g == k], ref, atol=1e-5)
        np.testing.assert_allclose(z[g == k].mean(0), 0, atol=1e-5)
    # a group of one patch carries no information; a constant dimension gives 0, not NaN
    z1 = standardize_groups(np.ones((3, 2)), np.array([0, 1, 1]))
    assert np.all(z1 == 0) and np.isfinite(z1).all()


def test_normalize_streams_and_keys():
    feats = {"a": np.arange(12, dtype=np.float32).reshape(6, 2)}
    assert normalize_streams(feats, None) is feats
    utt = np.array([0, 0, 1, 1, 2, 2])
    spk = np.array(["s1", "s1", "s2"])
    corp = np.array(["c", "c", "c"])
    assert list(group_keys("speaker", utt, spk, corp)) == ["s1"] * 4 + ["s2"] * 2
    assert list(group_keys("utterance", utt, spk, corp)) == list(utt)
    assert group_keys("none", utt, spk, corp) is None
    out = normalize_streams(feats, group_keys("corpus", utt, spk, corp))
    np.testing.assert_allclose(out["a"].mean(0), 0, atol=1e-6)
    with pytest.raises(EmolensError):
        group_keys("bogus", utt, spk, corp)
