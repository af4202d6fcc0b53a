"""Speaker adaptation from the user's own unlabelled recordings (``--adapt``), pure numpy.

The problem: plain speaker z-scoring (``--normalize speaker``) removes a speaker's mean
*including* a steady emotion (one angry caller is normalised to "average" = neutral).
The shipped method (``gated``, since stop 23) removes a voice's whole mean offset, but only
when the voice's clips spread along the emotion directions more than one emotion's clips do
(:class:`SpreadGate`); a voice that may hold one steady emotion is left as it is. The other
methods remove only a part of every voice's offset, learned from labelled training data:

* ``emotion`` subspace ``E`` (``q`` directions per stream): the principal directions of
  the *within-speaker* emotion deviations ``m[s,e] - mean_e m[s,e]`` (cell means of
  utterance-mean features; ``s`` speaker, ``e`` emotion) - where emotion moves a voice.
* ``nuisance`` subspace ``U`` (``k`` directions, orthogonal to ``E``): the principal
  directions of the between-speaker variation with emotion removed, ``m[s,e] -
  mean_s m[s,e]`` (nuisance-attribute projection, NAP).

Adaptation of a group ``g`` (one speaker's clips, or one long recording) with speech
seconds ``S`` and mean feature ``mu_g`` (over its voting patches):
``delta = mu_g - mu_0`` (``mu_0``: the training mean, balanced over emotions) and every
patch feature becomes ``x - w * R(delta)`` with shrinkage ``w = S / (S + shrink_seconds)``
and ``R`` one of

* ``nap``:  ``U U^T delta`` - only what identifies the speaker (the default until stop 23),
* ``protect``: ``delta - E E^T delta`` - all of the offset except its emotion part,
* ``mean``: ``delta`` - shrunk mean shift (a steady emotion is removed with it).
* ``gated``: ``delta`` for a group the :class:`SpreadGate` says was heard in several
  emotions, nothing for the others: a voice whose clips spread along the directions where
  emotions differ no more than one emotion's clips do may be a steady emotion, which a
  mean shift would erase, so it is left as it is.

A group with fewer than ``min_clips`` clips or ``min_speech_seconds`` of speech is not
adapted (:func:`adapt_rule` says why). Per stream, all shapes ``(P, D)``.

**Neutral enrolment** (``--adapt --neutral CLIP``, :meth:`SpeakerAdapter.enrolment_offsets`):
the user gives recordings of the voice speaking *neutrally*; every patch of the voice
becomes ``x - w (mu_n - m_neutral)`` with ``mu_n`` the enrolment clips' mean (speech
patches), ``m_neutral`` the training corpora's neutral mean (balanced over speakers) and
``w = S_n / (S_n + enrol_shrink_seconds)``. The reference is a clip whose emotion is
known, so a voice that is angry in every clip stays angry: this is the adaptation that
cannot erase a steady emotion (measured in ``emolens.evaluation.adaptation_loco``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

#: Adaptation methods (see module doc); ``none`` = no change.
ADAPT_METHODS = ("nap", "protect", "mean", "gated")


@dataclass(frozen=True)
class AdaptConfig:
    """How ``--adapt`` adapts (defaults: the measured choice, ``benchmarks/adaptation.py``).

    Attributes:
        method: ``nap`` | ``protect`` | ``mean`` | ``gated`` (module doc). ``gated`` since stop 23:
            on the shipped model's folds +1.8 pt with every emotion per voice and -0.2 pt with one,
            where ``nap`` lost 2.5 and 7.1 (``benchmarks/adaptation_loco.py --methods nap,mean,gated``).
        k: nuisance directions per stream (``nap``).
        q: protected emotion directions per stream (``nap``: ``U`` is orthogonal to them;
            ``protect``: kept in the offset).
        shrink_seconds: ``S0`` of the shrinkage ``w = S / (S + S0)`` (S: speech seconds).
        min_clips: a clip group needs at least this many clips (a single long recording
            in ``timeline`` counts as enough clips).
        min_speech_seconds: ... and at least this much speech (seconds of voting patches).
        enrol_shrink_seconds: ``S0`` of the enrolment shrinkage ``w = S_n / (S_n + S0)``
            (``S_n``: speech seconds of the neutral clips; 3 s and 0 s measured equal,
            0.511 vs 0.513 mean UAR over both fold kinds; 3 s moves a voice less on a
            one-second clip).
        reference: the class the enrolment clips are recordings of.
        gate_window_seconds: method ``gated`` on one long recording (``timeline``): the
            stretch of patches that counts as one clip for the gate. 2 s: the training clips'
            median is 4-5 speech patches (about 2-2.4 s; EmoDB, RAVDESS, ASED, nEMO). Longer
            stretches average emotions together (an EmoDB voice's mixed recording: gate
            probability 0.78 at 2 s, 0.64 at 3 s, 0.12 at 5 s, threshold 0.65), shorter ones
            add patch noise to the spread (its all-angry recording: 0.13 at 2 s, 0.46 at 1 s).
    """

    method: str = "gated"
    k: int = 16
    q: int = 3
    shrink_seconds: float = 10.0
    min_clips: int = 3
    min_speech_seconds: float = 10.0
    enrol_shrink_seconds: float = 3.0
    reference: str = "neutral"
    gate_window_seconds: float = 2.0

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict | None) -> "AdaptConfig":
        d = dict(d or {})
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})


#: Why method ``gated`` leaves a voice as it is (the line ``--adapt`` prints for it).
GATE_REASON = ("its clips vary no more than one emotion's clips do (spread gate): it may hold one steady "
               "emotion, which adapting would erase; classified clip by clip")


def stretch_clips(sizes: list[int], window: int) -> np.ndarray:
    """``(sum(sizes),)`` clip ids for method ``gated`` on long recordings: each recording of
    ``sizes[i]`` patches cut into stretches of ``window`` patches, ids unique across recordings."""
    window = max(1, int(window))
    ids = [np.arange(n) // window for n in sizes]
    base = np.cumsum([0] + [-(-n // window) for n in sizes[:-1]])
    return np.concatenate([i + b for i, b in zip(ids, base)]) if sizes else np.zeros(0, int)


def adapt_rule(n_clips: int, speech_seconds: float, config: AdaptConfig, *, single_recording: bool = False) -> str | None:
    """``None`` when a group may be adapted, else the one-line reason it is not."""
    if not single_recording and n_clips < config.min_clips:
        return (f"{n_clips} clip{'s' if n_clips != 1 else ''} of this voice (< {config.min_clips}): "
                "too little to adapt on, classified clip by clip")
    if speech_seconds < config.min_speech_seconds:
        return (f"{speech_seconds:.1f} s of speech (< {config.min_speech_seconds:g} s): "
                "too little to adapt on, classified clip by clip")
    return None


def _orthonormal_top(vectors: np.ndarray, n: int) -> np.ndarray:
    """``(D, min(n, rank))`` orthonormal principal directions of the rows of ``vectors (M, D)`` (no centring)."""
    if n <= 0 or len(vectors) == 0:
        return np.zeros((vectors.shape[1], 0))
    v = np.asarray(vectors, np.float64)
    try:
        _, s, vt = np.linalg.svd(v, full_matrices=False)
    except np.linalg.LinAlgError:  # LAPACK's gesdd fails to converge on some matrices and CPUs
        s, vt = _svd_by_gram(v)
    keep = min(n, int(np.sum(s > s[0] * 1e-6)) if len(s) else 0)
    return vt[:keep].T


def _svd_by_gram(v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Singular values ``(r,)`` (descending) and right singular vectors ``(r, D)`` of
    ``v (M, D)`` from the eigen-decomposition of the smaller Gram matrix (``eigh`` always
    converges; exact to about ``sqrt(eps) * s[0]`` in the singular values, ample for
    picking the top directions)."""
    if v.shape[0] <= v.shape[1]:
        w, u = np.linalg.eigh(v @ v.T)
        order = np.argsort(w)[::-1]
        s = np.sqrt(np.maximum(w[order], 0.0))
        ok = s > s[0] * 1e-6 if len(s) else np.zeros(0, bool)
        vt = (u[:, order[ok]].T @ v) / s[ok, None]
        return s[ok], vt
    w, vecs = np.linalg.eigh(v.T @ v)
    order = np.argsort(w)[::-1]
    return np.sqrt(np.maximum(w[order], 0.0)), vecs[:, order].T


