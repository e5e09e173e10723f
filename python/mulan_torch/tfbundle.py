"""Reading a TensorFlow checkpoint bundle (``PREFIX.index`` + ``PREFIX.data-NNNNN-of-MMMMM``) without
TensorFlow.

The format (TensorFlow's ``tensor_bundle``; facts, no code carried over):

- ``PREFIX.index`` is a LevelDB-format sorted table. The file ends in a 48-byte footer: the block
  handles (two varints each: offset, size) of the meta-index block and of the index block, zero
  padding to 40 bytes, then the magic number 0xdb4775248b80fb57 (little-endian). Every block is
  followed by a 5-byte trailer: its compression type (0 none, 1 snappy) and the masked CRC-32C of
  the block's bytes and that type byte. A block holds entries (varints ``shared``, ``non_shared``,
  ``value_length``, then the key's bytes after the ``shared`` prefix it has in common with the
  previous key, then the value), then an array of uint32 restart offsets and their count. The index
  block maps the last key of every data block to that block's handle.
- In the table the empty key holds a ``BundleHeaderProto`` (1: num_shards, 2: endianness, 3: version)
  and every other key, a tensor's name, a ``BundleEntryProto`` (1: dtype, 2: TensorShapeProto
  shape, 3: shard_id, 4: offset, 5: size, 6: crc32c (fixed32, masked), 7: slices).
- A tensor's bytes are ``size`` bytes at ``offset`` in ``PREFIX.data-{shard_id:05d}-of-{num_shards:05d}``,
  row-major, in the header's endianness; the entry's masked CRC-32C covers them.

Protocol buffers are decoded by hand (wire types 0 varint, 1 fixed64, 2 length-delimited,
5 fixed32). Partitioned variables (``slices``) are not supported: their entries are reported as
errors naming the tensor.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from typing import Dict, Iterator, List, Optional, Tuple

import numpy as np

__all__ = ["BundleError", "BundleEntry", "TensorBundle", "crc32c", "mask_crc", "unmask_crc",
           "snappy_decompress", "DTYPES"]

TABLE_MAGIC = 0xDB4775248B80FB57
FOOTER_LENGTH = 48
BLOCK_TRAILER_LENGTH = 5

DTYPES: Dict[int, np.dtype] = {
    1: np.dtype("<f4"), 2: np.dtype("<f8"), 3: np.dtype("<i4"), 4: np.dtype("u1"), 5: np.dtype("<i2"),
    6: np.dtype("i1"), 9: np.dtype("<i8"), 10: np.dtype("?"), 17: np.dtype("<u2"), 19: np.dtype("<f2"),
    22: np.dtype("<u4"), 23: np.dtype("<u8"),
}
"""TensorFlow DataType codes → NumPy dtypes (little-endian) for the fixed-size types."""


class BundleError(ValueError):
    """A checkpoint bundle that cannot be read; the message names the file (and the tensor)."""


# MARK: CRC-32C (Castagnoli), as LevelDB and TensorFlow use it


def _crc_table() -> np.ndarray:
    table = np.zeros(256, dtype=np.uint32)
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table[i] = c
    return table


_TABLE = _crc_table()
_TABLE_LIST = [int(v) for v in _TABLE]


def _crc_update_python(register: int, data: bytes) -> int:
    t = _TABLE_LIST
    for b in data:
        register = t[(register ^ b) & 0xFF] ^ (register >> 8)
    return register


def _zero_advance_columns(length: int) -> List[int]:
    """The images of the 32 unit registers after ``length`` zero bytes (the register update is linear)."""
    regs = np.array([1 << k for k in range(32)], dtype=np.uint32)
    for _ in range(length):
        regs = _TABLE[regs & 0xFF] ^ (regs >> np.uint32(8))
    return [int(v) for v in regs]


def _apply(columns: List[int], register: int) -> int:
    out = 0
    k = 0
    while register:
        if register & 1:
            out ^= columns[k]
        register >>= 1
        k += 1
    return out


def crc32c(data: bytes) -> int:
    """CRC-32C of ``data``. Long inputs are cut into equal chunks whose registers (from zero) are
    advanced side by side with NumPy, then chained: reg(A‖B) = Z_|B|(reg(A)) ⊕ reg₀(B), where Z_n
    advances a register over n zero bytes (a linear map, applied through its 32 columns)."""
    view = memoryview(data).cast("B")
    n = len(view)
    if n < 65536:
        return _crc_update_python(0xFFFFFFFF, bytes(view)) ^ 0xFFFFFFFF
    chunks = 1024
    length = n // chunks
    block = np.frombuffer(view[: chunks * length], dtype=np.uint8).reshape(chunks, length)
    regs = np.zeros(chunks, dtype=np.uint32)
    for j in range(length):
        regs = _TABLE[(regs ^ block[:, j]) & 0xFF] ^ (regs >> np.uint32(8))
    columns = _zero_advance_columns(length)
    register = 0xFFFFFFFF
    for r in regs:
        register = _apply(columns, register) ^ int(r)
    register = _crc_update_python(register, bytes(view[chunks * length:]))
    return register ^ 0xFFFFFFFF


_MASK_DELTA = 0xA282EAD8


def mask_crc(crc: int) -> int:
    """LevelDB's masked CRC (stored so that CRCs of data holding CRCs stay informative)."""
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + _MASK_DELTA) & 0xFFFFFFFF


