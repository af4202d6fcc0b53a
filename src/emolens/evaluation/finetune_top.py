"""Fine-tuning the upper YAMNet blocks on cached lower activations (issue 12's
``--finetune top`` lever), measured by ``benchmarks/generalisation.py``.

The shipped head reads YAMNet layers 5, 7 and 9 (mean+max pooled over the patch, layer
normalised, averaged over an utterance's speech patches) and the prosody functionals.
Layers 0..``start - 1`` stay frozen: their output on every patch is computed once and
cached (:func:`lower_activations`, ``(P, C, H, W)`` float16, ``C x H x W = 512 x 6 x 4``
for ``start`` 8 or 9), so a training step runs only the upper blocks ``start..top``
(``top`` = the highest layer a stream reads) on the cached maps: on 2 CPU cores one
epoch over four corpora costs seconds, not the minutes a full YAMNet pass would.

Recipe (**decided here**): linear probe, then fine-tune (LP-FT, Kumar et al., ICLR 2022,
who found it keeps out-of-distribution accuracy that plain fine-tuning loses): the
linear classifier is first fitted on the frozen rows exactly as the shipped recipe fits
it (:func:`emolens.evaluation.utterance_levers.fit_classifier`), then the upper blocks
and that classifier are trained together for ``epochs`` epochs (Adam, ``lr`` on the
blocks, ``lr_head`` on the classifier), with the same corpus x class balance and mixup of
the pooled utterance rows. Streams below ``start`` keep their frozen pooled rows.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from emolens.training.data import module_digest
from emolens.workdir import WorkDir

_CACHE_VERSION = "act1"


def stream_layer(stream: str) -> int:
    """YAMNet layer index a stream reads: ``yamnet_l9`` -> 9, ``yamnet_mid`` -> 7."""
    from emolens.models.fusion import YAMNET_MID_LAYER

    if stream == "yamnet_mid":
        return YAMNET_MID_LAYER
    if stream.startswith("yamnet_l"):
        return int(stream[len("yamnet_l"):])
    raise ValueError(f"stream {stream!r} is not a pooled YAMNet layer (yamnet_l<i> or yamnet_mid)")


def stream_width(stream: str) -> int:
    """Width of a pooled layer stream: mean and max of the layer's channels."""
    from emolens.models.yamnet import FIRST_CONV, SEPARABLE_DEFS

    i = stream_layer(stream)
    return 2 * (FIRST_CONV[1] if i == 0 else SEPARABLE_DEFS[i - 1][1])


def lower_activations(work_dir: str | Path, layer: int, *, yamnet_weights: str | None = None,
                      batch_size: int = 128, progress: bool = True) -> np.ndarray:
    """``(P, C, H, W)`` float16: the output of YAMNet ``layers[layer]`` on every patch of a
    prepared corpus (patch order of its patch set), cached in ``WORK/generalisation/``."""
    from tqdm.auto import tqdm

    from emolens.models import load_yamnet_file, resolve_weights
    from emolens.models.fusion import vggish_to_yamnet_input

    work = WorkDir.open(work_dir)
    ps = work.patchset(progress=False)
    yam = load_yamnet_file(resolve_weights("yamnet", yamnet_weights)).eval()
    key = hashlib.sha1(ps.patches.tobytes() + module_digest(yam).encode()
                       + f"{_CACHE_VERSION}-{layer}".encode()).hexdigest()[:16]
    path = work.root / "generalisation" / f"act-l{layer}-{key}.npy"
    if path.exists():
        return np.load(path, allow_pickle=False)
    chunks = []
    with torch.no_grad():
        for s in tqdm(range(0, len(ps.patches), batch_size), desc=f"{work.root.name} YAMNet layers 0-{layer}",
                      unit="batch", disable=not progress):
            h = vggish_to_yamnet_input(torch.from_numpy(ps.patches[s:s + batch_size]).unsqueeze(1))
            for blk in yam.layers[:layer + 1]:
                h = blk(h)
            chunks.append(h.numpy().astype(np.float16))
    act = np.concatenate(chunks)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp.npy")
    np.save(tmp, act)
    os.replace(tmp, path)
    return act