def group_means(x: np.ndarray, groups: np.ndarray, weights: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(G, D)`` means of the rows of ``x (P, D)`` per group id in ``0..G-1`` (``groups (P,)``),
    rows weighted by ``weights (P,)`` (bool voting mask or float); and ``(G,)`` total weights."""
    groups = np.asarray(groups, int)
    w = np.ones(len(x)) if weights is None else np.asarray(weights, np.float64)
    g = int(groups.max()) + 1 if len(groups) else 0
    tot = np.bincount(groups, weights=w, minlength=g)
    s = np.zeros((g, x.shape[1]))
    np.add.at(s, groups, x * w[:, None])
    return s / np.maximum(tot, 1e-12)[:, None], tot


#: SpreadGate: shrinkage of its emotion LDA; one-emotion draws per training voice; the share
#: of one-emotion training voices its threshold lets through (chosen on the training corpora).
GATE_SHRINKAGE = 0.5
GATE_DRAWS = 3
GATE_FALSE_ALARMS = 0.02


def _centred(x: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """``x (N, D)`` with the mean of each id's rows removed."""
    out = np.asarray(x, np.float64).copy()
    for g in np.unique(ids):
        i = ids == g
        out[i] -= out[i].mean(0)
    return out


def _emotion_space(rows: np.ndarray, label: np.ndarray, voice: np.ndarray) -> np.ndarray:
    """``(D, C-1)`` directions: the LDA of the voice-centred clip rows, scaled so a clip's
    squared distance from its (voice, emotion) mean averages 1 on these rows."""
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

    c = _centred(rows, voice)
    lda = LinearDiscriminantAnalysis(solver="eigen", shrinkage=GATE_SHRINKAGE).fit(c, label)
    n = len(np.unique(label)) - 1
    d = lda.scalings_[:, :n]
    cell = np.char.add(np.char.add(np.asarray(voice).astype(str), "/"), np.asarray(label).astype(str))
    scale = float(np.sqrt((_centred(c @ d, cell) ** 2).sum(1).mean()))
    return d / scale


def _emotion_subset(label: np.ndarray, voice: np.ndarray, pick) -> np.ndarray:
    """Row indices keeping, for every voice, the rows of the emotions ``pick(its emotions)`` returns."""
    keep = []
    for v in np.unique(voice):
        idx = np.flatnonzero(voice == v)
        keep.append(idx[np.isin(label[idx], pick(np.unique(label[idx])))])
    return np.concatenate(keep)


def one_emotion_draw(label: np.ndarray, voice: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Row indices keeping, for every voice, the rows of one of its emotions (drawn)."""
    return _emotion_subset(label, voice, lambda emotions: rng.choice(emotions))


def two_emotion_draw(label: np.ndarray, voice: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Row indices keeping, for every voice, the rows of two of its emotions (drawn; all of
    them where it has fewer): a calm stretch and an angry one of the same caller."""
    return _emotion_subset(label, voice, lambda emotions: rng.choice(emotions, size=min(2, emotions.size), replace=False))


#: the draws :meth:`SpreadGate.fit` can take as negatives
GATE_NEGATIVE_DRAWS = {"one": one_emotion_draw, "two": two_emotion_draw}


@dataclass
class SpreadGate:
    """Was a voice heard in several emotions? (method ``gated``; stop 23, ``benchmarks/adaptation_gate.py``).

    From a voice's clip rows ``(n, D)`` (each clip's mean over its voting patches of the
    adapter's streams, concatenated in name order: :meth:`SpeakerAdapter.clip_rows`): ``a`` = log of their mean squared
    deviation along ``directions`` (an LDA of the training clips with each training voice's
    mean removed, in units of one emotion's own spread), ``b`` = ``a`` minus the log of their
    mean squared deviation over every column; probability ``sigmoid(coef . (a, b) + intercept)``;
    the gate fires above ``threshold``."""

    directions: np.ndarray
    coef: np.ndarray
    intercept: float
    threshold: float

    def features(self, rows: np.ndarray) -> np.ndarray:
        """``(2,)``: ``(a, b)`` of one voice's clip rows ``(n, D)``."""
        x = np.asarray(rows, np.float64)
        t = x @ self.directions
        a = np.log(((t - t.mean(0)) ** 2).sum(1).mean() + 1e-12)
        return np.array([a, a - np.log(((x - x.mean(0)) ** 2).sum(1).mean() + 1e-12)])

    def probability(self, rows: np.ndarray) -> float:
        """Probability that the clips ``(n, D)`` of one voice hold several emotions (0 for one clip)."""
        if len(rows) < 2:
            return 0.0
        z = float(self.features(rows) @ self.coef + self.intercept)
        return float(1.0 / (1.0 + np.exp(-z)))

    def fires(self, rows: np.ndarray) -> bool:
        return self.probability(rows) > self.threshold

    @classmethod
    def fit(cls, parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]], seed: int = 1,
            negatives: tuple[str, ...] = ("one",)) -> "SpreadGate":
        """From labelled training corpora ``[(rows (U, D), label (U,), voice (U,)), ...]`` (two or
        more; voice ids unique across corpora, e.g. ``corpus/speaker``: the emotion space
        centres each voice on its own mean): each corpus's voices are scored in the emotion space learned on the *other*
        corpora (as a new corpus will be), whole (heard in every emotion: positive) and in
        :data:`GATE_DRAWS` one-emotion draws (negative); the threshold lets
        :data:`GATE_FALSE_ALARMS` of the negatives through. The directions kept are learned on
        every corpus. ``negatives``: the draws that count as negatives, ``"one"`` (one emotion per
        voice, shipped) and/or ``"two"`` (two emotions; measured in stop 24 and dropped: it closes on
        balanced voices)."""
        from sklearn.linear_model import LogisticRegression

        if len(parts) < 2:
            raise ValueError("the spread gate needs two or more training corpora (it is fitted on each one held out)")
        unknown = [k for k in negatives if k not in GATE_NEGATIVE_DRAWS]
        if unknown or not negatives:
            raise ValueError(f"spread gate negatives {negatives!r}: use one or more of {', '.join(GATE_NEGATIVE_DRAWS)}")
        rng = np.random.default_rng(seed)
        feats, target = [], []
        for i, (rows, label, voice) in enumerate(parts):
            others = [p for j, p in enumerate(parts) if j != i]
            probe = cls(_emotion_space(*(np.concatenate([p[k] for p in others]) for k in range(3))), np.zeros(2), 0.0, 0.5)
            label, voice = np.asarray(label), np.asarray(voice).astype(str)
            for v in np.unique(voice):
                feats.append(probe.features(rows[voice == v]))
                target.append(1)
            for draw in (GATE_NEGATIVE_DRAWS[k] for k in negatives):
                for _ in range(GATE_DRAWS):
                    k = draw(label, voice, rng)
                    for v in np.unique(voice[k]):
                        feats.append(probe.features(rows[k][voice[k] == v]))
                        target.append(0)
        F, t = np.array(feats), np.array(target)
        lr = LogisticRegression().fit(F, t)
        neg = 1.0 / (1.0 + np.exp(-(F[t == 0] @ lr.coef_[0] + lr.intercept_[0])))
        d = _emotion_space(*(np.concatenate([p[k] for p in parts]) for k in range(3)))
        return cls(d.astype(np.float32), lr.coef_[0].astype(np.float64),
                   float(lr.intercept_[0]), float(np.quantile(neg, 1 - GATE_FALSE_ALARMS)))


