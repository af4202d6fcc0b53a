"""Training-side selection: GDS keep mask combined with the speech gate per utterance."""

import numpy as np

from emolens.training.data import PatchSet
from emolens.training.experiment import RunConfig, _select


def test_select_combines_gds_and_speech_per_utterance():
    rng = np.random.default_rng(0)
    patches = rng.standard_normal((12, 16, 16)).astype(np.float32)
    patches[[3, 7, 11]] = np.log(0.01)  # the last patch of each utterance is silence
    ps = PatchSet(patches, np.repeat([0, 1, 2], 4), np.array([400, 400, 400]), np.array([0, 1, 0]))
    is_speech = np.array([1, 1, 0, 0, 0, 0, 0, 0, 1, 1, 1, 0], bool)  # utterance 1 has no speech
    keep, sel = _select(RunConfig(gds=False), ps, np.arange(12), is_speech)
    assert sel is None
    np.testing.assert_array_equal(keep, [1, 1, 0, 0, 1, 1, 1, 1, 1, 1, 1, 0])  # no speech: all its patches
    keep, sel = _select(RunConfig(gds=True), ps, np.arange(12), is_speech)
    assert sel is not None and not keep[[3, 7, 11]].any()  # GDS drops the silent patches
    np.testing.assert_array_equal(keep[:4], [1, 1, 0, 0])
    assert keep[4:8].sum() == 3  # no speech: the GDS-kept patches
    assert _select(RunConfig(), ps, np.arange(12))[0].all()  # default: GDS off, no gate
