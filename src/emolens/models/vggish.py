"""VGGish (Google, AudioSet) in PyTorch, numerically identical to the published network.

Architecture (``tensorflow/models`` ``research/audioset/vggish/vggish_slim.py``; key
layout of the PyTorch port ``harritaylor/torchvggish``, so its ``vggish-10086976.pth``
loads with ``strict=True``):

* input: ``(B, 1, 96, 64)`` log-mel patches, 96 frames of 10 ms x 64 mel bands
  (125-7500 Hz), values ``log(mel + 0.01)``;
* ``features``: four blocks of 3x3 convs (stride 1, padding 1 = TF ``SAME``) + ReLU, each
  block ending in a 2x2/2 max-pool: 64 | 128 | 256, 256 | 512, 512 channels;
* ``embeddings``: ``Linear(12288, 4096)`` ReLU ``Linear(4096, 4096)`` ReLU
  ``Linear(4096, 128)`` ReLU. The conv output is flattened in TensorFlow's NHWC order
  (frame, band, channel) before the first ``Linear``, as TF's ``slim.flatten`` did.

The final ReLU: Google's graph returns the *pre-activation* ``fc2`` output
(``vggish/embedding``); the PyTorch port applies a ReLU to it. ``VGGish(final_relu=True)``
(the default) matches the port; ``final_relu=False`` matches Google's tensor exactly.
"""

from __future__ import annotations

import warnings
import zipfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch
from torch import nn

from emolens.errors import WeightsError

NUM_FRAMES = 96  # frames (10 ms hop) per input patch
NUM_BANDS = 64  # mel bands per frame
EMBEDDING_SIZE = 128
LOG_OFFSET = 0.01  # input is log(mel + LOG_OFFSET)
FC_IN = 512 * 6 * 4  # flattened last conv block, NHWC order
PCA_EIGEN_VECTORS_NAME = "pca_eigen_vectors"
PCA_MEANS_NAME = "pca_means"
QUANTIZE_MIN_VAL = -2.0
QUANTIZE_MAX_VAL = 2.0

# (index of the conv in `features`, TF variable scope) in network order
_CONV_LAYERS: tuple[tuple[int, str], ...] = (
    (0, "vggish/conv1"),
    (3, "vggish/conv2"),
    (6, "vggish/conv3/conv3_1"),
    (8, "vggish/conv3/conv3_2"),
    (11, "vggish/conv4/conv4_1"),
    (13, "vggish/conv4/conv4_2"),
)
_FC_LAYERS: tuple[tuple[int, str], ...] = (
    (0, "vggish/fc1/fc1_1"),
    (2, "vggish/fc1/fc1_2"),
    (4, "vggish/fc2"),
)
_FEATURE_PLAN: tuple[int | str, ...] = (64, "M", 128, "M", 256, 256, "M", 512, 512, "M")


def _make_features() -> nn.Sequential:
    """The conv stack; indices match torchvggish (conv at 0, 3, 6, 8, 11, 13)."""
    layers: list[nn.Module] = []
    in_ch = 1
    for v in _FEATURE_PLAN:
        if v == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            assert isinstance(v, int)
            layers += [nn.Conv2d(in_ch, v, kernel_size=3, padding=1), nn.ReLU()]
            in_ch = v
    return nn.Sequential(*layers)


def flatten_nhwc(x: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, H*W*C), index ``(h*W + w)*C + c`` as TF's NHWC flatten."""
    return x.permute(0, 2, 3, 1).reshape(x.shape[0], -1)