def unmask_crc(masked: int) -> int:
    rot = (masked - _MASK_DELTA) & 0xFFFFFFFF
    return ((rot >> 17) | (rot << 15)) & 0xFFFFFFFF


# MARK: varints, protocol buffers, snappy


def _varint(buf: bytes, pos: int, label: str) -> Tuple[int, int]:
    value = 0
    shift = 0
    while True:
        if pos >= len(buf):
            raise BundleError(f"{label}: a varint runs past the end of its data")
        b = buf[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value, pos
        shift += 7
        if shift > 63:
            raise BundleError(f"{label}: a varint is longer than 10 bytes")


def _fields(buf: bytes, label: str) -> Iterator[Tuple[int, int, object]]:
    """(field number, wire type, value) of a protobuf message: ints for varint/fixed, bytes for
    length-delimited."""
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos, label)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos, label)
            yield number, wire, value
        elif wire == 1:
            if pos + 8 > len(buf):
                raise BundleError(f"{label}: a fixed64 field runs past the end of its message")
            yield number, wire, struct.unpack_from("<Q", buf, pos)[0]
            pos += 8
        elif wire == 2:
            length, pos = _varint(buf, pos, label)
            if pos + length > len(buf):
                raise BundleError(f"{label}: a length-delimited field runs past the end of its message")
            yield number, wire, bytes(buf[pos: pos + length])
            pos += length
        elif wire == 5:
            if pos + 4 > len(buf):
                raise BundleError(f"{label}: a fixed32 field runs past the end of its message")
            yield number, wire, struct.unpack_from("<I", buf, pos)[0]
            pos += 4
        else:
            raise BundleError(f"{label}: unsupported protobuf wire type {wire} (field {number})")


def snappy_decompress(data: bytes, label: str) -> bytes:
    """Snappy's raw format: the uncompressed length as a varint, then literal and copy elements."""
    length, pos = _varint(data, 0, label)
    out = bytearray()
    while pos < len(data):
        tag = data[pos]
        pos += 1
        kind = tag & 3
        if kind == 0:  # literal
            n = tag >> 2
            if n >= 60:
                extra = n - 59
                n = int.from_bytes(data[pos: pos + extra], "little")
                pos += extra
            n += 1
            if pos + n > len(data):
                raise BundleError(f"{label}: a snappy literal runs past the end of the block")
            out += data[pos: pos + n]
            pos += n
            continue
        if kind == 1:
            n = 4 + ((tag >> 2) & 7)
            offset = ((tag >> 5) << 8) | data[pos]
            pos += 1
        elif kind == 2:
            n = 1 + (tag >> 2)
            offset = int.from_bytes(data[pos: pos + 2], "little")
            pos += 2
        else:
            n = 1 + (tag >> 2)
            offset = int.from_bytes(data[pos: pos + 4], "little")
            pos += 4
        if offset == 0 or offset > len(out):
            raise BundleError(f"{label}: a snappy copy reaches before the start of the block")
        for _ in range(n):  # copies may overlap their own output
            out.append(out[-offset])
    if len(out) != length:
        raise BundleError(f"{label}: snappy block decodes to {len(out)} bytes, its header says {length}")
    return bytes(out)


# MARK: the table


