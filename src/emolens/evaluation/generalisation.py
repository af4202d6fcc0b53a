"""The generalisation yardstick: leave-one-corpus-out (LOCO) over prepared corpora, on
cached YAMNet features, with head-level levers cheap enough to ablate.

Data: one prepared work dir per corpus (``emolens prepare``). :func:`corpus_features`
runs YAMNet once over every patch of a corpus and caches, per patch, the pooled
streams of :data:`STREAMS` (``yamnet_l5`` ... and the 1024-d embedding) and the speech
gate's decision; a head-level row then costs seconds of training per fold.

Protocol (:func:`loco_folds`): every *development* corpus is tested once by a head
trained on the other development corpora; every *evaluate-only* corpus (CASIA) is
tested by the head trained on all development corpora and never trained on. Test
decisions are those of ``emolens predict``: the mean of the speech patches'
probabilities (all patches when none is speech). Scores per test corpus: UAR, macro
F1, accuracy and expected calibration error (15 equal-width bins of the top
probability), and the mean and worst over the test corpora.

The head is :class:`emolens.models.fusion.FusionHead` (``hidden=0``: a linear
classifier on the layer-normalised streams), so a row's configuration trains exactly
the module that ships (:func:`train_head`). Levers (:class:`HeadConfig`): streams,
hidden width, dropout, epochs, learning rate, weight decay, balancing (``class`` or
``corpus-class`` sample weights; ``utterance`` gives each utterance equal weight),
label smoothing, mixup, corpus centring (each training corpus shifted to the pooled
mean of the training set: removes corpus offsets without needing test statistics)
and test-time corpus standardisation (``test_norm='corpus'``, transductive: it needs
the whole unlabelled test corpus, reported for reference only, never single-clip).

Out-of-fold outputs (:class:`FoldResult`: utterance probabilities, labels, speakers)
are kept per row so calibration (a temperature fitted on LOCO predictions) and
speaker adaptation can be fitted and measured without touching a test fold.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import torch
from torch import nn

from emolens.corpora.parsers import EVALUATE_ONLY_CORPORA
from emolens.evaluation.metrics import classification_report_dict
from emolens.features.prosody import DEFAULT_PROSODY, ProsodyConfig
from emolens.models.fusion import FusionHead
from emolens.training.data import module_digest
from emolens.workdir import WorkDir

#: Streams cached per patch: mean+max pooled YAMNet layers 5, 7 (``yamnet_mid``), 9,
#: 11 and the 1024-d embedding (mean-pooled last layer; also feeds the speech gate).
STREAMS: tuple[str, ...] = ("yamnet_l5", "yamnet_mid", "yamnet_l9", "yamnet_l11", "yamnet")
_CACHE_VERSION = "gen1"


@dataclass
class CorpusFeatures:
    """Cached per-patch YAMNet features of one prepared corpus.

    Attributes:
        name: corpus name (``emodb``, ``nemo``, ...).
        feats: ``{stream: (P, D) float32}``.
        utt: ``(P,)`` utterance index of each patch.
        speech: ``(P,)`` bool, the speech gate's decision (YAMNet AudioSet head).
        y: ``(U,)`` class index per utterance (into ``classes``).
        speakers: ``(U,)`` speaker ids; ``paths``: ``(U,)`` file paths.
        classes: the class names.
    """

    name: str
    feats: dict[str, np.ndarray]
    utt: np.ndarray
    speech: np.ndarray
    y: np.ndarray
    speakers: np.ndarray
    paths: np.ndarray
    classes: list[str]
    egemaps: np.ndarray | None = None  # (U, 88) eGeMAPS functionals, when loaded
    prosody: np.ndarray | None = None  # (U, N_PROSODY) emolens prosody functionals, when loaded
    #: ``{prosody_set: (U, N_PROSODY)}``: emolens functionals of the other :data:`PROSODY_SETS`
    prosody_variants: dict[str, np.ndarray] = field(default_factory=dict)
    #: ``(U, 1024)`` Whisper base stream of each utterance (:mod:`emolens.models.whisper`), when loaded
    whisper: np.ndarray | None = None
    variants: dict[str, PatchFeatures] = field(default_factory=dict)
    #: ``{layer: (P, C, H, W) float16}`` cached YAMNet maps (fine-tuning the blocks above them)
    activations: dict[int, np.ndarray] = field(default_factory=dict)

    @property
    def n_utt(self) -> int:
        return len(self.y)


@dataclass
class PatchFeatures:
    """Another feature set of the same corpus's utterances (``feats``, ``utt``, ``speech``
    as in :class:`CorpusFeatures`): an augmented copy (``aug-<policy>``, extra training
    rows) or an equalised front end (``eq-<mode>``, replaces the features)."""

    feats: dict[str, np.ndarray]
    utt: np.ndarray
    speech: np.ndarray


def corpus_features(work_dir: str | Path, *, yamnet_weights: str | None = None, batch_size: int = 128,
                    progress: bool = True) -> CorpusFeatures:
    """YAMNet streams of every patch of a prepared corpus, computed once and cached in
    ``WORK/generalisation/`` (keyed by the patches' bytes and the YAMNet weights)."""
    from emolens.models import load_yamnet_file, resolve_weights

    work = WorkDir.open(work_dir)
    corpora = sorted({u.corpus for u in work.manifest})
    if len(corpora) != 1:
        raise ValueError(f"{work_dir}: one corpus per work dir expected, found {corpora}")
    ps = work.patchset(progress=progress)
    yam = load_yamnet_file(resolve_weights("yamnet", yamnet_weights)).eval()
    key = hashlib.sha1(ps.patches.tobytes() + module_digest(yam).encode() + _CACHE_VERSION.encode()).hexdigest()[:16]
    path = work.root / "generalisation" / f"yamnet-{key}.npz"
    feats, speech = _cached_streams(path, ps.patches, yam, batch_size, f"{corpora[0]} YAMNet", progress)
    m = work.manifest
    return CorpusFeatures(corpora[0], feats, ps.utt, speech.astype(bool), work.labels(),
                          m.speaker_array(), np.asarray(m.paths()), list(work.classes))


def _cached_streams(path: Path, patches: np.ndarray, yam, batch_size: int, desc: str, progress: bool,
                    extra: dict[str, np.ndarray] | None = None) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """:data:`STREAMS` ``{stream: (P, D)}`` and the speech gate ``(P,)`` of ``patches
    (P, 96, 64)``, read from or written to ``path`` (with the ``extra`` arrays)."""
    from tqdm.auto import tqdm

    from emolens.models.fusion import FusionNet
    from emolens.selection.speech import SpeechGateConfig, speech_probability

    if path.exists():
        with np.load(path, allow_pickle=False) as z:
            return {s: z[s] for s in STREAMS}, z["speech"].astype(bool)
    net = FusionNet(4, STREAMS, yamnet=yam).eval()  # only extract() runs: the class count is immaterial
    chunks: dict[str, list[np.ndarray]] = {}
    with torch.no_grad():
        for s in tqdm(range(0, len(patches), batch_size), desc=desc, unit="batch", disable=not progress):
            out = net.extract(torch.from_numpy(patches[s:s + batch_size]).unsqueeze(1), STREAMS)
            for k, v in out.items():
                chunks.setdefault(k, []).append(v.numpy())
        feats = {k: np.concatenate(v).astype(np.float32) for k, v in chunks.items()}
        audioset = torch.sigmoid(yam.classifier(torch.from_numpy(feats["yamnet"]))).numpy()
    gate = SpeechGateConfig()
    speech = speech_probability(audioset, gate) >= gate.threshold
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp.npz")
    np.savez(tmp, speech=speech, **feats, **(extra or {}))
    os.replace(tmp, path)
    return feats, speech.astype(bool)


def _augmented_patches(args: tuple[int, str, str, int]) -> np.ndarray:
    from emolens.audio import load_audio
    from emolens.audio.augment import AugmentConfig, augment
    from emolens.features.mel import mel_spectrogram
    from emolens.features.patches import log_mel_patches

    i, path, policy, seed = args
    x = load_audio(path).samples.astype(np.float32)
    y, _ = augment(x, AugmentConfig(policy=policy), np.random.default_rng(seed * 100003 + i))
    return log_mel_patches(mel_spectrogram(y))


def variant_features(work_dir: str | Path, kind: str, *, ref_profile: np.ndarray | None = None, seed: int = 0,
                     yamnet_weights: str | None = None, workers: int = 2, progress: bool = True) -> PatchFeatures:
    """YAMNet streams of a variant of a prepared corpus, cached in ``WORK/generalisation/``:
    ``aug-<policy>`` (one :func:`emolens.audio.augment.augment` copy of every clip, per-clip
    seeds from ``seed``) or ``eq-<gain|band>`` (patches equalised onto ``ref_profile
    (64,)`` by :func:`emolens.features.equalize.equalize_patches`)."""
    from multiprocessing import get_context

    from emolens.models import load_yamnet_file, resolve_weights

    work = WorkDir.open(work_dir)
    yam = load_yamnet_file(resolve_weights("yamnet", yamnet_weights)).eval()
    name = work.manifest[0].corpus
    if kind.startswith("aug-"):
        paths = [str(p) for p in work.manifest.paths()]
        key = hashlib.sha1(json.dumps([kind, seed, paths, module_digest(yam), _CACHE_VERSION]).encode()).hexdigest()[:16]
        path = work.root / "generalisation" / f"{kind}-s{seed}-{key}.npz"
        if path.exists():
            with np.load(path, allow_pickle=False) as z:
                return PatchFeatures({s: z[s] for s in STREAMS}, z["utt"], z["speech"].astype(bool))
        jobs = [(i, p, kind[4:], seed) for i, p in enumerate(paths)]
        if workers > 1:
            with get_context("spawn").Pool(workers) as pool:
                pats = pool.map(_augmented_patches, jobs, chunksize=16)
        else:
            pats = [_augmented_patches(j) for j in jobs]
        utt = np.concatenate([np.full(len(p), i) for i, p in enumerate(pats)])
        feats, speech = _cached_streams(path, np.concatenate(pats).astype(np.float32), yam, 128,
                                        f"{name} {kind} YAMNet", progress, extra={"utt": utt})
        return PatchFeatures(feats, utt, speech)
    if kind.startswith("eq-"):
        from emolens.features.equalize import equalize_patches, utterance_profiles

        if ref_profile is None:
            raise ValueError("eq-* variants need ref_profile (64,)")
        ps = work.patchset(progress=False)
        n = len(work.manifest)
        eq = equalize_patches(ps.patches, ps.utt, utterance_profiles(ps.patches, ps.utt, n), ref_profile, kind[3:])
        key = hashlib.sha1(eq.tobytes() + module_digest(yam).encode() + _CACHE_VERSION.encode()).hexdigest()[:16]
        feats, speech = _cached_streams(work.root / "generalisation" / f"{kind}-{key}.npz", eq, yam, 128,
                                        f"{name} {kind} YAMNet", progress)
        return PatchFeatures(feats, ps.utt, speech)
    raise ValueError(f"unknown feature variant {kind!r}: aug-<speed|channel|mix> or eq-<gain|band>")


# --------------------------------------------------------------------------- folds
@dataclass(frozen=True)
class LocoFold:
    """Test corpus ``test`` and the corpora the head is trained on."""

    test: str
    train: tuple[str, ...]


def loco_folds(corpora: Sequence[str], evaluate_only: Sequence[str] | None = None) -> list[LocoFold]:
    """Leave-one-corpus-out over the development corpora, then each evaluate-only corpus
    tested by the head trained on every development corpus (never trained on)."""
    held = set(EVALUATE_ONLY_CORPORA if evaluate_only is None else evaluate_only)
    dev = [c for c in corpora if c not in held]
    if len(dev) < 2:
        raise ValueError(f"leave-one-corpus-out needs two development corpora, got {dev}")
    folds = [LocoFold(c, tuple(d for d in dev if d != c)) for c in dev]
    return folds + [LocoFold(c, tuple(dev)) for c in corpora if c in held]


# --------------------------------------------------------------------------- head training
@dataclass(frozen=True)
class HeadConfig:
    """One row of the ablation (defaults = today's shipped recipe on these features).

    streams: cached streams the head reads. hidden: MLP width (0 = linear classifier).
    dropout, epochs, batch_size, lr (Adam), weight_decay: optimisation.
    balance: ``class`` (inverse class frequency, today's), ``corpus-class`` (each corpus
    and class cell weighs the same) or ``none``; ``per_utterance``: each utterance
    weighs the same whatever its number of patches. label_smoothing: cross-entropy
    smoothing. mixup: Beta(a, a) mixing of feature pairs and their targets (0 = off).
    corpus_center: shift each training corpus's features to the pooled mean.
    speech_train: train on speech patches only. test_norm: ``none`` or ``corpus``
    (transductive reference: the test corpus standardised by its own statistics and the
    training corpora by theirs). train_on: ``patch`` (every patch a sample) or
    ``utterance`` (statistics pooling: one sample per utterance, the mean over its speech
    patches of the layer-normalised streams; with ``hidden=0`` the trained linear map is
    exactly the head's classifier, applied per patch at test time; ~5x fewer samples).

    Utterance-decision levers (any of them set, or ``decision='pooled'``: the classifier
    reads one pooled row per utterance at training and at test instead of voting patch
    probabilities, :mod:`emolens.evaluation.utterance_levers`): pooling ``mean+std``
    (statistics pooling with the standard deviation) or ``mean+sq`` (with the mean of
    squares: still a mean over patches of a per-patch function), prosody (weight of the eGeMAPS functionals fused early; 0 = off), nap (speaker directions
    projected out), adversarial (corpus adversary weight; needs ``hidden``), augment
    (``speed``/``channel``/``mix``: one augmented copy of every training clip) and
    frontend (``eq-gain``/``eq-band``: per-utterance spectral equalisation of train and
    test patches) and finetune (first YAMNet layer trained, 0 = frozen backbone: the
    linear probe is then fine-tuned together with layers ``finetune..`` on cached maps for
    ``finetune_epochs`` epochs at ``finetune_lr``, :mod:`emolens.evaluation.finetune_top`;
    needs ``CorpusFeatures.activations[finetune - 1]``).
    """

    streams: tuple[str, ...] = ("yamnet_l5", "yamnet_mid", "yamnet_l9")
    hidden: int = 256
    dropout: float = 0.3
    epochs: int = 12
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 1e-4
    balance: str = "class"
    per_utterance: bool = False
    label_smoothing: float = 0.0
    mixup: float = 0.0
    corpus_center: bool = False
    speech_train: bool = False
    test_norm: str = "none"
    train_on: str = "patch"
    decision: str = "vote"
    pooling: str = "mean"
    prosody: float = 0.0
    #: ``egemaps`` (openSMILE) or one of :data:`PROSODY_SETS` (emolens's own)
    prosody_set: str = "egemaps"
    nap: int = 0
    adversarial: float = 0.0
    augment: str = ""
    frontend: str = "none"
    finetune: int = 0
    finetune_epochs: int = 6
    finetune_lr: float = 1e-4
    #: weight of the Whisper base stream fused early (0 = off; needs ``CorpusFeatures.whisper``)
    whisper: float = 0.0
    #: how the Whisper stream is scaled before the weight: ``row`` (each utterance's vector
    #: standardised over its features, like the YAMNet streams), ``row2`` (its mean and its sd
    #: halves standardised each), ``mean`` (the mean half alone, standardised) or ``z`` (each
    #: feature z-scored with the training rows' statistics and clipped at 6, like the prosody stream)
    whisper_norm: str = "row"
    #: linear heads trained with as many seeds and averaged into one (their weights and biases:
    #: for a linear head exactly the average of their logits, so it costs nothing at predict);
    #: 1 = one head. Seeds ``seed``, then ``1000 * seed + i`` for i = 1 .. ensemble - 1.
    ensemble: int = 1
    #: hidden units of an MLP on the scaled Whisper stream alone, trained beside the linear head
    #: (same data, weights, mixup, epochs and seed) and its logits added to the linear head's
    #: (a product of the two experts); 0 = none. The MLP reads only the per-recording Whisper
    #: stream, so the utterance logits stay the patches' linear shares plus one per-recording
    #: term and the prosody lines stay linear (``head.whisper.mlp``). Stop 21: +2.7 pt mean
    #: LOCO UAR on the Whisper row (``benchmarks/generalisation.md``).
    whisper_mlp: int = 0

    @property
    def utterance_levers(self) -> bool:
        """True when a lever needs the utterance-decision path."""
        return (self.decision == "pooled" or self.pooling != "mean" or self.prosody > 0 or self.nap > 0 or self.adversarial > 0
                or bool(self.augment) or self.frontend != "none" or self.finetune > 0 or self.whisper > 0
                or self.ensemble > 1)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["streams"] = list(self.streams)
        for k, v in _LEVER_DEFAULTS.items():  # fields added later: absent at default, so older keys hold
            if d[k] == v:
                del d[k]
        return d

    def key(self) -> str:
        return hashlib.sha1(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:12]


#: fields added with the utterance-decision levers, and their defaults (left out of ``to_dict`` at default)
_LEVER_DEFAULTS = {f.name: f.default for f in fields(HeadConfig)
                   if f.name in ("decision", "pooling", "prosody", "prosody_set", "nap", "adversarial", "augment", "frontend",
                                 "finetune", "finetune_epochs", "finetune_lr", "whisper", "whisper_norm", "ensemble",
                                 "whisper_mlp")}


def _weights(cfg: HeadConfig, y: np.ndarray, corpus: np.ndarray, utt_key: np.ndarray, n_classes: int) -> np.ndarray:
    """Per-patch sample weights (mean 1) for the balancing scheme."""
    w = np.ones(len(y), np.float64)
    if cfg.per_utterance:
        _, inv, cnt = np.unique(utt_key, return_inverse=True, return_counts=True)
        w /= cnt[inv]
    if cfg.balance == "class":
        cell = y
    elif cfg.balance == "corpus-class":
        cell = np.unique(corpus, return_inverse=True)[1] * n_classes + y
    elif cfg.balance == "none":
        cell = None
    else:
        raise ValueError(f"unknown balance {cfg.balance!r}")
    if cell is not None:
        _, inv = np.unique(cell, return_inverse=True)
        mass = np.bincount(inv, weights=w)
        w = w / mass[inv]
    return (w * len(w) / w.sum()).astype(np.float32)


def mixup_batch(rng: np.random.Generator, alpha: float, x, target: torch.Tensor, weight: torch.Tensor):
    """Mixup of a batch with a shuffled copy of itself: ``lam ~ Beta(alpha, alpha)``.
    ``x`` is a tensor ``(B, ...)`` or a dict of them, ``target (B, C)``, ``weight (B,)``;
    returns them mixed (draws ``lam`` first, then the permutation, from ``rng``)."""
    lam = float(rng.beta(alpha, alpha))
    perm = torch.from_numpy(rng.permutation(len(weight)))

    def mix(v: torch.Tensor) -> torch.Tensor:
        return lam * v + (1 - lam) * v[perm]

    return ({k: mix(v) for k, v in x.items()} if isinstance(x, dict) else mix(x)), mix(target), mix(weight)


def train_head(cfg: HeadConfig, feats: dict[str, np.ndarray], y: np.ndarray, corpus: np.ndarray,
               utt_key: np.ndarray, n_classes: int, seed: int = 0) -> FusionHead:
    """Train a fresh :class:`FusionHead` on patch features ``{stream: (N, D)}`` with labels
    ``y (N,)``; ``corpus``/``utt_key (N,)`` drive balancing. Deterministic per seed."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    head = FusionHead(cfg.streams, n_classes, hidden=cfg.hidden, dropout=cfg.dropout)
    X = {s: torch.from_numpy(np.ascontiguousarray(feats[s])) for s in cfg.streams}
    Y = torch.from_numpy(y.astype(np.int64))
    W = torch.from_numpy(_weights(cfg, y, corpus, utt_key, n_classes))
    opt = torch.optim.Adam(head.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    n = len(y)
    for _ in range(cfg.epochs):
        head.train()
        order = torch.from_numpy(rng.permutation(n))
        for s in range(0, n, cfg.batch_size):
            idx = order[s:s + cfg.batch_size]
            xb = {k: v[idx] for k, v in X.items()}
            target = nn.functional.one_hot(Y[idx], n_classes).float()
            if cfg.label_smoothing:
                target = target * (1 - cfg.label_smoothing) + cfg.label_smoothing / n_classes
            wb = W[idx]
            if cfg.mixup > 0:
                xb, target, wb = mixup_batch(rng, cfg.mixup, xb, target, wb)
            logp = torch.log_softmax(head(xb), dim=1)
            loss = -((target * logp).sum(1) * wb).sum() / wb.sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
    return head.eval()


def layer_norm(x: np.ndarray) -> np.ndarray:
    """Per-row standardisation over features, as ``nn.LayerNorm`` without affine (eps 1e-5)."""
    mu = x.mean(1, keepdims=True)
    var = x.var(1, keepdims=True)
    return ((x - mu) / np.sqrt(var + 1e-5)).astype(np.float32)


def pooled_streams(feats: dict[str, np.ndarray], utt: np.ndarray, speech: np.ndarray, n_utt: int
                   ) -> dict[str, np.ndarray]:
    """``{stream: (U, D)}`` mean over each utterance's speech patches (all patches when none
    is speech) of the layer-normalised stream."""
    from emolens.evaluation.utterance_levers import decision_patches

    use = decision_patches(utt, speech, n_utt)
    idx = utt[use]
    order = np.argsort(idx, kind="stable")
    idx = idx[order]
    starts = np.r_[0, np.flatnonzero(np.diff(idx)) + 1]
    cnt = np.diff(np.r_[starts, len(idx)]).astype(np.float32)
    out = {}
    for k, v in feats.items():
        z = layer_norm(v[use][order])
        s = np.zeros((n_utt, v.shape[1]), np.float32)
        s[idx[starts]] = np.add.reduceat(z, starts, axis=0) / cnt[:, None]
        out[k] = s
    return out


def train_utterance_head(cfg: HeadConfig, pooled: dict[str, np.ndarray], y: np.ndarray, corpus: np.ndarray,
                         n_classes: int, seed: int = 0) -> FusionHead:
    """Train the head's classifier on utterance-pooled normalised streams (``train_on='utterance'``);
    the head's layer norms are left at identity affine, so per patch the head computes
    ``classifier(LN(x))`` and its logits averaged over patches equal ``classifier(pooled)``."""
    head = FusionHead(cfg.streams, n_classes, hidden=cfg.hidden, dropout=cfg.dropout)
    torch.manual_seed(seed)
    for m in head.classifier.modules():
        if hasattr(m, "reset_parameters"):
            m.reset_parameters()
    rng = np.random.default_rng(seed)
    X = torch.from_numpy(np.concatenate([pooled[s] for s in cfg.streams], 1))
    Y = torch.from_numpy(y.astype(np.int64))
    W = torch.from_numpy(_weights(cfg, y, corpus, np.arange(len(y)).astype(str), n_classes))
    opt = torch.optim.Adam(head.classifier.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    n = len(y)
    for _ in range(cfg.epochs):
        head.train()
        order = torch.from_numpy(rng.permutation(n))
        for s in range(0, n, cfg.batch_size):
            idx = order[s:s + cfg.batch_size]
            xb, wb = X[idx], W[idx]
            target = nn.functional.one_hot(Y[idx], n_classes).float()
            if cfg.label_smoothing:
                target = target * (1 - cfg.label_smoothing) + cfg.label_smoothing / n_classes
            if cfg.mixup > 0:
                xb, target, wb = mixup_batch(rng, cfg.mixup, xb, target, wb)
            logp = torch.log_softmax(head.classifier(xb), dim=1)
            loss = -((target * logp).sum(1) * wb).sum() / wb.sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
    return head.eval()


@torch.no_grad()
def patch_probs(head: FusionHead, feats: dict[str, np.ndarray], batch: int = 4096) -> np.ndarray:
    """Softmax ``(N, C)`` of the head on patch features."""
    n = len(next(iter(feats.values())))
    out = [torch.softmax(head({k: torch.from_numpy(feats[k][s:s + batch]) for k in head.streams}), 1).numpy()
           for s in range(0, n, batch)]
    return np.concatenate(out)


@torch.no_grad()
def utterance_vector(head: FusionHead, cf: CorpusFeatures) -> np.ndarray | None:
    """The utterance vectors ``q (U, P [+ W])`` a prosody head reads on corpus ``cf``: its raw
    functionals, followed by its Whisper streams when the head has that stream."""
    if not getattr(head, "whisper_dim", 0):
        return cf.prosody
    if cf.prosody is None or cf.whisper is None:
        raise ValueError(f"a head with a Whisper stream decides on {cf.name}'s prosody functionals and Whisper streams: load both")
    return np.concatenate([cf.prosody, cf.whisper], 1)


def utterance_decisions(head: FusionHead, feats: dict[str, np.ndarray], utt: np.ndarray, speech: np.ndarray,
                        n_utt: int, prosody: np.ndarray | None = None) -> np.ndarray:
    """``(U, C)`` utterance probabilities of ``head`` on patch features, decided as
    ``emolens predict`` decides over each utterance's speech patches (all of them when
    none is speech): the vote (:func:`vote`), statistics pooling's ``W [mu, sigma] + b``
    or the prosody head's ``W [mu, s(q)] + b`` (plus its Whisper MLP's logits; ``prosody``:
    ``(U, P [+ W])`` raw utterance vectors, :func:`utterance_vector`)."""
    if head.pooling == "mean":
        return vote(patch_probs(head, feats), utt, speech, n_utt)
    from emolens.evaluation.utterance_levers import pool_streams  # the rows the lever path trains on

    x = torch.from_numpy(pool_streams(feats, utt, speech, n_utt, head.streams, std=head.pooling == "mean+std"))
    if head.pooling == "mean+prosody":
        if prosody is None or len(prosody) != n_utt:
            raise ValueError(f"a prosody head decides on each utterance's prosody functionals: pass prosody ({n_utt}, P)")
        x = torch.cat([x, head.scale_prosody(torch.as_tensor(prosody))], 1)
    with torch.no_grad():
        logits = head.prosody_row_logits(x) if head.pooling == "mean+prosody" else head.classifier(x)
        return torch.softmax(logits, 1).numpy().astype(np.float64)


def vote(probs: np.ndarray, utt: np.ndarray, speech: np.ndarray, n_utt: int) -> np.ndarray:
    """``(U, C)`` utterance probabilities: mean over the speech patches of each utterance,
    over all its patches when none is speech (as ``emolens predict`` decides)."""
    C = probs.shape[1]
    out = np.zeros((n_utt, C))
    for mask in (speech, np.ones_like(speech)):
        s = np.zeros((n_utt, C))
        np.add.at(s, utt[mask], probs[mask])
        cnt = np.bincount(utt[mask], minlength=n_utt)
        todo = (out.sum(1) == 0) & (cnt > 0)
        out[todo] = s[todo] / cnt[todo, None]
    return out


def expected_calibration_error(probs: np.ndarray, y: np.ndarray, bins: int = 15) -> float:
    """ECE: sum over equal-width bins of the top probability of |accuracy - confidence|
    weighted by the bin's share of items."""
    conf = probs.max(1)
    correct = probs.argmax(1) == y
    edges = np.linspace(0, 1, bins + 1)
    ece = 0.0
    for lo, hi in itertools.pairwise(edges):
        m = (conf > lo) & (conf <= hi)
        if m.any():
            ece += m.mean() * abs(correct[m].mean() - conf[m].mean())
    return float(ece)