class VGGish(nn.Module):
    """VGGish embedding network; input (B, 1, 96, 64) log-mel patches (a (B, 96, 64)
    batch is accepted too). ReLUs are not in-place, so hooks/attribution methods see
    every activation. ``init=True`` applies :func:`init_random`."""

    def __init__(self, final_relu: bool = True, init: bool = True) -> None:
        super().__init__()
        self.final_relu = final_relu
        self.features = _make_features()
        self.embeddings = nn.Sequential(
            nn.Linear(FC_IN, 4096),
            nn.ReLU(),
            nn.Linear(4096, 4096),
            nn.ReLU(),
            nn.Linear(4096, EMBEDDING_SIZE),
            nn.ReLU(),
        )
        if init:
            init_random(self)

    @staticmethod
    def _check(x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 3:
            x = x.unsqueeze(1)
        if x.dim() != 4 or tuple(x.shape[1:]) != (1, NUM_FRAMES, NUM_BANDS):
            raise ValueError(
                f"VGGish expects (B, 1, {NUM_FRAMES}, {NUM_BANDS}) log-mel patches, got {tuple(x.shape)}"
            )
        return x

    def block_outputs(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Outputs of the 4 conv blocks, each after its max-pool:
        (B,64,48,32), (B,128,24,16), (B,256,12,8), (B,512,6,4)."""
        x = self._check(x)
        outs: list[torch.Tensor] = []
        for layer in self.features:
            x = layer(x)
            if isinstance(layer, nn.MaxPool2d):
                outs.append(x)
        return outs

    def conv_features(self, x: torch.Tensor) -> torch.Tensor:
        """Last conv block after its pool, (B, 512, 6, 4) = (B, C, frames, bands); no global pooling."""
        return self.features(self._check(x))

    def fc_features(self, x: torch.Tensor) -> torch.Tensor:
        """Output of the second fully connected layer + ReLU, (B, 4096)."""
        return self.embeddings[:4](flatten_nhwc(self.conv_features(x)))

    def embedding_preact(self, x: torch.Tensor) -> torch.Tensor:
        """Google's ``vggish/embedding`` tensor (fc2 before any ReLU), (B, 128)."""
        return self.embeddings[4](self.fc_features(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """128-D embedding (B, 128): fc2 + ReLU when ``final_relu`` (torchvggish), else
        the pre-activation (Google)."""
        e = self.embedding_preact(x)
        return self.embeddings[5](e) if self.final_relu else e


def init_random(model: VGGish, generator: torch.Generator | None = None) -> VGGish:
    """Random start for training from scratch (no BN in VGGish, so fan-out He init keeps
    activations from vanishing): convs ``N(0, 2/fan_out)``, linears ``N(0, 0.01)``, biases 0
    (torchvision's VGG scheme). Returns ``model``."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            fan_out = m.out_channels * m.kernel_size[0] * m.kernel_size[1]
            with torch.no_grad():
                m.weight.normal_(0.0, (2.0 / fan_out) ** 0.5, generator=generator)
                m.bias.zero_()
        elif isinstance(m, nn.Linear):
            with torch.no_grad():
                m.weight.normal_(0.0, 0.01, generator=generator)
                m.bias.zero_()
    return model


# --------------------------------------------------------------------------- loading


def state_dict_layout() -> dict[str, tuple[int, ...]]:
    """torchvggish key -> tensor shape, in module order (derived from the layer plan)."""
    out: dict[str, tuple[int, ...]] = {}
    idx, in_ch = 0, 1
    for v in _FEATURE_PLAN:
        if v == "M":
            idx += 1
            continue
        assert isinstance(v, int)
        out[f"features.{idx}.weight"] = (v, in_ch, 3, 3)
        out[f"features.{idx}.bias"] = (v,)
        idx, in_ch = idx + 2, v
    for idx, (n_in, n_out) in zip((0, 2, 4), ((FC_IN, 4096), (4096, 4096), (4096, EMBEDDING_SIZE))):
        out[f"embeddings.{idx}.weight"] = (n_out, n_in)
        out[f"embeddings.{idx}.bias"] = (n_out,)
    return out


def check_state_dict(state: Mapping[str, object], source: str) -> None:
    """Raise :class:`WeightsError` naming the first missing, non-tensor, wrongly shaped,
    non-finite or unexpected key of ``state`` against the VGGish/torchvggish layout."""
    layout = state_dict_layout()
    for key, shape in layout.items():
        if key not in state:
            raise WeightsError(
                f"{source}: missing key '{key}' (not a VGGish/torchvggish state dict); pass vggish-10086976.pth"
            )
        got = state[key]
        if not isinstance(got, torch.Tensor):
            raise WeightsError(
                f"{source}: '{key}' is a {type(got).__name__}, not a tensor; the file is not a state dict"
            )
        if tuple(got.shape) != shape:
            raise WeightsError(
                f"{source}: '{key}' has shape {tuple(got.shape)}, expected {shape}; the file is not VGGish weights"
            )
    extra = [k for k in state if k not in layout]
    if extra:
        raise WeightsError(f"{source}: unexpected key '{extra[0]}' (not a VGGish state dict); pass vggish-10086976.pth")
    for key in layout:
        t = state[key]
        assert isinstance(t, torch.Tensor)
        # a NaN/inf makes the sum non-finite (fast); confirm element-wise before failing
        if t.is_floating_point() and not bool(torch.isfinite(t.sum())) and not bool(torch.isfinite(t).all()):
            raise WeightsError(f"{source}: '{key}' contains NaN/inf; the file is corrupt: download it again")


def _torch_load(path: Path) -> object:
    """``torch.load(weights_only=True)`` on CPU, failures as :class:`WeightsError`."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unpickling/zip failure means a bad file
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise WeightsError(f"cannot read {path.name} as PyTorch weights ({first[:160]}); download it again") from None


def vggish_from_state_dict(state: Mapping[str, object], source: str = "state dict", final_relu: bool = True) -> VGGish:
    """Build a :class:`VGGish` from a torchvggish-layout state dict (strict)."""
    check_state_dict(state, source)
    with torch.device("meta"):  # no allocation or random init: every value is loaded next
        model = VGGish(final_relu=final_relu, init=False)
    model.to_empty(device="cpu")
    model.load_state_dict(dict(state), strict=True)  # type: ignore[arg-type]
    return model.eval()


def vggish_from_pth(path: str | Path, final_relu: bool = True) -> VGGish:
    """Load the PyTorch port's ``vggish-10086976.pth`` (or any state dict with its keys,
    optionally wrapped as ``{"state_dict": ...}``; torchvggish's ``pproc.*`` PCA buffers are
    dropped), strict, ``weights_only=True``; returns the model in eval mode."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"VGGish weights not found: {path}; pass vggish-10086976.pth")
    obj = _torch_load(path)
    if isinstance(obj, Mapping) and isinstance(obj.get("state_dict"), Mapping):
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping):
        raise WeightsError(f"{path.name} holds a {type(obj).__name__}, not a state dict; pass vggish-10086976.pth")
    # a whole torchvggish.VGGish state dict also carries its PCA buffers: not ours
    obj = {k: v for k, v in obj.items() if not str(k).startswith("pproc.")}
    return vggish_from_state_dict(obj, source=path.name, final_relu=final_relu)


def state_dict_from_tf(variables: Mapping[str, np.ndarray], source: str = "checkpoint") -> dict[str, torch.Tensor]:
    """Map Google's TF variables (``vggish/conv1/weights`` ...; a ``:0`` suffix is allowed)
    to torchvggish keys: conv kernels HWIO -> OIHW, dense kernels (in, out) -> (out, in).
    No reordering of ``fc1_1`` is needed because :class:`VGGish` flattens in NHWC order."""
    tf = {k[:-2] if k.endswith(":0") else k: v for k, v in variables.items()}

    def get(name: str) -> np.ndarray:
        if name not in tf:
            raise WeightsError(f"{source}: variable '{name}' missing; this is not the VGGish checkpoint")
        return np.asarray(tf[name], dtype=np.float32)

    state: dict[str, torch.Tensor] = {}
    for idx, scope in _CONV_LAYERS:
        state[f"features.{idx}.weight"] = tf_conv_to_torch(get(f"{scope}/weights"))
        state[f"features.{idx}.bias"] = torch.from_numpy(get(f"{scope}/biases").copy())
    for idx, scope in _FC_LAYERS:
        state[f"embeddings.{idx}.weight"] = tf_dense_to_torch(get(f"{scope}/weights"))
        state[f"embeddings.{idx}.bias"] = torch.from_numpy(get(f"{scope}/biases").copy())
    return state


def tf_conv_to_torch(kernel: np.ndarray) -> torch.Tensor:
    """TF conv kernel (kh, kw, in, out) -> PyTorch (out, in, kh, kw); both cross-correlate."""
    return torch.from_numpy(np.ascontiguousarray(np.asarray(kernel, dtype=np.float32).transpose(3, 2, 0, 1)))


def tf_dense_to_torch(kernel: np.ndarray) -> torch.Tensor:
    """TF dense kernel (in, out) -> PyTorch ``Linear.weight`` (out, in)."""
    return torch.from_numpy(np.ascontiguousarray(np.asarray(kernel, dtype=np.float32).T))


def vggish_from_tf_checkpoint(path: str | Path, final_relu: bool = True) -> VGGish:
    """Load Google's TF1 checkpoint ``vggish_model.ckpt`` without TensorFlow (V1
    "tensor slice" table format, read by :func:`emolens.models.tf1_checkpoint.read_tf1_checkpoint`).

    Equivalent offline conversion with TensorFlow installed: read each variable with
    ``tf.train.load_checkpoint(path).get_tensor(name)``, pass the dict to
    :func:`state_dict_from_tf` and ``torch.save`` the result."""
    from emolens.models.tf1_checkpoint import read_tf1_checkpoint

    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"VGGish checkpoint not found: {path}; pass vggish_model.ckpt or vggish-10086976.pth")
    names = [f"{scope}/{kind}" for _, scope in _CONV_LAYERS + _FC_LAYERS for kind in ("weights", "biases")]
    variables = read_tf1_checkpoint(path, names=names)
    return vggish_from_state_dict(state_dict_from_tf(variables, path.name), source=path.name, final_relu=final_relu)


def vggish_from_file(path: str | Path, final_relu: bool = True) -> VGGish:
    """Load VGGish weights by suffix: ``.pth``/``.pt`` (torchvggish) or ``.ckpt`` (Google TF1)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in (".pth", ".pt"):
        return vggish_from_pth(path, final_relu=final_relu)
    if suffix == ".ckpt":
        return vggish_from_tf_checkpoint(path, final_relu=final_relu)
    raise WeightsError(
        f"unknown VGGish weights format '{suffix or path.name}'; pass vggish-10086976.pth or vggish_model.ckpt"
    )


# --------------------------------------------------------------------------- PCA postprocessing


class Postprocessor(nn.Module):
    """PCA (with whitening) + 8-bit quantization of 128-D embeddings, as Google's
    ``vggish_postprocess.py``: ``q = uint8((clip(P (e - mu), -2, 2) + 2) * 255/4)``.
    The cast truncates (numpy ``astype``); torchvggish rounds instead. Output (B, 128)
    float32 holding the integers 0..255 (``.to(torch.uint8)`` is exact). Apply it to the
    pre-activation embedding (``final_relu=False``) to reproduce AudioSet's released features."""

    pca_matrix: torch.Tensor
    pca_means: torch.Tensor

    def __init__(self, pca_matrix: torch.Tensor, pca_means: torch.Tensor) -> None:
        super().__init__()
        pca_matrix = torch.as_tensor(pca_matrix, dtype=torch.float32)
        pca_means = torch.as_tensor(pca_means, dtype=torch.float32).reshape(-1)
        if tuple(pca_matrix.shape) != (EMBEDDING_SIZE, EMBEDDING_SIZE) or pca_means.numel() != EMBEDDING_SIZE:
            raise WeightsError(
                f"VGGish PCA params have shapes {tuple(pca_matrix.shape)}/{tuple(pca_means.shape)}, "
                f"expected (128, 128)/(128,); pass vggish_pca_params-970ea276.pth"
            )
        self.register_buffer("pca_matrix", pca_matrix)
        self.register_buffer("pca_means", pca_means)

    def pca(self, embeddings: torch.Tensor) -> torch.Tensor:
        """Whitened PCA projection (B, 128) -> (B, 128), float."""
        return (embeddings - self.pca_means) @ self.pca_matrix.T

    def forward(self, embeddings: torch.Tensor) -> torch.Tensor:
        """(B, 128) embeddings -> (B, 128) quantized values 0..255 (float32)."""
        if embeddings.dim() != 2 or embeddings.shape[1] != EMBEDDING_SIZE:
            raise ValueError(f"expected (B, {EMBEDDING_SIZE}) embeddings, got {tuple(embeddings.shape)}")
        clipped = self.pca(embeddings).clamp(QUANTIZE_MIN_VAL, QUANTIZE_MAX_VAL)
        scaled = (clipped - QUANTIZE_MIN_VAL) * (255.0 / (QUANTIZE_MAX_VAL - QUANTIZE_MIN_VAL))
        return torch.floor(scaled)


def _numpy_safe_globals() -> list[object]:
    """Globals a pickled plain numpy array needs, under numpy 1.x and 2.x module paths."""
    try:
        from numpy._core.multiarray import _reconstruct  # type: ignore[attr-defined]
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import _reconstruct  # type: ignore[attr-defined,no-redef]
    out: list[object] = [np.ndarray, np.dtype]
    for mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
        out.append((_reconstruct, f"{mod}._reconstruct"))
    for dt in (np.float32, np.float64):
        out.append(type(np.dtype(dt)))
    return out


def _load_pca_pth(path: Path) -> Mapping[str, object]:
    with warnings.catch_warnings(), torch.serialization.safe_globals(_numpy_safe_globals()):  # type: ignore[arg-type]
        warnings.simplefilter("ignore", DeprecationWarning)  # numpy.core paths in old pickles
        obj = _torch_load(path)
    if not isinstance(obj, Mapping):
        raise WeightsError(
            f"{path.name} holds a {type(obj).__name__}, not PCA params; pass vggish_pca_params-970ea276.pth"
        )
    return obj


def postprocessor_from_file(path: str | Path) -> Postprocessor:
    """Load PCA params from torchvggish's ``vggish_pca_params-970ea276.pth`` or Google's
    ``vggish_pca_params.npz`` (keys ``pca_eigen_vectors`` (128, 128), ``pca_means`` (128,))."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"VGGish PCA params not found: {path}; pass vggish_pca_params-970ea276.pth")
    if path.suffix.lower() == ".npz":
        try:
            with np.load(path, allow_pickle=False) as z:
                params: Mapping[str, object] = {k: z[k] for k in z.files}
        except (OSError, ValueError, zipfile.BadZipFile) as e:
            raise WeightsError(f"cannot read {path.name} as .npz ({e}); download it again") from None
    else:
        params = _load_pca_pth(path)
    for key in (PCA_EIGEN_VECTORS_NAME, PCA_MEANS_NAME):
        if key not in params:
            raise WeightsError(f"{path.name}: missing key '{key}'; pass vggish_pca_params-970ea276.pth")
    return Postprocessor(
        torch.as_tensor(np.asarray(params[PCA_EIGEN_VECTORS_NAME])),
        torch.as_tensor(np.asarray(params[PCA_MEANS_NAME])),
    )


__all__ = [
    "EMBEDDING_SIZE",
    "LOG_OFFSET",
    "NUM_BANDS",
    "NUM_FRAMES",
    "Postprocessor",
    "VGGish",
    "check_state_dict",
    "flatten_nhwc",
    "init_random",
    "state_dict_layout",
    "postprocessor_from_file",
    "state_dict_from_tf",
    "tf_conv_to_torch",
    "tf_dense_to_torch",
    "vggish_from_file",
    "vggish_from_pth",
    "vggish_from_state_dict",
    "vggish_from_tf_checkpoint",
]
