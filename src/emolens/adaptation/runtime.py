"""``--adapt`` at prediction time: stream features of the user's clips, their speech
patches' statistics per voice group, the adapted features through the model's head.

Runs in PyTorch (the adaptation sits between the backbone and the head, which the
exported ONNX graph fuses), like ``--normalize speaker`` models do.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from emolens.adaptation.transform import GATE_REASON, SpeakerAdapter, adapt_rule, stretch_clips
from emolens.errors import ModelError
from emolens.selection.speech import decide, voting_mask


@dataclass
class GroupReport:
    """What ``--adapt`` did for one voice group."""

    key: str
    clips: int
    speech_seconds: float
    adapted: bool
    reason: str | None = None
    enrolled: int = 0  # neutral clips it was enrolled with (--neutral); 0: unlabelled adaptation

    def message(self) -> str:
        if self.adapted and self.enrolled:
            return (f"adapted to voice {self.key!r} from {self.enrolled} neutral clip{'s' if self.enrolled != 1 else ''} "
                    f"({self.speech_seconds:.1f} s of speech); {self.clips} clip{'s' if self.clips != 1 else ''} classified")
        if self.adapted:
            return (f"adapted to voice {self.key!r}: {self.clips} clip{'s' if self.clips != 1 else ''}, "
                    f"{self.speech_seconds:.1f} s of speech")
        return f"voice {self.key!r}: {self.reason}"


def require_adapter(rec, unlabelled: bool = True) -> SpeakerAdapter:  # noqa: ANN001 - EmotionRecognizer
    """The model's adapter, or a one-line ModelError saying why ``--adapt`` cannot run
    (``unlabelled``: without ``--neutral``, method ``gated`` needs its spread gate)."""
    adapter = getattr(rec, "adapter", None)
    if adapter is None:
        raise ModelError(f"{rec.model_dir or 'this model'} has no adaptation statistics (adaptation.safetensors); "
                         "fit them with emolens.adaptation.store.fit_for_model(WORK, MODEL) or drop --adapt")
    if rec.normalize != "none":
        raise ModelError("--adapt needs a model trained without --normalize")
    if unlabelled and adapter.config.method == "gated" and adapter.gate is None:
        raise ModelError(f"{rec.model_dir or 'this model'}'s adaptation statistics have no spread gate (method gated); "
                         "refit them with emolens.adaptation.store.fit_for_model(WORK, MODEL) or drop --adapt")
    return adapter


def measured_note(rec) -> str | None:  # noqa: ANN001 - EmotionRecognizer
    """One line with what ``--adapt`` measured on the model's own leave-one-corpus-out folds
    (``card.adaptation_loco`` of ``model.json``, written by ``scripts/train_default``), or None."""
    m = (rec.config.get("card") or {}).get("adaptation_loco")
    adapter = getattr(rec, "adapter", None)
    method = adapter.config.method if adapter is not None else "nap"
    if not m or method not in m:
        return None
    line = (f"on this model's leave-one-corpus-out folds --adapt ({method}) changed UAR by "
            f"{m[method] - m['single']:+.3f} (speakers with all their emotions) and "
            f"{m[f'one_{method}'] - m['one_single']:+.3f} (speakers showing one emotion)")
    if f"two_{method}" in m:
        line += f", and by {m[f'two_{method}'] - m['two_single']:+.3f} where speakers show two emotions"
    if "enrol" in m:
        line += (f"; with one --neutral clip of the voice by {m['enrol'] - m['enrol_single']:+.3f} and "
                 f"{m['one_enrol'] - m['one_enrol_single']:+.3f}")
    return line + "; see MODEL_CARD.md"


def enrolment_note(rec) -> str | None:  # noqa: ANN001 - EmotionRecognizer
    """The ``--neutral`` figures alone (the line ``--adapt --neutral`` prints), or None."""
    m = (rec.config.get("card") or {}).get("adaptation_loco")
    if not m or "enrol" not in m:
        return None
    return (f"on this model's leave-one-corpus-out folds one neutral clip per voice changed UAR by "
            f"{m['enrol'] - m['enrol_single']:+.3f} (speakers with all their emotions) and "
            f"{m['one_enrol'] - m['one_enrol_single']:+.3f} (speakers showing one emotion); see MODEL_CARD.md")


@torch.no_grad()
def stream_features(rec, patches: np.ndarray, batch_size: int = 64) -> tuple[dict[str, np.ndarray], np.ndarray | None]:  # noqa: ANN001
    """``({stream: (n, D)}, AudioSet scores (n, 521) or None)`` of log-mel patches ``(n, 96, 64)``."""
    model = rec.model
    streams = model.streams
    with_as = model.yamnet is not None
    wanted = tuple(dict.fromkeys(streams + (("yamnet",) if with_as else ())))
    chunks: dict[str, list[np.ndarray]] = {}
    for s in range(0, len(patches), batch_size):
        x = torch.from_numpy(np.ascontiguousarray(patches[s : s + batch_size], dtype=np.float32)).unsqueeze(1)
        for k, v in model.extract(x, wanted).items():
            chunks.setdefault(k, []).append(v.numpy())
    feats = {k: np.concatenate(v) if v else np.zeros((0, 0), np.float32) for k, v in chunks.items()}
    audioset = None
    if with_as:
        audioset = torch.sigmoid(model.yamnet.classifier(torch.from_numpy(feats["yamnet"]))).numpy()
    elif rec.speech_gate.enabled:
        audioset = rec.gate_audioset(patches, batch_size)
    return {k: feats[k] for k in streams}, audioset


@torch.no_grad()
def head_outputs(rec, feats: dict[str, np.ndarray], batch_size: int = 1024) -> np.ndarray:  # noqa: ANN001
    """The model's per-patch outputs ``(n, K)`` on stream features, as its backend gives
    them (:meth:`FusionNet.patch_outputs`): the softmax of a voting head, the embedding of
    a statistics-pooling one (the recognizer's ``decision`` decides from them)."""
    head = rec.model.head
    n = len(next(iter(feats.values())))
    out = []
    for s in range(0, n, batch_size):
        z = head.embed({k: torch.from_numpy(np.ascontiguousarray(v[s : s + batch_size])) for k, v in feats.items()})
        out.append(head.outputs(z).numpy())
    return np.concatenate(out) if out else np.zeros((0, head.output_width), np.float32)


def patch_voting(rec, audioset: np.ndarray | None, keep: np.ndarray) -> np.ndarray:  # noqa: ANN001
    """The voting rule of :meth:`EmotionRecognizer.analyze_clips` for one clip's patches."""
    if not rec.speech_gate.enabled or audioset is None:
        return np.asarray(keep, bool)
    return voting_mask(decide(audioset, rec.speech_gate).is_speech, keep)


def enrolment(rec, adapter: SpeakerAdapter, feats: dict[str, np.ndarray], audioset: np.ndarray | None,  # noqa: ANN001
              groups: np.ndarray, n_groups: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Neutral enrolment from the stream features ``{stream: (Pe, D)}`` of the neutral
    clips' patches (their AudioSet scores ``(Pe, 521)`` pick the speech patches; group ids
    ``groups (Pe,)`` in ``0..n_groups-1``): ``(offsets {stream: (G, D)}, neutral speech
    seconds (G,))``; a group without neutral speech gets a zero offset."""
    ref = adapter.config.reference
    if ref not in rec.classes:
        raise ModelError(f"--neutral: this model has no {ref!r} class to enrol a voice with")
    groups = np.asarray(groups, int)
    gate = rec.speech_gate
    speech = (decide(audioset, gate).is_speech if audioset is not None and gate.enabled and len(groups)
              else np.ones(len(groups), bool))
    hop_s = rec.patch_config.hop_frames * rec.frontend.frame_seconds
    seconds = np.bincount(groups[speech], minlength=n_groups).astype(float) * hop_s
    if not speech.any():
        return {k: np.zeros((n_groups, v.shape[1]), np.float32) for k, v in feats.items()}, seconds
    off = adapter.enrolment_offsets({k: v[speech] for k, v in feats.items()}, groups[speech],
                                    np.ones(int(speech.sum()), bool), seconds, rec.classes.index(ref))
    return off, seconds


def adapted_outputs(rec, parts: list, groups: list | None, batch_size: int | None = None,  # noqa: ANN001
                    single_recording: bool = False, neutral: dict[str, list] | None = None,
                    ) -> tuple[np.ndarray, np.ndarray | None, list[GroupReport], np.ndarray]:
    """For clips' prepared parts ``[(log_mel, patches (n_i, 96, 64), keep (n_i,)), ...]``
    grouped by voice ``groups`` (one key per clip; ``None``: all clips are one voice):
    ``(patch outputs (P, K) as the backend's (see :func:`head_outputs`), AudioSet scores
    (P, 521) or None, one GroupReport per group, per-clip adapted flags (N,))``.

    Without ``neutral``: unlabelled adaptation; groups that fail :func:`adapt_rule`, or that
    method ``gated``'s spread gate leaves alone, keep their single-clip features. With
    ``neutral`` (``{group key: prepared parts of clips of that voice speaking neutrally}``):
    neutral enrolment
    (:meth:`~emolens.adaptation.transform.SpeakerAdapter.enrolment_offsets`); a group
    without a neutral clip with speech is not adapted."""
    adapter = require_adapter(rec, unlabelled=neutral is None)
    keys = [str(g) for g in (groups if groups is not None else ["all"] * len(parts))]
    uniq, clip_gid = np.unique(np.asarray(keys), return_inverse=True)
    enrol_parts, enrol_gid = [], []
    if neutral is not None:
        for g, key in enumerate(uniq):
            for q in neutral.get(str(key), []):
                enrol_parts.append(q)
                enrol_gid.append(g)
    patches = np.concatenate([p[1] for p in parts] + [q[1] for q in enrol_parts])
    feats, audioset = stream_features(rec, patches, batch_size or 64)
    sizes = [len(p[1]) for p in parts]
    bounds = np.cumsum([0] + sizes)
    n_main = int(bounds[-1])
    voting = np.concatenate([patch_voting(rec, None if audioset is None else audioset[bounds[i]:bounds[i + 1]], p[2])
                             for i, p in enumerate(parts)])
    gid = np.repeat(clip_gid, sizes)
    hop_s = rec.patch_config.hop_frames * rec.frontend.frame_seconds
    main = {k: v[:n_main] for k, v in feats.items()}
    reports, ok = [], np.zeros(len(uniq), bool)
    n_clips = np.bincount(clip_gid, minlength=len(uniq))
    if neutral is None:
        seconds = np.bincount(gid, weights=voting.astype(float), minlength=len(uniq)) * hop_s
        fires = None
        if adapter.config.method == "gated":  # a long recording's stretches are its clips (as in timeline)
            clips = (stretch_clips(sizes, round(adapter.config.gate_window_seconds / hop_s)) if single_recording
                     else np.repeat(np.arange(len(parts)), sizes))
            fires = adapter.gate_fires(main, gid, voting, clips)
        for g, key in enumerate(uniq):
            reason = adapt_rule(int(n_clips[g]), float(seconds[g]), adapter.config, single_recording=single_recording)
            if reason is None and fires is not None and not fires[g]:
                reason = GATE_REASON
            ok[g] = reason is None
            reports.append(GroupReport(str(key), int(n_clips[g]), float(seconds[g]), ok[g], reason))
        adapted = adapter.apply(main, gid, voting, seconds, ok, method=adapter.shift_method())
        return head_outputs(rec, adapted), (None if audioset is None else audioset[:n_main]), reports, ok[clip_gid]
    e_gid = np.repeat(np.asarray(enrol_gid, int), [len(q[1]) for q in enrol_parts])
    off, seconds = enrolment(rec, adapter, {k: v[n_main:] for k, v in feats.items()},
                             None if audioset is None else audioset[n_main:], e_gid, len(uniq))
    for g, key in enumerate(uniq):
        n_ref = int(np.sum(np.asarray(enrol_gid) == g))
        if n_ref == 0:
            reason = "no neutral clip of this voice (--neutral): classified clip by clip"
        elif seconds[g] <= 0:
            reason = "its neutral clip has no speech: classified clip by clip"
        else:
            reason = None
        ok[g] = reason is None
        reports.append(GroupReport(str(key), int(n_clips[g]), float(seconds[g]), ok[g], reason, enrolled=n_ref))
    adapted = adapter.subtract(main, gid, off, ok)
    return head_outputs(rec, adapted), (None if audioset is None else audioset[:n_main]), reports, ok[clip_gid]


def prosody_enrolment(rec, reports: list[GroupReport], enrol_prosody: dict[str, list[np.ndarray]]  # noqa: ANN001
                      ) -> dict[str, np.ndarray]:
    """For a model with a prosody stream: ``{group key: (P,) offset}`` to subtract from the
    prosody functionals of every clip of each enrolled voice (``reports``: the groups
    :func:`adapted_outputs` enrolled; ``enrol_prosody``: their neutral clips' functionals),
    so the neutral clips' mean sits at the training neutral mean (shrunk by the same speech
    seconds as the stream offsets). Empty when the model has none or nothing was enrolled."""
    adapter = rec.adapter
    if not getattr(rec, "needs_prosody", False) or adapter is None or adapter.prosody_means is None:
        return {}
    ref = rec.classes.index(adapter.config.reference)
    width = adapter.prosody_means.shape[1]  # the functionals (a Whisper stream after them in q is not shifted)
    out = {}
    for r in reports:
        qs = enrol_prosody.get(r.key) or []
        if r.adapted and r.enrolled and qs:
            q = np.stack([np.asarray(v, np.float64)[:width] for v in qs])
            out[r.key] = adapter.prosody_offsets(q, np.zeros(len(qs), int), np.array([r.speech_seconds]), ref)[0]
    return out


__all__ = [
    "prosody_enrolment",
    "GroupReport", "measured_note", "enrolment_note", "enrolment", "require_adapter", "stream_features", "head_outputs", "adapted_outputs"]
