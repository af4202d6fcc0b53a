"""Classifying recordings with a trained model (the practitioner's entry point).

>>> rec = EmotionRecognizer.from_dir("runs/fusion")          # doctest: +SKIP
>>> rec.predict_file("clip.wav").label                          # doctest: +SKIP
'angry'
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import numpy as np
import torch

from emolens.audio.io import DEFAULT_MAX_SECONDS, AudioClip, load_audio
from emolens.features.normalize import normalize_streams
from emolens.features.mel import FrontEndConfig, frontend_from_dict, log_mel, mel_spectrogram
from emolens.features.patches import PatchConfig, log_mel_patches
from emolens.models.io import load_model
from emolens.selection.gds import GaussianDataSelector


@dataclass
class Analysis:
    """Everything computed on the way to a prediction (the explanations reuse it).

    Attributes:
        clip: the decoded audio (16 kHz mono).
        log_mel: ``(n_frames, 64)`` ``log(mel + 0.01)`` of the whole recording.
        patches: ``(n_patches, 96, 64)`` the same, cut into patches.
        keep: ``(n_patches,)`` GDS decision (all True without GDS).
        patch_probs: ``(n_patches, C)`` softmax per patch.
        probs: ``(C,)`` utterance probabilities = mean over kept patches.
    """

    clip: AudioClip
    log_mel: np.ndarray
    patches: np.ndarray
    keep: np.ndarray
    patch_probs: np.ndarray
    probs: np.ndarray
    classes: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        return self.classes[int(np.argmax(self.probs))]

    @property
    def confidence(self) -> float:
        return float(np.max(self.probs))

    def as_dict(self) -> dict:
        return {"file": self.clip.path, "label": self.label, "probability": self.confidence,
                "probabilities": {c: float(p) for c, p in zip(self.classes, self.probs)},
                "patches": int(len(self.keep)), "patches_kept": int(self.keep.sum()),
                "duration_s": round(self.clip.duration, 3), "notes": list(self.clip.notes)}


class EmotionRecognizer:
    """A trained emolens model with its front end and GDS selector."""

    def __init__(self, model, config: dict, gds_state: dict | None = None):
        self.model = model.eval()
        self.config = config
        self.classes: list[str] = list(config["classes"])
        fe = config["frontend"]
        self.frontend: FrontEndConfig = frontend_from_dict(fe)
        self.patch_config = PatchConfig(**config["patches"])
        self.selector = (GaussianDataSelector.from_state(gds_state)
                         if gds_state is not None and config.get("gds", {}).get("enabled") else None)

    @classmethod
    def from_dir(cls, run_dir: str | Path) -> "EmotionRecognizer":
        model, config, gds = load_model(run_dir)
        if config.get("normalize", "none") in ("speaker", "corpus"):
            logging.getLogger("emolens").warning(
                "note: %s normalises features per %s; clips are normalised with their own statistics unless "
                "groups are given (emolens evaluate groups the test clips by %s)", run_dir, config["normalize"], config["normalize"])
        return cls(model, config, gds)

    @property
    def normalize(self) -> str:
        """Stream-feature normalisation the model was trained with (``none``, ``corpus``,
        ``speaker`` or ``utterance``; see :mod:`emolens.features.normalize`)."""
        return self.config.get("normalize", "none")

    @torch.no_grad()
    def patch_outputs(self, patches: np.ndarray, batch_size: int = 64,
                      groups: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
        """Emotion softmax ``(n, C)`` and YAMNet's AudioSet scores ``(n, 521)`` (``None``
        for a model without a YAMNet branch) for log-mel patches ``(n, 96, 64)``.

        A model trained with stream normalisation z-scores its stream features within
        each group of ``groups (n,)`` (default: all patches form one group)."""
        if self.normalize != "none":
            return self._normalized_outputs(patches, batch_size, groups)
        probs, audioset = [], []
        with_as = self.model.yamnet is not None
        for s in range(0, len(patches), batch_size):
            x = torch.from_numpy(np.ascontiguousarray(patches[s : s + batch_size], dtype=np.float32)).unsqueeze(1)
            if with_as:
                logits, scores = self.model.forward_with_audioset(x)
                audioset.append(scores.numpy())
            else:
                logits = self.model(x)
            probs.append(torch.softmax(logits, 1).numpy())
        return np.concatenate(probs), (np.concatenate(audioset) if with_as else None)

    def _normalized_outputs(self, patches: np.ndarray, batch_size: int, groups: np.ndarray | None):
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
        logits = self.model.head({k: torch.from_numpy(v) for k, v in normed.items()})
        return torch.softmax(logits, 1).numpy(), audioset

    def patch_probabilities(self, patches: np.ndarray, batch_size: int = 64,
                            groups: np.ndarray | None = None) -> np.ndarray:
        """Softmax ``(n, C)`` for log-mel patches ``(n, 96, 64)`` (``groups``: see :meth:`patch_outputs`)."""
        return self.patch_outputs(patches, batch_size, groups)[0]

    def _patches(self, clip: AudioClip) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(log-mel (n_frames, 64), patches (n, 96, 64), GDS keep (n,)) of one clip."""
        mel = mel_spectrogram(clip.samples, self.frontend)
        short = f"shorter than one patch ({self.patch_config.patch_frames * self.frontend.frame_seconds:.2f} s): padded with silence"
        if mel.shape[0] < self.patch_config.patch_frames and short not in clip.notes:
            clip.notes.append(short)
        patches = log_mel_patches(mel, self.patch_config)
        keep = np.ones(len(patches), bool)
        if self.selector is not None:
            keep = self.selector.select(patches, np.zeros(len(patches), int)).keep
        return log_mel(mel, "vggish"), patches, keep

    def analyze_clips(self, clips: list[AudioClip], batch_size: int = 64,
                      groups: list | None = None) -> list[Analysis]:
        """Classify several clips with their patches batched together. ``groups`` (one key
        per clip, e.g. its speaker) sets the normalisation groups of a model trained with
        stream normalisation; by default each clip is its own group."""
        parts = [self._patches(c) for c in clips]
        if not parts:
            return []
        keys = list(range(len(clips))) if groups is None else list(groups)
        per_patch = np.concatenate([np.full(len(p[1]), i) for i, p in enumerate(parts)])
        _, key_ids = np.unique(np.asarray([str(k) for k in keys]), return_inverse=True)
        probs = self.patch_probabilities(np.concatenate([p[1] for p in parts]), batch_size, key_ids[per_patch])
        out, start = [], 0
        for clip, (lm, patches, keep) in zip(clips, parts):
            pp = probs[start : start + len(patches)]
            start += len(patches)
            out.append(Analysis(clip, lm, patches, keep, pp, pp[keep].mean(0), self.classes))
        return out

    def analyze_clip(self, clip: AudioClip) -> Analysis:
        """Classify one decoded clip (16 kHz mono)."""
        return self.analyze_clips([clip])[0]

    def analyze(self, path: str | Path, max_seconds: float | None = DEFAULT_MAX_SECONDS) -> Analysis:
        """Load ``path`` (any format/rate/channels) and classify it."""
        return self.analyze_clip(load_audio(path, sample_rate=self.frontend.sample_rate, max_seconds=max_seconds))

    def predict_file(self, path: str | Path) -> Analysis:
        return self.analyze(path)

    def predict_files(self, paths: Iterable[str | Path], chunk: int = 16) -> Iterable[Analysis]:
        """Classify files ``chunk`` at a time (patches of a chunk share forward passes)."""
        paths = list(paths)
        for s in range(0, len(paths), chunk):
            clips = [load_audio(p, sample_rate=self.frontend.sample_rate) for p in paths[s : s + chunk]]
            yield from self.analyze_clips(clips)