@dataclass
class FoldResult:
    """Out-of-fold utterance outputs of one test corpus."""

    test: str
    train: tuple[str, ...]
    probs: np.ndarray  # (U, C)
    y: np.ndarray  # (U,)
    speakers: np.ndarray  # (U,)
    metrics: dict = field(default_factory=dict)


def score(probs: np.ndarray, y: np.ndarray, classes: list[str]) -> dict:
    """UAR, macro F1, accuracy, ECE of utterance probabilities."""
    rep = classification_report_dict(y, probs.argmax(1), classes)
    return {"uar": float(rep["uar"]), "f1_macro": float(rep["f1_macro"]), "accuracy": float(rep["accuracy"]),
            "ece": expected_calibration_error(probs, y), "n": len(y)}


def _center(feats: dict[str, np.ndarray], groups: np.ndarray, scale: bool) -> dict[str, np.ndarray]:
    """Per group: subtract its mean (and divide by its std when ``scale``), add back the pooled mean."""
    out = {}
    for k, v in feats.items():
        g_mean = v.mean(0)
        r = np.empty_like(v)
        for g in np.unique(groups):
            m = groups == g
            mu = v[m].mean(0)
            if scale:
                r[m] = (v[m] - mu) / (v[m].std(0) + 1e-5)
            else:
                r[m] = v[m] - mu + g_mean
        out[k] = r
    return out


