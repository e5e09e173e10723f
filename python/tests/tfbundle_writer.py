"""A writer of TensorFlow checkpoint bundles for the tests (written from the format's description in
mulan_torch/tfbundle.py, independently of its reader): a LevelDB-format table for ``PREFIX.index``
with a chosen block size and restart interval, blocks optionally snappy-compressed, and the tensors
spread over several ``PREFIX.data-*`` shards."""

from __future__ import annotations

import struct
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np

from mulan_torch.tfbundle import crc32c, mask_crc

DTYPE_CODES = {np.dtype("<f4"): 1, np.dtype("<f8"): 2, np.dtype("<i4"): 3, np.dtype("<i8"): 9, np.dtype("u1"): 4}


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def field_varint(number: int, value: int) -> bytes:
    return varint(number << 3) + varint(value)


def field_bytes(number: int, value: bytes) -> bytes:
    return varint((number << 3) | 2) + varint(len(value)) + value


def field_fixed32(number: int, value: int) -> bytes:
    return varint((number << 3) | 5) + struct.pack("<I", value)


def entry_proto(dtype: int, shape: Tuple[int, ...], shard: int, offset: int, size: int, crc: Optional[int]) -> bytes:
    shape_proto = b"".join(field_bytes(2, field_varint(1, d) if d else b"") for d in shape)
    out = field_varint(1, dtype) + field_bytes(2, shape_proto)
    if shard:
        out += field_varint(3, shard)
    if offset:
        out += field_varint(4, offset)
    if size:
        out += field_varint(5, size)
    if crc is not None:
        out += field_fixed32(6, crc)
    return out


def header_proto(num_shards: int) -> bytes:
    return field_varint(1, num_shards) + field_bytes(3, field_varint(1, 1))


def snappy_compress(data: bytes) -> bytes:
    """Snappy's raw format with literals and copies (1-, 2- and 4-byte offsets), greedy on 4-byte matches."""
    out = bytearray(varint(len(data)))
    seen: Dict[bytes, int] = {}
    literal_start = 0
    i = 0

    def literal(lo: int, hi: int) -> None:
        while lo < hi:
            n = min(hi - lo, 70000)
            if n <= 60:
                out.append((n - 1) << 2)
            elif n <= 256:
                out.extend([60 << 2, n - 1])
            else:
                out.append(61 << 2)
                out.extend((n - 1).to_bytes(2, "little"))
            out.extend(data[lo: lo + n])
            lo += n

    count = 0
    while i + 4 <= len(data):
        key = data[i: i + 4]
        j = seen.get(key)
        seen[key] = i
        if j is None:
            i += 1
            continue
        length = 4
        while i + length < len(data) and data[j + length] == data[i + length] and length < 64:
            length += 1
        literal(literal_start, i)
        offset = i - j
        kind = count % 3
        count += 1
        if kind == 0 and 4 <= length <= 11 and offset < 2048:
            out.append(1 | ((length - 4) << 2) | ((offset >> 8) << 5))
            out.append(offset & 0xFF)
        elif kind == 1 and offset < 65536:
            out.append(2 | ((length - 1) << 2))
            out.extend(offset.to_bytes(2, "little"))
        else:
            out.append(3 | ((length - 1) << 2))
            out.extend(offset.to_bytes(4, "little"))
        i += length
        literal_start = i
    literal(literal_start, len(data))
    return bytes(out)


class _Table:
    def __init__(self, block_size: int, restart_interval: int, compress: bool) -> None:
        self.block_size, self.restart_interval, self.compress = block_size, restart_interval, compress
        self.out = bytearray()
        self.index: List[Tuple[bytes, bytes]] = []
        self._reset()

    def _reset(self) -> None:
        self.buffer = bytearray()
        self.restarts = [0]
        self.counter = 0
        self.last = b""

    def _block_bytes(self, entries_buffer: bytes, restarts: List[int]) -> bytes:
        return bytes(entries_buffer) + b"".join(struct.pack("<I", r) for r in restarts) + struct.pack("<I", len(restarts))

    def _emit(self, block: bytes) -> bytes:
        kind = 0
        if self.compress:
            block, kind = snappy_compress(block), 1
        handle = varint(len(self.out)) + varint(len(block))
        self.out += block + bytes([kind]) + struct.pack("<I", mask_crc(crc32c(block + bytes([kind]))))
        return handle

    def add(self, key: bytes, value: bytes) -> None:
        shared = 0
        if self.counter < self.restart_interval:
            while shared < min(len(key), len(self.last)) and key[shared] == self.last[shared]:
                shared += 1
        else:
            self.restarts.append(len(self.buffer))
            self.counter = 0
        self.buffer += varint(shared) + varint(len(key) - shared) + varint(len(value)) + key[shared:] + value
        self.last = key
        self.counter += 1
        if len(self.buffer) >= self.block_size:
            self.flush()

    def flush(self) -> None:
        if not self.buffer:
            return
        handle = self._emit(self._block_bytes(self.buffer, self.restarts))
        self.index.append((self.last, handle))
        self._reset()

    def finish(self) -> bytes:
        self.flush()
        meta = self._emit(self._block_bytes(b"", [0]))
        index_buffer = bytearray()
        restarts = []
        for key, handle in self.index:  # a restart at every entry (interval 1), as LevelDB's index blocks
            restarts.append(len(index_buffer))
            index_buffer += varint(0) + varint(len(key)) + varint(len(handle)) + key + handle
        index = self._emit(self._block_bytes(bytes(index_buffer), restarts or [0]))
        footer = meta + index
        footer += b"\0" * (40 - len(footer)) + struct.pack("<Q", 0xDB4775248B80FB57)
        return bytes(self.out) + footer


def write_bundle(prefix: str, tensors: Dict[str, np.ndarray], num_shards: int = 1, block_size: int = 4096,
                 restart_interval: int = 16, compress: bool = False,
                 shard_of: Optional[Callable[[int], int]] = None, with_crc: bool = True) -> None:
    """Writes ``prefix.index`` and ``prefix.data-0000k-of-0000n``; tensor k (in sorted order) goes to
    shard ``shard_of(k)`` (default k mod num_shards), each tensor at an 8-byte-aligned offset after
    a few padding bytes (so that offsets are not simply contiguous)."""
    shard_of = shard_of or (lambda k: k % num_shards)
    shards = [bytearray() for _ in range(num_shards)]
    table = _Table(block_size, restart_interval, compress)
    table.add(b"", header_proto(num_shards))
    for k, name in enumerate(sorted(tensors)):
        value = np.asarray(tensors[name])
        raw = value.astype(value.dtype.newbyteorder("<")).tobytes(order="C")
        s = shard_of(k)
        data = shards[s]
        if data:
            data += b"\xAA" * (7 + (-(len(data) + 7)) % 8)
        offset = len(data)
        data += raw
        crc = mask_crc(crc32c(raw)) if with_crc else None
        table.add(name.encode(), entry_proto(DTYPE_CODES[value.dtype], tuple(value.shape), s, offset, len(raw), crc))
    with open(prefix + ".index", "wb") as f:
        f.write(table.finish())
    for s, data in enumerate(shards):
        with open(f"{prefix}.data-{s:05d}-of-{num_shards:05d}", "wb") as f:
            f.write(bytes(data))
