"""``benchmarks/whisper/yamnet_student_probe.py``: the student that regresses an utterance target from YAMNet maps."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np

_root = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(_root))
spec = importlib.util.spec_from_file_location("yamnet_student_probe", _root / "whisper" / "yamnet_student_probe.py")
sp = importlib.util.module_from_spec(spec)
spec.loader.exec_module(sp)


def test_student_learns_an_utterance_target_from_its_patches_maps() -> None:
    """Targets that are a fixed linear map of the utterances' mean layer-10 rows: the student
    (initialised on YAMNet's layer 10) fits them far better than their mean does, per utterance."""
    import torch

    from emolens.evaluation.finetune_top import UpperBlocks, UtterancePatches, upper_rows
    from emolens.models import load_yamnet_file, resolve_weights

    rng = np.random.default_rng(0)
    n_utt = 40
    utt = np.repeat(np.arange(n_utt), 3)
    up = UtterancePatches.of(utt, np.ones(len(utt), bool), n_utt)
    act = np.abs(rng.normal(0, 1, (len(utt), 512, 6, 4))).astype(np.float16)
    ref = UpperBlocks(load_yamnet_file(resolve_weights("yamnet", None)).eval(), 10, ["yamnet_l10"])
    rows = upper_rows(ref, act, up)
    target = (rows @ rng.normal(0, 1 / np.sqrt(rows.shape[1]), (rows.shape[1], 8))).astype(np.float32)
    torch.manual_seed(0)
    predict = sp.train_student([act], [up], [target], start=10, top=10, epochs=40, seed=0, lr=3e-3, batch_size=8)
    pred = predict(act, up)
    assert pred.shape == (n_utt, 8)
    mse = float(((pred - target) ** 2).mean())
    assert mse < 0.3 * float(((target - target.mean(0)) ** 2).mean())
