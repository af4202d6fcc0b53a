"""Probe (stop 19): can a region explanation of the Whisper model cover its Whisper stream?

    python benchmarks/whisper/region_probe.py --per-class 1     (about 2 min on 2 cores)

Measured and dropped: the first-order estimate below does not track the exact re-encoding
(see benchmarks/faithfulness.md, "Stop 19"); ``emolens.explain.streams`` ships instead.

A region (a time unit x a group of mel bands of the YAMNet/VGGish log-mel) is deleted from the
spectrogram by setting its cells to the log-mel's mean value. The same region exists in the
Whisper encoder's own front end (80 Slaney mel bins, 0-8 kHz, frames centred every 10 ms): each
Whisper cell belongs to the region of the spectrogram cell nearest in time and frequency
(:func:`whisper_region_ids`; a Whisper frame ``j`` is centred at ``j * 10`` ms, a VGGish frame
``i`` at ``i * 10 + 12.5`` ms; a Whisper bin belongs to the band group whose mel band centre is
nearest in Hz), and deleting it there sets those cells to the Whisper log-mel's mean value.

* :func:`deleted_whisper_stream` re-encodes the clip with a set of spectrogram cells deleted:
  the exact stream of the deletion (the faithfulness benchmark's curves use it).
* :func:`whisper_region_scores` estimates each region's occlusion effect on the decision's
  score through the Whisper stream to first order: ``grad . (baseline - mel)`` over the region's
  Whisper cells, one forward and one backward encoder pass for all regions (exact re-encoding
  would take one pass per region, about 90 for a 3-s clip).

Clips longer than one Whisper window (30 s) are not split (``None``): explanations are of clips.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from emolens.features.mel import VGGISH_16K, FrontEndConfig, mel_band_centers
from emolens.features.whisper_mel import _FILTERS, N_FFT, SAMPLE_RATE, whisper_log_mel

#: a VGGish frame's centre lies this many Whisper frames after the Whisper frame of the same index
#: (VGGish frames start every 10 ms with a 25-ms window; Whisper's are centred every 10 ms)
WHISPER_FRAME_OFFSET = 1.25
#: the longest clip the Whisper part of an explanation handles (one encoder window), in samples
MAX_SAMPLES = 30 * SAMPLE_RATE


def _bin_centres_hz() -> np.ndarray:
    """``(80,)`` centre frequency of each Whisper mel bin (its filter's peak), Hz."""
    return np.argmax(_FILTERS, axis=1) * SAMPLE_RATE / N_FFT


def whisper_cell_map(n_whisper_frames: int, n_frames: int, cfg: FrontEndConfig = VGGISH_16K) -> tuple[np.ndarray, np.ndarray]:
    """For each Whisper cell, the spectrogram cell nearest it: frame indices ``(T_w,)`` into the
    ``n_frames`` VGGish frames and band indices ``(80,)`` into the ``cfg.n_mels`` mel bands."""
    frames = np.clip(np.rint(np.arange(n_whisper_frames) - WHISPER_FRAME_OFFSET), 0, n_frames - 1).astype(int)
    bands = np.argmin(np.abs(_bin_centres_hz()[:, None] - mel_band_centers(cfg)[None, :]), axis=1)
    return frames, bands


def whisper_region_ids(region_ids: np.ndarray, n_whisper_frames: int, cfg: FrontEndConfig = VGGISH_16K) -> np.ndarray:
    """``(80, T_w)`` region id of each Whisper log-mel cell, from the spectrogram's
    ``region_ids (n_frames, n_mels)``."""
    frames, bands = whisper_cell_map(n_whisper_frames, region_ids.shape[0], cfg)
    return np.asarray(region_ids)[frames[None, :], bands[:, None]]


def _mel(samples: np.ndarray) -> np.ndarray | None:
    x = np.asarray(samples, np.float32)
    if x.size > MAX_SAMPLES:
        return None
    from emolens.models.whisper import MIN_SAMPLES

    if x.size < MIN_SAMPLES:
        x = np.pad(x, (0, MIN_SAMPLES - x.size))
    return whisper_log_mel(x)


def _stream(encoder, layers: tuple[int, ...], mel: torch.Tensor) -> torch.Tensor:
    """Mean and sd (n - 1) over frames of the encoder states ``layers`` averaged frame by frame
    (the model's stream, :func:`emolens.models.whisper.stream_frames`): ``(1024,)`` (differentiable)."""
    states = encoder(mel[None])
    h = torch.stack([states[k][0] for k in layers]).mean(0)
    sd = h.std(0, unbiased=True) if h.shape[0] > 1 else torch.zeros_like(h[0])
    return torch.cat([h.mean(0), sd])


def deleted_whisper_stream(rec, samples: np.ndarray, deleted: np.ndarray, cfg: FrontEndConfig = VGGISH_16K) -> np.ndarray | None:
    """The pooled Whisper stream ``(1024,)`` of the clip with the spectrogram cells ``deleted``
    ``(n_frames, n_mels)`` (bool) deleted in the Whisper log-mel too (set to its mean value);
    ``None`` for a clip over 30 s."""
    mel = _mel(samples)
    if mel is None:
        return None
    frames, bands = whisper_cell_map(mel.shape[1], deleted.shape[0], cfg)
    gone = np.asarray(deleted, bool)[frames[None, :], bands[:, None]]
    m = np.where(gone, mel.mean(), mel).astype(np.float32)
    with torch.inference_mode():
        return _stream(rec.whisper_encoder(), rec.whisper_config.layers, torch.from_numpy(m)).numpy().astype(np.float32)


def whisper_region_scores(rec, analysis, region_ids: np.ndarray, n_regions: int, target: int,
                          contrast: int | None = None) -> np.ndarray | None:
    """``(R,)`` each region's first-order effect, through the Whisper stream, on the score the
    regions explain (``log P(target)``, minus ``log P(contrast)``; the spectrogram part and the
    functionals held at the recording's): ``sum over its Whisper cells of grad * (mean - mel)``,
    with the sign of an attribution (positive: the region is evidence for the target). ``None``
    when the model has no Whisper stream, for a clip decided with ``--adapt`` or over 30 s."""
    if not getattr(rec, "whisper_spec", None) or not analysis.context or analysis.adapted:
        return None
    mel = _mel(analysis.clip.samples)
    if mel is None:
        return None
    d = rec.decision
    q = np.asarray(analysis.context[0], np.float64)
    w = torch.as_tensor(np.asarray(d.weight, np.float64), dtype=torch.float32)
    fixed = torch.as_tensor(np.concatenate([np.asarray(analysis.context[1], np.float64), d.scaled(q)[: d.n_prosody]])
                            @ np.asarray(d.weight, np.float64)[:, : d.width + d.n_prosody].T + d.bias, dtype=torch.float32)
    x = torch.from_numpy(mel).requires_grad_(True)
    with torch.enable_grad():
        s = _stream(rec.whisper_encoder(), rec.whisper_config.layers, x)
        logits = fixed + d.wweight * F.layer_norm(s, (s.shape[0],), eps=1e-5) @ w[:, d.width + d.n_prosody :].T
        lp = torch.log_softmax(logits, -1)
        score = lp[target] - (lp[contrast] if contrast is not None else 0.0)
        (grad,) = torch.autograd.grad(score, x)
    # deleting a region moves the score by about grad . (mean - mel); its attribution is minus that
    effect = (grad.numpy().astype(np.float64) * (float(mel.mean()) - mel))
    ids = whisper_region_ids(region_ids, mel.shape[1], rec.frontend)
    return -np.bincount(ids.ravel(), effect.ravel(), minlength=n_regions)[:n_regions]


def main(argv: list[str] | None = None) -> int:
    """Per clip: the first-order region scores against the exact ones (one re-encoding per region)."""
    import argparse
    import os
    import sys
    import time
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from faithfulness import CORPORA, pick_clips

    from emolens.audio.io import load_audio
    from emolens.explain.regions import DEFAULT_REGIONS, make_regions
    from emolens.inference import EmotionRecognizer

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(Path(os.environ.get("EMOLENS_SHARED", Path(__file__).resolve().parents[3] / "shared"))
                                          / "data"))
    ap.add_argument("--per-class", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(2)
    rec = EmotionRecognizer.default(name="whisper", backend="torch")
    d = rec.decision
    corr, overlap, t_lin, t_exact = [], [], [], []
    print("| corpus | clip | regions | Pearson r (first order vs exact) | top-5 overlap |\n|---|---|---|---|---|")
    for corpus in CORPORA:
        for path, _ in pick_clips(Path(args.data), corpus, list(rec.classes), args.per_class):
            a = rec.analyze_clip(load_audio(path))
            t = int(np.argmax(a.probs))
            reg = make_regions(a.log_mel, DEFAULT_REGIONS, rec.frontend)
            s0 = time.process_time()
            lin = whisper_region_scores(rec, a, reg.ids, reg.n, t)
            t_lin.append(time.process_time() - s0)
            q, mu = np.asarray(a.context[0], np.float64), np.asarray(a.context[1], np.float64)

            def score(qw: np.ndarray) -> float:
                lg = d.logits(mu, np.concatenate([q[: d.n_prosody], qw]))
                return float(lg[t] - lg.max() - np.log(np.exp(lg - lg.max()).sum()))

            s0 = time.process_time()
            full = score(q[d.n_prosody :])
            exact = np.array([full - score(deleted_whisper_stream(rec, a.clip.samples, reg.ids == r)) for r in range(reg.n)])
            t_exact.append(time.process_time() - s0)
            corr.append(float(np.corrcoef(lin, exact)[0, 1]))
            overlap.append(len(set(np.argsort(-lin)[:5]) & set(np.argsort(-exact)[:5])))
            print(f"| {corpus} | {Path(path).name} | {reg.n} | {corr[-1]:.2f} | {overlap[-1]}/5 |", flush=True)
    print(f"\nmean Pearson r {np.mean(corr):.2f} (min {np.min(corr):.2f}), top-5 overlap {np.mean(overlap):.1f}/5; "
          f"CPU s per clip: first order {np.mean(t_lin):.2f}, exact {np.mean(t_exact):.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
