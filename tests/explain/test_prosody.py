"""Prosody lines: Integrated Gradients from the training average over a prosody stream."""

import numpy as np
import torch

from emolens.explain.prosody import ProsodyInputs, explain_prosody, prosody_contributions, prosody_lines


def _inputs():
    w = torch.tensor([[0.5, -1.0, 0.0], [-0.5, 1.0, 2.0]])  # 2 classes x 3 functionals

    def score(z):  # log-probabilities of a linear head
        return torch.log_softmax(z @ w.T, dim=1)

    return ProsodyInputs(values=np.array([9.0, 60.0, 1.0]), names=["pitch range", "loudness", "jitter"],
                         units=["semitones", "dB", "%"], train_mean=np.array([5.0, 62.0, 1.0]), score_fn=score), w


def test_contributions_are_exact_for_the_logit_difference_and_sum_to_the_change():
    p, w = _inputs()
    c = prosody_contributions(p, 0, contrast=1, n_steps=16)
    ref = (w[0] - w[1]).numpy() * (p.values - p.train_mean)  # linear in the functionals: w * (x - mean)
    np.testing.assert_allclose(c, ref, rtol=1e-4, atol=1e-5)
    c0 = prosody_contributions(p, 0, n_steps=64)
    x, m = (torch.tensor(v, dtype=torch.float32)[None] for v in (p.values, p.train_mean))
    np.testing.assert_allclose(c0.sum(), (p.score_fn(x) - p.score_fn(m))[0, 0].item(), rtol=1e-3)


def test_lines_name_value_direction_and_units():
    p, _ = _inputs()
    lines = prosody_lines(p, prosody_contributions(p, 0, contrast=1), "angry rather than sad", top=3)
    assert [l.name for l in lines] == ["pitch range", "loudness"]  # jitter sits at its average: no line
    assert lines[0].text == "pitch range 9.0 semitones, above the training average of 5.0 (+4.00 for angry rather than sad)"
    assert lines[1].text.startswith("loudness 60.0 dB, below the training average of 62.0 (+4.00 for")


def test_models_without_a_prosody_stream_give_no_lines():
    class Rec:
        classes = ["angry", "sad"]

    assert explain_prosody(Rec(), None, 0) == []
    p, _ = _inputs()
    r = Rec()
    r.prosody_inputs = lambda analysis: p
    assert [l.name for l in explain_prosody(r, None, 0, 1, top=1)] == ["pitch range"]