_POOLED: dict[tuple[int, str], tuple[np.ndarray, np.ndarray]] = {}


def _pooled(cf: CorpusFeatures, streams: Sequence[str]) -> dict[str, np.ndarray]:
    """:func:`pooled_streams` of a corpus, memoised per process (the entry holds the feature
    array itself, so its ``id`` cannot be reused by another array while it is cached)."""
    out = {}
    for s in streams:
        key = (id(cf.feats[s]), s)
        hit = _POOLED.get(key)
        if hit is None or hit[0] is not cf.feats[s]:
            hit = _POOLED[key] = (cf.feats[s], pooled_streams({s: cf.feats[s]}, cf.utt, cf.speech, cf.n_utt)[s])
        out[s] = hit[1]
    return out


def run_fold(cfg: HeadConfig, data: dict[str, CorpusFeatures], fold: LocoFold, seed: int = 0
             ) -> tuple[FoldResult, FusionHead]:
    """Train on ``fold.train`` corpora, test on ``fold.test``; the trained head too."""
    parts = [data[c] for c in fold.train]
    classes = parts[0].classes
    test = data[fold.test]
    if cfg.utterance_levers:
        return _run_fold_levers(cfg, data, fold, seed)
    if cfg.train_on == "utterance":
        pooled = [_pooled(p, cfg.streams) for p in parts]
        if cfg.corpus_center:
            g = {k: np.concatenate([d[k] for d in pooled]).mean(0) for k in cfg.streams}
            pooled = [{k: v - v.mean(0) + g[k] for k, v in d.items()} for d in pooled]
        head = train_utterance_head(cfg, {s_: np.concatenate([d[s_] for d in pooled]) for s_ in cfg.streams},
                                    np.concatenate([p.y for p in parts]),
                                    np.concatenate([np.full(p.n_utt, p.name) for p in parts]), len(classes), seed=seed)
        probs = vote(patch_probs(head, {s_: test.feats[s_] for s_ in cfg.streams}), test.utt, test.speech, test.n_utt)
        return FoldResult(fold.test, fold.train, probs, test.y, test.speakers, score(probs, test.y, classes)), head
    sel = [np.flatnonzero(p.speech) if cfg.speech_train else np.arange(len(p.utt)) for p in parts]
    feats = {s: np.concatenate([p.feats[s][i] for p, i in zip(parts, sel)]) for s in cfg.streams}
    y = np.concatenate([p.y[p.utt[i]] for p, i in zip(parts, sel)])
    corpus = np.concatenate([np.full(len(i), p.name) for p, i in zip(parts, sel)])
    ukey = np.concatenate([np.char.add(p.name + "/", p.utt[i].astype(str)) for p, i in zip(parts, sel)])
    tfeats = {s: test.feats[s] for s in cfg.streams}
    if cfg.test_norm == "corpus":
        feats = _center(feats, corpus, scale=True)
        tfeats = _center(tfeats, np.zeros(len(test.utt)), scale=True)
    elif cfg.corpus_center:
        feats = _center(feats, corpus, scale=False)
    head = train_head(cfg, feats, y, corpus, ukey, len(classes), seed=seed)
    probs = vote(patch_probs(head, tfeats), test.utt, test.speech, test.n_utt)
    res = FoldResult(fold.test, fold.train, probs, test.y, test.speakers, score(probs, test.y, classes))
    return res, head


