"""Reading mulan-shard datasets: the split's shard list and a tar scanner, as mulan-train reads them.

A dataset folder written by ``mulan-shard`` holds ``dataset.json`` and one folder per split
(``train/shard-000000.tar`` …); each sample is ``KEY.flac`` + ``KEY.json`` (the sample record with
``texts`` per source, each ``{"text", "token_ids", "raw_text_id"}``). ``ShardSet`` opens a split (or
any shard list webdataset accepts: a brace pattern, ``::``-joined URLs, ``pipe:`` commands), and
``scan_shard`` reads one shard as Sources/MulanTraining/ShardStream.swift's ``ShardScanner`` does:
tar headers in order, each ``KEY.flac`` paired with its ``KEY.json`` (the key is the member name up to
its first dot), other members ignored. For a local file only headers and JSON are read; FLAC bytes
are read later by offset (``read_flac``). For a stream (``pipe:``, ``http:``) the FLAC bytes are kept
with the clip, since a stream cannot be read by offset.

Damage is never passed over silently: a truncated archive, a bad header, a JSON member that is not a
sample record, or undecodable FLAC raises a ``MulanDataError`` subclass whose message names the shard
file and the member and says what to do; with ``on_error="skip"`` the damage is recorded in an
``ErrorLog`` (counted, reported) and reading goes on (past a bad member; a bad header or a truncation
ends that shard, since nothing after it can be located).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import IO, Any, Callable, Dict, Iterator, List, Optional, Sequence, Set, Union

__all__ = [
    "MulanDataError",
    "ShardReadError",
    "SampleRecordError",
    "AudioDecodeError",
    "ErrorLog",
    "ShardClip",
    "ShardSet",
    "scan_shard",
    "SOURCES",
]

#: mulan's four text sources, in their fixed order (TextSource.allCases).
SOURCES = ("tags", "descriptions", "playlists", "aset")

_BLOCK = 512


class MulanDataError(Exception):
    """Bad input in a mulan dataset: says what happened, where (``shard``, ``member``) and what to do."""

    def __init__(self, message: str, shard: Optional[str] = None, member: Optional[str] = None,
                 hint: Optional[str] = None) -> None:
        self.shard = shard
        self.member = member
        self.hint = hint
        self.reason = message
        text = message
        if hint:
            text += f" ({hint})"
        super().__init__(text)


class ShardReadError(MulanDataError):
    """A shard that cannot be read as a tar archive: truncated, a bad header, unreadable file."""


class SampleRecordError(MulanDataError):
    """A ``KEY.json`` member that is not a mulan sample record."""


class AudioDecodeError(MulanDataError):
    """A ``KEY.flac`` member that cannot be read or decoded."""


@dataclass
class ErrorLog:
    """Damage met and skipped under ``on_error="skip"``: one entry per (kind, shard, member)."""

    entries: List[MulanDataError] = field(default_factory=list)
    _seen: Set[tuple] = field(default_factory=set)

    def add(self, error: MulanDataError) -> bool:
        """Records ``error``; False when the same damage was recorded before (a shard is read again each
        epoch and by each source, a clip may be drawn again)."""
        key = (type(error).__name__, error.shard, error.member)
        if key in self._seen:
            return False
        self._seen.add(key)
        self.entries.append(error)
        return True

    @property
    def count(self) -> int:
        """Distinct damaged members (or shard ends) skipped."""
        return len(self.entries)


@dataclass
class ShardClip:
    """A sample of a shard: where its FLAC lies and its record (the parsed ``KEY.json``)."""

    key: str
    shard: int
    flac_member: str
    flac_offset: int
    flac_size: int
    record: Dict[str, Any]
    #: The FLAC bytes, for shards read as streams (None for local files: read them by offset).
    flac: Optional[bytes] = None


def _is_stream(url: str) -> bool:
    return ":" in url.split("/", 1)[0] and not url.startswith("file:")


def _local_path(url: str) -> str:
    return url[len("file:"):] if url.startswith("file:") else url


class ShardSet:
    """The shards of one split, in order, and what the dataset says about them.

    ``ShardSet.open(source, split)`` takes a mulan dataset folder (``dataset.json`` + split folders)
    or a shard list: a list of paths/URLs, or one string that webdataset expands (``{000..009}``
    braces, ``::`` between lists, ``pipe:CMD``). Without ``dataset.json`` the sample rate comes from
    the first sample record read and every source counts as available (a source with no texts then
    fails with a clear error when the sampler needs it).
    """

    def __init__(self, urls: Sequence[str], *, directory: Optional[str] = None, split: Optional[str] = None,
                 manifest: Optional[Dict[str, Any]] = None) -> None:
        if not urls:
            raise MulanDataError("the shard list is empty", hint="pass a mulan dataset folder or a non-empty shard list")
        self.urls: List[str] = list(urls)
        self.directory = directory
        self.split = split
        self.manifest = manifest

    @classmethod
    def open(cls, source: Union[str, os.PathLike, Sequence[str]], split: str = "train") -> "ShardSet":
        """A dataset folder's split, or a shard list (see the class docstring)."""
        if isinstance(source, (str, os.PathLike)) and os.path.isdir(os.fspath(source)):
            return cls.from_dataset(os.fspath(source), split)
        if isinstance(source, (str, os.PathLike)):
            from webdataset.shardlists import expand_urls  # webdataset's own expansion: braces, ::, WDS_ variables

            return cls(expand_urls(os.fspath(source)))
        return cls([os.fspath(u) for u in source])

    @classmethod
    def from_dataset(cls, directory: str, split: str) -> "ShardSet":
        """``directory/dataset.json``'s split ``split`` (as mulan-train's ``DatasetSplit``)."""
        path = os.path.join(directory, "dataset.json")
        try:
            with open(path, "rb") as f:
                manifest = json.load(f)
        except OSError as e:
            raise MulanDataError(f"cannot read {path}: {e.strerror}",
                                 hint="pass a folder written by mulan-shard (WORKDIR/shards/latest)") from e
        except ValueError as e:
            raise MulanDataError(f"{path} is not a mulan-shard dataset manifest: {e}") from e
        splits = manifest.get("splits") if isinstance(manifest, dict) else None
        if not isinstance(splits, dict):
            raise MulanDataError(f"{path} is not a mulan-shard dataset manifest (no 'splits')")
        info = splits.get(split)
        if not isinstance(info, dict) or int(info.get("samples", 0)) <= 0:
            have = ", ".join(sorted(k for k, v in splits.items() if isinstance(v, dict) and v.get("samples", 0) > 0))
            raise MulanDataError(f"the dataset {directory} has no samples in split '{split}' (it has: {have})",
                                 hint=f"re-shard with a --split that gives '{split}' a share, or choose another split")
        urls = [os.path.join(directory, split, name) for name in info.get("shards", [])]
        return cls(urls, directory=directory, split=split, manifest=manifest)

    def __len__(self) -> int:
        return len(self.urls)

    @property
    def sample_rate(self) -> Optional[int]:
        """The clips' sample rate from dataset.json (None for a bare shard list)."""
        if self.manifest is None:
            return None
        return int(self.manifest["sample_rate"])

    def available_sources(self) -> Optional[Set[str]]:
        """Sources with at least one text in the split (dataset.json's ``texts_by_source``); None if unknown."""
        if self.manifest is None or self.split is None:
            return None
        counts = self.manifest["splits"][self.split].get("texts_by_source", {})
        return {s for s, n in counts.items() if n > 0 and s in SOURCES}

    @property
    def verify_hint(self) -> str:
        """What to do about a damaged shard."""
        if self.directory is not None:
            return f"run `mulan-shard verify {self.directory}` and re-shard, or pass on_error='skip' to go on without it"
        return "check the shard (mulan-shard verify on its dataset folder), or pass on_error='skip' to go on without it"

    def read_flac(self, clip: ShardClip) -> bytes:
        """The FLAC bytes of ``clip`` (kept bytes for streams, else read by offset)."""
        if clip.flac is not None:
            return clip.flac
        url = self.urls[clip.shard]
        path = _local_path(url)
        try:
            with open(path, "rb") as f:
                f.seek(clip.flac_offset)
                data = f.read(clip.flac_size)
        except OSError as e:
            raise AudioDecodeError(f"shard {url}: cannot read member {clip.flac_member}: {e.strerror}",
                                   shard=url, member=clip.flac_member, hint=self.verify_hint) from e
        if len(data) != clip.flac_size:
            raise AudioDecodeError(f"shard {url}: member {clip.flac_member} is cut short "
                                   f"({len(data)} of {clip.flac_size} bytes)",
                                   shard=url, member=clip.flac_member, hint=self.verify_hint)
        return data


