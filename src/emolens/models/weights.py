"""Where pretrained backbone weights come from: resolution, checked download, loading.

Resolution order for a backbone name (``yamnet``, ``vggish``; also ``vggish_pca``):

1. an explicit path (must exist);
2. ``$EMOLENS_WEIGHTS``: a weights file (used when its suffix fits the backbone), or a
   folder holding one of the known file names (:attr:`WeightSpec.accepted`);
3. the cache folder :func:`weights_cache_dir` (``$EMOLENS_CACHE/weights``, default
   ``~/.cache/emolens/weights``), where :func:`download_weights` writes;
4. YAMNet only: the copy packaged with emolens (``emolens/data/yamnet``, sha256-checked);
5. otherwise :class:`WeightsNotFoundError` saying how to get them.

Downloads come from the official published locations (:data:`REGISTRY`), stream to a
temporary file in the target folder, are checked against a sha256 and only then renamed
into place (atomic), so a failed or corrupt download never leaves a file behind. Digests:
full sha256 where published (``vggish-10086976.pth``), else the torch-hub convention of
the first 8 hex digits of the sha256 in the file name (``...-970ea276.pth``), else (Google's
``yamnet.h5``, no published digest) the HDF5 signature only, with the computed digest logged.

The TensorFlow-free reader of Google's ``vggish_model.ckpt`` is
:func:`emolens.models.tf1_checkpoint.read_tf1_checkpoint` (re-exported here).
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import tempfile
import urllib.error
import urllib.request
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING


from emolens.errors import WeightsError
from emolens.models.tf1_checkpoint import read_tf1_checkpoint  # noqa: F401 - re-exported (it lived here)

if TYPE_CHECKING:
    from emolens.models.vggish import VGGish

log = logging.getLogger(__name__)

ENV_WEIGHTS = "EMOLENS_WEIGHTS"
ENV_CACHE = "EMOLENS_CACHE"


class WeightsNotFoundError(WeightsError):
    """No weights file was found in any searched place (the only case where a backbone
    may fall back to random initialisation)."""


class RandomInitWarning(UserWarning):
    """A backbone starts from random weights because pretrained weights were not found."""


# --------------------------------------------------------------------------- registry


@dataclass(frozen=True)
class WeightFile:
    """One published file: name in the cache, URL, and how to check it.

    ``sha256``: full hex digest, if published. Without it, a torch-hub style name
    ``stem-<hex8+>.ext`` gives a digest prefix; ``magic``: expected leading bytes."""

    filename: str
    url: str
    sha256: str | None = None
    magic: bytes | None = None

    @property
    def sha256_prefix(self) -> str | None:
        """Full digest, else the hex prefix in the file name (torch hub), else None."""
        if self.sha256:
            return self.sha256.lower()
        m = re.search(r"-([0-9a-f]{8,64})\.[A-Za-z0-9]+$", self.filename)
        return m.group(1) if m else None


@dataclass(frozen=True)
class WeightSpec:
    """A backbone's weights: files to download (first = the one returned), file names
    recognised in a folder (preference order), and suffixes accepted when
    ``$EMOLENS_WEIGHTS`` names a file directly."""

    name: str
    files: tuple[WeightFile, ...]
    accepted: tuple[str, ...]
    suffixes: tuple[str, ...] = ()


_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
_TV = "https://github.com/harritaylor/torchvggish/releases/download/v0.1/"
VGGISH_PTH = WeightFile(
    "vggish-10086976.pth",
    _TV + "vggish-10086976.pth",
    sha256="10086976245803799d9194e9a73d9b6c1549c71d1b80106f5cade5608a561f4b",
)
VGGISH_PCA = WeightFile("vggish_pca_params-970ea276.pth", _TV + "vggish_pca_params-970ea276.pth")
YAMNET_H5 = WeightFile("yamnet.h5", "https://storage.googleapis.com/audioset/yamnet.h5", magic=_HDF5_MAGIC)

REGISTRY: Mapping[str, WeightSpec] = MappingProxyType(
    {
        "yamnet": WeightSpec("yamnet", (YAMNET_H5,), ("yamnet.tflite", "yamnet.h5"), (".tflite", ".h5")),
        "vggish": WeightSpec(
            "vggish", (VGGISH_PTH, VGGISH_PCA), ("vggish-10086976.pth", "vggish_model.ckpt"), (".pth", ".pt", ".ckpt")
        ),
        "vggish_pca": WeightSpec(
            "vggish_pca", (VGGISH_PCA,), ("vggish_pca_params-970ea276.pth", "vggish_pca_params.npz")
        ),
    }
)


def _spec(name: str, registry: Mapping[str, WeightSpec] | None) -> WeightSpec:
    reg = REGISTRY if registry is None else registry
    if name not in reg:
        raise WeightsError(f"unknown weights name '{name}'; choose one of: {', '.join(sorted(reg))}")
    return reg[name]


# --------------------------------------------------------------------------- resolution


def weights_cache_dir() -> Path:
    """Weights cache folder: ``$EMOLENS_CACHE/weights``, else ``~/.cache/emolens/weights``."""
    root = os.environ.get(ENV_CACHE)
    base = Path(root).expanduser() if root else Path.home() / ".cache" / "emolens"
    return base / "weights"


def _find_in(folder: Path, spec: WeightSpec) -> Path | None:
    for fname in spec.accepted:
        p = folder / fname
        if p.is_file():
            return p
    return None


def _how_to_get(spec: WeightSpec) -> str:
    return (
        f"run `emolens weights download {spec.name}` or set {ENV_WEIGHTS} to {spec.accepted[0]} or its folder"
    )


def resolve_weights(
    name: str, explicit: str | Path | None = None, *, registry: Mapping[str, WeightSpec] | None = None
) -> Path:
    """Path of the weights file for backbone ``name`` (explicit > ``$EMOLENS_WEIGHTS`` >
    cache); :class:`WeightsNotFoundError` when nothing is found, :class:`WeightsError`
    when an explicit path or ``$EMOLENS_WEIGHTS`` points at nothing."""
    spec = _spec(name, registry)
    if explicit is not None:
        p = Path(explicit).expanduser()
        if p.is_dir():
            found = _find_in(p, spec)
            if found is None:
                raise WeightsError(f"no {name} weights in folder {p} (looked for {', '.join(spec.accepted)})")
            return found
        if not p.is_file():
            raise WeightsError(f"{name} weights not found: {p} does not exist; {_how_to_get(spec)}")
        return p
    env = os.environ.get(ENV_WEIGHTS)
    if env:
        p = Path(env).expanduser()
        if p.is_dir():
            found = _find_in(p, spec)
            if found is not None:
                return found
        elif p.is_file():
            if p.name in spec.accepted or p.suffix.lower() in spec.suffixes:
                return p
        else:
            raise WeightsError(f"{ENV_WEIGHTS}={env} does not exist; set it to a weights file or folder")
    cache = weights_cache_dir()
    found = _find_in(cache, spec)
    if found is not None:
        return found
    if name == "yamnet" and registry is None:
        packaged = _packaged_yamnet()
        if packaged is not None:
            return packaged
    where = f"{ENV_WEIGHTS}={env}, " if env else f"{ENV_WEIGHTS} unset, "
    raise WeightsNotFoundError(f"{name} weights not found ({where}cache {cache}); {_how_to_get(spec)}")


def _packaged_yamnet() -> Path | None:
    """The YAMNet TFLite shipped in ``emolens/data/yamnet`` after its sha256 check."""
    from emolens.resources import packaged_checksums, packaged_yamnet

    p = packaged_yamnet()
    if p is None:
        return None
    want = packaged_checksums().get(p.name)
    if want is not None and sha256_file(p) != want:
        raise WeightsError(f"the packaged {p} is corrupt (sha256 differs from SHA256SUMS); reinstall emolens")
    return p


# --------------------------------------------------------------------------- download


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def verify_file(path: Path, wf: WeightFile, digest: str | None = None) -> None:
    """Raise :class:`WeightsError` unless ``path`` matches ``wf``'s digest (or prefix) and magic."""
    digest = digest or sha256_file(path)
    want = wf.sha256_prefix
    if want is not None and not digest.startswith(want):
        raise WeightsError(
            f"{wf.filename}: sha256 {digest[:16]}... does not match the published {want[:16]}...; "
            "the download is corrupt or was tampered with: try again"
        )
    if wf.magic is not None:
        with open(path, "rb") as f:
            head = f.read(len(wf.magic))
        if head != wf.magic:
            raise WeightsError(f"{wf.filename}: not the expected file type (bad signature); try the download again")
    if want is None:
        log.warning("%s has no published digest; downloaded file sha256=%s", wf.filename, digest)