def _block(data: bytes, offset: int, size: int, path: str, what: str) -> bytes:
    if offset + size + BLOCK_TRAILER_LENGTH > len(data):
        raise BundleError(f"{path}: the {what} block ({offset}+{size}) runs past the end of the file "
                          f"({len(data)} bytes); the index file is truncated")
    contents = data[offset: offset + size]
    kind = data[offset + size]
    stored = struct.unpack_from("<I", data, offset + size + 1)[0]
    actual = mask_crc(_crc_update_python(0xFFFFFFFF, contents + bytes([kind])) ^ 0xFFFFFFFF)
    if actual != stored:
        raise BundleError(f"{path}: the {what} block at {offset} fails its CRC-32C check; the index file is damaged")
    if kind == 0:
        return contents
    if kind == 1:
        return snappy_decompress(contents, f"{path} ({what} block at {offset})")
    raise BundleError(f"{path}: the {what} block at {offset} has unknown compression type {kind}")


def _entries(block: bytes, path: str, what: str) -> Iterator[Tuple[bytes, bytes]]:
    label = f"{path} ({what} block)"
    if len(block) < 4:
        raise BundleError(f"{label}: shorter than its restart count")
    restarts = struct.unpack_from("<I", block, len(block) - 4)[0]
    end = len(block) - 4 - 4 * restarts
    if end < 0:
        raise BundleError(f"{label}: {restarts} restart points do not fit in {len(block)} bytes")
    pos = 0
    key = b""
    while pos < end:
        shared, pos = _varint(block, pos, label)
        unshared, pos = _varint(block, pos, label)
        value_length, pos = _varint(block, pos, label)
        if shared > len(key) or pos + unshared + value_length > end:
            raise BundleError(f"{label}: an entry at byte {pos} does not fit its block")
        key = key[:shared] + block[pos: pos + unshared]
        pos += unshared
        yield key, block[pos: pos + value_length]
        pos += value_length


def _handle(buf: bytes, pos: int, label: str) -> Tuple[int, int, int]:
    offset, pos = _varint(buf, pos, label)
    size, pos = _varint(buf, pos, label)
    return offset, size, pos


def read_table(path: str) -> List[Tuple[bytes, bytes]]:
    """Every (key, value) of a LevelDB-format table file, in the table's order."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as error:
        raise BundleError(f"cannot read the checkpoint index {path}: {error.strerror}") from error
    if len(data) < FOOTER_LENGTH:
        raise BundleError(f"{path}: {len(data)} bytes is too short for a checkpoint index (no table footer)")
    footer = data[-FOOTER_LENGTH:]
    if struct.unpack_from("<Q", footer, 40)[0] != TABLE_MAGIC:
        raise BundleError(f"{path}: not a TensorFlow checkpoint index (no table magic number at its end)")
    _, _, pos = _handle(footer, 0, path)  # the meta-index block: unused by bundles
    index_offset, index_size, _ = _handle(footer, pos, path)
    index = _block(data, index_offset, index_size, path, "index")
    out: List[Tuple[bytes, bytes]] = []
    previous: Optional[bytes] = None
    for _, value in _entries(index, path, "index"):
        offset, size, _ = _handle(value, 0, path)
        for key, v in _entries(_block(data, offset, size, path, "data"), path, "data"):
            if previous is not None and key <= previous:
                raise BundleError(f"{path}: keys out of order at {key!r}; the index file is damaged")
            previous = key
            out.append((key, v))
    return out


# MARK: the bundle


@dataclass(frozen=True)
class BundleEntry:
    name: str
    dtype: int
    shape: Tuple[int, ...]
    shard_id: int
    offset: int
    size: int
    crc32c: Optional[int]
    """The masked CRC-32C of the tensor's bytes, when the entry has one."""


def _shape(buf: bytes, label: str) -> Tuple[int, ...]:
    dims: List[int] = []
    for number, wire, value in _fields(buf, label):
        if number == 2 and wire == 2:
            size = 0
            for n, w, v in _fields(value, label):  # type: ignore[arg-type]
                if n == 1 and w == 0:
                    size = v if v < (1 << 63) else v - (1 << 64)  # type: ignore[operator]
            if size < 0:
                raise BundleError(f"{label}: a dimension of unknown size ({size})")
            dims.append(int(size))
        elif number == 3 and wire == 0 and value:
            raise BundleError(f"{label}: a shape of unknown rank")
    return tuple(dims)


