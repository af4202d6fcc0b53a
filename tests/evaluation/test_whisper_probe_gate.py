"""``benchmarks/whisper/whisper_probe.py``'s energy gate and level normalisation (``extract-gate``)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np

_root = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(_root))
spec = importlib.util.spec_from_file_location("whisper_probe", _root / "whisper" / "whisper_probe.py")
wp = importlib.util.module_from_spec(spec)
spec.loader.exec_module(wp)


def _burst(gain: float = 0.3) -> np.ndarray:
    """1 s of silence, 0.5 s of a 200 Hz tone, 1 s of silence (16 kHz)."""
    t = np.arange(8000) / 16000
    return np.concatenate([np.zeros(16000), gain * np.sin(2 * np.pi * 200 * t), np.zeros(16000)]).astype(np.float32)


def test_the_gate_keeps_exactly_the_loud_frames() -> None:
    x = _burst()
    g = wp.frame_gate(x, x.size // 320)
    assert g.shape == (125,) and g.sum() == 25  # 0.5 s of 20-ms frames
    assert g[50:75].all() and not g[:50].any() and not g[75:].any()
    # frames past the end of the samples are never gated in; a silent clip keeps every frame
    assert not wp.frame_gate(x, 130)[125:].any()
    assert wp.frame_gate(np.zeros(16000, np.float32), 50).all()


def test_level_normalisation_sets_the_active_level_whatever_the_gain() -> None:
    for gain in (0.01, 0.3, 3.0):
        y = wp.level_normalised(_burst(gain))
        active = y[16000:24000].astype(np.float64)
        assert abs(10 * np.log10(np.mean(active ** 2)) - wp.TARGET_DBFS) < 1e-4
        assert np.all(y[:16000] == 0)
    np.testing.assert_allclose(wp.level_normalised(_burst(0.01)), wp.level_normalised(_burst(3.0)), rtol=1e-5, atol=1e-7)
    assert np.all(wp.level_normalised(np.zeros(800, np.float32)) == 0)
