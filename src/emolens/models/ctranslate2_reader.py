"""A reader for CTranslate2 ``model.bin`` files (format version 6), without CTranslate2.

The file is little-endian: ``u32 version``, ``str spec name``, ``u32 spec revision``,
``u32 n_variables``, then per variable ``str name``, ``u8 rank``, ``u32 dims[rank]``,
``u8 dtype``, ``u32 n_bytes`` and the raw data; then ``u32 n_aliases`` and pairs of
``str alias, str target``. A ``str`` is a ``u16`` length (the terminating NUL included)
followed by the bytes. dtypes: 0 float32, 1 int8, 2 int16, 3 int32, 4 float16,
5 bfloat16 (not supported here).

A file may come split into parts (``model.bin.part1``, ``.part2``, as PyPI packages carry
it): :func:`read_ctranslate2` reads the parts as one stream and checks the sha256 of the
whole when given one.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

_DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16}


class CTranslate2FormatError(ValueError):
    """The bytes are not a CTranslate2 model file this reader understands."""


@dataclass(frozen=True)
class CTranslate2Model:
    """A CTranslate2 file's spec name (e.g. ``WhisperSpec``), revision and tensors by name."""

    version: int
    spec: str
    revision: int
    tensors: dict[str, np.ndarray]
    sha256: str


def read_ctranslate2(
    parts: Sequence[str | Path], *, sha256: str | None = None, keep: str | None = None,
) -> CTranslate2Model:
    """Read a model file given as one or several consecutive parts.

    ``keep``: only tensors whose name starts with it are kept (``"encoder/"``).
    ``sha256``: the expected digest of the whole file; a mismatch raises ValueError."""
    digest = hashlib.sha256()
    buf = bytearray(sum(Path(p).stat().st_size for p in parts))  # the parts read into one buffer, no copy
    view, pos = memoryview(buf), 0
    for p in parts:
        with open(p, "rb") as f:
            n = f.readinto(view[pos:])
        digest.update(view[pos:pos + n])
        pos += n
    got = digest.hexdigest()
    if sha256 is not None and got != sha256:
        raise ValueError(f"{Path(parts[0]).name}: sha256 {got[:12]}... differs from the expected {sha256[:12]}... "
                         "(a different or damaged file)")
    try:
        return _parse(view, keep, got)
    except (struct.error, KeyError, UnicodeDecodeError, ValueError) as e:
        raise CTranslate2FormatError(f"{Path(parts[0]).name}: not a readable CTranslate2 model file ({e})") from None


def _parse(buf: memoryview, keep: str | None, digest: str) -> CTranslate2Model:
    pos = 0

    def unpack(fmt: str):
        nonlocal pos
        (value,) = struct.unpack_from(fmt, buf, pos)
        pos += struct.calcsize(fmt)
        return value

    def string() -> str:
        nonlocal pos
        n = unpack("<H")
        text = bytes(buf[pos:pos + n - 1]).decode("utf-8")
        pos += n
        return text

    version = unpack("<I")
    if version != 6:
        raise ValueError(f"format version {version}, this reader knows version 6")
    spec, revision = string(), unpack("<I")
    tensors: dict[str, np.ndarray] = {}
    for _ in range(unpack("<I")):
        name = string()
        shape = [unpack("<I") for _ in range(unpack("<B"))]
        dtype, n_bytes = _DTYPES[unpack("<B")], unpack("<I")
        if pos + n_bytes > len(buf):
            raise ValueError(f"variable {name} runs past the end of the file")
        if keep is None or name.startswith(keep):
            tensors[name] = np.frombuffer(buf, dtype, n_bytes // np.dtype(dtype).itemsize, pos).reshape(shape)
        pos += n_bytes
    for _ in range(unpack("<I")):
        alias, target = string(), string()
        if target in tensors:
            tensors[alias] = tensors[target]
    return CTranslate2Model(version, spec, revision, tensors, digest)


def write_ctranslate2(path: str | Path, spec: str, revision: int, tensors: dict[str, np.ndarray],
                      aliases: dict[str, str] | None = None) -> None:
    """Write tensors in the same format (used by the tests to make files of known content)."""
    codes = {np.dtype(v): k for k, v in _DTYPES.items()}

    def string(s: str) -> bytes:
        b = s.encode("utf-8") + b"\0"
        return struct.pack("<H", len(b)) + b

    out = [struct.pack("<I", 6), string(spec), struct.pack("<I", revision), struct.pack("<I", len(tensors))]
    for name, arr in tensors.items():
        arr = np.asarray(arr)  # tobytes() is C order; ascontiguousarray would make a scalar 1-D
        out += [string(name), struct.pack("<B", arr.ndim), *(struct.pack("<I", d) for d in arr.shape),
                struct.pack("<B", codes[arr.dtype]), struct.pack("<I", arr.nbytes), arr.tobytes()]
    aliases = aliases or {}
    out.append(struct.pack("<I", len(aliases)))
    out += [string(a) + string(t) for a, t in aliases.items()]
    Path(path).write_bytes(b"".join(out))
