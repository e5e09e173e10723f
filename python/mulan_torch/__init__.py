"""mulan-torch: the PyTorch side of the mulan toolkit.

Reads the datasets that ``mulan-shard`` writes with the same semantics as ``mulan-train``, and holds
the MuLan two-tower model in PyTorch with ``mulan-train``'s parameter names and checkpoint format.
Its version is the mulan toolkit's (``Sources/MulanCore/Version.swift``).
"""

__version__ = "0.16.0"

__all__ = ["__version__"]