def _lever_rows(cfg: HeadConfig, cf: CorpusFeatures, train: bool) -> list[np.ndarray]:
    """Pooled utterance rows ``(U, D)`` of a corpus for the lever path: its features (or
    its equalised variant), plus, when ``train``, its augmented copy."""
    from emolens.evaluation.utterance_levers import pool_streams

    if cfg.pooling not in ("mean", "mean+std", "mean+sq"):
        raise ValueError(f"unknown pooling {cfg.pooling!r}: mean, mean+std or mean+sq")
    kw = {"std": cfg.pooling == "mean+std", "square": cfg.pooling == "mean+sq"}
    base = cf.variants[cfg.frontend] if cfg.frontend != "none" else cf
    rows = [pool_streams(base.feats, base.utt, base.speech, cf.n_utt, cfg.streams, **kw)]
    if train and cfg.augment:
        a = cf.variants[f"aug-{cfg.augment}"]
        rows.append(pool_streams(a.feats, a.utt, a.speech, cf.n_utt, cfg.streams, **kw))
    return rows


def lever_head(cfg: HeadConfig, model: nn.Module, n_classes: int, prosody_scaler=None,  # noqa: ANN001
               whisper_mlp: nn.Module | None = None) -> FusionHead | None:
    """The :class:`FusionHead` equal to a lever row's classifier when the model can ship
    it, else None: a linear classifier on the statistics-pooled streams
    (``pooling='mean+std'``), or on the mean-pooled streams and emolens's prosody
    functionals (``prosody > 0``, ``prosody_set='emolens'``: ``pooling='mean+prosody'``,
    with ``prosody_scaler``'s training statistics), and then the Whisper stream
    (``whisper > 0`` with ``whisper_norm='row'``: the head's ``whisper`` spec); no NAP,
    hidden layer, augmentation, front end or fine-tuning."""
    if cfg.nap or cfg.hidden or cfg.augment or cfg.frontend != "none" or cfg.finetune:
        return None
    whisper = None
    if cfg.whisper > 0:
        if cfg.whisper_norm != "row" or cfg.prosody <= 0:
            return None
        from emolens.features.whisper_files import whisper_cache_tag
        from emolens.models.whisper import WhisperStreamConfig

        wc = WhisperStreamConfig()
        whisper = {"dim": wc.dim, "weight": float(cfg.whisper), **wc.to_spec(),
                   "features": whisper_cache_tag(wc), **({"mlp": int(cfg.whisper_mlp)} if cfg.whisper_mlp else {})}
    if cfg.prosody > 0:
        if cfg.prosody_set not in PROSODY_SETS or cfg.pooling != "mean" or prosody_scaler is None:
            return None
        from emolens.features.prosody import N_PROSODY
        from emolens.features.prosody_files import prosody_cache_tag

        spec = {"dim": N_PROSODY, "weight": float(prosody_scaler.weight), "clip": float(prosody_scaler.clip),
                "features": prosody_cache_tag(PROSODY_SETS[cfg.prosody_set])}
        head = FusionHead(cfg.streams, n_classes, hidden=0, dropout=0.0, pooling="mean+prosody", prosody=spec,
                          whisper=whisper)
        head.prosody_mean.copy_(torch.as_tensor(prosody_scaler.mean_, dtype=torch.float32))
        head.prosody_scale.copy_(torch.as_tensor(prosody_scaler.scale_, dtype=torch.float32))
        width = head.width + head.utterance_dim
    elif cfg.pooling == "mean+std":
        head = FusionHead(cfg.streams, n_classes, hidden=0, dropout=0.0, pooling="mean+std")
        width = 2 * head.width
    else:
        return None
    lin = model[-1]
    if lin.in_features != width:  # features that are not the model's streams
        return None
    head.classifier[1].load_state_dict(lin.state_dict())
    if head.whisper_mlp is not None:  # fit_classifier's MLP: (Dropout, Linear, ReLU), (Dropout, Linear)
        head.whisper_mlp[0].load_state_dict(whisper_mlp[0][1].state_dict())
        head.whisper_mlp[2].load_state_dict(whisper_mlp[1][1].state_dict())
    return head.eval()


