"""``timeline --adapt``: one long recording is one voice; adapt all its patches at once."""

from __future__ import annotations

import numpy as np

from emolens.adaptation.runtime import GroupReport, head_outputs, require_adapter
from emolens.adaptation.transform import adapt_rule


def adapt_recording(rec, feats: list[dict[str, np.ndarray]], voting: np.ndarray) -> tuple[np.ndarray, str]:  # noqa: ANN001
    """Patch outputs ``(P, K)`` (:func:`~emolens.adaptation.runtime.head_outputs`) of a recording from its blocks' stream features
    (``[{stream: (n_b, D)}, ...]``) adapted with the statistics of its ``voting (P,)``
    patches, and the one-line note saying what was done."""
    adapter = require_adapter(rec)
    x = {k: np.concatenate([f[k] for f in feats]) for k in feats[0]}
    hop_s = rec.patch_config.hop_frames * rec.frontend.frame_seconds
    seconds = float(np.sum(voting)) * hop_s
    reason = adapt_rule(1, seconds, adapter.config, single_recording=True)
    report = GroupReport("this recording", 1, seconds, reason is None, reason)
    if reason is None:
        x = adapter.apply(x, np.zeros(len(voting), int), voting, np.array([seconds]), np.array([True]))
        return head_outputs(rec, x), f"adapt: {report.message()}"
    return head_outputs(rec, x), f"adapt: not adapted: {reason}"


__all__ = ["adapt_recording"]
