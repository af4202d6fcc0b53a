"""A TensorFlow-free reader for TF1 "V1" checkpoints: one ``.ckpt`` file, a LevelDB-style
table of ``SavedTensorSlices`` protos, which is the format of Google's ``vggish_model.ckpt``
(:func:`emolens.models.vggish.vggish_from_tf_checkpoint` reads VGGish with it). Pure numpy."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from emolens.errors import WeightsError

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


__all__ = ["read_tf1_checkpoint"]
