"""Fixtures of the inference tests: a voice-like test signal, and the mean embedding a pooled
head decides on."""

import numpy as np
import pytest
import soundfile as sf


def _write_voice(path, seconds: float = 3.0, f0: float = 200.0, seed: int = 0):
    """Write ``seconds`` of a gliding harmonic at ``f0`` Hz with 2.5-Hz amplitude modulation and
    seeded noise to ``path`` (16 kHz float WAV); returns ``path``."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(16000 * seconds)) / 16000
    x = 0.3 * np.sin(2 * np.pi * f0 * t * (1 + 0.1 * t)) * (1 + 0.8 * np.sin(2 * np.pi * 2.5 * t)) \
        + 0.03 * rng.normal(size=t.size)
    sf.write(path, x.astype(np.float32), 16000, subtype="FLOAT")
    return path


def _voting_mean_embedding(rec, a):
    """``mean z (D,)`` of an analysis's voting patches (all of them when none votes), from the torch model."""
    import torch

    head = rec.model.head
    with torch.no_grad():
        z = head.embed(rec.model.extract(torch.from_numpy(a.patches)[:, None]))
        return z[torch.from_numpy(a.voting)].mean(0) if a.voting.any() else z.mean(0)


@pytest.fixture(scope="session")
def write_voice():
    """:func:`_write_voice`: ``write_voice(path, seconds=3.0, f0=200.0, seed=0) -> path``."""
    return _write_voice


@pytest.fixture(scope="session")
def voting_mean_embedding():
    """:func:`_voting_mean_embedding`: ``voting_mean_embedding(rec, analysis) -> mean z``."""
    return _voting_mean_embedding
