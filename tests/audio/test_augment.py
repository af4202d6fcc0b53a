"""Waveform augmentation: lengths, frequencies, SNRs and decay measured on made-up audio."""

from __future__ import annotations

import numpy as np
import pytest

from emolens.audio.augment import (
    AugmentConfig,
    add_noise,
    apply_gain,
    augment,
    opus_roundtrip,
    reverberate,
    speed_perturb,
    synthetic_rir,
)

SR = 16000


def _sine(f: float, seconds: float = 1.0, amp: float = 0.3) -> np.ndarray:
    return (amp * np.sin(2 * np.pi * f * np.arange(int(seconds * SR)) / SR)).astype(np.float32)


def _peak_hz(x: np.ndarray) -> float:
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1 / SR)[np.argmax(spec)])


def test_speed_perturb_scales_length_and_pitch() -> None:
    x = _sine(200.0)
    y = speed_perturb(x, 1.1)
    assert abs(len(y) - len(x) / 1.1) <= 2
    assert _peak_hz(y) == pytest.approx(220.0, abs=2.0)
    assert len(speed_perturb(x, 0.9)) == pytest.approx(len(x) / 0.9, abs=2)
    np.testing.assert_array_equal(speed_perturb(x, 1.0), x)
    with pytest.raises(ValueError, match="positive"):
        speed_perturb(x, 0.0)


def test_gain_in_decibels() -> None:
    x = _sine(300.0, amp=0.1)
    assert np.max(np.abs(apply_gain(x, 6.0))) / np.max(np.abs(x)) == pytest.approx(10 ** 0.3, rel=1e-4)
    assert np.max(np.abs(apply_gain(x, 40.0))) == pytest.approx(1.0)  # clipped


@pytest.mark.parametrize("colour", ["white", "brown"])
@pytest.mark.parametrize("snr", [10.0, 25.0])
def test_add_noise_hits_the_snr(colour: str, snr: float) -> None:
    x = _sine(440.0, seconds=2.0)
    y = add_noise(x, snr, np.random.default_rng(0), colour)
    measured = 10 * np.log10(np.mean(x.astype(np.float64) ** 2) / np.mean((y - x).astype(np.float64) ** 2))
    assert measured == pytest.approx(snr, abs=0.1)
    with pytest.raises(ValueError, match="colour"):
        add_noise(x, snr, np.random.default_rng(0), "pink")


def test_rir_has_unit_energy_and_decays_60_db_over_rt60() -> None:
    rt = 0.5
    h = synthetic_rir(rt, np.random.default_rng(1)).astype(np.float64)
    assert len(h) == int(rt * SR) and np.sum(h ** 2) == pytest.approx(1.0, rel=1e-5)
    # energy in the first and the last tenth (excluding the direct path): their centres are 0.9 rt60 apart, 54 dB
    n = len(h) // 10
    early, late = np.mean(h[1:n] ** 2), np.mean(h[-n:] ** 2)
    assert 10 * np.log10(early / late) == pytest.approx(54.0, abs=2.0)
    delta = np.zeros(100, np.float32)
    delta[0] = 1.0
    x = _sine(250.0)
    np.testing.assert_allclose(reverberate(x, delta), x, atol=1e-6)
    assert len(reverberate(x, synthetic_rir(0.3, np.random.default_rng(2)))) == len(x)


def test_opus_roundtrip_keeps_length_and_signal() -> None:
    x = _sine(220.0) + _sine(1100.0, amp=0.1)
    y = opus_roundtrip(x, 0.8)
    assert len(y) == len(x) and y.dtype == np.float32
    assert np.corrcoef(x[800:-800], y[800:-800])[0, 1] > 0.95
    assert not np.array_equal(x, y)  # lossy


def test_augment_is_seeded_and_reports_what_it_did() -> None:
    x = _sine(200.0) + 0.01 * np.random.default_rng(3).standard_normal(SR).astype(np.float32)
    cfg = AugmentConfig(policy="mix")
    a, done_a = augment(x, cfg, np.random.default_rng(7))
    b, done_b = augment(x, cfg, np.random.default_rng(7))
    np.testing.assert_array_equal(a, b)
    assert done_a == done_b and any(d.startswith("gain") for d in done_a)
    assert np.max(np.abs(a)) <= 1.0
    lengths = {len(augment(x, AugmentConfig(policy="speed"), np.random.default_rng(s))[0]) for s in range(12)}
    assert lengths <= {len(x), len(speed_perturb(x, 0.9)), len(speed_perturb(x, 1.1))} and len(lengths) > 1
    with pytest.raises(ValueError, match="policy"):
        AugmentConfig(policy="wild")