#: emolens prosody functionals a row can fuse (``HeadConfig.prosody_set``): ``emolens`` (the
#: shipped recipe) and ``emolens-audible`` (the unvoiced means over audible frames only, as
#: shipped at stops 10-12: the stop-13 ablation)
PROSODY_SETS: dict[str, ProsodyConfig] = {"emolens": DEFAULT_PROSODY,
                                           "emolens-audible": ProsodyConfig(unvoiced_frames="audible")}


def _prosody_of(cfg: HeadConfig, cf: CorpusFeatures) -> np.ndarray | None:
    """The utterance functionals ``cfg.prosody_set`` names: openSMILE's eGeMAPS or emolens's own."""
    if cfg.prosody_set == "egemaps":
        return cf.egemaps
    if cfg.prosody_set == "emolens":
        return cf.prosody
    if cfg.prosody_set in PROSODY_SETS:
        return cf.prosody_variants.get(cfg.prosody_set)
    raise ValueError(f"unknown prosody_set {cfg.prosody_set!r}; use egemaps or one of {', '.join(PROSODY_SETS)}")


def whisper_scaler(cfg: HeadConfig, train: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """The map from raw Whisper streams ``(U, D)`` to the head's columns (``cfg.whisper_norm``,
    times ``cfg.whisper``), fitted on the training rows ``train`` where it has statistics."""
    if cfg.whisper_norm == "row":
        return lambda v: (cfg.whisper * layer_norm(v)).astype(np.float32)
    if cfg.whisper_norm in ("row2", "mean"):
        half = lambda v: v.shape[1] // 2  # noqa: E731 - the mean+sd stream: [mean (D), sd (D)]
        if cfg.whisper_norm == "mean":
            return lambda v: (cfg.whisper * layer_norm(v[:, : half(v)])).astype(np.float32)
        return lambda v: (cfg.whisper * np.concatenate([layer_norm(v[:, : half(v)]), layer_norm(v[:, half(v):])], 1)
                          ).astype(np.float32)
    if cfg.whisper_norm == "z":
        from emolens.evaluation.utterance_levers import ProsodyScaler

        return ProsodyScaler(weight=cfg.whisper).fit(train).transform
    raise ValueError(f"unknown whisper_norm {cfg.whisper_norm!r}; use row, row2, mean or z")


def _run_fold_levers(cfg: HeadConfig, data: dict[str, CorpusFeatures], fold: LocoFold, seed: int
                     ) -> tuple[FoldResult, FusionHead | None]:
    """:func:`run_fold` with utterance-decision levers (see :class:`HeadConfig`); the head
    too where the model can ship it (:func:`lever_head`)."""
    from emolens.evaluation.utterance_levers import (
        ProsodyScaler,
        fit_classifier,
        nap_basis,
        predict_proba,
        project_out,
    )

    parts = [data[c] for c in fold.train]
    test = data[fold.test]
    n_classes = len(test.classes)
    X, y, corpus, spk, E, V = [], [], [], [], [], []
    for p in parts:
        for r in _lever_rows(cfg, p, train=True):
            X.append(r)
            y.append(p.y)
            corpus.append(np.full(p.n_utt, p.name))
            spk.append(np.char.add(p.name + "/", p.speakers.astype(str)))
            E.append(_prosody_of(cfg, p))
            V.append(p.whisper)
    X, y, corpus, spk = np.concatenate(X), np.concatenate(y), np.concatenate(corpus), np.concatenate(spk)
    Xt = _lever_rows(cfg, test, train=False)[0]
    if cfg.nap:
        basis = nap_basis(X, y, spk, cfg.nap, n_classes)
        X, Xt = project_out(X, basis), project_out(Xt, basis)
    sc = None
    if cfg.prosody > 0:
        Et = _prosody_of(cfg, test)
        if any(e is None for e in E) or Et is None:
            what = "eGeMAPS" if cfg.prosody_set == "egemaps" else "emolens prosody"
            raise ValueError(f"prosody fusion needs {what} functionals on every corpus (CorpusFeatures.egemaps / .prosody)")
        sc = ProsodyScaler(weight=cfg.prosody).fit(np.concatenate(E))
        X = np.concatenate([X, sc.transform(np.concatenate(E))], 1)
        Xt = np.concatenate([Xt, sc.transform(Et)], 1)
    if cfg.whisper > 0:
        if any(v is None for v in V) or test.whisper is None:
            raise ValueError("Whisper fusion needs the Whisper stream on every corpus (CorpusFeatures.whisper)")
        wt = whisper_scaler(cfg, np.concatenate(V))
        X, Xt = np.concatenate([X, wt(np.concatenate(V))], 1), np.concatenate([Xt, wt(test.whisper)], 1)
    w = _weights(cfg, y, corpus, np.arange(len(y)).astype(str), n_classes)

    train = {"epochs": cfg.epochs, "batch_size": cfg.batch_size, "lr": cfg.lr, "weight_decay": cfg.weight_decay,
             "mixup": cfg.mixup}

    def fit(s: int) -> nn.Module:
        return fit_classifier(X, y, w, n_classes, hidden=cfg.hidden, corpus=corpus, adversarial=cfg.adversarial,
                              seed=s, **train)

    model = fit(seed)
    if cfg.ensemble > 1:
        if cfg.hidden or cfg.adversarial or cfg.finetune:
            raise ValueError("ensemble averages linear heads: it needs hidden=0, no adversarial branch and no finetune")
        average_linear(model[-1], [fit(1000 * seed + i)[-1] for i in range(1, cfg.ensemble)])
    if cfg.finetune:
        Xt = _finetune(cfg, model, X, Xt, y, w, parts, test, seed)
    probs = predict_proba(model, Xt)
    mlp = None
    if cfg.whisper_mlp:
        if cfg.whisper <= 0 or cfg.finetune:
            raise ValueError("whisper_mlp needs the Whisper stream (whisper > 0) and no finetune")
        k = test.whisper.shape[1]  # the Whisper stream: the rows' last columns
        mlp = fit_classifier(X[:, -k:], y, w, n_classes, hidden=cfg.whisper_mlp, seed=seed, **train)
        with torch.no_grad():  # the two experts' product: the sum of their logits
            xt = torch.from_numpy(np.ascontiguousarray(Xt, np.float32))
            logits = model(xt) + mlp(xt[:, -k:])
        probs = torch.softmax(logits, 1).numpy()
    res = FoldResult(fold.test, fold.train, probs, test.y, test.speakers, score(probs, test.y, test.classes))
    return res, lever_head(cfg, model, n_classes, sc, mlp)


def average_linear(first: nn.Linear, others: Sequence[nn.Linear]) -> nn.Linear:
    """``first`` (in place) made the mean of itself and ``others`` (weights and biases): for
    linear heads on the same inputs, the logits are then the mean of theirs."""
    with torch.no_grad():
        for name in ("weight", "bias"):
            getattr(first, name).copy_(torch.stack([getattr(m, name) for m in (first, *others)]).mean(0))
    return first


def _finetune(cfg: HeadConfig, model: nn.Module, X: np.ndarray, Xt: np.ndarray, y: np.ndarray, w: np.ndarray,
              parts: Sequence[CorpusFeatures], test: CorpusFeatures, seed: int) -> np.ndarray:
    """LP-FT of the lever path's linear probe ``model`` (in place); the test rows recomputed."""
    from emolens.evaluation.finetune_top import UtterancePatches, finetune_fold
    from emolens.models import load_yamnet_file, resolve_weights

    if cfg.hidden or cfg.nap or cfg.augment or cfg.frontend != "none" or cfg.pooling != "mean":
        raise ValueError("finetune combines only with a linear head on mean-pooled streams (and prosody)")
    layer = cfg.finetune - 1
    missing = [p.name for p in (*parts, test) if layer not in p.activations]
    if missing:
        raise ValueError(f"finetune={cfg.finetune} needs cached layer-{layer} maps on {missing}")
    ups = [UtterancePatches.of(p.utt, p.speech, p.n_utt) for p in parts]
    yam = load_yamnet_file(resolve_weights("yamnet", None)).eval()
    Xt, _ = finetune_fold(model[-1], X, Xt, y, w, [p.activations[layer] for p in parts], ups,
                          test.activations[layer], UtterancePatches.of(test.utt, test.speech, test.n_utt),
                          cfg.streams, cfg.finetune, yamnet=yam, epochs=cfg.finetune_epochs, lr=cfg.finetune_lr,
                          lr_head=cfg.finetune_lr, mixup=cfg.mixup, seed=seed)
    return Xt


def fold_data_key(data: dict[str, CorpusFeatures], fold: LocoFold) -> str:
    """Fingerprint of what a fold trains and tests on (each corpus's labels, speakers and
    number of patches): a cached fold is reused only while it matches."""
    h = hashlib.sha1()
    for c in (*fold.train, fold.test):
        cf = data[c]
        h.update(f"{c}:{cf.n_utt}:{len(cf.utt)}:{','.join(cf.classes)}".encode())
        h.update(np.ascontiguousarray(cf.y, np.int64).tobytes())
        h.update("\0".join(map(str, cf.speakers)).encode())
    return h.hexdigest()[:16]


def run_loco(cfg: HeadConfig, data: dict[str, CorpusFeatures], seed: int = 0, out: Path | None = None,
             log=print, evaluate_only: Sequence[str] | None = None) -> list[FoldResult]:
    """Every fold of :func:`loco_folds` (``evaluate_only``: corpora only tested, default
    CASIA); with ``out``, each fold's result is stored as ``out/<test>.npz`` and reused on
    a re-run (resumable) while the fold's data, the head config and the seed are the same."""
    results = []
    head_key = f"{cfg.key()}:{seed}"
    for fold in loco_folds(list(data), evaluate_only):
        f = None if out is None else Path(out) / f"{fold.test}.npz"
        key = fold_data_key(data, fold)
        r = None
        if f is not None and f.exists():
            with np.load(f, allow_pickle=False) as z:
                # else the corpora changed (a new labelling), or the head (another HEAD in the same folder)
                if "data_key" in z.files and str(z["data_key"]) == key and "head_key" in z.files \
                        and str(z["head_key"]) == head_key:
                    r = FoldResult(fold.test, fold.train, z["probs"], z["y"], z["speakers"],
                                   json.loads(str(z["metrics"])))
        if r is None:
            t0 = time.perf_counter()
            r, _ = run_fold(cfg, data, fold, seed)
            r.metrics["seconds"] = round(time.perf_counter() - t0, 1)
            if f is not None:
                f.parent.mkdir(parents=True, exist_ok=True)
                tmp = f.with_name(f.name + ".tmp.npz")
                np.savez(tmp, probs=r.probs, y=r.y, speakers=r.speakers, metrics=json.dumps(r.metrics), data_key=key,
                         head_key=head_key)
                os.replace(tmp, f)
            if log:
                log(f"  {fold.test:<8} UAR {r.metrics['uar']:.3f}  ({r.metrics['seconds']:.0f} s)")
        results.append(r)
    return results


def summarise(results: Sequence[FoldResult]) -> dict:
    """Per test corpus metrics plus mean and worst UAR (over every test corpus, and over
    the corpora that were trained on in the other folds)."""
    per = {r.test: r.metrics for r in results}
    trained = {c for r in results for c in r.train}
    dev = [r.metrics["uar"] for r in results if r.test in trained]
    uars = [m["uar"] for m in per.values()]
    return {"per_corpus": per, "mean_uar": float(np.mean(uars)), "worst_uar": float(np.min(uars)),
            "mean_uar_dev": float(np.mean(dev)), "worst_uar_dev": float(np.min(dev)),
            "mean_f1": float(np.mean([m["f1_macro"] for m in per.values()])),
            "mean_ece": float(np.mean([m["ece"] for m in per.values()]))}


def egemaps_loco(works: dict[str, WorkDir], out: Path | None = None, progress: bool = False,
                 evaluate_only: Sequence[str] | None = None) -> dict[str, dict]:
    """eGeMAPS functionals + RBF-SVM on the same LOCO folds: ``{test corpus: metrics}``
    (cached in ``out/egemaps[-<evaluate-only>]-<labels key>.json``; functionals cached per work dir)."""
    from emolens.evaluation.egemaps import EgemapsSVM, extract_egemaps

    tag = "" if evaluate_only is None else "-" + "-".join(sorted(evaluate_only))
    labels = hashlib.sha1(json.dumps({c: [w.labels().tolist(), w.manifest.speaker_array().astype(str).tolist()]
                                      for c, w in sorted(works.items())}).encode()).hexdigest()[:8]
    cache = None if out is None else Path(out) / f"egemaps{tag}-{labels}.json"  # a new labelling: measured again
    if cache is not None and cache.exists():
        return json.loads(cache.read_text())
    X = {c: extract_egemaps(w.manifest.paths(), cache_dir=w.root / "egemaps", progress=progress) for c, w in works.items()}
    res = {}
    for fold in loco_folds(list(works), evaluate_only):
        tr = fold.train
        clf = EgemapsSVM().fit(np.concatenate([X[c] for c in tr]), np.concatenate([works[c].labels() for c in tr]),
                               groups=np.concatenate([np.char.add(c + "/", works[c].manifest.speaker_array()) for c in tr]))
        pred = clf.predict(X[fold.test])
        y = works[fold.test].labels()
        rep = classification_report_dict(y, pred, works[fold.test].classes)
        res[fold.test] = {"uar": float(rep["uar"]), "f1_macro": float(rep["f1_macro"]), "accuracy": float(rep["accuracy"])}
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_text(json.dumps(res, indent=2))
    return res


__all__ = [
    "STREAMS",
    "CorpusFeatures",
    "FoldResult",
    "HeadConfig",
    "LocoFold",
    "PatchFeatures",
    "corpus_features",
    "egemaps_loco",
    "expected_calibration_error",
    "fold_data_key",
    "lever_head",
    "loco_folds",
    "mixup_batch",
    "patch_probs",
    "run_fold",
    "run_loco",
    "score",
    "summarise",
    "train_head",
    "utterance_decisions",
    "utterance_vector",
    "variant_features",
    "vote",
]
