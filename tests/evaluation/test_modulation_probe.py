"""``benchmarks/modulation_probe.py``: the modulation features on signals whose modulation is
known; one-line errors for a bad command line."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCH))  # the probe imports head_probe from beside it
spec = importlib.util.spec_from_file_location("modulation_probe", BENCH / "modulation_probe.py")
probe = importlib.util.module_from_spec(spec)
spec.loader.exec_module(probe)

SR = 16000
N_OCT = len(probe.MOD_EDGES) - 1


def _am_noise(fm: float, seconds: float = 3.0, gain: float = 0.1) -> np.ndarray:
    rng = np.random.default_rng(0)
    t = np.arange(int(SR * seconds)) / SR
    return (gain * rng.standard_normal(t.size) * (1 + 0.9 * np.sin(2 * np.pi * fm * t))).astype(np.float32)


@pytest.mark.parametrize("fm, octave", [(1.5, 1), (5.0, 3), (12.0, 4), (24.0, 5)])  # octaves 0.5-1, 1-2, 2-4, 4-8, 8-16, 16-32 Hz
def test_the_modulation_frequency_lands_in_its_octave(fm: float, octave: int) -> None:
    f = probe.modulation_features(_am_noise(fm))
    assert f.shape == (probe.N_BANDS * N_OCT + probe.N_BANDS,)
    shares = f[: probe.N_BANDS * N_OCT].reshape(probe.N_BANDS, N_OCT)
    assert (shares.argmax(1) == octave).all()  # in every acoustic band
    assert np.allclose(np.log10((10 ** shares).sum(1)), 0, atol=0.01)  # the shares of each band sum to 1


def test_gain_cancels_and_odd_clips_stay_finite() -> None:
    x = _am_noise(5.0)
    assert np.abs(probe.modulation_features(10 * x) - probe.modulation_features(x)).max() < 1e-4
    for clip in (np.zeros(SR, np.float32), x[:3000]):  # silence; 0.19 s, shorter than one Welch window
        assert np.isfinite(probe.modulation_features(clip)).all()


def test_bad_command_lines_are_one_line_errors(tmp_path: Path, capsys) -> None:
    assert probe.main(["probe", "--variants", "ship,nope", "--work-root", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown variant(s) nope" in err[0]
