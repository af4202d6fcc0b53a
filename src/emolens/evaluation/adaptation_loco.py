"""``--adapt`` measured on the leave-one-corpus-out folds of a yardstick row.

For every test corpus of :func:`emolens.evaluation.generalisation.loco_folds` the fold's
head is trained as :func:`~emolens.evaluation.generalisation.run_fold` trains it (same
seed: the same head as the LOCO table), the adaptation statistics are learned on the
fold's training corpora only (:func:`emolens.adaptation.store.fit_from_corpora`), and
each test speaker is adapted with its own unlabelled clips, under the rule ``--adapt``
applies (:func:`emolens.adaptation.transform.adapt_rule`: >= 3 clips and >= 10 s of
speech, else clip by clip). Two versions of every test corpus:

* **balanced**: each speaker with all of their clips;
* **one-emotion**: each speaker keeps the clips of one emotion (drawn per speaker,
  ``draws`` draws), the case where a shift estimated from a voice's own clips can erase
  its steady emotion. The single-clip UAR on the same clips is the reference;
* **two-emotion** (since stop 24): each speaker keeps the clips of two of its emotions
  (drawn, ``draws`` draws, keys ``two_*``), a calm and an angry stretch of one caller: a
  mix the balanced and one-emotion versions both miss, where a shift towards the
  training mean (which averages four emotions) moves the voice by the wrong amount.

UAR is pooled over the test corpus's clips, as in the LOCO table.

Methods: those of :class:`emolens.adaptation.transform.SpeakerAdapter` (``nap``, the
unlabelled ``--adapt`` before stop 23; ``protect``; ``mean``; ``gated``, the unlabelled
``--adapt`` since stop 23: the mean shift of the voices the spread gate says were heard in
several emotions; ``gated+prosody``, the same with the voice's prosody functionals shifted
too, measured and not shipped), ``enrol`` (``--adapt --neutral``: each
test speaker gives ``enrol_clips`` (1) neutral clips, drawn among speakers with at least one
more, which are not scored; the speaker's other clips are shifted so the enrolment sits at the training
neutral mean, :func:`enrolled_probs`; keys ``enrol_single`` / ``enrol`` on the scored
clips, ``one_enrol_single`` / ``one_enrol`` with one emotion per speaker among them) and ``prior`` (:func:`prior_aware_probs`, a
research variant, not shipped): the mean shift against the mean *expected under the
voice's own predicted emotion mix* instead of the training mean, re-estimated
``PRIOR_ITERATIONS`` times, so that a voice predicted to be steadily angry is not
shifted towards the average.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from emolens.adaptation.transform import one_emotion_draw, two_emotion_draw
from emolens.evaluation.generalisation import (
    CorpusFeatures,
    HeadConfig,
    loco_folds,
    run_fold,
    utterance_decisions,
    utterance_vector,
)
from emolens.evaluation.metrics import classification_report_dict

#: Seconds of audio per voting patch (the patch hop), as ``--adapt`` counts speech.
PATCH_HOP_SECONDS = 0.48
#: Re-estimations of the emotion mix in :func:`prior_aware_probs` (more made it worse: errors reinforce).
PRIOR_ITERATIONS = 3


def class_means(parts: Sequence[CorpusFeatures], streams: Sequence[str], n_classes: int) -> dict[str, np.ndarray]:
    """``{stream: (C, D)}`` mean feature of each class over the voting patches, every
    corpus weighing the same."""
    from emolens.selection.speech import voting_masks

    out = {}
    for s in streams:
        per = []
        for p in parts:
            v = voting_masks(p.speech, np.ones(len(p.utt), bool), p.utt)
            yp = p.y[p.utt]
            per.append(np.stack([p.feats[s][v & (yp == c)].mean(0) for c in range(n_classes)]))
        out[s] = np.mean(per, 0)
    return out


def prior_aware_probs(head, means: dict[str, np.ndarray], cf: CorpusFeatures, streams: Sequence[str],
                      config=None, iterations: int = PRIOR_ITERATIONS) -> np.ndarray:
    """Utterance probabilities ``(U, C)`` after the prior-aware mean shift of every voice
    (``means``: :func:`class_means` of the training corpora; rule and shrinkage of
    ``config``, default :class:`~emolens.adaptation.transform.AdaptConfig`)."""
    from emolens.adaptation.transform import AdaptConfig, adapt_rule
    from emolens.selection.speech import voting_masks

    config = config or AdaptConfig()
    voting = voting_masks(cf.speech, np.ones(len(cf.utt), bool), cf.utt)
    _, spk_utt = np.unique(np.asarray(cf.speakers).astype(str), return_inverse=True)
    groups = spk_utt[cf.utt]
    base = {s: cf.feats[s] for s in streams}
    probs = utterance_decisions(head, base, cf.utt, cf.speech, cf.n_utt, utterance_vector(head, cf))
    for _ in range(iterations):
        feats = {s: base[s].copy() for s in streams}
        for g in range(spk_utt.max() + 1):
            pm, um = groups == g, spk_utt == g
            sec = float((pm & voting).sum() * PATCH_HOP_SECONDS)
            if adapt_rule(int(um.sum()), sec, config) is not None:
                continue
            w = sec / (sec + config.shrink_seconds)
            mix = probs[um].mean(0)
            for s in streams:
                feats[s][pm] = base[s][pm] - w * (base[s][pm & voting].mean(0) - mix @ means[s])
        probs = utterance_decisions(head, feats, cf.utt, cf.speech, cf.n_utt, utterance_vector(head, cf))
    return probs


def _subset(cf: CorpusFeatures, keep_utt: np.ndarray) -> CorpusFeatures:
    """The corpus restricted to utterances ``keep_utt`` (re-indexed)."""
    keep_utt = np.sort(keep_utt)
    new = -np.ones(cf.n_utt, int)
    new[keep_utt] = np.arange(len(keep_utt))
    m = new[cf.utt] >= 0
    return replace(cf, feats={k: v[m] for k, v in cf.feats.items()}, utt=new[cf.utt[m]], speech=cf.speech[m],
                   y=cf.y[keep_utt], speakers=cf.speakers[keep_utt], paths=cf.paths[keep_utt],
                   egemaps=None if cf.egemaps is None else cf.egemaps[keep_utt],
                   prosody=None if cf.prosody is None else cf.prosody[keep_utt],
                   whisper=None if cf.whisper is None else cf.whisper[keep_utt])


def adapted_probs(head, adapter, cf: CorpusFeatures, streams: Sequence[str], method: str | None = None) -> np.ndarray:
    """Utterance probabilities ``(U, C)`` of ``cf`` with every speaker adapted on its own
    clips (speakers below the rule's minimum are left as they are)."""
    from emolens.adaptation.transform import adapt_rule
    from emolens.selection.speech import voting_masks

    voting = voting_masks(cf.speech, np.ones(len(cf.utt), bool), cf.utt)
    spk_ids, spk_utt = np.unique(np.asarray(cf.speakers).astype(str), return_inverse=True)
    groups = spk_utt[cf.utt]
    seconds = np.bincount(groups, weights=voting.astype(float), minlength=len(spk_ids)) * PATCH_HOP_SECONDS
    clips = np.bincount(spk_utt, minlength=len(spk_ids))
    ok = np.array([adapt_rule(int(n), float(s), adapter.config) is None for n, s in zip(clips, seconds)])
    x = {s: cf.feats[s] for s in streams}
    if method in ("gated", "gated+prosody"):  # the gate decided once; the admitted voices get the mean shift
        ok = ok & adapter.gate_fires(x, groups, voting, cf.utt)
    feats = adapter.apply(x, groups, voting, seconds, ok, method=adapter.shift_method(method))
    q = utterance_vector(head, cf)
    if method == "gated+prosody" and q is not None and adapter.prosody_means is not None:
        w = seconds / (seconds + adapter.config.shrink_seconds) * ok  # research variant: functionals shifted too
        q = q.copy()
        q[:, : cf.prosody.shape[1]] -= adapter.utterance_offsets(cf.prosody, spk_utt, w)[spk_utt]
    return utterance_decisions(head, feats, cf.utt, cf.speech, cf.n_utt, q)


def enrolled_probs(head, adapter, cf: CorpusFeatures, streams: Sequence[str], enrol: dict[str, np.ndarray],
                   reference: int, whisper_means: np.ndarray | None = None) -> np.ndarray:
    """Utterance probabilities ``(U, C)`` of ``cf`` with every speaker in ``enrol``
    (``{speaker: enrolment utterance ids}``) shifted by its enrolment clips
    (:meth:`~emolens.adaptation.transform.SpeakerAdapter.enrolment_offsets`); other
    speakers as they are. ``whisper_means`` ``(C, W)``: the training class means of the raw
    Whisper stream, to shift a Whisper head's stream too (measured and not shipped)."""
    spk = np.asarray(cf.speakers).astype(str)
    names = sorted(enrol)
    gid_of = {n: i for i, n in enumerate(names)}
    g_utt = np.array([gid_of.get(x, -1) for x in spk])
    groups = g_utt[cf.utt]
    is_enrol = np.zeros(cf.n_utt, bool)
    for e in enrol.values():
        is_enrol[e] = True
    pe = is_enrol[cf.utt] & cf.speech
    seconds = np.bincount(groups[pe], minlength=len(names)) * PATCH_HOP_SECONDS
    off = adapter.enrolment_offsets({s: cf.feats[s][pe] for s in streams}, groups[pe], np.ones(int(pe.sum()), bool),
                                    seconds, reference)
    off = {s: np.vstack([o, np.zeros((1, o.shape[1]), np.float32)]) for s, o in off.items()}  # row -1: not enrolled
    feats = adapter.subtract({s: cf.feats[s] for s in streams}, np.where(groups < 0, len(names), groups), off)
    q = utterance_vector(head, cf)
    if q is not None and getattr(head, "pooling", "mean") == "mean+prosody" and adapter.prosody_means is not None:
        # a prosody head: the voice's functionals shifted by its enrolment clips' too (as predict --neutral;
        # a Whisper stream after them is not shifted)
        eu = np.concatenate([np.asarray(enrol[n]) for n in names]) if names else np.zeros(0, int)
        eg = np.concatenate([np.full(len(enrol[n]), i) for i, n in enumerate(names)]) if names else np.zeros(0, int)
        qoff = adapter.prosody_offsets(cf.prosody[eu], eg, seconds, reference)
        P = cf.prosody.shape[1]
        q = q.copy()
        row = np.where(g_utt < 0, len(names), g_utt)
        q[:, :P] -= np.vstack([qoff, np.zeros((1, qoff.shape[1]), np.float32)])[row]
        if whisper_means is not None and q.shape[1] > P:
            woff = adapter.prosody_offsets(cf.whisper[eu], eg, seconds, reference, whisper_means)
            q[:, P:] -= np.vstack([woff, np.zeros((1, woff.shape[1]), np.float32)])[row]
    return utterance_decisions(head, feats, cf.utt, cf.speech, cf.n_utt, q)


def _enrol_rows(head, adapter, te: CorpusFeatures, streams: Sequence[str], rng, draws: int,
                n_enrol: int = 1, whisper_means: np.ndarray | None = None) -> dict[str, float]:
    """The ``enrol`` keys of :func:`adaptation_loco` for one test corpus (module doc)."""
    ref = te.classes.index(adapter.config.reference)
    spk = np.asarray(te.speakers).astype(str)
    single = utterance_decisions(head, {s: te.feats[s] for s in streams}, te.utt, te.speech, te.n_utt,
                                  utterance_vector(head, te))
    out = {k: [] for k in ("enrol_single", "enrol", "one_enrol_single", "one_enrol")}
    for _ in range(draws):
        enrol = {}
        for s in np.unique(spk):
            idx = np.flatnonzero((spk == s) & (te.y == ref))
            if len(idx) >= n_enrol + 1:
                enrol[s] = rng.choice(idx, n_enrol, replace=False)
        probs = enrolled_probs(head, adapter, te, streams, enrol, ref, whisper_means)
        scored = np.isin(spk, list(enrol))
        for e in enrol.values():
            scored[e] = False
        out["enrol_single"].append(_uar(single[scored], te.y[scored], te.classes))
        out["enrol"].append(_uar(probs[scored], te.y[scored], te.classes))
        one = np.zeros(te.n_utt, bool)
        for s in enrol:
            idx = np.flatnonzero((spk == s) & scored)
            one[idx[te.y[idx] == rng.choice(np.unique(te.y[idx]))]] = True
        out["one_enrol_single"].append(_uar(single[one], te.y[one], te.classes))
        out["one_enrol"].append(_uar(probs[one], te.y[one], te.classes))
    return {k: float(np.mean(v)) for k, v in out.items()}


def _whisper_class_means(corpora: Sequence[CorpusFeatures]) -> np.ndarray:
    """``(C, W)``: each emotion's mean raw Whisper stream over the training corpora, balanced over
    speakers as the functionals' (``enrol_whisper``; ValueError when a corpus lacks the stream)."""
    from emolens.adaptation.transform import prosody_class_means

    if any(c.whisper is None for c in corpora):
        raise ValueError("enrol_whisper needs the Whisper stream of every training corpus: load it (HEADS['whisper'])")
    spk = np.concatenate([np.char.add(f"{c.name}/", np.asarray(c.speakers).astype(str)) for c in corpora])
    return prosody_class_means(np.concatenate([c.whisper for c in corpora]), spk, np.concatenate([c.y for c in corpora]),
                               len(corpora[0].classes))


def _uar(probs: np.ndarray, y: np.ndarray, classes: list[str]) -> float:
    return float(classification_report_dict(y, probs.argmax(1), classes)["uar"])


def adaptation_loco(cfg: HeadConfig, data: dict[str, CorpusFeatures], *, seed: int = 0,
                    evaluate_only: Sequence[str] | None = None, methods: Sequence[str] = ("nap", "mean"),
                    draws: int = 3, prior_iterations: int = PRIOR_ITERATIONS, log=None, enrol_clips: int = 1,
                    enrol_whisper: bool = False) -> dict:
    """``{"per_corpus": {corpus: {"single", "<method>", "one_single", "one_<method>", "two_single",
    "two_<method>"}}, "mean": {...}}``: UAR single clip and adapted (each method), on the balanced,
    the one-emotion and the two-emotion-per-speaker version of every test corpus (mean over
    ``draws`` draws).
    ``enrol_whisper``: method ``enrol`` shifts a Whisper head's stream by the enrolment clips'
    too (a measured research variant: ``--neutral`` at run time shifts the functionals only)."""
    from emolens.adaptation.store import fit_from_corpora

    per = {}
    for fold in loco_folds(list(data), evaluate_only):
        _, head = run_fold(cfg, data, fold, seed)
        if head is None:
            raise ValueError("adaptation_loco needs a head the model can ship (the vote, pooling mean+std, or "
                             "emolens's prosody stream; no NAP or hidden layer)")
        adapter = fit_from_corpora([data[c] for c in fold.train], cfg.streams)
        te = data[fold.test]
        means = class_means([data[c] for c in fold.train], cfg.streams, len(te.classes)) if "prior" in methods else None

        def run(m: str, cf: CorpusFeatures) -> np.ndarray:
            if m == "prior":
                return prior_aware_probs(head, means, cf, cfg.streams, adapter.config, prior_iterations)
            return adapted_probs(head, adapter, cf, cfg.streams, m)

        single = utterance_decisions(head, {s: te.feats[s] for s in cfg.streams}, te.utt, te.speech, te.n_utt,
                                      utterance_vector(head, te))
        row = {"single": _uar(single, te.y, te.classes)}
        unlabelled = [m for m in methods if m != "enrol"]
        for m in unlabelled:
            row[m] = _uar(run(m, te), te.y, te.classes)
        spk = np.asarray(te.speakers).astype(str)
        for prefix, draw, rng in (("one", one_emotion_draw, np.random.default_rng(seed)),
                                  ("two", two_emotion_draw, np.random.default_rng(seed + 2))):
            cond = {k: [] for k in [f"{prefix}_single", *[f"{prefix}_{m}" for m in unlabelled]]}
            for _ in range(draws):
                keep = draw(te.y, spk, rng)
                sub = _subset(te, keep)
                cond[f"{prefix}_single"].append(_uar(single[np.sort(keep)], sub.y, te.classes))
                for m in unlabelled:
                    cond[f"{prefix}_{m}"].append(_uar(run(m, sub), sub.y, te.classes))
            row.update({k: float(np.mean(v)) for k, v in cond.items()})
        if "enrol" in methods:
            w_means = _whisper_class_means([data[c] for c in fold.train]) if enrol_whisper else None
            row.update(_enrol_rows(head, adapter, te, cfg.streams, np.random.default_rng(seed + 1), draws, enrol_clips,
                                   w_means))
        per[fold.test] = row
        if log:
            log(f"  {fold.test:<8} " + "  ".join(f"{k} {v:.3f}" for k, v in row.items()))
    keys = next(iter(per.values())).keys()
    return {"per_corpus": per, "mean": {k: float(np.mean([r[k] for r in per.values()])) for k in keys},
            "methods": list(methods), "draws": draws, "seed": seed}


__all__ = ["PATCH_HOP_SECONDS", "PRIOR_ITERATIONS", "adaptation_loco", "adapted_probs", "class_means", "enrolled_probs",
           "prior_aware_probs"]