class UpperBlocks(nn.Module):
    """YAMNet ``layers[start..top]`` (copied, trainable) on cached ``layers[start-1]``
    maps ``(B, C, H, W)``; returns ``{stream: (B, 2 C')}`` mean+max pools of the layers the
    ``streams`` name, each layer normalised (no affine), as the head reads them."""

    def __init__(self, yamnet: nn.Module, start: int, streams: Sequence[str]) -> None:
        super().__init__()
        import copy

        self.start = start
        self.streams = tuple(streams)
        self.top = max(stream_layer(s) for s in self.streams)
        if min(stream_layer(s) for s in self.streams) < start:
            raise ValueError(f"streams {self.streams} read below the first trainable layer {start}")
        self.blocks = nn.ModuleList(copy.deepcopy(yamnet.layers[i]) for i in range(start, self.top + 1))

    def forward(self, h: torch.Tensor) -> dict[str, torch.Tensor]:
        out = {}
        for i, blk in zip(range(self.start, self.top + 1), self.blocks):
            h = blk(h)
            for s in self.streams:
                if stream_layer(s) == i:
                    z = torch.cat([h.mean(dim=(2, 3)), h.amax(dim=(2, 3))], dim=1)
                    out[s] = nn.functional.layer_norm(z, z.shape[1:])
        return {s: out[s] for s in self.streams}  # the order the classifier's row has them in