def _fetch(wf: WeightFile, dest: Path, progress: bool) -> Path:
    """Stream ``wf.url`` into ``dest``'s folder via a temp file; verify; rename into place."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{wf.filename}.", suffix=".part", dir=dest.parent)
    tmp = Path(tmp_name)
    try:
        h = hashlib.sha256()
        try:
            with os.fdopen(fd, "wb") as out, urllib.request.urlopen(wf.url, timeout=60) as resp:  # noqa: S310
                total = int(resp.headers.get("Content-Length") or 0) or None
                from tqdm.auto import tqdm

                with tqdm(total=total, unit="B", unit_scale=True, desc=wf.filename, disable=not progress) as bar:
                    while block := resp.read(1 << 20):
                        out.write(block)
                        h.update(block)
                        bar.update(len(block))
        except (urllib.error.URLError, OSError, ValueError) as e:
            reason = getattr(e, "reason", None) or e
            raise WeightsError(
                f"cannot download {wf.url} ({reason}); fetch it by hand and set {ENV_WEIGHTS} to its folder"
            ) from None
        verify_file(tmp, wf, h.hexdigest())
        os.replace(tmp, dest)
        return dest
    finally:
        tmp.unlink(missing_ok=True)


def download_weights(
    name: str,
    cache_dir: str | Path | None = None,
    progress: bool = True,
    *,
    registry: Mapping[str, WeightSpec] | None = None,
    force: bool = False,
) -> Path:
    """Download (and sha256-check) every file of backbone ``name`` into ``cache_dir``
    (default :func:`weights_cache_dir`); files already there that verify are kept unless
    ``force``. Returns the path of the backbone's main file."""
    spec = _spec(name, registry)
    folder = Path(cache_dir).expanduser() if cache_dir is not None else weights_cache_dir()
    paths: list[Path] = []
    for wf in spec.files:
        dest = folder / wf.filename
        if dest.is_file() and not force:
            try:
                verify_file(dest, wf)
                log.info("%s already present and verified: %s", wf.filename, dest)
                paths.append(dest)
                continue
            except WeightsError:
                log.warning("%s in cache fails verification; downloading it again", dest)
        log.info("downloading %s -> %s", wf.url, dest)
        paths.append(_fetch(wf, dest, progress))
    return paths[0]