def _octal(field_bytes: bytes) -> Optional[int]:
    text = field_bytes.split(b"\0", 1)[0].decode("ascii", "replace").strip()
    if not text:
        return None
    try:
        value = int(text, 8)
    except ValueError:
        return None
    return value


def _text(field_bytes: bytes) -> str:
    return field_bytes.split(b"\0", 1)[0].decode("utf-8", "replace")


class _Reader:
    """Sequential reads over a local file (skips by seeking) or a stream (skips by reading)."""

    def __init__(self, f: IO[bytes], size: Optional[int]) -> None:
        self.f = f
        self.size = size          # None for streams
        self.position = 0

    def read(self, n: int) -> bytes:
        data = self.f.read(n)
        self.position += len(data)
        return data

    def skip(self, n: int) -> int:
        """Skips ``n`` bytes; returns how many were there."""
        if self.size is not None:
            available = max(0, min(n, self.size - self.position))
            self.f.seek(self.position + available)
            self.position += available
            return available
        got = 0
        while got < n:
            chunk = self.f.read(min(1 << 20, n - got))
            if not chunk:
                break
            got += len(chunk)
        self.position += got
        return got


def _validate_record(record: Any) -> Optional[str]:
    """Why ``record`` is not a sample record mulan-train can use (None when it is)."""
    if not isinstance(record, dict):
        return "not a JSON object"
    texts = record.get("texts")
    if not isinstance(texts, dict):
        return "no 'texts' object"
    for source, items in texts.items():
        if not isinstance(items, list):
            return f"texts.{source} is not a list"
        for i, item in enumerate(items):
            if not isinstance(item, dict) or not isinstance(item.get("token_ids"), list) \
                    or not all(isinstance(t, int) for t in item["token_ids"]):
                return f"texts.{source}[{i}] has no list of integer token_ids"
    return None