@dataclass
class StreamAdapter:
    """One stream's learned statistics: ``mean (D,)``, ``nuisance (D, k)``, ``emotion (D, q)``
    and ``class_means (C, D)`` (each emotion's mean, balanced over speakers; ``None`` in
    statistics saved before neutral enrolment)."""

    mean: np.ndarray
    nuisance: np.ndarray
    emotion: np.ndarray
    class_means: np.ndarray | None = None

    def removal(self, delta: np.ndarray, method: str) -> np.ndarray:
        """The part of the offsets ``delta (G, D)`` that ``method`` removes, ``(G, D)``."""
        if method == "nap":
            return delta @ self.nuisance @ self.nuisance.T
        if method == "protect":
            return delta - delta @ self.emotion @ self.emotion.T
        if method == "mean":
            return delta
        raise ValueError(f"adaptation method {method!r}: use one of {', '.join(ADAPT_METHODS)}")


def fit_stream(utt_feats: np.ndarray, speaker: np.ndarray, label: np.ndarray, k: int, q: int) -> StreamAdapter:
    """Learn one stream's subspaces from utterance-mean features ``(U, D)`` with their
    speaker and emotion labels ``(U,)`` (the training side only)."""
    x = np.asarray(utt_feats, np.float64)
    _, spk = np.unique(np.asarray(speaker).astype(str), return_inverse=True)
    classes, lab = np.unique(np.asarray(label), return_inverse=True)
    n_s, n_c = spk.max() + 1, len(classes)
    cell = spk * n_c + lab
    cm, cnt = group_means(x, cell)
    has = cnt > 0
    cm = cm.reshape(n_s, n_c, -1)
    has = has.reshape(n_s, n_c)
    # emotion means balanced over speakers; mu_0 balanced over emotions
    class_mean = np.stack([cm[has[:, c], c].mean(0) for c in range(n_c)])
    mu0 = class_mean.mean(0)
    # within-speaker emotion deviations (speakers with >= 2 emotions)
    within = []
    for s in range(n_s):
        cs = np.flatnonzero(has[s])
        if len(cs) >= 2:
            within.append(cm[s, cs] - cm[s, cs].mean(0))
    within = np.concatenate(within) if within else np.zeros((0, x.shape[1]))
    emotion = _orthonormal_top(within, q)
    # between-speaker residuals within each emotion, emotion directions projected out
    resid = np.concatenate([cm[has[:, c], c] - class_mean[c] for c in range(n_c)])
    resid = resid - resid @ emotion @ emotion.T
    nuisance = _orthonormal_top(resid, k)
    return StreamAdapter(mu0.astype(np.float32), nuisance.astype(np.float32), emotion.astype(np.float32),
                         class_mean.astype(np.float32))


