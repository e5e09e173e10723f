"""mulan-train's batch sampler, draw for draw: source mix quotas, per-source seeded streams, and the
"a clip at most once per batch" rule.

Each function and class here mirrors one in Sources/MulanTraining (named in its docstring) and draws
the same random numbers in the same order (``RandomSource`` = mulan's SplitMix64), so that with the
same dataset, seed, batch size, mix and shuffle buffer, ``Sampler.batch(step)`` returns the examples
``mulan-train`` trains on at that step (tested against ``mulan-train --dump-batches``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Iterable, List, Mapping, Optional, Set, Tuple

from .random import MASK, RandomSource
from .shards import SOURCES, ErrorLog, MulanDataError, ShardClip, ShardSet, scan_shard

__all__ = ["SourceMix", "Example", "SourceStream", "Sampler", "example_random", "window_offset", "wrap_tokens"]

#: The default mix: MuLan's tags:descriptions:playlists:aset = 2:2:1:1.
MULAN_MIX: Dict[str, float] = {"tags": 2, "descriptions": 2, "playlists": 1, "aset": 1}


class SourceMix:
    """How a batch divides among the sources (Sources/MulanTraining/SourceMix.swift).

    Weights are relative; a source with weight 0 is never drawn. Batch k's per-source counts are
    the differences of the largest-remainder roundings of the cumulative targets ``size·k`` and
    ``size·(k+1)`` (ties to the earlier source), so every batch is within one example of the mix.
    """

    def __init__(self, weights: Mapping[str, float]) -> None:
        for s, w in weights.items():
            if s not in SOURCES:
                raise ValueError(f"mix: unknown source '{s}' (sources are {', '.join(SOURCES)})")
            if not (w >= 0 and w != float("inf")):
                raise ValueError(f"mix: the weight of {s} must be a number ≥ 0, got {w!r}")
        self.weights: Dict[str, float] = {s: float(w) for s, w in weights.items() if w > 0}

    @property
    def sources(self) -> List[str]:
        """Sources with a positive weight, in the fixed order tags, descriptions, playlists, aset."""
        return [s for s in SOURCES if s in self.weights]

    @property
    def shares(self) -> Dict[str, float]:
        """Shares summing to 1 (summed in the fixed source order, as Swift's dictionary sum may not be: equal for these few integers)."""
        total = 0.0
        for s in self.sources:
            total += self.weights[s]
        return {s: self.weights[s] / total for s in self.sources}

    def restricted(self, available: Iterable[str]) -> "SourceMix":
        """The mix without the sources not in ``available`` (the others' weights renormalized)."""
        keep = set(available)
        return SourceMix({s: w for s, w in self.weights.items() if s in keep})

    def _cumulative(self, total: int) -> Dict[str, int]:
        shares = self.shares
        counts: Dict[str, int] = {}
        remainders: List[Tuple[int, str, float]] = []
        for order, s in enumerate(self.sources):
            exact = float(total) * shares[s]
            whole = int(exact // 1)
            counts[s] = whole
            remainders.append((order, s, exact - float(whole)))
        left = total - sum(counts.values())
        for _, s, _ in sorted(remainders, key=lambda r: (-r[2], r[0])):
            if left <= 0:
                break
            counts[s] += 1
            left -= 1
        return counts

    def quotas(self, batch_size: int, batch: int) -> Dict[str, int]:
        """Examples per source in batch number ``batch`` (0-based) of ``batch_size`` examples."""
        before = self._cumulative(batch_size * batch)
        after = self._cumulative(batch_size * (batch + 1))
        q = {s: max(0, after.get(s, 0) - before.get(s, 0)) for s in self.sources}
        excess = sum(q.values()) - batch_size
        while excess > 0:
            # The largest quota, ties to the earlier source.
            top = max(self.sources, key=lambda s: (q[s], -SOURCES.index(s)))
            q[top] -= 1
            excess -= 1
        return q

    def __repr__(self) -> str:
        def fmt(v: float) -> str:
            return str(int(v)) if v == int(v) else str(v)

        return ",".join(f"{s}={fmt(self.weights[s])}" for s in self.sources)


@dataclass
class Example:
    """One training example: a clip and ONE text of one source (``ExampleRef``)."""

    key: str
    shard: int
    source: str
    token_ids: List[int]
    text: str
    clip: ShardClip


def _int32(v: int) -> int:
    """Swift's ``Int32(truncatingIfNeeded:)``."""
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v >= 1 << 31 else v


class SourceStream:
    """An endless, seeded, shuffled stream of the examples of ONE source (ShardStream.swift's ``SourceStream``).

    Epoch e seeds ``RandomSource(seed ^ (source index + 1)·0x9E3779B97F4A7C15 ^ e·0xC2B2AE3D27D4EB4F)``,
    shuffles the shard order with it, reads the shards in that order and passes every clip that has a
    text of the source through a shuffle buffer of ``buffer_size``: a clip entering the buffer gets one
    of its texts (``next() % count``); a draw fills the buffer, then takes position ``next() % count``
    and moves the last item there. When the epoch's clips are used up the next epoch starts.
    Its state is (epoch, drawn in the epoch); ``restore`` replays the draws (headers and JSON only).
    """

    def __init__(self, shards: ShardSet, source: str, seed: int, buffer_size: int,
                 errors: Optional[ErrorLog] = None) -> None:
        self.shards = shards
        self.source = source
        self.seed = seed & MASK
        self.buffer_size = max(1, buffer_size)
        self.errors = errors
        self.epoch = 0
        self.drawn = 0
        self._random = RandomSource(0)
        self._order: List[int] = []
        self._next_shard = 0
        self._pending: List[Example] = []
        self._candidates: Dict[str, List[Tuple[List[int], str]]] = {}
        self._buffer: List[Example] = []
        self._yielded_this_epoch = False
        self._start_epoch(0)

    def _start_epoch(self, e: int) -> None:
        self.epoch = e
        self.drawn = 0
        source_index = SOURCES.index(self.source)
        seed = self.seed ^ (((source_index + 1) * 0x9E3779B97F4A7C15) & MASK) ^ ((e * 0xC2B2AE3D27D4EB4F) & MASK)
        self._random = RandomSource(seed)
        self._order = list(range(len(self.shards)))
        self._random.shuffle(self._order)
        self._next_shard = 0
        self._pending = []
        self._buffer = []
        self._yielded_this_epoch = False

    def _has_source(self, record: dict) -> bool:
        texts = record.get("texts", {}).get(self.source)
        return isinstance(texts, list) and len(texts) > 0

    def _read_next_shard(self) -> bool:
        while self._next_shard < len(self._order):
            index = self._order[self._next_shard]
            self._next_shard += 1
            found: List[Example] = []
            for clip in scan_shard(self.shards, index, self.errors, want=self._has_source):
                if self._has_source(clip.record):
                    texts = clip.record["texts"][self.source]
                    found.append(Example(key=clip.key, shard=clip.shard, source=self.source, token_ids=[], text="",
                                         clip=clip))
                    self._candidates[clip.key] = [([_int32(t) for t in item["token_ids"]], str(item.get("text", "")))
                                                  for item in texts]
            if found:
                self._pending = found[::-1]
                return True
        return False

    def _feed(self) -> bool:
        if not self._pending and not self._read_next_shard():
            return False
        item = self._pending.pop()
        texts = self._candidates.pop(item.key, None) or [([], "")]
        item.token_ids, item.text = texts[self._random.next() % len(texts)]
        self._buffer.append(item)
        return True

    def next(self) -> Example:
        """The next example; starts a new epoch when this one is used up."""
        while True:
            while len(self._buffer) < self.buffer_size and self._feed():
                pass
            if self._buffer:
                break
            if not self._yielded_this_epoch:
                where = f"split '{self.shards.split}' of {self.shards.directory}" if self.shards.directory \
                    else "the shard list"
                raise MulanDataError(f"{where} has no texts of source {self.source}"
                                     + (" (after skipping damaged data)" if self.errors and self.errors.count else ""),
                                     hint=f"give {self.source} weight 0 in mix")
            self._start_epoch(self.epoch + 1)
        j = self._random.next() % len(self._buffer)
        item = self._buffer[j]
        self._buffer[j] = self._buffer[-1]
        self._buffer.pop()
        self.drawn += 1
        self._yielded_this_epoch = True
        return item

    def restore(self, epoch: int, drawn: int) -> None:
        """Puts the stream where it was after ``drawn`` draws of epoch ``epoch``."""
        self._start_epoch(epoch)
        for _ in range(drawn):
            self.next()
        if self.epoch != epoch:
            raise MulanDataError(f"the sampler state (epoch {epoch}, {drawn} drawn) does not fit this dataset",
                                 hint="restore a state saved with the same dataset, mix, seed and shuffle buffer")


class Sampler:
    """Training batches as mulan-train draws them (Sources/MulanTraining/Sampler.swift).

    Batch k takes ``mix.quotas(batch_size, k)`` examples from each source's stream, sources in mix
    order. A clip already in the batch (drawn through another source) is replaced by the stream's
    next example, up to 8 times (after 8 tries the duplicate stays, as in mulan-train; it takes a
    source whose clips are nearly all in the batch already).
    """

    MAX_TRIES = 8

    def __init__(self, shards: ShardSet, mix: SourceMix, batch_size: int, seed: int, buffer_size: int,
                 errors: Optional[ErrorLog] = None) -> None:
        self.mix = mix
        self.batch_size = batch_size
        self.streams: Dict[str, SourceStream] = {
            s: SourceStream(shards, s, seed, buffer_size, errors) for s in mix.sources
        }

    def batch(self, batch: int) -> List[Example]:
        """The examples of batch number ``batch``, sources in mix order."""
        quotas = self.mix.quotas(self.batch_size, batch)
        seen: Set[str] = set()
        out: List[Example] = []
        for s in self.mix.sources:
            stream = self.streams.get(s)
            if stream is None:
                continue
            for _ in range(quotas.get(s, 0)):
                ref = stream.next()
                tries = 0
                while ref.key in seen and tries < self.MAX_TRIES:
                    ref = stream.next()
                    tries += 1
                seen.add(ref.key)
                out.append(ref)
        return out

    @property
    def state(self) -> Dict[str, Dict[str, int]]:
        """Per source ``{"epoch", "drawn"}``: the ``streams`` of mulan-train's checkpoint ``sampler`` metadata."""
        return {s: {"epoch": st.epoch, "drawn": st.drawn} for s, st in self.streams.items()}

    def restore(self, streams: Mapping[str, Mapping[str, int]]) -> None:
        """Replays each stream to its (epoch, drawn); a source not named starts at (0, 0)."""
        for s, stream in self.streams.items():
            p = streams.get(s, {"epoch": 0, "drawn": 0})
            stream.restore(int(p["epoch"]), int(p["drawn"]))


def example_random(seed: int, step: int, index: int) -> RandomSource:
    """The generator of example ``index`` of training step ``step`` (AudioFrontEnd.trainingBatch):
    ``RandomSource(seed ^ step·0x9E3779B97F4A7C15 ^ index·0xD6E8FEB86659FD93)``."""
    return RandomSource((seed & MASK) ^ ((step * 0x9E3779B97F4A7C15) & MASK) ^ ((index * 0xD6E8FEB86659FD93) & MASK))


def window_offset(sample_count: int, window: int, random: RandomSource) -> int:
    """The first sample of the training window: ``next() % (span + 1)`` with span = count − window,
    and no draw at all when the clip fits in one window (offset 0)."""
    span = max(0, sample_count - window)
    return 0 if span == 0 else random.next() % (span + 1)


def wrap_tokens(token_ids: List[int], max_length: int, cls: int = 101, sep: int = 102) -> List[int]:
    """[CLS] + the first ``max_length − 2`` ids + [SEP], as mulan-train's ``TokenBatch`` wraps shard ids."""
    if max_length < 2:
        raise ValueError("max_length must be at least 2 ([CLS] and [SEP])")
    return [cls] + list(token_ids[: max_length - 2]) + [sep]
