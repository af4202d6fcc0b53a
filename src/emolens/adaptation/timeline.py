"""``timeline --adapt``: one long recording is one voice; adapt all its patches at once
(from its own statistics, or with ``--neutral`` from a recording of the voice speaking
neutrally)."""

from __future__ import annotations

import numpy as np

from emolens.adaptation.runtime import GroupReport, enrolment, head_outputs, require_adapter, stream_features
from emolens.adaptation.transform import adapt_rule


def adapt_recording(rec, feats: list[dict[str, np.ndarray]], voting: np.ndarray,  # noqa: ANN001
                    neutral: list | None = None) -> tuple[np.ndarray, str]:
    """Patch outputs ``(P, K)`` (:func:`~emolens.adaptation.runtime.head_outputs`) of a recording
    from its blocks' stream features (``[{stream: (n_b, D)}, ...]``) adapted with the
    statistics of its ``voting (P,)`` patches, or enrolled with ``neutral`` (decoded clips
    of the voice speaking neutrally), and the one-line note saying what was done."""
    adapter = require_adapter(rec)
    x = {k: np.concatenate([f[k] for f in feats]) for k in feats[0]}
    hop_s = rec.patch_config.hop_frames * rec.frontend.frame_seconds
    if neutral:
        patches = np.concatenate([rec.prepare_clip(c)[1] for c in neutral])
        nf, audioset = stream_features(rec, patches)
        off, secs = enrolment(rec, adapter, nf, audioset, np.zeros(len(patches), int), 1)
        if secs[0] <= 0:
            return head_outputs(rec, x), "adapt: not adapted: the --neutral clip has no speech"
        x = adapter.subtract(x, np.zeros(len(voting), int), off)
        n = len(neutral)
        return head_outputs(rec, x), (f"adapt: enrolled this recording's voice with {n} neutral clip{'s' if n != 1 else ''} "
                                      f"({secs[0]:.1f} s of speech)")
    seconds = float(np.sum(voting)) * hop_s
    reason = adapt_rule(1, seconds, adapter.config, single_recording=True)
    report = GroupReport("this recording", 1, seconds, reason is None, reason)
    if reason is None:
        x = adapter.apply(x, np.zeros(len(voting), int), voting, np.array([seconds]), np.array([True]))
        return head_outputs(rec, x), f"adapt: {report.message()}"
    return head_outputs(rec, x), f"adapt: not adapted: {reason}"


__all__ = ["adapt_recording"]