@dataclass
class UtterancePatches:
    """The patches each utterance decides on (its speech patches, all of them when none
    is speech), as CSR: ``index`` ``(N,)`` patch indices grouped by utterance,
    ``starts``/``counts`` ``(U,)``."""

    index: np.ndarray
    starts: np.ndarray
    counts: np.ndarray

    @classmethod
    def of(cls, utt: np.ndarray, speech: np.ndarray, n_utt: int) -> UtterancePatches:
        from emolens.evaluation.utterance_levers import decision_patches

        use = np.flatnonzero(decision_patches(utt, speech, n_utt))
        order = np.argsort(utt[use], kind="stable")
        index = use[order]
        counts = np.bincount(utt[index], minlength=n_utt)
        return cls(index, np.r_[0, np.cumsum(counts)[:-1]], counts)

    def batch(self, utts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Patch indices of ``utts`` and, per patch, its position in ``utts``."""
        idx = np.concatenate([self.index[self.starts[u]:self.starts[u] + self.counts[u]] for u in utts])
        return idx, np.repeat(np.arange(len(utts)), self.counts[utts])


def _pool_rows(upper: UpperBlocks, act: torch.Tensor, owner: torch.Tensor, n: int) -> torch.Tensor:
    """``(n, D)`` per-utterance means of the upper streams of patches ``act`` owned by rows ``owner``."""
    z = torch.cat([v for v in upper(act).values()], 1)
    s = torch.zeros(n, z.shape[1], dtype=z.dtype).index_add_(0, owner, z)
    return s / torch.bincount(owner, minlength=n).clamp(min=1)[:, None].to(z.dtype)


@torch.no_grad()
def upper_rows(upper: UpperBlocks, act: np.ndarray, up: UtterancePatches, batch: int = 256) -> np.ndarray:
    """``(U, D)`` pooled upper-stream rows of every utterance (eval mode)."""
    upper.eval()
    rows = []
    for s in range(0, len(up.counts), batch):
        utts = np.arange(s, min(s + batch, len(up.counts)))
        idx, owner = up.batch(utts)
        rows.append(_pool_rows(upper, torch.from_numpy(act[idx].astype(np.float32)), torch.from_numpy(owner),
                               len(utts)).numpy())
    return np.concatenate(rows)


def finetune_upper(upper: UpperBlocks, linear: nn.Linear, acts: Sequence[np.ndarray], ups: Sequence[UtterancePatches],
                   frozen: np.ndarray, split: int, y: np.ndarray, weights: np.ndarray, *, epochs: int = 6,
                   batch_size: int = 64, lr: float = 1e-4, lr_head: float = 1e-4, weight_decay: float = 1e-4, mixup: float = 0.4,
                   seed: int = 0, progress: bool = False) -> None:
    """Train ``upper`` and ``linear`` together (in place) on utterances of several corpora.

    ``acts[k]`` ``(P_k, C, H, W)`` cached maps and ``ups[k]`` the patches of corpus ``k``;
    ``frozen`` ``(U, F)`` the parts of every utterance's row (corpora in order) that do
    not change: the classifier reads ``[frozen[:, :split], upper streams, frozen[:, split:]]``
    (the frozen lower streams, the trained ones, then the prosody functionals).
    """
    from tqdm.auto import tqdm

    from emolens.evaluation.generalisation import mixup_batch

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    owner_corpus = np.concatenate([np.full(len(u.counts), k) for k, u in enumerate(ups)])
    local = np.concatenate([np.arange(len(u.counts)) for u in ups])
    opt = torch.optim.Adam([{"params": upper.parameters(), "lr": lr}, {"params": linear.parameters(), "lr": lr_head}],
                           weight_decay=weight_decay)
    F_, Y, W = torch.from_numpy(frozen), torch.from_numpy(y.astype(np.int64)), torch.from_numpy(weights.astype(np.float32))
    n, C = len(y), linear.out_features
    for _ in tqdm(range(epochs), desc="fine-tune upper YAMNet blocks", unit="epoch", disable=not progress):
        upper.train()
        order = rng.permutation(n)
        for s in range(0, n, batch_size):
            b = order[s:s + batch_size]
            parts, pos = [], []
            for k in np.unique(owner_corpus[b]):
                sel = b[owner_corpus[b] == k]
                idx, owner = ups[k].batch(local[sel])
                parts.append((torch.from_numpy(acts[k][idx].astype(np.float32)), torch.from_numpy(owner), len(sel)))
                pos.append(sel)
            rows = torch.cat([_pool_rows(upper, a, o, m) for a, o, m in parts])
            bi = torch.from_numpy(np.concatenate(pos))
            fb = F_[bi]
            x = torch.cat([fb[:, :split], rows, fb[:, split:]], 1)
            t = nn.functional.one_hot(Y[bi], C).float()
            wb = W[bi]
            if mixup > 0:
                x, t, wb = mixup_batch(rng, mixup, x, t, wb)
            loss = -((t * torch.log_softmax(linear(x), 1)).sum(1) * wb).sum() / wb.sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
    upper.eval()


def finetune_fold(linear: nn.Linear, X: np.ndarray, Xt: np.ndarray, y: np.ndarray, weights: np.ndarray,
                  train_acts: Sequence[np.ndarray], train_ups: Sequence[UtterancePatches], test_act: np.ndarray,
                  test_up: UtterancePatches, streams: Sequence[str], start: int, *, yamnet: nn.Module,
                  epochs: int = 6, lr: float = 1e-4, lr_head: float = 1e-4, mixup: float = 0.4, seed: int = 0,
                  progress: bool = False) -> tuple[np.ndarray, UpperBlocks]:
    """LP-FT of one fold: ``linear`` is the probe fitted on the frozen rows ``X (U, D)``
    (layout ``[streams in order, prosody]``, each stream ``2 C`` wide); the upper streams
    (those reading layer ``start`` or above, a suffix of ``streams``) are recomputed from
    the cached maps while ``UpperBlocks`` and ``linear`` train. Returns the test rows
    ``Xt`` with their upper part recomputed by the trained blocks, and the blocks."""
    layers = [stream_layer(s) for s in streams]
    k = next((i for i, li in enumerate(layers) if li >= start), None)
    if k is None or any(li < start for li in layers[k:]):
        raise ValueError(f"fine-tuning from layer {start} needs the upper streams last in {tuple(streams)}")
    split = sum(stream_width(s) for s in streams[:k])
    n_up = sum(stream_width(s) for s in streams[k:])
    upper = UpperBlocks(yamnet, start, streams[k:])
    frozen = np.ascontiguousarray(np.concatenate([X[:, :split], X[:, split + n_up:]], 1), np.float32)
    finetune_upper(upper, linear, train_acts, train_ups, frozen, split, y, weights, epochs=epochs, lr=lr,
                   lr_head=lr_head, mixup=mixup, seed=seed, progress=progress)
    Xt = Xt.copy()
    Xt[:, split:split + n_up] = upper_rows(upper, test_act, test_up)
    return Xt, upper
