"""The late-fusion network ("Custom YAMNet-VGGish Late Fusion Network", METHOD.md s.4).

Input: patches ``(B, 1, 96, 64)`` of ``log(mel + 0.01)`` (the VGGish log-mel; the
spectrogram users see and explanations perturb). YAMNet was trained on
``log(mel + 0.001)``, so its input is derived inside the model as
``log(max(exp(x) - 0.009, 1e-6))`` - one mel, each backbone its own offset.

Three feature streams (the **open** points, decided here):

* ``vggish``: VGGish's 128-d embedding (its top FC layer, post-ReLU), shape ``(B, 128)``.
* ``vggish_layers``: "features taken from each VGGish layer, added up": the output of
  each of the 4 conv blocks (after its max-pool) is global-average-pooled over
  time-frequency (64, 128, 256, 512 channels), each is projected by its own trainable
  linear layer to ``layer_dim`` (256) so they share one shape, and the four are summed.
* ``yamnet``: YAMNet's 1024-d embedding (global average pool of its last conv layer).
* ``yamnet_mid`` (beyond the thesis): mean- and max-pooled output of YAMNet's 8th
  layer (``layers[7]``, 512 channels at 6x4 cells) -> 1024-d. AudioSet's top layers
  specialise in sound *classes*; the mid-level layer keeps more of the prosodic and
  spectral detail emotion lives in. Measured on EmoDB 4-class (speaker-grouped 5-fold,
  utterance-mean features + logistic regression): layer 7 UAR 0.836 vs the final
  embedding 0.704 (``benchmarks/yamnet_layers.py``). It is part of the ``fusion`` and
  ``yamnet`` kinds; ``fusion-thesis``/``yamnet-thesis`` leave it out.

Each stream is layer-normalised (their scales differ by orders of magnitude, more so
with a randomly initialised VGGish) and the streams are **depth-concatenated** (not
added), followed by ``Dropout -> Linear(hidden=256) -> ReLU -> Dropout -> Linear(C)``;
softmax is applied by the loss / at prediction. The single-backbone baselines are the
same class with ``streams=("vggish",)`` or ``("yamnet",)``, so the comparison only
changes the inputs to an identical head.

Decision (``pooling``, the head's last choice; :mod:`emolens.models.decision`):

* ``mean`` (the thesis, every trainable kind): the classifier reads each patch and the
  utterance is the mean of the patch softmaxes over the voting patches.
* ``mean+std`` (statistics pooling; measured in ``benchmarks/generalisation.py``, not
  shipped): the classifier reads the utterance's mean
  ``mu`` and standard deviation ``sigma`` over its voting patches of the normalised
  stream vector ``z`` (:meth:`FusionHead.embed`), ``logits = W [mu, sigma] + b``. Per
  patch, the head returns the patch's exact share of those logits given the utterance's
  ``(mu, sigma)`` (its *context*, :meth:`FusionHead.use_context`):
  ``c_i = W [z_i, (z_i - mu)**2 / sigma] + b``, whose mean over the voting patches *is*
  the utterance logits. Explanations attribute ``c_i`` per patch.
* ``mean+prosody`` (the shipped model: the leave-one-corpus-out winner among rows that
  meet the speed target): the classifier reads the utterance's mean ``mu`` of ``z``
  and its prosody functionals ``q`` (:mod:`emolens.features.prosody`, computed from the
  waveform, not from patches), standardised with the training statistics
  (``prosody_mean``, ``prosody_scale`` buffers), clipped to +-``clip`` and weighted:
  ``logits = W [mu, s(q)] + b``, ``s(q) = weight * clip((q - mean) / scale)``. A patch's
  share is ``c_i = W [z_i, s(q)] + b`` (the mean over the voting patches is the
  utterance logits); its context is the clip's raw ``q`` (:meth:`FusionHead.use_context`),
  so spectrogram explanations hold the prosody fixed and ``explain`` adds prosody lines
  (:mod:`emolens.explain.prosody`).
* ``mean+prosody`` with a Whisper stream (``whisper={...}``, the ``whisper`` model,
  ``emolens[whisper]``): the clip's utterance vector ``q`` is the prosody functionals
  followed by the pooled Whisper base encoder state (:mod:`emolens.models.whisper`,
  ``(1024,)``), which the head standardises per row (layer norm without affine, eps 1e-5)
  and weighs: ``s(q) = [weight * clip((q_p - mean) / scale), w_weight * ln(q_w)]``.
  Everything that carries ``q`` (context, timeline windows, explanations) carries both.
  ``whisper={..., "mlp": H}`` adds the logits of an MLP (H hidden units) on the scaled Whisper
  part alone: the same term for every patch of a recording, so the shares still add up.

Fine-tuning scopes (``set_finetune``): ``head`` (backbones frozen; their raw stream
features can be computed once with :meth:`FusionNet.extract` and cached), ``top``
(VGGish's last conv block + FC layers and YAMNet's last two depthwise-separable layers
trainable), ``all`` (everything).
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from emolens.models.vggish import VGGish, flatten_nhwc
from emolens.models.yamnet import YAMNet

#: Streams of each model kind.
MODEL_STREAMS: dict[str, tuple[str, ...]] = {
    "fusion": ("vggish", "vggish_layers", "yamnet", "yamnet_mid"),
    "vggish": ("vggish", "vggish_layers"),
    "yamnet": ("yamnet", "yamnet_mid"),
    "fusion-thesis": ("vggish", "vggish_layers", "yamnet"),
    "vggish-thesis": ("vggish",),
    "yamnet-thesis": ("yamnet",),
    "yamnet-layers": ("yamnet_l5", "yamnet_mid", "yamnet_l9"),
}
#: YAMNet layer whose pooled output is the ``yamnet_mid`` stream.
YAMNET_MID_LAYER = 7
#: Width of each raw stream as :meth:`FusionNet.extract` returns it.
RAW_DIMS: dict[str, int] = {"vggish": 128, "vggish_layers": 64 + 128 + 256 + 512, "yamnet": 1024, "yamnet_mid": 1024}
#: ``yamnet_l<i>``: mean- and max-pooled output of YAMNet's ``layers[i]`` (2 x its channels).
YAMNET_CHANNELS = (32, 64, 128, 128, 256, 256, 512, 512, 512, 512, 512, 512, 1024, 1024)
RAW_DIMS.update({f"yamnet_l{i}": 2 * c for i, c in enumerate(YAMNET_CHANNELS)})
VGGISH_BLOCK_DIMS = (64, 128, 256, 512)
#: Decisions a head can make (see the module doc).
POOLINGS = ("mean", "mean+std", "mean+prosody")
#: Floor of the standard deviation in statistics pooling (a one-patch utterance has sigma 0).
SIGMA_FLOOR = 1e-6
#: YAMNet input offset conversion: exp(x) - (0.01 - 0.001).
_OFFSET_SHIFT = 0.01 - 0.001


def vggish_to_yamnet_input(x: torch.Tensor) -> torch.Tensor:
    """``log(mel + 0.01)`` -> ``log(mel + 0.001)`` (clamped for perturbed inputs)."""
    return torch.log(torch.clamp(torch.exp(x) - _OFFSET_SHIFT, min=1e-6))


class FusionHead(nn.Module):
    """Stream projections + depth concatenation + FC classifier (shared by all kinds)."""

    def __init__(self, streams: Sequence[str], n_classes: int, hidden: int = 256,
                 layer_dim: int = 256, dropout: float = 0.3, pooling: str = "mean", prosody: dict | None = None,
                 whisper: dict | None = None):
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"pooling {pooling!r}: use one of {', '.join(POOLINGS)}")
        if pooling != "mean" and hidden > 0:
            raise ValueError("statistics pooling needs a linear classifier (hidden=0): its per-patch shares must add up")
        if (pooling == "mean+prosody") != (prosody is not None):
            raise ValueError("pooling 'mean+prosody' and prosody={'dim': ..., 'weight': ..., 'clip': ...} go together")
        if whisper is not None and prosody is None:
            raise ValueError("a Whisper stream rides with the prosody functionals: pass prosody={...} and pooling 'mean+prosody'")
        self.pooling = pooling
        self.streams = tuple(streams)
        self._context: tuple[torch.Tensor, ...] | None = None
        #: model.json ``head.prosody``: dim, weight, clip, features (the recipe's name)
        self.prosody = dict(prosody) if prosody is not None else None
        self.prosody_dim = int(prosody["dim"]) if prosody is not None else 0
        #: model.json ``head.whisper``: dim, weight, layer, pooling, features (the recipe's name)
        self.whisper = dict(whisper) if whisper is not None else None
        self.whisper_dim = int(whisper["dim"]) if whisper is not None else 0
        #: columns of the clip's utterance vector ``q``: prosody functionals, then the Whisper stream
        self.utterance_dim = self.prosody_dim + self.whisper_dim
        dims = {}
        if "vggish_layers" in self.streams:
            self.layer_proj = nn.ModuleList(nn.Linear(d, layer_dim) for d in VGGISH_BLOCK_DIMS)
            dims["vggish_layers"] = layer_dim
        for s in self.streams:
            if s != "vggish_layers":
                dims[s] = RAW_DIMS[s]
        self.norms = nn.ModuleDict({s: nn.LayerNorm(dims[s]) for s in self.streams})
        width = sum(dims[s] for s in self.streams)
        self.width = width  # of the normalised stream vector z (embed)
        if pooling == "mean+std":
            width *= 2  # the classifier reads [mu, sigma]
        if self.prosody_dim:
            width += self.utterance_dim  # the classifier reads [mu, s(q)]
            self.register_buffer("prosody_mean", torch.zeros(self.prosody_dim))
            self.register_buffer("prosody_scale", torch.ones(self.prosody_dim))
        # hidden=0: a linear classifier on the normalised streams (logistic regression)
        self.classifier = nn.Sequential(
            nn.Dropout(dropout), nn.Linear(width, hidden), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(hidden, n_classes),
        ) if hidden > 0 else nn.Sequential(nn.Dropout(dropout), nn.Linear(width, n_classes))
        #: model.json ``head.whisper.mlp``: an MLP with that many hidden units on the scaled Whisper
        #: stream alone, its logits added to the classifier's (a per-recording term:
        #: :class:`emolens.models.decision.ProsodyPooling`)
        mlp = int(self.whisper.get("mlp", 0)) if self.whisper else 0
        self.whisper_mlp = nn.Sequential(nn.Linear(self.whisper_dim, mlp), nn.ReLU(), nn.Linear(mlp, n_classes)) \
            if mlp else None

    def embed(self, feats: dict[str, torch.Tensor]) -> torch.Tensor:
        """``z (B, width)``: the normalised streams, concatenated (what the classifier reads per patch)."""
        parts = []
        for s in self.streams:
            f = feats[s]
            if s == "vggish_layers":
                chunks = torch.split(f, VGGISH_BLOCK_DIMS, dim=1)
                f = sum(p(c) for p, c in zip(self.layer_proj, chunks))
            parts.append(self.norms[s](f))
        return torch.cat(parts, dim=1)

    def forward(self, feats: dict[str, torch.Tensor]) -> torch.Tensor:
        """Per-patch logits ``(B, C)``; with statistics pooling each patch's share of the
        utterance logits given the context (:meth:`use_context`; without one, the batch
        is taken as one utterance)."""
        return self.from_embedding(self.embed(feats))

    def scale_prosody(self, q: torch.Tensor) -> torch.Tensor:
        """``s(q) = weight * clip((q - mean) / scale, +-clip)`` of raw functionals ``q (..., P)``,
        followed (a head with a Whisper stream, ``q (..., P + W)``) by ``w_weight * ln(q_w)``."""
        p = self.prosody
        q = q.to(torch.float32)
        qp = q[..., : self.prosody_dim]
        zq = p["weight"] * torch.clamp((qp - self.prosody_mean) / self.prosody_scale, -p["clip"], p["clip"])
        if not self.whisper_dim:
            return zq
        qw = q[..., self.prosody_dim :]
        return torch.cat([zq, self.whisper["weight"] * F.layer_norm(qw, (self.whisper_dim,), eps=1e-5)], -1)

    def _scaled_context_prosody(self, batch_shape: tuple[int, ...]) -> torch.Tensor:
        """``s(q)`` of the context's clip, broadcast to ``batch_shape + (P,)`` (no context:
        the training average, ``s = 0``)."""
        if self._context is None:
            return torch.zeros(*batch_shape, self.utterance_dim)
        return self.scale_prosody(self._context[0]).expand(*batch_shape, self.utterance_dim)

    def prosody_row_logits(self, x: torch.Tensor) -> torch.Tensor:
        """The prosody head's logits ``(..., C)`` of rows ``x = [z, s(q)]`` (the embedding, then the
        scaled utterance vector): ``classifier(x)``, plus the Whisper MLP's logits of the last
        ``whisper_dim`` columns (``s_w``) when there is one."""
        out = self.classifier(x)
        if self.whisper_mlp is not None:
            out = out + self.whisper_mlp(x[..., x.shape[-1] - self.whisper_dim :])
        return out

    def _prosody_logits(self, z: torch.Tensor) -> torch.Tensor:
        """:meth:`prosody_row_logits` of embeddings ``z (..., width)`` in the context's clip."""
        return self.prosody_row_logits(torch.cat([z, self._scaled_context_prosody(z.shape[:-1])], dim=-1))

    def from_embedding(self, z: torch.Tensor) -> torch.Tensor:
        """:meth:`forward` from ``z (B, width)``."""
        if self.pooling == "mean":
            return self.classifier(z)
        if self.pooling == "mean+prosody":
            return self._prosody_logits(z)
        mu, sigma = self._context if self._context is not None else pooled_stats(z)
        return self.classifier(torch.cat([z, (z - mu) ** 2 / sigma], dim=1))

    def outputs(self, z: torch.Tensor) -> torch.Tensor:
        """What inference reads per patch from ``z (B, width)``: the emotion softmax
        ``(B, C)`` for the vote, ``z`` itself for the pooled heads (their decision needs the
        whole utterance, and the prosody head's the clip's functionals too;
        :mod:`emolens.models.decision`)."""
        return torch.softmax(self.classifier(z), 1) if self.pooling == "mean" else z

    @property
    def output_width(self) -> int:
        """Columns of :meth:`outputs`: C for the vote, ``width`` for statistics pooling."""
        return self.classifier[-1].out_features if self.pooling == "mean" else self.width

    def pooled_logits(self, z: torch.Tensor) -> torch.Tensor:
        """Utterance logits ``(..., C)`` from the voting patches' ``z (..., V, width)``
        (differentiable): ``W [mu, sigma] + b`` with statistics pooling, else the log of
        the mean patch softmax (the vote)."""
        if self.pooling == "mean":
            return torch.log(torch.softmax(self.classifier(z), -1).mean(-2).clamp_min(1e-12))
        if self.pooling == "mean+prosody":
            return self._prosody_logits(z.mean(-2))
        mu, sigma = pooled_stats(z)
        return self.classifier(torch.cat([mu.squeeze(-2), sigma.squeeze(-2)], dim=-1))

    @contextmanager
    def use_context(self, *context) -> Iterator[None]:
        """Within the block, :meth:`forward` (and :meth:`pooled_logits`) decide in one
        utterance's context (``Analysis.context``): statistics pooling's ``(mu, sigma)``
        ``(width,)`` or the prosody head's ``(q,)`` raw functionals ``(P,)``. A no-op for
        the vote, with no context or with ``None`` in it."""
        prev = self._context
        if self.pooling == "mean+std" and len(context) == 2 and all(c is not None for c in context):
            mu, sigma = context
            self._context = (torch.as_tensor(mu, dtype=torch.float32),
                             torch.as_tensor(sigma, dtype=torch.float32).clamp_min(SIGMA_FLOOR))
        elif self.pooling == "mean+prosody" and len(context) >= 1 and context[0] is not None:
            self._context = (torch.as_tensor(np.asarray(context[0], np.float32)),)
        try:
            yield
        finally:
            self._context = prev