def scan_shard(shards: ShardSet, index: int, errors: Optional[ErrorLog] = None,
               want: Optional[Callable[[Dict[str, Any]], bool]] = None) -> Iterator[ShardClip]:
    """The clips of shard ``index`` in tar order, each yielded when both its members have been read.

    Raises ``ShardReadError`` / ``SampleRecordError`` naming the shard and member; with ``errors``
    given (``on_error="skip"``) records them there instead and goes on (past a bad JSON member; a bad
    header or truncation ends the shard). ``want(record)`` may say a clip is not needed: for streams
    its FLAC bytes are then not kept.
    """
    url = shards.urls[index]
    hint = shards.verify_hint

    def fail(error: MulanDataError) -> None:
        if errors is None:
            raise error
        errors.add(error)

    try:
        if _is_stream(url):
            from webdataset.gopen import gopen  # pipe:, http(s):, … as webdataset opens them

            f: IO[bytes] = gopen(url, "rb")
            size: Optional[int] = None
        else:
            path = _local_path(url)
            f = open(path, "rb")
            size = os.fstat(f.fileno()).st_size
    except OSError as e:
        fail(ShardReadError(f"cannot open shard {url}: {e.strerror or e}", shard=url, hint=hint))
        return
    reader = _Reader(f, size)
    flac: Dict[str, ShardClip] = {}
    records: Dict[str, Dict[str, Any]] = {}
    last_member: Optional[str] = None
    try:
        while True:
            header_at = reader.position
            header = reader.read(_BLOCK)
            if len(header) < _BLOCK:
                where = f"after member {last_member}" if last_member else "at its start"
                fail(ShardReadError(f"shard {url} is truncated: the archive ends at byte {reader.position} {where}, "
                                    f"without its end-of-archive blocks", shard=url, member=last_member, hint=hint))
                return
            if header == b"\0" * _BLOCK:
                return
            check = bytearray(header)
            check[148:156] = b" " * 8
            stored = _octal(header[148:156])
            name = _text(header[0:100])
            prefix = _text(header[345:500])
            if prefix:
                name = prefix + "/" + name
            if stored != sum(check):
                fail(ShardReadError(f"shard {url} is damaged: bad header checksum at byte {header_at} "
                                    f"(after member {last_member or '(none)'}; stored "
                                    f"{stored if stored is not None else 'none'}, computed {sum(check)})",
                                    shard=url, member=last_member, hint=hint))
                return
            size_field = _octal(header[124:136])
            if size_field is None or size_field < 0:
                fail(ShardReadError(f"shard {url}, member {name}: bad size field at byte {header_at}",
                                    shard=url, member=name, hint=hint))
                return
            data_at = reader.position
            padded = (size_field + _BLOCK - 1) // _BLOCK * _BLOCK
            last_member = name
            dot = name.find(".")
            ext = name[dot + 1:] if dot >= 0 else None
            key = name[:dot] if dot >= 0 else name
            if ext == "json":
                body = reader.read(size_field)
                if len(body) < size_field:
                    fail(ShardReadError(f"shard {url} is truncated: member {name} needs {size_field} bytes "
                                        f"but the archive ends first", shard=url, member=name, hint=hint))
                    return
                reader.skip(padded - size_field)
                try:
                    record = json.loads(body)
                    problem = _validate_record(record)
                except ValueError as e:
                    problem = f"not JSON ({e})"
                if problem is not None:
                    fail(SampleRecordError(f"shard {url}, member {name}: not a sample record: {problem}",
                                           shard=url, member=name, hint=hint))
                    flac.pop(key, None)
                    continue
                records[key] = record
            elif ext == "flac":
                keep_bytes = size is None
                body = b""
                if keep_bytes:
                    body = reader.read(size_field)
                    got = len(body)
                else:
                    got = reader.skip(size_field)
                if got < size_field:
                    fail(ShardReadError(f"shard {url} is truncated: member {name} needs {size_field} bytes "
                                        f"but the archive ends first", shard=url, member=name, hint=hint))
                    return
                reader.skip(padded - size_field)
                flac[key] = ShardClip(key=key, shard=index, flac_member=name, flac_offset=data_at,
                                      flac_size=size_field, record={}, flac=body if keep_bytes else None)
            else:
                if reader.skip(padded) < size_field:
                    fail(ShardReadError(f"shard {url} is truncated: member {name} needs {size_field} bytes "
                                        f"but the archive ends first", shard=url, member=name, hint=hint))
                    return
                continue
            if key in flac and key in records:
                clip = flac.pop(key)
                clip.record = records.pop(key)
                if clip.flac is not None and want is not None and not want(clip.record):
                    clip.flac = b""
                yield clip
    finally:
        try:
            f.close()
        except Exception as e:  # a pipe: command that failed says so on close
            if errors is None:
                raise ShardReadError(f"shard {url}: {e}", shard=url, hint=hint) from e
            errors.add(ShardReadError(f"shard {url}: {e}", shard=url, hint=hint))
