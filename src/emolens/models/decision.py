"""The utterance decision from per-patch model outputs, in numpy (no torch).

A backend returns one row per patch (:meth:`FusionNet.patch_outputs`); what the row is
and how an utterance is decided from its voting patches depends on the head's pooling
(model.json ``head.pooling``; :mod:`emolens.models.fusion`):

* :class:`PatchVote` (``mean``): rows are the emotion softmax ``(n, C)``; the utterance
  is their mean over the voting patches.
* :class:`StatisticsPooling` (``mean+std``): rows are the normalised stream vector
  ``z (n, D)``; the utterance logits are ``W [mu, sigma] + b`` with the mean and
  standard deviation of ``z`` over the voting patches. A patch's own probabilities
  (the patch timeline, the maps' per-patch labels) are the softmax of its exact share of
  those logits, ``c_i = W [z_i, (z_i - mu)**2 / sigma] + b`` (their mean over the voting
  patches is the utterance logits), so no patch is decided out of its utterance.

* :class:`ProsodyPooling` (``mean+prosody``): rows are ``[z_i, q_i]``, the embedding
  followed by the clip's raw prosody functionals (the recognizer appends them,
  :meth:`emolens.inference.EmotionRecognizer.with_prosody`; a long recording's rows each
  carry their window's functionals); ``logits = W [mean(z), s(q)] + b`` and a patch's
  share ``c_i = W [z_i, s(q)] + b``. A head with a Whisper stream (model.json ``head.whisper``)
  reads ``q = [q_p, q_w]``: the functionals, then the clip's pooled Whisper encoder state,
  scaled ``[s(q_p), w_weight * ln(q_w)]`` (``ln``: per-row standardisation, eps 1e-5).

All share one interface: ``decide(outputs, voting) -> Decided`` and
``patch_probs(outputs, context)``; :func:`decision_for` builds the one of a model.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from emolens.features.patches import window_bounds

#: Floor of sigma (as :data:`emolens.models.fusion.SIGMA_FLOOR`; a one-patch utterance has sigma 0).
SIGMA_FLOOR = 1e-6


def softmax(logits: np.ndarray) -> np.ndarray:
    """Softmax over the last axis (float32)."""
    x = np.asarray(logits, np.float64)
    x = np.exp(x - x.max(-1, keepdims=True))
    return (x / x.sum(-1, keepdims=True)).astype(np.float32)


@dataclass
class Decided:
    """One utterance's decision: ``patch_probs (n, C)``, ``probs (C,)`` (before
    calibration) and the context it was decided in: ``(mu, sigma)`` for statistics
    pooling, ``(q, mu)`` (raw prosody functionals, mean embedding) for the prosody head,
    ``None`` for the vote."""

    patch_probs: np.ndarray
    probs: np.ndarray
    context: tuple[np.ndarray, np.ndarray] | None = None


class PatchVote:
    """The thesis's decision: mean of the voting patches' softmax."""

    pooling = "mean"

    def decide(self, outputs: np.ndarray, voting: np.ndarray) -> Decided:
        v = np.asarray(voting, bool)
        sel = outputs[v] if v.any() else outputs
        return Decided(outputs, sel.mean(0) if len(sel) else np.full(outputs.shape[1], np.nan, np.float32))

    def patch_probs(self, outputs: np.ndarray, context=None) -> np.ndarray:  # noqa: ANN001 - unused
        return outputs

    def windows(self, outputs: np.ndarray, voting: np.ndarray, n: int) -> np.ndarray:
        """Per-patch probabilities of a long recording (the vote needs no context)."""
        return outputs


@dataclass
class StatisticsPooling:
    """``logits = weight @ [mu, sigma] + bias``; ``weight (C, 2D)``, ``bias (C,)``."""

    weight: np.ndarray
    bias: np.ndarray
    pooling = "mean+std"

    @property
    def width(self) -> int:
        return self.weight.shape[1] // 2

    def stats(self, z: np.ndarray, voting: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``(mu, sigma)`` ``(D,)`` over the voting rows of ``z (n, D)`` (all rows when none votes)."""
        z = np.asarray(z, np.float64)
        if voting is not None and np.any(voting):
            z = z[np.asarray(voting, bool)]
        mu = z.mean(0)
        return mu, np.sqrt(np.maximum(((z - mu) ** 2).mean(0), SIGMA_FLOOR ** 2))

    def logits(self, mu: np.ndarray, sigma: np.ndarray) -> np.ndarray:
        """Utterance logits ``(..., C)`` from ``mu, sigma (..., D)``."""
        return np.concatenate([mu, sigma], -1) @ self.weight.T.astype(np.float64) + self.bias

    def contributions(self, z: np.ndarray, context: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
        """Each patch's share ``(n, C)`` of the utterance logits in ``context = (mu, sigma)``."""
        mu, sigma = context
        z = np.asarray(z, np.float64)
        return self.logits(z, (z - mu) ** 2 / np.maximum(sigma, SIGMA_FLOOR))

    def decide(self, outputs: np.ndarray, voting: np.ndarray) -> Decided:
        ctx = self.stats(outputs, voting)
        return Decided(softmax(self.contributions(outputs, ctx)), softmax(self.logits(*ctx)), ctx)

    def patch_probs(self, outputs: np.ndarray, context: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
        """Softmax of the patches' shares in ``context`` (default: the rows' own statistics)."""
        return softmax(self.contributions(outputs, context if context is not None else self.stats(outputs)))

    def windows(self, outputs: np.ndarray, voting: np.ndarray, n: int) -> np.ndarray:
        """``(P, C)``: for every patch of a long recording, the decision of the centred
        window of ``n`` patches around it (its voting patches; all of them when none
        votes), i.e. what a clip of that span would be labelled. Running sums in float64."""
        z = np.asarray(outputs, np.float64)
        P = len(z)
        if P == 0:
            return np.zeros((0, len(self.bias)), np.float32)
        lo, hi = window_bounds(P, n)
        out = np.empty((P, len(self.bias)), np.float32)
        v = np.asarray(voting, bool)
        for s in range(0, P, 2048):  # bounded memory for hour-long recordings
            e = min(P, s + 2048)
            a, b = lo[s:e].min(), hi[s:e].max()
            w = v[a:b].astype(np.float64)
            zz = z[a:b]
            c1 = np.vstack([np.zeros((1, z.shape[1] + 1)), np.cumsum(np.hstack([zz * w[:, None], w[:, None]]), 0)])
            c2 = np.vstack([np.zeros((1, z.shape[1])), np.cumsum(zz * zz * w[:, None], 0)])
            a1 = np.vstack([np.zeros((1, z.shape[1])), np.cumsum(zz, 0)])
            a2 = np.vstack([np.zeros((1, z.shape[1])), np.cumsum(zz * zz, 0)])
            l, h = lo[s:e] - a, hi[s:e] - a
            cnt = c1[h, -1] - c1[l, -1]
            has = cnt > 0
            s1 = np.where(has[:, None], c1[h, :-1] - c1[l, :-1], a1[h] - a1[l])
            s2 = np.where(has[:, None], c2[h] - c2[l], a2[h] - a2[l])
            k = np.where(has, cnt, h - l)[:, None]
            mu = s1 / k
            sigma = np.sqrt(np.maximum(s2 / k - mu * mu, SIGMA_FLOOR ** 2))
            out[s:e] = softmax(self.logits(mu, sigma))
        return out


@dataclass
class ProsodyPooling:
    """``logits = weight @ [mu, s(q)] + bias``, ``s(q) = pweight * clip((q - mean) / scale, +-clip)``;
    ``weight (C, D + P + W)``, ``bias (C,)``, ``mean, scale (P,)``; ``n_whisper = W`` columns of a
    Whisper stream after the functionals (0: none), scaled ``s_w = wweight * ln(q_w)``.

    ``mlp`` (model.json ``head.whisper.mlp``): ``(W1 (H, W), b1 (H,), W2 (C, H), b2 (C,))`` of a
    one-hidden-layer MLP on ``s_w`` alone whose logits are added,
    ``+ W2 relu(W1 s_w + b1) + b2``: a per-recording term, so every patch's share is still
    ``weight @ [z_i, s(q)] + bias`` plus the same constant, and the prosody part stays linear."""

    weight: np.ndarray
    bias: np.ndarray
    mean: np.ndarray
    scale: np.ndarray
    pweight: float = 2.0
    clip: float = 6.0
    n_whisper: int = 0
    wweight: float = 1.0
    mlp: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None
    pooling = "mean+prosody"

    @property
    def n_prosody(self) -> int:
        """Columns of the prosody functionals in ``q``."""
        return len(self.mean)

    @property
    def n_utterance(self) -> int:
        """Columns of the clip's utterance vector ``q``: functionals, then the Whisper stream."""
        return self.n_prosody + self.n_whisper

    @property
    def width(self) -> int:
        """Columns of the embedding part of a row (the rows have ``width + n_utterance``)."""
        return self.weight.shape[1] - self.n_utterance

    def scaled(self, q: np.ndarray) -> np.ndarray:
        """``s(q)`` of a raw utterance vector ``q (..., P + W)``, float64."""
        q = np.asarray(q, np.float64)
        zq = self.pweight * np.clip((q[..., : self.n_prosody] - self.mean) / self.scale, -self.clip, self.clip)
        if not self.n_whisper:
            return zq
        w = q[..., self.n_prosody :]
        mu = w.mean(-1, keepdims=True)
        ln = (w - mu) / np.sqrt(((w - mu) ** 2).mean(-1, keepdims=True) + 1e-5)
        return np.concatenate([zq, self.wweight * ln], -1)

    def _split(self, outputs: np.ndarray, dtype=np.float64) -> tuple[np.ndarray, np.ndarray]:  # noqa: ANN001
        """``(z, q)`` of rows ``[z, q]``, or a one-line error saying what the rows lack."""
        o = np.asarray(outputs, dtype)
        if o.ndim != 2 or o.shape[1] != self.width + self.n_utterance:
            raise ValueError(f"prosody pooling reads rows [z ({self.width}), q ({self.n_utterance})], got {o.shape}")
        return o[:, : self.width], o[:, self.width :]

    def whisper_logits(self, s_w: np.ndarray) -> np.ndarray:
        """The MLP's logits ``(..., C)`` from the scaled Whisper stream ``s_w (..., W)`` (0 without one)."""
        if self.mlp is None:
            return np.zeros(np.shape(s_w)[:-1] + (len(self.bias),))
        w1, b1, w2, b2 = (np.asarray(a, np.float64) for a in self.mlp)
        return np.maximum(np.asarray(s_w, np.float64) @ w1.T + b1, 0.0) @ w2.T + b2

    def scaled_logits(self, mu: np.ndarray, s: np.ndarray) -> np.ndarray:
        """Logits ``(..., C)`` from ``mu (..., D)`` and an already scaled ``s = s(q) (..., P + W)``."""
        w = self.weight.astype(np.float64)
        return mu @ w[:, : self.width].T + s @ w[:, self.width :].T + self.bias + self.whisper_logits(s[..., self.n_prosody :])

    def logits(self, mu: np.ndarray, q: np.ndarray) -> np.ndarray:
        """Logits ``(..., C)`` from ``mu (..., D)`` and raw ``q (..., P + W)``."""
        return self.scaled_logits(mu, self.scaled(q))

    def decide(self, outputs: np.ndarray, voting: np.ndarray) -> Decided:
        z, q = self._split(outputs)
        v = np.asarray(voting, bool)
        sel = v if v.any() else np.ones(len(z), bool)
        if not len(z):
            return Decided(np.zeros((0, len(self.bias)), np.float32), np.full(len(self.bias), np.nan, np.float32))
        qc = q[sel].mean(0)  # one clip: every row carries the same functionals
        mu = z[sel].mean(0)
        return Decided(softmax(self.logits(z, qc)), softmax(self.logits(mu, qc)),
                       (qc.astype(np.float32), mu.astype(np.float32)))

    def patch_probs(self, outputs: np.ndarray, context: tuple | None = None) -> np.ndarray:
        """Softmax of the patches' shares: with the context's ``q`` (then the rows may be
        the embedding alone, ``(n, D)``), else each row's own."""
        o = np.asarray(outputs, np.float64)
        if context is not None and context[0] is not None:
            return softmax(self.logits(o[:, : self.width], np.asarray(context[0], np.float64)))
        z, q = self._split(o)
        return softmax(self.logits(z, q))

    def windows(self, outputs: np.ndarray, voting: np.ndarray, n: int) -> np.ndarray:
        """``(P, C)``: for every patch of a long recording the decision of the centred
        window of ``n`` patches (mean ``z`` of its voting patches, all of them when none
        votes) with the functionals its row carries (the window's, as the timeline fills them)."""
        z, q = self._split(outputs, np.float32)  # float64 only block by block (hour-long recordings)
        P = len(z)
        if P == 0:
            return np.zeros((0, len(self.bias)), np.float32)
        lo, hi = window_bounds(P, n)
        v = np.asarray(voting, bool).astype(np.float64)
        out = np.empty((P, len(self.bias)), np.float32)
        for s in range(0, P, 2048):  # bounded memory for hour-long recordings
            e = min(P, s + 2048)
            a, b = lo[s:e].min(), hi[s:e].max()
            w, zz = v[a:b], z[a:b].astype(np.float64)
            c1 = np.vstack([np.zeros((1, z.shape[1])), np.cumsum(zz * w[:, None], 0)])
            a1 = np.vstack([np.zeros((1, z.shape[1])), np.cumsum(zz, 0)])
            cw = np.concatenate([[0.0], np.cumsum(w)])
            l, h = lo[s:e] - a, hi[s:e] - a
            cnt = cw[h] - cw[l]
            mu = np.where((cnt > 0)[:, None], (c1[h] - c1[l]) / np.maximum(cnt, 1)[:, None], (a1[h] - a1[l]) / (h - l)[:, None])
            out[s:e] = softmax(self.logits(mu, q[s:e].astype(np.float64)))
        return out


Decision = PatchVote | StatisticsPooling | ProsodyPooling


def decision_for(config: dict, run_dir: str | Path | None = None, head_state: dict | None = None) -> Decision:
    """The decision of a model (model.json ``head.pooling``; default the vote). Statistics
    pooling reads its classifier from ``head_state`` (a torch state dict) or, without
    torch, from ``run_dir``'s ``model.safetensors``."""
    head = config.get("head") or {}
    pooling = head.get("pooling", "mean")
    if pooling == "mean":
        return PatchVote()
    if pooling not in ("mean+std", "mean+prosody"):
        from emolens.errors import ModelError

        raise ModelError(f"model.json head.pooling {pooling!r} is not one this emolens knows "
                         "(mean, mean+std, mean+prosody); update emolens")
    if head_state is not None:
        read = lambda k: head_state[k].detach().numpy().astype(np.float32)  # noqa: E731
    else:
        from safetensors.numpy import load_file

        from emolens.models.run_files import MODEL_FILE

        st = load_file(str(Path(run_dir) / MODEL_FILE))
        read = lambda k: st["head." + k].astype(np.float32)  # noqa: E731
    keys = ["classifier.1.weight", "classifier.1.bias"] + (["prosody_mean", "prosody_scale"] if pooling == "mean+prosody" else [])
    arrs = [read(k) for k in keys]
    if pooling == "mean+std":
        return StatisticsPooling(*arrs)
    p, w = head.get("prosody") or {}, head.get("whisper") or {}
    mlp = tuple(read(f"whisper_mlp.{k}") for k in ("0.weight", "0.bias", "2.weight", "2.bias")) if w.get("mlp") else None
    return ProsodyPooling(*arrs, pweight=float(p.get("weight", 2.0)), clip=float(p.get("clip", 6.0)),
                          n_whisper=int(w.get("dim", 0)), wweight=float(w.get("weight", 1.0)), mlp=mlp)


__all__ = ["Decided", "Decision", "PatchVote", "ProsodyPooling", "StatisticsPooling", "window_bounds", "decision_for", "softmax", "SIGMA_FLOOR"]