def _entry(name: str, buf: bytes, path: str) -> BundleEntry:
    label = f"{path}, tensor {name}"
    dtype, shape, shard, offset, size, crc = 0, (), 0, 0, 0, None
    for number, wire, value in _fields(buf, label):
        if number == 1 and wire == 0:
            dtype = int(value)  # type: ignore[arg-type]
        elif number == 2 and wire == 2:
            shape = _shape(value, label)  # type: ignore[arg-type]
        elif number == 3 and wire == 0:
            shard = int(value)  # type: ignore[arg-type]
        elif number == 4 and wire == 0:
            offset = int(value)  # type: ignore[arg-type]
        elif number == 5 and wire == 0:
            size = int(value)  # type: ignore[arg-type]
        elif number == 6 and wire == 5:
            crc = int(value)  # type: ignore[arg-type]
        elif number == 7:
            raise BundleError(f"{label}: a partitioned variable (slices); not supported")
    return BundleEntry(name, dtype, shape, shard, offset, size, crc)


class TensorBundle:
    """A TensorFlow checkpoint bundle: ``TensorBundle(prefix)`` reads ``prefix.index``;
    ``tensor(name)`` reads one tensor from its data shard (size and CRC-32C checked)."""

    def __init__(self, prefix: str, verify_crc: bool = True) -> None:
        self.prefix = prefix
        self.index_path = prefix + ".index"
        self.verify_crc = verify_crc
        self.num_shards = 1
        self.entries: Dict[str, BundleEntry] = {}
        header_seen = False
        for key, value in read_table(self.index_path):
            if key == b"":
                header_seen = True
                for number, wire, v in _fields(value, f"{self.index_path} (header)"):
                    if number == 1 and wire == 0:
                        self.num_shards = int(v)  # type: ignore[arg-type]
                    elif number == 2 and wire == 0 and v != 0:
                        raise BundleError(f"{self.index_path}: a big-endian checkpoint; not supported")
                continue
            try:
                name = key.decode("utf-8")
            except UnicodeDecodeError as error:
                raise BundleError(f"{self.index_path}: a tensor name is not UTF-8: {key!r}") from error
            self.entries[name] = _entry(name, value, self.index_path)
        if not header_seen:
            raise BundleError(f"{self.index_path}: no bundle header (the empty key); not a TensorFlow checkpoint index")
        if self.num_shards < 1:
            raise BundleError(f"{self.index_path}: the header gives {self.num_shards} data shards")
        self._shards: Dict[int, bytes] = {}

    def shard_path(self, shard: int) -> str:
        return f"{self.prefix}.data-{shard:05d}-of-{self.num_shards:05d}"

    def _shard(self, shard: int, name: str) -> bytes:
        if shard not in self._shards:
            if shard >= self.num_shards:
                raise BundleError(f"{self.index_path}: tensor {name} is in shard {shard} of {self.num_shards}")
            path = self.shard_path(shard)
            try:
                with open(path, "rb") as f:
                    self._shards[shard] = f.read()
            except OSError as error:
                raise BundleError(f"cannot read checkpoint data {path} (tensor {name}): {error.strerror}") from error
        return self._shards[shard]

    def names(self) -> List[str]:
        return sorted(self.entries)

    def tensor(self, name: str) -> np.ndarray:
        entry = self.entries.get(name)
        if entry is None:
            raise BundleError(f"{self.index_path}: no tensor {name}")
        dtype = DTYPES.get(entry.dtype)
        if dtype is None:
            raise BundleError(f"{self.index_path}: tensor {name} has TensorFlow dtype {entry.dtype}, not supported")
        count = int(np.prod(entry.shape, dtype=np.int64))
        if count * dtype.itemsize != entry.size:
            raise BundleError(f"{self.index_path}: tensor {name} of shape {list(entry.shape)} would take "
                              f"{count * dtype.itemsize} bytes, its entry says {entry.size}")
        data = self._shard(entry.shard_id, name)
        path = self.shard_path(entry.shard_id)
        if entry.offset + entry.size > len(data):
            raise BundleError(f"{path}: tensor {name} ({entry.size} bytes at {entry.offset}) runs past the end "
                              f"of the file ({len(data)} bytes); the data file is truncated")
        raw = data[entry.offset: entry.offset + entry.size]
        if self.verify_crc and entry.crc32c is not None and mask_crc(crc32c(raw)) != entry.crc32c:
            raise BundleError(f"{path}: tensor {name} fails its CRC-32C check; the data file is damaged")
        return np.frombuffer(raw, dtype=dtype).reshape(entry.shape).copy()
