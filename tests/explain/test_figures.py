"""Explanation figures are written (headless) and refuse mismatched inputs."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest

from emolens.explain.faithfulness import deletion_insertion, random_baseline
from emolens.explain.profile import frequency_profile
from emolens.explain.sonify import focus_activation, focus_mask
from emolens.features.mel import mel_band_centers, num_frames
from emolens.report.explain_figures import plot_faithfulness, plot_focus, plot_four_panel, plot_profile

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _is_png(path: Path, min_bytes: int = 5000) -> bool:
    data = path.read_bytes()
    return data[:8] == PNG_MAGIC and len(data) > min_bytes


def _maps(n_frames: int = 150):
    rng = np.random.default_rng(0)
    spec = rng.normal(-3, 1, size=(n_frames, 64))
    cam = np.clip(rng.normal(size=(n_frames, 64)), 0, None)
    return spec, {"Grad-CAM": cam, "LIME": rng.normal(size=(n_frames, 64)), "Occlusion": rng.normal(size=(n_frames, 64))}


def test_four_panel(tmp_path):
    spec, maps = _maps()
    path = plot_four_panel(spec, maps, tmp_path / "fig" / "angry.png", title="angry: 03a01Wa")
    assert _is_png(path, 20000)
    with pytest.raises(ValueError):
        plot_four_panel(spec, {"Grad-CAM": maps["Grad-CAM"][:-1]}, tmp_path / "bad.png")


def test_focus_and_profile(tmp_path):
    n = 16000
    t = np.arange(n) / n
    wave = 0.3 * np.sin(2 * np.pi * 220 * t)
    m = np.full((num_frames(n), 64), 0.1)
    m[30:60] = 1.0
    mask = focus_mask(m, n)
    assert _is_png(plot_focus(wave, n, mask, tmp_path / "focus.png", activation=focus_activation(m, n)))
    with pytest.raises(ValueError):
        plot_focus(wave, n, mask[:-1], tmp_path / "bad.png")
    prof = frequency_profile([m, m[::-1] * 2, np.roll(m, 5, axis=1)], ["happy", "happy", "sad"])
    assert _is_png(plot_profile(prof, mel_band_centers(), tmp_path / "profile.png"))


def test_faithfulness_figure(tmp_path):
    x, maps = _maps(80)

    def predict(batch):
        p = 1 / (1 + np.exp(-batch[:, :20, :10].mean(axis=(1, 2)) - 3))
        return np.stack([p, 1 - p], axis=1)

    curves = {"Grad-CAM": deletion_insertion(predict, x, maps["Grad-CAM"], 0, steps=5),
              "random": random_baseline(predict, x, 0, steps=5, n_orders=2)}
    assert _is_png(plot_faithfulness(curves, tmp_path / "faith.png", title="faithfulness"))


def test_benchmark_runs_with_its_stand_in_model():
    path = Path(__file__).resolve().parents[2] / "benchmarks" / "explain_speed.py"
    spec = importlib.util.spec_from_file_location("explain_speed", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    rows = mod.run_benchmark(seconds=[0.96], lime_samples=50, faithfulness_steps=4)
    by = {r["method"]: r for r in rows}
    assert by["Grad-CAM"]["patches"] == 1
    assert (by["Grad-CAM"]["forward_calls"], by["Grad-CAM"]["backward_calls"]) == (1, 1)
    assert by["LIME"]["forward_calls"] == 1 and by["LIME"]["patches_evaluated"] == 50
    assert by["Occlusion"]["forward_calls"] == 1 + 6 and by["Occlusion"]["patches_evaluated"] == 166
    assert by["deletion/insertion (+5 random)"]["predict_calls"] == 2  # map + random, each one stack
