"""A model trained with stream normalisation z-scores its features per group at
inference: each clip alone by default, or the groups the caller passes."""

import numpy as np
import pytest
import torch

from emolens.audio.io import AudioClip
from emolens.features.normalize import standardize_groups
from emolens.inference import EmotionRecognizer
from emolens.models.fusion import FusionNet

CFG = {"classes": ["a", "b", "c"], "frontend": {"name": "vggish16k"}, "patches": {"patch_frames": 96, "hop_frames": 48},
       "gds": {"enabled": False}}


@pytest.fixture(scope="module")
def rec():
    torch.manual_seed(0)
    return EmotionRecognizer(FusionNet(3, ("yamnet_l5", "yamnet_mid")).eval(), {**CFG, "normalize": "utterance"})


def _clips():
    rng = np.random.default_rng(1)
    return [AudioClip((a * rng.standard_normal(n)).astype(np.float32), 16000, 16000, 1)
            for a, n in ((0.1, 40000), (0.02, 56000), (0.3, 30000))]


def test_utterance_normalisation_is_per_clip(rec):
    clips = _clips()
    batched = rec.analyze_clips(clips)
    for c, a in zip(clips, batched):
        single = rec.analyze_clip(c)
        np.testing.assert_allclose(a.probs, single.probs, atol=1e-5)
        # reference: extract -> z-score over the clip's patches -> head
        with torch.no_grad():
            f = rec.model.extract(torch.from_numpy(a.patches).unsqueeze(1))
            z = {k: torch.from_numpy(standardize_groups(v.numpy(), np.zeros(len(a.patches)))) for k, v in f.items()}
            ref = torch.softmax(rec.model.head(z), 1).numpy()
        np.testing.assert_allclose(a.patch_probs, ref, atol=1e-5)
    assert abs(batched[0].probs.sum() - 1) < 1e-5


def test_groups_pool_statistics(rec):
    clips = _clips()
    own = rec.analyze_clips(clips)
    pooled = rec.analyze_clips(clips, groups=["s1", "s1", "s2"])
    assert not np.allclose(own[0].patch_probs, pooled[0].patch_probs, atol=1e-4)
    np.testing.assert_allclose(own[2].patch_probs, pooled[2].patch_probs, atol=1e-5)  # alone in its group either way


def test_unnormalised_model_ignores_groups():
    torch.manual_seed(0)
    r = EmotionRecognizer(FusionNet(3, ("yamnet_mid",)).eval(), CFG)
    clips = _clips()
    a, b = r.analyze_clips(clips), r.analyze_clips(clips, groups=["x", "x", "x"])
    for u, v in zip(a, b):
        np.testing.assert_allclose(u.probs, v.probs, atol=1e-6)