#: Key of the prosody class means in ``adaptation.safetensors``.
PROSODY_KEY = "prosody:class_means"
#: Prefix of the spread gate's arrays in ``adaptation.safetensors``.
GATE_KEY = "gate:spread"


def prosody_class_means(q: np.ndarray, speaker: np.ndarray, label: np.ndarray, n_classes: int) -> np.ndarray:
    """``(C, P)``: per class, the mean over speakers of each speaker's mean functionals
    ``q (U, P)`` of that class (balanced over speakers, as :func:`fit_stream`'s class means)."""
    q = np.asarray(q, np.float64)
    _, spk = np.unique(np.asarray(speaker).astype(str), return_inverse=True)
    lab = np.asarray(label, int)
    cm, cnt = group_means(q, spk * n_classes + lab)
    cnt = np.concatenate([cnt, np.zeros(max(0, (spk.max() + 1) * n_classes - len(cnt)))])
    cm = np.vstack([cm, np.zeros((len(cnt) - len(cm), q.shape[1]))]).reshape(-1, n_classes, q.shape[1])
    has = cnt.reshape(-1, n_classes) > 0
    return np.stack([cm[has[:, c], c].mean(0) if has[:, c].any() else np.zeros(q.shape[1]) for c in range(n_classes)]
                    ).astype(np.float32)


