"""Reading a mulan-shard dataset folder member by member, with errors that name the shard and member.

A mulan dataset is ``dataset.json`` plus one folder per split holding ``shard-NNNNNN.tar`` (plain
ustar archives: each sample is ``KEY.flac`` then ``KEY.json``), a sidecar ``shard-NNNNNN.json`` per
shard and ``sizes.json`` (shard → samples). The reader here walks the tar headers itself instead of
going through :mod:`tarfile`, whose streaming mode ends quietly at a truncated header or member: a
shard cut short, a member that runs past the end of the file, a bad header checksum, a ``.json``
without its ``.flac`` or a sample count that differs from ``sizes.json`` is a :class:`ShardError`
naming the shard (and member). FLAC data is skipped over, not read.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Dict, Iterator, List, Optional, Tuple

BLOCK = 512


class ShardError(Exception):
    """A damaged or inconsistent dataset; the message says where and what to do."""


class UsageError(Exception):
    """The folder given is not a mulan dataset (or an option is wrong)."""


@dataclass(frozen=True)
class Sample:
    """One sample as it lies in a shard: its key, parsed JSON and where its FLAC is."""

    split: str
    shard: str
    """The shard's path relative to the dataset folder (``train/shard-000000.tar``)."""
    index_in_shard: int
    key: str
    meta: Dict[str, Any]
    flac_offset: int
    flac_bytes: int


def load_manifest(dataset: Path) -> Dict[str, Any]:
    """``dataset.json`` of a dataset folder, or a :class:`UsageError` saying what is wrong."""
    path = dataset / "dataset.json"
    if not path.is_file():
        raise UsageError(f"{dataset} has no dataset.json: pass the folder mulan-shard wrote "
                         "(e.g. WORKDIR/shards/latest)")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise UsageError(f"{path} cannot be read as JSON ({error}): is the dataset complete?") from error
    if not isinstance(manifest, dict) or not isinstance(manifest.get("splits"), dict):
        raise UsageError(f"{path} is not a mulan dataset manifest (no 'splits')")
    return manifest


def _field(header: bytes, start: int, length: int) -> bytes:
    return header[start:start + length].split(b"\0", 1)[0]


def _octal(header: bytes, start: int, length: int, where: str) -> int:
    raw = _field(header, start, length).strip(b" ")
    try:
        return int(raw or b"0", 8)
    except ValueError:
        raise ShardError(f"{where}: a tar header has a bad number field {raw!r} (damaged shard: "
                         "run `mulan-shard verify` on the dataset, then shard again)") from None


def iter_members(handle: BinaryIO, size: int, where: str) -> Iterator[Tuple[str, int, int]]:
    """Yields (name, data offset, data size) of each regular member of a ustar archive."""
    offset = 0
    previous = "the start of the file"
    while True:
        handle.seek(offset)
        header = handle.read(BLOCK)
        if len(header) < BLOCK:
            raise ShardError(f"{where}: truncated after member {previous} (no end-of-archive blocks): the shard is "
                             "incomplete or damaged; shard the dataset again (mulan-shard keeps complete shards)")
        if header == bytes(BLOCK):
            return  # the end-of-archive block
        checksum = _octal(header, 148, 8, where)
        computed = sum(header[:148]) + 8 * 32 + sum(header[156:])
        if checksum != computed:
            raise ShardError(f"{where}: the tar header after member {previous} has a bad checksum (damaged shard)")
        name = _field(header, 0, 100).decode("utf-8", "replace")
        prefix = _field(header, 345, 155).decode("utf-8", "replace")
        if header[257:262] == b"ustar" and prefix:
            name = prefix + "/" + name
        length = _octal(header, 124, 12, where)
        kind = header[156:157]
        data = offset + BLOCK
        if data + length > size:
            raise ShardError(f"{where}, member {name}: truncated ({length} bytes announced, "
                             f"{max(0, size - data)} in the file); shard the dataset again")
        if kind in (b"0", b"\0"):
            yield name, data, length
        offset = data + (length + BLOCK - 1) // BLOCK * BLOCK
        previous = name


def iter_shard(dataset: Path, split: str, shard: str, expected: Optional[int] = None) -> Iterator[Sample]:
    """The samples of one shard, in order; a missing, damaged or miscounted shard is a ShardError."""
    where = f"{split}/{shard}"
    path = dataset / split / shard
    try:
        handle = open(path, "rb")
    except OSError as error:
        raise ShardError(f"{where}: cannot open ({error.strerror}); is the dataset complete?") from error
    count = 0
    with handle:
        size = os.fstat(handle.fileno()).st_size
        pending: Optional[Tuple[str, int, int]] = None  # the .flac waiting for its .json
        for name, offset, length in iter_members(handle, size, where):
            key, dot, extension = name.partition(".")
            if not dot:
                raise ShardError(f"{where}, member {name}: no extension (not a WebDataset member)")
            if extension == "flac":
                if pending is not None:
                    raise ShardError(f"{where}, member {pending[0]}.flac: has no .json")
                pending = (key, offset, length)
                continue
            if extension != "json":
                continue
            if pending is None or pending[0] != key:
                raise ShardError(f"{where}, member {name}: does not follow its .flac")
            handle.seek(offset)
            raw = handle.read(length)
            try:
                meta = json.loads(raw.decode("utf-8"))
            except (UnicodeDecodeError, ValueError) as error:
                raise ShardError(f"{where}, member {name}: not valid JSON ({error}); run `mulan-shard verify` "
                                 "on the dataset") from error
            if not isinstance(meta, dict) or meta.get("key") != key:
                raise ShardError(f"{where}, member {name}: not a mulan sample (its key is not {key})")
            yield Sample(split, f"{split}/{shard}", count, key, meta, pending[1], pending[2])
            pending = None
            count += 1
        if pending is not None:
            raise ShardError(f"{where}, member {pending[0]}.flac: has no .json")
    if expected is not None and count != expected:
        raise ShardError(f"{where}: holds {count} samples, sizes.json says {expected} (damaged or replaced shard)")


def split_shards(dataset: Path, manifest: Dict[str, Any], split: str) -> List[Tuple[str, int]]:
    """A split's shards in order with their sample counts from ``sizes.json``."""
    shards = manifest["splits"][split].get("shards", [])
    sizes_path = dataset / split / "sizes.json"
    try:
        sizes = json.loads(sizes_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ShardError(f"{split}/sizes.json: missing or not JSON ({error})") from error
    out = []
    for shard in shards:
        if shard not in sizes:
            raise ShardError(f"{split}/sizes.json: has no count for {shard}")
        out.append((shard, int(sizes[shard])))
    return out
