"""``timeline --adapt``: one long recording is one voice; adapt all its patches at once
(from its own statistics, or with ``--neutral`` from a recording of the voice speaking
neutrally)."""

from __future__ import annotations

import numpy as np

from emolens.adaptation.runtime import (
    GroupReport,
    enrolment,
    head_outputs,
    prosody_enrolment,
    require_adapter,
    stream_features,
)
from emolens.adaptation.transform import GATE_REASON, adapt_rule, stretch_clips


def adapt_recording(rec, feats: list[dict[str, np.ndarray]], voting: np.ndarray,  # noqa: ANN001
                    neutral: list | None = None) -> tuple[np.ndarray, str, np.ndarray | None]:
    """Patch outputs ``(P, K)`` (:func:`~emolens.adaptation.runtime.head_outputs`) of a recording
    from its blocks' stream features (``[{stream: (n_b, D)}, ...]``) adapted with the
    statistics of its ``voting (P,)`` patches, or enrolled with ``neutral`` (decoded clips
    of the voice speaking neutrally), the one-line note saying what was done, and (a
    prosody head enrolled with ``neutral``) the ``(P,)`` offset to subtract from the
    recording's prosody functionals, else None."""
    adapter = require_adapter(rec, unlabelled=not neutral)
    x = {k: np.concatenate([f[k] for f in feats]) for k in feats[0]}
    hop_s = rec.patch_config.hop_frames * rec.frontend.frame_seconds
    if neutral:
        patches = np.concatenate([rec.prepare_clip(c)[1] for c in neutral])
        nf, audioset = stream_features(rec, patches)
        off, secs = enrolment(rec, adapter, nf, audioset, np.zeros(len(patches), int), 1)
        if secs[0] <= 0:
            return head_outputs(rec, x), "adapt: not adapted: the --neutral clip has no speech", None
        x = adapter.subtract(x, np.zeros(len(voting), int), off)
        n = len(neutral)
        report = GroupReport("this recording", 1, float(secs[0]), True, None, enrolled=n)
        shift = prosody_enrolment(rec, [report], {report.key: [rec.clip_prosody(c.samples) for c in neutral]})
        return head_outputs(rec, x), (f"adapt: enrolled this recording's voice with {n} neutral clip{'s' if n != 1 else ''} "
                                      f"({secs[0]:.1f} s of speech)"), shift.get(report.key)
    seconds = float(np.sum(voting)) * hop_s
    reason = adapt_rule(1, seconds, adapter.config, single_recording=True)
    one = np.zeros(len(voting), int)
    if reason is None and adapter.config.method == "gated":  # method gated: the recording's stretches are its clips
        clips = stretch_clips([len(voting)], round(adapter.config.gate_window_seconds / hop_s))
        if not adapter.gate_fires(x, one, voting, clips)[0]:
            reason = GATE_REASON
    report = GroupReport("this recording", 1, seconds, reason is None, reason)
    if reason is None:
        x = adapter.apply(x, one, voting, np.array([seconds]), np.array([True]), method=adapter.shift_method())
        return head_outputs(rec, x), f"adapt: {report.message()}", None
    return head_outputs(rec, x), f"adapt: not adapted: {reason}", None


__all__ = ["adapt_recording"]