@dataclass
class SpeakerAdapter:
    """The learned adaptation of every stream (what a packaged model stores)."""

    config: AdaptConfig
    streams: dict[str, StreamAdapter] = field(default_factory=dict)
    #: ``(C, P)``: each emotion's mean prosody functionals, balanced over speakers (models
    #: with a prosody stream; ``--neutral`` shifts a voice's functionals by them too)
    prosody_means: np.ndarray | None = None
    #: method ``gated``'s gate (fitted from two or more corpora, :func:`~emolens.adaptation.store.fit_from_corpora`)
    gate: SpreadGate | None = None

    def clip_rows(self, feats: dict[str, np.ndarray], clips: np.ndarray, voting: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(rows (N, D), ids (N,))``: the mean over its voting patches of every clip that has
        some (``clips (P,)`` clip ids), the adapter's streams concatenated in name order."""
        clips, voting = np.asarray(clips, int), np.asarray(voting, bool)
        ids = np.unique(clips[voting])
        local = np.searchsorted(ids, clips[voting])
        rows = [group_means(np.asarray(feats[n], np.float64)[voting], local)[0] for n in sorted(self.streams)]
        return np.concatenate(rows, 1), ids

    def shift_method(self, method: str | None = None) -> str:
        """The shift a group gets once admitted: ``mean`` for ``gated`` (whose gate the caller has
        folded into the ``adapt`` mask, :meth:`gate_fires`), else the method itself."""
        method = method or self.config.method
        return "mean" if method in ("gated", "gated+prosody") else method

    def gate_fires(self, feats: dict[str, np.ndarray], groups: np.ndarray, voting: np.ndarray,
                   clips: np.ndarray) -> np.ndarray:
        """``(G,)`` bool: the :class:`SpreadGate` fires for group ``g`` (its clips' rows)."""
        if self.gate is None:
            raise ValueError("these adaptation statistics have no spread gate (method gated): "
                             "refit them from two or more corpora")
        groups, clips = np.asarray(groups, int), np.asarray(clips, int)
        rows, ids = self.clip_rows(feats, clips, voting)
        clip_group = np.zeros(int(clips.max()) + 1 if len(clips) else 0, int)
        clip_group[clips] = groups
        n_groups = int(groups.max()) + 1 if len(groups) else 0
        return np.array([self.gate.fires(rows[clip_group[ids] == g]) for g in range(n_groups)], bool)

    @classmethod
    def fit(cls, feats: dict[str, np.ndarray], utt: np.ndarray, voting: np.ndarray, speaker_utt: np.ndarray,
            label_utt: np.ndarray, train_utt: np.ndarray, config: AdaptConfig) -> "SpeakerAdapter":
        """Learn from patch features ``{stream: (P, D)}`` with utterance ids ``utt (P,)``,
        voting mask ``(P,)``, per-utterance speaker/label ``(U,)``; only utterances
        ``train_utt`` are used."""
        utt = np.asarray(utt)
        sel = np.isin(utt, train_utt) & np.asarray(voting, bool)
        ids, local = np.unique(utt[sel], return_inverse=True)
        out = {}
        for name, x in feats.items():
            um, _ = group_means(np.asarray(x, np.float64)[sel], local)
            out[name] = fit_stream(um, np.asarray(speaker_utt)[ids], np.asarray(label_utt)[ids], config.k, config.q)
        return cls(config, out)

    def offsets(self, feats: dict[str, np.ndarray], groups: np.ndarray, voting: np.ndarray,
                speech_seconds: np.ndarray, method: str | None = None,
                clips: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """Per stream ``(G, D)``: what to subtract from every patch of group ``g``
        (``groups (P,)`` ids ``0..G-1``; statistics over ``voting`` patches; shrinkage by
        ``speech_seconds (G,)``). Method ``gated`` needs ``clips (P,)``, each patch's clip
        (a long recording: its windows)."""
        method = method or self.config.method
        w = np.asarray(speech_seconds, np.float64)
        w = w / (w + self.config.shrink_seconds)
        if method == "gated":
            if clips is None:
                raise ValueError("method gated needs the clip of every patch")
            w = w * self.gate_fires(feats, groups, voting, clips)
        out = {}
        for name, x in feats.items():
            st = self.streams[name]
            gm, _ = group_means(np.asarray(x, np.float64), groups, np.asarray(voting, bool))
            out[name] = (w[:, None] * st.removal(gm - st.mean, "mean" if method == "gated" else method)).astype(np.float32)
        return out

    def utterance_offsets(self, q: np.ndarray, groups: np.ndarray, weights: np.ndarray,
                          means: np.ndarray | None = None) -> np.ndarray:
        """``(G, P)``: what to subtract from the per-clip vectors ``q (N, P)`` (prosody functionals)
        of group ``g`` (``groups (N,)``) for method ``gated``: ``weights[g]`` (shrinkage times
        the gate) times the group's mean offset from the training mean balanced over emotions
        (``means (C, P)``: the class means, default :attr:`prosody_means`)."""
        means = self.prosody_means if means is None else means
        if means is None:
            raise ValueError("these adaptation statistics have no prosody class means; refit them")
        gm, _ = group_means(np.asarray(q, np.float64), np.asarray(groups, int))
        w = np.asarray(weights, np.float64)[: len(gm)]
        return (w[:, None] * (gm - np.asarray(means, np.float64).mean(0))).astype(np.float32)

    def enrolment_offsets(self, enrol: dict[str, np.ndarray], enrol_groups: np.ndarray, speech: np.ndarray,
                          speech_seconds: np.ndarray, reference: int) -> dict[str, np.ndarray]:
        """Per stream ``(G, D)``: what to subtract from every patch of group ``g`` so that
        its enrolment patches ``enrol {stream: (Pe, D)}`` (group ids ``enrol_groups (Pe,)``,
        their ``speech (Pe,)`` patches averaged) sit at the training mean of class
        ``reference`` (index into the classes), shrunk by ``speech_seconds (G,)``."""
        if any(st.class_means is None for st in self.streams.values()):
            raise ValueError("these adaptation statistics predate neutral enrolment (no class means); refit them")
        w = np.asarray(speech_seconds, np.float64)
        s0 = self.config.enrol_shrink_seconds
        w = w / (w + s0) if s0 > 0 else np.ones_like(w)
        out = {}
        for name, x in enrol.items():
            st = self.streams[name]
            gm, _ = group_means(np.asarray(x, np.float64), enrol_groups, np.asarray(speech, bool))
            out[name] = (w[:, None] * (gm - st.class_means[reference])).astype(np.float32)
        return out

    def prosody_offsets(self, q_enrol: np.ndarray, enrol_groups: np.ndarray, speech_seconds: np.ndarray,
                        reference: int, means: np.ndarray | None = None) -> np.ndarray:
        """``(G, P)``: what to subtract from the prosody functionals of every clip of group
        ``g`` so that its enrolment clips' mean functionals ``q_enrol (Ne, P)`` (group ids
        ``enrol_groups (Ne,)``) sit at the training mean of class ``reference``, shrunk
        as :meth:`enrolment_offsets` (``speech_seconds (G,)``: the same seconds).
        ``means``: other class means ``(C, W)`` to do the same with (the Whisper stream's, in
        ``emolens.evaluation.adaptation_loco(enrol_whisper=True)``)."""
        means = self.prosody_means if means is None else means
        if means is None:
            raise ValueError("these adaptation statistics have no prosody class means; refit them")
        w = np.asarray(speech_seconds, np.float64)
        s0 = self.config.enrol_shrink_seconds
        w = w / (w + s0) if s0 > 0 else np.ones_like(w)
        gm, cnt = group_means(np.asarray(q_enrol, np.float64), np.asarray(enrol_groups, int))
        if len(gm) < len(w):
            gm = np.vstack([gm, np.zeros((len(w) - len(gm), gm.shape[1]))])
            cnt = np.concatenate([cnt, np.zeros(len(w) - len(cnt))])
        return (w[:, None] * (cnt[:, None] > 0) * (gm[: len(w)] - means[reference])).astype(np.float32)

    @staticmethod
    def subtract(feats: dict[str, np.ndarray], groups: np.ndarray, offsets: dict[str, np.ndarray],
                 adapt: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """``feats`` minus each patch's group offset (``offsets {stream: (G, D)}``); groups
        with ``adapt[g]`` False unchanged."""
        groups = np.asarray(groups, int)
        res = {}
        for name, x in feats.items():
            o = offsets[name]
            if adapt is not None:
                o = o * np.asarray(adapt, bool)[:, None]
            res[name] = (np.asarray(x, np.float32) - o[groups]).astype(np.float32)
        return res

    def apply(self, feats: dict[str, np.ndarray], groups: np.ndarray, voting: np.ndarray,
              speech_seconds: np.ndarray, adapt: np.ndarray | None = None,
              method: str | None = None, clips: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """Adapted copies of ``feats``; groups with ``adapt[g]`` False (see :func:`adapt_rule`) unchanged."""
        groups = np.asarray(groups, int)
        return self.subtract(feats, groups, self.offsets(feats, groups, voting, speech_seconds, method, clips), adapt)

    # --- storage (flat arrays for safetensors; config in model.json) ---------------
    def to_arrays(self) -> dict[str, np.ndarray]:
        out = {}
        for name, st in self.streams.items():
            out[f"{name}.mean"] = np.ascontiguousarray(st.mean, np.float32)
            out[f"{name}.nuisance"] = np.ascontiguousarray(st.nuisance, np.float32)
            out[f"{name}.emotion"] = np.ascontiguousarray(st.emotion, np.float32)
            if st.class_means is not None:
                out[f"{name}.class_means"] = np.ascontiguousarray(st.class_means, np.float32)
        if self.prosody_means is not None:
            out[PROSODY_KEY] = np.ascontiguousarray(self.prosody_means, np.float32)
        if self.gate is not None:
            g = self.gate
            out.update({f"{GATE_KEY}.directions": np.ascontiguousarray(g.directions, np.float32),
                        f"{GATE_KEY}.coef": np.asarray(g.coef, np.float64),
                        f"{GATE_KEY}.intercept_threshold": np.array([g.intercept, g.threshold], np.float64)})
        return out

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], config: AdaptConfig) -> "SpeakerAdapter":
        arrays = dict(arrays)
        prosody = arrays.pop(PROSODY_KEY, None)
        g = {k.rsplit(".", 1)[1]: np.asarray(arrays.pop(k)) for k in [k for k in arrays if k.startswith(f"{GATE_KEY}.")]}
        gate = SpreadGate(g["directions"], g["coef"], float(g["intercept_threshold"][0]),
                          float(g["intercept_threshold"][1])) if g else None
        names = sorted({k.rsplit(".", 1)[0] for k in arrays})
        return cls(config, {n: StreamAdapter(np.asarray(arrays[f"{n}.mean"]), np.asarray(arrays[f"{n}.nuisance"]),
                                             np.asarray(arrays[f"{n}.emotion"]),
                                             np.asarray(arrays[f"{n}.class_means"]) if f"{n}.class_means" in arrays else None)
                            for n in names}, None if prosody is None else np.asarray(prosody), gate)


__all__ = ["ADAPT_METHODS", "AdaptConfig", "adapt_rule", "group_means", "fit_stream", "StreamAdapter", "SpeakerAdapter",
           "PROSODY_KEY", "prosody_class_means"]
