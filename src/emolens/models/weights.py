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

Also here: :func:`read_tf1_checkpoint`, a TensorFlow-free reader for TF1 "V1"
checkpoints (one ``.ckpt`` file, a LevelDB-style table of ``SavedTensorSlices`` protos),
which is the format of Google's ``vggish_model.ckpt``.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import struct
import tempfile
import urllib.error
import urllib.request
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING

import numpy as np

from emolens.errors import WeightsError

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


# --------------------------------------------------------------------------- TF1 (V1) checkpoints

_TABLE_MAGIC = 0xDB4775248B80FB57
_FOOTER_LEN = 48
# TF DataType enum -> numpy dtype (those a V1 checkpoint stores in TensorProto fields)
_TF_DTYPES: dict[int, np.dtype] = {
    1: np.dtype("<f4"),
    2: np.dtype("<f8"),
    3: np.dtype("<i4"),
    4: np.dtype("u1"),
    5: np.dtype("<i2"),
    6: np.dtype("i1"),
    9: np.dtype("<i8"),
    10: np.dtype("?"),
    17: np.dtype("<u2"),
}
# TensorProto field holding the values of each dtype (packed repeated)
_VAL_FIELD: dict[int, int] = {1: 5, 2: 6, 3: 7, 4: 7, 5: 7, 6: 7, 9: 10, 10: 11, 17: 7}


