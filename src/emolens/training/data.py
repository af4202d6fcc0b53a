"""From cached mels to the arrays the trainer consumes, and the backbone-feature cache.

* :class:`PatchSet`: every patch of every utterance, as the VGGish log-mel
  ``(P, 96, 64)`` float32, with its utterance index.
* :func:`backbone_features`: the raw stream features of all patches
  (``FusionNet.extract``), computed once in batches with progress and cached on disk
  keyed by the patches' bytes and the backbone weights, so ``head`` training of any
  model kind and every fold reuse them.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from emolens.features.patches import DEFAULT_PATCHES, PatchConfig, log_mel_patches

#: The streams each backbone provides by default (cached together); other streams
#: of a model (``yamnet_l<i>``) are computed and cached as a group of their own.
BACKBONE_STREAMS = {"vggish": ("vggish", "vggish_layers"), "yamnet": ("yamnet", "yamnet_mid")}


@dataclass
class PatchSet:
    """All patches of a manifest.

    Attributes:
        patches: ``(P, patch_frames, n_mels)`` float32, ``log(mel + 0.01)``.
        utt: ``(P,)`` index of each patch's utterance in the manifest.
        n_frames: ``(U,)`` frames per utterance (before padding).
        y_utt: ``(U,)`` class index per utterance (-1 when unknown).
    """

    patches: np.ndarray
    utt: np.ndarray
    n_frames: np.ndarray
    y_utt: np.ndarray

    @property
    def y(self) -> np.ndarray:
        """``(P,)`` class index of each patch (its utterance's label)."""
        return self.y_utt[self.utt]

    def patch_indices(self, utterances: np.ndarray) -> np.ndarray:
        """Indices of all patches of the given utterances."""
        return np.flatnonzero(np.isin(self.utt, utterances))


def patchset_from_mels(mels: Sequence[np.ndarray], y_utt: np.ndarray,
                       pcfg: PatchConfig = DEFAULT_PATCHES) -> PatchSet:
    """Cut each linear mel ``(n_frames, 64)`` into patches and take the VGGish log."""
    parts, utt = [], []
    for i, m in enumerate(mels):
        p = log_mel_patches(m, pcfg)
        parts.append(p)
        utt.append(np.full(len(p), i))
    return PatchSet(
        np.concatenate(parts).astype(np.float32), np.concatenate(utt),
        np.array([len(m) for m in mels]), np.asarray(y_utt),
    )


def module_digest(module: torch.nn.Module) -> str:
    """sha1 over a module's state dict (names, shapes and values)."""
    h = hashlib.sha1()
    for k, v in module.state_dict().items():
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


@torch.no_grad()
def backbone_features(model, patches: np.ndarray, cache_dir: Path | None = None, *,
                      batch_size: int = 64, progress: bool = True) -> dict[str, np.ndarray]:
    """``model.extract`` over all patches -> ``{stream: (P, D)}``, cached per backbone."""
    model.eval()
    key_p = hashlib.sha1(patches.tobytes()).hexdigest()[:16]
    out: dict[str, np.ndarray] = {}
    groups = [(n, BACKBONE_STREAMS[n]) for n in ("vggish", "yamnet")]
    extra = tuple(s for s in model.streams if s not in BACKBONE_STREAMS["vggish"] + BACKBONE_STREAMS["yamnet"])
    if extra:  # e.g. yamnet_l5: cached in a file of their own, so the default cache stays valid
        groups.append(("yamnet", extra))
    for name, wanted in groups:
        bb = getattr(model, name)
        if bb is None or not set(wanted) & set(model.streams):
            continue
        path = None
        if cache_dir is not None:
            tag = "+".join(wanted)
            path = Path(cache_dir) / f"{tag}-{module_digest(bb)}-{key_p}.npz"
            if path.exists():
                with np.load(path, allow_pickle=False) as z:
                    out.update({k: z[k] for k in z.files})
                continue
        chunks: dict[str, list[np.ndarray]] = {}
        for s in tqdm(range(0, len(patches), batch_size), desc=f"{name} features",
                      unit="batch", disable=not progress):
            x = torch.from_numpy(patches[s : s + batch_size]).unsqueeze(1)
            feats = model.extract(x, wanted)
            for k, v in feats.items():
                chunks.setdefault(k, []).append(v.numpy())
        res = {k: np.concatenate(v) for k, v in chunks.items()}
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(path.name + f".{os.getpid()}.tmp.npz")
            np.savez(tmp, **res)
            os.replace(tmp, path)
        out.update(res)
    return {s: out[s] for s in model.streams}
