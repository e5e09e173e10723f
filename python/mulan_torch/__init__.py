"""mulan-torch: the PyTorch side of the mulan toolkit.

Reads the datasets that ``mulan-shard`` writes with the same semantics as ``mulan-train``, and holds
the MuLan two-tower model in PyTorch with ``mulan-train``'s parameter names and checkpoint format.
Its version is the mulan toolkit's (``Sources/MulanCore/Version.swift``).

``MulanShards`` and ``MulanLoader`` (mulan_torch.dataset) import torch; they are loaded on first use,
so ``mulan_torch.random`` and ``mulan_torch.shards`` stay usable without it.
"""

from typing import Any

__version__ = "0.16.0"

__all__ = ["__version__", "MulanShards", "MulanLoader", "MulanDataError"]


def __getattr__(name: str) -> Any:
    if name in ("MulanShards", "MulanLoader"):
        from . import dataset

        return getattr(dataset, name)
    if name == "MulanDataError":
        from .shards import MulanDataError

        return MulanDataError
    raise AttributeError(f"module 'mulan_torch' has no attribute {name!r}")
