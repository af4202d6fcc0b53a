"""Fine-tuning the upper YAMNet blocks on cached maps: the cached path reproduces the frozen
streams exactly, and training moves the blocks and lowers the loss."""

import numpy as np
import torch
from torch import nn

from emolens.evaluation.finetune_top import (
    UpperBlocks,
    UtterancePatches,
    finetune_fold,
    stream_layer,
    stream_width,
    upper_rows,
)
from emolens.evaluation.utterance_levers import pool_streams
from emolens.models import load_yamnet_file, resolve_weights
from emolens.models.fusion import FusionNet, vggish_to_yamnet_input

STREAMS = ("yamnet_l5", "yamnet_mid", "yamnet_l9")


def _corpus(seed: int, n_utt: int, streams=STREAMS):
    """The packaged YAMNet's streams and layer-8 maps on random patches of ``n_utt`` utterances."""
    yam = load_yamnet_file(resolve_weights("yamnet")).eval()
    rng = np.random.default_rng(seed)
    utt = np.repeat(np.arange(n_utt), rng.integers(1, 4, n_utt))
    speech = rng.random(len(utt)) < 0.7
    # each utterance's class (index mod 4) sets a band of louder mel bins: something to learn
    x = rng.normal(size=(len(utt), 1, 96, 64)).astype(np.float32)
    for c in range(4):
        x[utt % 4 == c, :, :, 16 * c:16 * c + 16] += 3.0
    x = torch.from_numpy(x)
    with torch.no_grad():
        feats = {k: v.numpy() for k, v in FusionNet(4, streams, yamnet=yam).eval().extract(x, streams).items()}
        h = vggish_to_yamnet_input(x)
        for blk in yam.layers[:9]:
            h = blk(h)
    return yam, feats, utt, speech, h.numpy()


def test_stream_layers_and_widths():
    assert [stream_layer(s) for s in STREAMS] == [5, 7, 9]
    assert [stream_width(s) for s in STREAMS] == [512, 1024, 1024]


def test_utterance_patches_use_speech_or_all():
    utt = np.array([0, 0, 1, 1, 2])
    speech = np.array([True, False, False, False, True])
    up = UtterancePatches.of(utt, speech, 3)
    assert up.counts.tolist() == [1, 2, 1]  # utterance 1 has no speech patch: all of them
    idx, owner = up.batch(np.array([2, 1]))
    assert idx.tolist() == [4, 2, 3] and owner.tolist() == [0, 1, 1]


def test_cached_maps_reproduce_the_frozen_rows():
    yam, feats, utt, speech, act = _corpus(1, 7)
    n = int(utt.max()) + 1
    frozen = pool_streams(feats, utt, speech, n, ("yamnet_l9",))
    rows = upper_rows(UpperBlocks(yam, 9, ("yamnet_l9",)), act, UtterancePatches.of(utt, speech, n))
    np.testing.assert_allclose(rows, frozen, atol=2e-4)
    # several upper streams come back in the order the classifier's row holds them, not layer order
    two = UpperBlocks(yam, 9, ("yamnet_l11", "yamnet_l9"))
    rows2 = upper_rows(two, act, UtterancePatches.of(utt, speech, n))
    feats2 = _corpus(1, 7, ("yamnet_l9", "yamnet_l11"))[1]  # the same patches
    np.testing.assert_allclose(rows2, pool_streams(feats2, utt, speech, n, ("yamnet_l11", "yamnet_l9")), atol=2e-4)


def test_finetune_moves_the_blocks_and_keeps_lower_streams():
    yam, feats, utt, speech, act = _corpus(2, 24)
    n = int(utt.max()) + 1
    X = pool_streams(feats, utt, speech, n, STREAMS)
    X = np.concatenate([X, np.random.default_rng(0).normal(size=(n, 3)).astype(np.float32)], 1)  # "prosody"
    y = np.arange(n) % 4
    linear = nn.Linear(X.shape[1], 4)
    up = UtterancePatches.of(utt, speech, n)
    before = [p.detach().clone() for p in yam.layers[9].parameters()]
    with torch.no_grad():
        loss0 = nn.functional.cross_entropy(linear(torch.from_numpy(X)), torch.from_numpy(y)).item()
    Xt, upper = finetune_fold(linear, X, X.copy(), y, np.ones(n, np.float32), [act], [up], act, up, STREAMS, 9,
                              yamnet=yam, epochs=8, lr=1e-3, lr_head=1e-3, mixup=0.0)
    np.testing.assert_array_equal(Xt[:, :1536], X[:, :1536])  # layers 5 and 7 frozen
    np.testing.assert_array_equal(Xt[:, -3:], X[:, -3:])  # prosody untouched
    assert np.abs(Xt[:, 1536:-3] - X[:, 1536:-3]).max() > 1e-3  # layer 9 rows changed
    assert all(torch.equal(a, b) for a, b in zip(before, yam.layers[9].parameters()))  # the backbone is copied
    assert any(not torch.equal(a, b) for a, b in zip(before, upper.blocks[0].parameters()))
    with torch.no_grad():
        loss = nn.functional.cross_entropy(linear(torch.from_numpy(Xt)), torch.from_numpy(y)).item()
    assert loss < 0.5 * loss0  # the training loss fell
