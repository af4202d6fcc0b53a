"""The training loop learns, balances classes, early-stops, and resumes exactly."""

import json

import numpy as np
import torch

from emolens.training.trainer import TrainConfig, class_weights, fit, utterance_uar


def _toy(n_utt=40, per=3, seed=0):
    rng = np.random.default_rng(seed)
    y_utt = np.arange(n_utt) % 2
    utt = np.repeat(np.arange(n_utt), per)
    X = rng.standard_normal((len(utt), 8)).astype(np.float32)
    X[:, 0] += 2.0 * (y_utt[utt] * 2 - 1)
    return X, y_utt[utt], utt


def _module():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2))


def test_class_weights():
    w = class_weights(np.array([0, 0, 0, 1]), 3)
    np.testing.assert_allclose(w.numpy(), [4 / 9, 4 / 3, 1.0], rtol=1e-6)


def test_fit_learns_and_logs(tmp_path):
    X, y, utt = _toy()
    tr, va = np.arange(0, 90), np.arange(90, 120)
    cfg = TrainConfig(epochs=8, batch_size=16, lr=0.01)
    res = fit(_module(), lambda i, t=False: torch.from_numpy(X[i]), y, tr, va, utt, 2, cfg,
              log_path=tmp_path / "log.jsonl", progress=False)
    recs = [json.loads(l) for l in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert len(recs) == len(res.history) and res.best_val_uar > 0.9
    assert recs[-1]["train_loss"] < recs[0]["train_loss"]


def test_resume_after_kill_matches_uninterrupted(tmp_path):
    X, y, utt = _toy(seed=1)
    tr, va = np.arange(0, 90), np.arange(90, 120)
    inputs = lambda i, t=False: torch.from_numpy(X[i])
    full = _module()
    fit(full, inputs, y, tr, va, utt, 2, TrainConfig(epochs=6, batch_size=16, patience=99), progress=False)
    # first run stops after 3 epochs (as if killed), second resumes from the checkpoint
    ck = tmp_path / "ck.pt"
    part = _module()
    cfg = TrainConfig(epochs=6, batch_size=16, patience=99)
    import emolens.training.trainer as T

    class Kill(Exception):
        pass

    orig = T.utterance_uar
    calls = {"n": 0}

    def killer(*a, **k):
        calls["n"] += 1
        if calls["n"] == 4:
            raise Kill
        return orig(*a, **k)

    T.utterance_uar = killer
    try:
        fit(part, inputs, y, tr, va, utt, 2, cfg, ckpt_path=ck, progress=False)
    except Kill:
        pass
    finally:
        T.utterance_uar = orig
    resumed = _module()
    res = fit(resumed, inputs, y, tr, va, utt, 2, cfg, ckpt_path=ck, progress=False)
    assert res.resumed_from == 3
    for a, b in zip(resumed.state_dict().values(), full.state_dict().values()):
        torch.testing.assert_close(a, b)


def test_utterance_uar():
    probs = np.array([[0.9, 0.1], [0.6, 0.4], [0.2, 0.8], [0.3, 0.7]])
    uar, acc = utterance_uar(probs, np.array([0, 0, 1, 1]), {0: 0, 1: 0})
    assert uar == 0.5 and acc == 0.5