def pooled_stats(z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(mu, sigma)`` ``(..., 1, width)`` over the patch axis -2 of ``z (..., V, width)``;
    ``sigma`` floored at :data:`SIGMA_FLOOR` (differentiable everywhere)."""
    mu = z.mean(-2, keepdim=True)
    var = ((z - mu) ** 2).mean(-2, keepdim=True)
    return mu, torch.sqrt(var.clamp_min(SIGMA_FLOOR ** 2))


class FusionNet(nn.Module):
    """Backbones + :class:`FusionHead`; ``forward(x (B,1,96,64)) -> logits (B, C)``."""

    def __init__(self, n_classes: int, streams: Sequence[str] = MODEL_STREAMS["fusion"], *,
                 vggish: VGGish | None = None, yamnet: YAMNet | None = None,
                 hidden: int = 256, layer_dim: int = 256, dropout: float = 0.3, pooling: str = "mean",
                 prosody: dict | None = None, whisper: dict | None = None):
        super().__init__()
        self.streams = tuple(streams)
        unknown = set(self.streams) - set(RAW_DIMS)
        if unknown:
            raise ValueError(f"unknown streams {sorted(unknown)}; use {sorted(RAW_DIMS)}")
        self.uses_vggish = any(s.startswith("vggish") for s in self.streams)
        self.uses_yamnet = any(s.startswith("yamnet") for s in self.streams)
        self.vggish = (vggish or VGGish()) if self.uses_vggish else None
        self.yamnet = (yamnet or YAMNet()) if self.uses_yamnet else None
        self.head = FusionHead(self.streams, n_classes, hidden, layer_dim, dropout, pooling, prosody, whisper)

    # -- features ---------------------------------------------------------------
    def extract(self, x: torch.Tensor, streams: Sequence[str] | None = None) -> dict[str, torch.Tensor]:
        """Raw backbone stream features, e.g. ``{'vggish': (B,128), 'vggish_layers':
        (B,960), 'yamnet': (B,1024)}``, for ``streams`` (default: the model's)."""
        streams = self.streams if streams is None else tuple(streams)
        out: dict[str, torch.Tensor] = {}
        if self.vggish is not None and any(s.startswith("vggish") for s in streams):
            h, pooled = x, []
            for m in self.vggish.features:
                h = m(h)
                if isinstance(m, nn.MaxPool2d):
                    pooled.append(h.mean(dim=(2, 3)))
            if "vggish_layers" in streams:
                out["vggish_layers"] = torch.cat(pooled, dim=1)
            if "vggish" in streams:
                e = self.vggish.embeddings[:5](flatten_nhwc(h))  # TF's NHWC flatten order
                out["vggish"] = torch.relu(e) if self.vggish.final_relu else e
        if self.yamnet is not None and any(s.startswith("yamnet") for s in streams):
            h = vggish_to_yamnet_input(x)
            for i, layer in enumerate(self.yamnet.layers):
                h = layer(h)
                if i == YAMNET_MID_LAYER and "yamnet_mid" in streams:
                    out["yamnet_mid"] = torch.cat([h.mean(dim=(2, 3)), h.amax(dim=(2, 3))], dim=1)
                if f"yamnet_l{i}" in streams:
                    out[f"yamnet_l{i}"] = torch.cat([h.mean(dim=(2, 3)), h.amax(dim=(2, 3))], dim=1)
            if "yamnet" in streams:
                out["yamnet"] = h.mean(dim=(2, 3))
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.extract(x))

    def forward_with_audioset(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(logits (B, C), AudioSet scores (B, 521))`` in one pass through YAMNet.

        The scores are YAMNet's own sigmoid outputs (its AudioSet head, kept frozen in
        every saved model), used for speech gating. A model without a YAMNet branch
        raises: pass a YAMNet separately for it."""
        if self.yamnet is None:
            raise ValueError("this model has no YAMNet branch: AudioSet scores need one")
        feats = self.extract(x, tuple(dict.fromkeys(self.streams + ("yamnet",))))
        scores = torch.sigmoid(self.yamnet.classifier(feats["yamnet"]))
        return self.head({s: feats[s] for s in self.streams}), scores

    def patch_outputs(self, x: torch.Tensor, audioset: bool = True) -> tuple[torch.Tensor, torch.Tensor | None]:
        """What inference reads per patch, ``(outputs (B, K), AudioSet scores (B, 521) or
        None; ``audioset=False``: None)``: the emotion softmax (``K = C``) for the vote, the embedding ``z``
        (``K = width``) for statistics pooling, whose decision needs the whole utterance
        (:mod:`emolens.models.decision`)."""
        with_as = audioset and self.yamnet is not None
        feats = self.extract(x, tuple(dict.fromkeys(self.streams + (("yamnet",) if with_as else ()))))
        scores = torch.sigmoid(self.yamnet.classifier(feats["yamnet"])) if with_as else None
        return self.head.outputs(self.head.embed({s: feats[s] for s in self.streams})), scores

    # -- training scopes and explanation hooks ------------------------------------
    def set_finetune(self, mode: str) -> list[nn.Parameter]:
        """Freeze/unfreeze backbones for ``mode`` in {head, top, all}; returns the
        trainable backbone parameters (the head is always trainable)."""
        if mode not in ("head", "top", "all"):
            raise ValueError(f"finetune mode {mode!r}: use head, top or all")
        trainable: list[nn.Parameter] = []
        for bb in (self.vggish, self.yamnet):
            if bb is None:
                continue
            for p in bb.parameters():
                p.requires_grad_(mode == "all")
        if mode == "top":
            mods: list[nn.Module] = []
            if self.vggish is not None:
                mods += [self.vggish.features[i] for i in range(11, len(self.vggish.features))]
                mods.append(self.vggish.embeddings)
            if self.yamnet is not None:
                mods += list(self.yamnet.layers[-2:])
            for m in mods:
                for p in m.parameters():
                    p.requires_grad_(True)
        for bb in (self.vggish, self.yamnet):
            if bb is not None:
                trainable += [p for p in bb.parameters() if p.requires_grad]
        return trainable

    def gradcam_layers(self) -> dict[str, nn.Module]:
        """Conv layers for Grad-CAM: VGGish's last conv ReLU (12x8 cells of 8 frames x
        8 bands: fine) and YAMNet's last depthwise-separable block (3x2 cells: coarse)."""
        layers: dict[str, nn.Module] = {}
        if self.vggish is not None:
            layers["vggish"] = self.vggish.features[14]
        if self.yamnet is not None:
            layers["yamnet"] = self.yamnet.layers[-1]
            layers["yamnet_mid"] = self.yamnet.layers[YAMNET_MID_LAYER]  # 6x4 cells
        return layers


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


__all__ = ["FusionNet", "FusionHead", "POOLINGS", "pooled_stats", "MODEL_STREAMS", "RAW_DIMS", "vggish_to_yamnet_input", "count_parameters"]