# --------------------------------------------------------------------------- VGGish loading


def random_init_message(name: str = "VGGish") -> str:
    """The one-line notice printed whenever a backbone starts from random weights."""
    key = "vggish" if name.lower().startswith("vgg") else name.lower()
    return (
        f"{name} pretrained weights not found: starting from random initialisation "
        f"(results are not transfer learning); set {ENV_WEIGHTS} to the weights file or its folder, "
        f"or run `emolens weights download {key}`"
    )


def load_vggish(
    path: str | Path | None = None, *, allow_random: bool = True, final_relu: bool = True
) -> tuple[VGGish, bool]:
    """Resolve and load VGGish; returns ``(model, pretrained)``. When no weights are found
    and ``allow_random``, returns a randomly initialised model (``pretrained=False``) and
    says so with ``warnings.warn`` (:class:`RandomInitWarning`) and a logging warning.
    A missing explicit path or a corrupt file always raises :class:`WeightsError`."""
    from emolens.models.vggish import VGGish, vggish_from_file

    try:
        resolved = resolve_weights("vggish", path)
    except WeightsNotFoundError:
        if not allow_random:
            raise
        msg = random_init_message("VGGish")
        log.warning(msg)
        warnings.warn(msg, RandomInitWarning, stacklevel=2)
        return VGGish(final_relu=final_relu), False
    model = vggish_from_file(resolved, final_relu=final_relu)
    log.info("VGGish pretrained weights loaded from %s", resolved)
    return model, True


__all__ = [
    "ENV_CACHE",
    "ENV_WEIGHTS",
    "REGISTRY",
    "RandomInitWarning",
    "WeightFile",
    "WeightSpec",
    "WeightsNotFoundError",
    "download_weights",
    "load_vggish",
    "random_init_message",
    "read_tf1_checkpoint",
    "resolve_weights",
    "sha256_file",
    "verify_file",
    "weights_cache_dir",
]
