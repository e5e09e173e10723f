"""mulan's seeded random numbers, draw for draw as the Swift side makes them.

``RandomSource`` is SplitMix64 with its whole state in one 64-bit word (Sources/MulanTensor/
RandomSource.swift). ``below`` and ``shuffle`` reproduce what Swift's standard library does with
such a generator: ``Int.random(in: 0..<n, using:)`` is ``next(upperBound:)``, Lemire's
multiply-and-reject method on one 64-bit draw, and ``Array.shuffle(using:)`` is a Fisher–Yates pass
from the front that swaps position i with i + random(in: 0..<remaining).
"""

from __future__ import annotations

import math
from typing import List, MutableSequence, TypeVar

MASK = (1 << 64) - 1
T = TypeVar("T")


class RandomSource:
    """SplitMix64; ``state`` is the whole state (a checkpoint stores it)."""

    __slots__ = ("state",)

    def __init__(self, seed: int) -> None:
        self.state = seed & MASK

    def next(self) -> int:
        """The next 64-bit draw (``RandomSource.next()``)."""
        self.state = (self.state + 0x9E3779B97F4A7C15) & MASK
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
        return z ^ (z >> 31)

    def unit_float(self) -> float:
        """Uniform in [0, 1) with 24 bits (``unitFloat()``), as a Python float holding a Float32 value."""
        return (self.next() >> 40) * (1.0 / 16777216.0)

    def unit_double(self) -> float:
        """Uniform in [0, 1) with 53 bits (``unitDouble()``)."""
        return (self.next() >> 11) * (1.0 / 9007199254740992.0)

    def normal(self) -> float:
        """Box–Muller, one of the pair kept (``normal()``); rounded to Float32 by the caller if needed."""
        u1 = max(self.unit_double(), 1e-300)
        u2 = self.unit_double()
        return math.sqrt(-2 * math.log(u1)) * math.cos(2 * math.pi * u2)

    def split(self, label: int = 0) -> "RandomSource":
        """An independent generator from the next draw and a label (``split(_:)``)."""
        return RandomSource(self.next() ^ ((label * 0xD1B54A32D192ED03) & MASK))

    def below(self, upper: int) -> int:
        """Uniform in [0, upper): Swift's ``next(upperBound:)`` (Lemire), as ``Int.random(in: 0..<upper)``."""
        if upper <= 0:
            raise ValueError("upper bound must be positive")
        m = self.next() * upper
        low = m & MASK
        if low < upper:
            t = ((1 << 64) - upper) % upper
            while low < t:
                m = self.next() * upper
                low = m & MASK
        return m >> 64

    def shuffle(self, items: MutableSequence[T]) -> None:
        """In place, as Swift's ``shuffle(using:)``."""
        amount = len(items)
        if amount <= 1:
            return
        current = 0
        while amount > 1:
            r = self.below(amount)
            amount -= 1
            j = current + r
            items[current], items[j] = items[j], items[current]
            current += 1


def shuffled(items: List[T], random: RandomSource) -> List[T]:
    """A shuffled copy."""
    out = list(items)
    random.shuffle(out)
    return out