def _varint(buf: memoryview, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise ValueError("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7


def _proto_fields(buf: memoryview) -> Iterator[tuple[int, int, int | memoryview]]:
    """(field number, wire type, value) of a serialized protobuf message."""
    pos, n = 0, len(buf)
    while pos < n:
        tag, pos = _varint(buf, pos)
        field, wire = tag >> 3, tag & 7
        if wire == 0:
            val, pos = _varint(buf, pos)
            yield field, wire, val
        elif wire == 2:
            size, pos = _varint(buf, pos)
            if pos + size > n:
                raise ValueError("truncated field")
            yield field, wire, buf[pos : pos + size]
            pos += size
        elif wire == 5:
            yield field, wire, buf[pos : pos + 4]
            pos += 4
        elif wire == 1:
            yield field, wire, buf[pos : pos + 8]
            pos += 8
        else:
            raise ValueError(f"unsupported wire type {wire}")


def _block_entries(data: memoryview, offset: int, size: int) -> Iterator[tuple[bytes, memoryview]]:
    """Key/value pairs of one table block (prefix-compressed keys, restart array at the end)."""
    if data[offset + size] != 0:
        raise ValueError("compressed table block (only uncompressed V1 checkpoints are supported)")
    block = data[offset : offset + size]
    (num_restarts,) = struct.unpack_from("<I", block, size - 4)
    limit = size - 4 * (1 + num_restarts)
    pos, key = 0, b""
    while pos < limit:
        shared, pos = _varint(block, pos)
        non_shared, pos = _varint(block, pos)
        vlen, pos = _varint(block, pos)
        key = key[:shared] + bytes(block[pos : pos + non_shared])
        pos += non_shared
        yield key, block[pos : pos + vlen]
        pos += vlen


def _table_entries(data: memoryview) -> Iterator[tuple[bytes, memoryview]]:
    if len(data) < _FOOTER_LEN:
        raise ValueError("file too short")
    footer = data[len(data) - _FOOTER_LEN :]
    (magic,) = struct.unpack_from("<Q", footer, _FOOTER_LEN - 8)
    if magic != _TABLE_MAGIC:
        raise ValueError("no table magic number (not a TF1 V1 checkpoint)")
    _, pos = _varint(footer, 0)  # metaindex handle (unused)
    _, pos = _varint(footer, pos)
    index_off, pos = _varint(footer, pos)
    index_size, pos = _varint(footer, pos)
    for _, handle in _block_entries(data, index_off, index_size):
        off, p = _varint(handle, 0)
        size, _ = _varint(handle, p)
        yield from _block_entries(data, off, size)


def _shape(buf: memoryview) -> tuple[int, ...]:
    dims: list[int] = []
    for f, _, v in _proto_fields(buf):
        if f == 2:
            assert isinstance(v, memoryview)
            size = next((int(x) for ff, _, x in _proto_fields(v) if ff == 1), 0)
            dims.append(size - (1 << 64) if size >= 1 << 63 else size)
    return tuple(dims)


def _slice(buf: memoryview | None, shape: tuple[int, ...]) -> tuple[slice, ...]:
    """TensorSliceProto -> index; an extent without length spans the whole dimension."""
    extents: list[tuple[int, int | None]] = []
    if buf is not None:
        for f, _, v in _proto_fields(buf):
            if f == 1:
                assert isinstance(v, memoryview)
                start, length = 0, None
                for ff, _, x in _proto_fields(v):
                    if ff == 1:
                        start = int(x)  # type: ignore[arg-type]
                    elif ff == 2:
                        length = int(x)  # type: ignore[arg-type]
                extents.append((start, length))
    if not extents:
        extents = [(0, None)] * len(shape)
    return tuple(slice(s, dim if n is None else s + n) for (s, n), dim in zip(extents, shape))


def _tensor_values(buf: memoryview, dtype_code: int) -> np.ndarray:
    """Flat values of a TensorProto (``tensor_content`` or the typed repeated field)."""
    dt = _TF_DTYPES[dtype_code]
    want = _VAL_FIELD[dtype_code]
    chunks: list[np.ndarray] = []
    for f, wire, v in _proto_fields(buf):
        if f == 4 and isinstance(v, memoryview):
            return np.frombuffer(v, dtype=dt).copy()
        if f != want:
            continue
        if want in (5, 6):  # float / double: fixed width, packed or one value per field
            assert isinstance(v, memoryview)
            chunks.append(np.frombuffer(v, dtype="<f4" if want == 5 else "<f8"))
        elif wire == 2:  # packed varints
            assert isinstance(v, memoryview)
            vals, p = [], 0
            while p < len(v):
                x, p = _varint(v, p)
                vals.append(x - (1 << 64) if x >= 1 << 63 else x)
            chunks.append(np.asarray(vals, dtype=np.int64))
        else:
            x = int(v)  # type: ignore[arg-type]
            chunks.append(np.asarray([x - (1 << 64) if x >= 1 << 63 else x], dtype=np.int64))
    if not chunks:
        return np.zeros(0, dtype=dt)
    return np.concatenate(chunks).astype(dt)


def read_tf1_checkpoint(path: str | Path, names: list[str] | None = None) -> dict[str, np.ndarray]:
    """Read a TensorFlow 1 V1 checkpoint (single ``.ckpt`` file) into ``{name: array}``
    without TensorFlow; ``names`` restricts (and requires) the variables returned.
    Supports uncompressed tables (TF always writes V1 uncompressed), full or sliced
    (partitioned) variables of numeric/bool dtypes; block CRCs are not checked."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"checkpoint not found: {path}")
    if path.with_name(path.name + ".index").exists():
        raise WeightsError(
            f"{path.name} is a TF2/V2 checkpoint (has .index), not supported; convert it with TensorFlow "
            "(tf.train.load_checkpoint) or use vggish-10086976.pth"
        )
    data = memoryview(path.read_bytes())
    metas: dict[str, tuple[int, tuple[int, ...]]] = {}
    parts: dict[str, list[tuple[memoryview | None, memoryview]]] = {}
    try:
        for key, value in _table_entries(data):
            for f, _, v in _proto_fields(value):
                assert isinstance(v, memoryview) or f not in (1, 2)
                if f == 1 and key == b"":  # SavedTensorSliceMeta
                    for mf, _, mv in _proto_fields(v):  # type: ignore[arg-type]
                        if mf != 1:
                            continue
                        assert isinstance(mv, memoryview)
                        name, dtype_code, shape = "", 0, ()
                        for tf_, _, tv in _proto_fields(mv):
                            if tf_ == 1:
                                name = bytes(tv).decode()  # type: ignore[arg-type]
                            elif tf_ == 2:
                                shape = _shape(tv)  # type: ignore[arg-type]
                            elif tf_ == 3:
                                dtype_code = int(tv)  # type: ignore[arg-type]
                        metas[name] = (dtype_code, shape)
                elif f == 2:  # SavedSlice
                    name, sl, tensor = "", None, None
                    for sf, _, sv in _proto_fields(v):  # type: ignore[arg-type]
                        if sf == 1:
                            name = bytes(sv).decode()  # type: ignore[arg-type]
                        elif sf == 2:
                            sl = sv
                        elif sf == 3:
                            tensor = sv
                    if tensor is not None:
                        parts.setdefault(name, []).append((sl, tensor))  # type: ignore[arg-type]
    except (ValueError, struct.error, IndexError, UnicodeDecodeError) as e:
        raise WeightsError(f"cannot read {path.name} as a TF1 checkpoint ({e}); download it again") from None
    wanted = list(metas) if names is None else names
    out: dict[str, np.ndarray] = {}
    for name in wanted:
        if name not in metas:
            raise WeightsError(f"{path.name}: variable '{name}' not in checkpoint")
        dtype_code, shape = metas[name]
        if dtype_code not in _TF_DTYPES:
            if names is None:
                continue  # e.g. strings: skipped when reading everything
            raise WeightsError(f"{path.name}: variable '{name}' has unsupported TF dtype {dtype_code}")
        arr = np.zeros(shape, dtype=_TF_DTYPES[dtype_code])
        covered = 0
        for sl, tensor in parts.get(name, []):
            idx = _slice(sl, shape)
            sub_shape = tuple(s.stop - s.start for s in idx)
            vals = _tensor_values(tensor, dtype_code)
            if vals.size != int(np.prod(sub_shape)):
                raise WeightsError(
                    f"{path.name}: variable '{name}' slice holds {vals.size} values, "
                    f"expected {int(np.prod(sub_shape))}; the checkpoint is corrupt"
                )
            arr[idx] = vals.reshape(sub_shape)
            covered += vals.size
        if covered != arr.size:
            raise WeightsError(f"{path.name}: variable '{name}' is incomplete ({covered} of {arr.size} values)")
        out[name] = arr
    return out


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
