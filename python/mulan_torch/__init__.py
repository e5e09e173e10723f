"""mulan-torch: the PyTorch side of the mulan toolkit.

Reads the datasets that ``mulan-shard`` writes with the same semantics as ``mulan-train``, and holds
the MuLan two-tower model in PyTorch with ``mulan-train``'s parameter names and checkpoint format.
Its version is the mulan toolkit's (``Sources/MulanCore/Version.swift``).

The names below are imported on first use (PEP 562): ``MulanShards``, ``MulanLoader`` and the model
import torch, so ``mulan_torch.random`` and ``mulan_torch.shards`` stay usable without it.
"""

from importlib import import_module

__version__ = "0.16.0"

_LAZY = {
    "MulanShards": "dataset", "MulanLoader": "dataset", "MulanDataError": "shards",
    "CheckpointError": "checkpoint", "LoadedCheckpoint": "checkpoint",
    "AudioTowerConfig": "model", "ContrastiveLoss": "model", "MulanModel": "model", "TextTowerConfig": "model",
    "load_pretrained_text": "model", "token_batch": "model", "training_config": "model",
}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'mulan_torch' has no attribute {name!r}")
    return getattr(import_module(f".{module}", __name__), name)


__all__ = ["__version__", *_LAZY]
