"""mulan-train's checkpoint file format, read and written from Python.

A checkpoint (Sources/MulanTraining/Checkpoint.swift) is one safetensors file:

- the model's tensors under their names (``audio.conv1.weight``, ``text.encoder.layer.0.…``,
  ``loss.log_temperature``; batch-norm running statistics included), all float32;
- AdamW's moments under ``optimizer.m.NAME`` and ``optimizer.v.NAME`` for every parameter the
  optimizer updates (mulan-train needs them to ``--resume``; inference tools skip them);
- string metadata: ``format`` = ``mulan-checkpoint-1``, ``step``, ``optimizer_step`` (AdamW's step
  count), ``config`` (the TrainingConfig as JSON, keys sorted) and ``sampler`` (the data sampler's
  position as JSON; mulan-train needs it to resume, inference tools do not).

``mulan-embed``, ``mulan-search``, ``mulan-eval`` and ``mulan-filter audio`` read a checkpoint with
``weightsOnly``: they need ``format``, ``step``, ``config`` and every model tensor with its shape;
``optimizer.*`` entries and ``sampler`` are ignored when present.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any, Dict, Mapping, Optional

import torch
from safetensors import safe_open
from safetensors.torch import save_file

FORMAT = "mulan-checkpoint-1"
"""The ``format`` metadata value of mulan-train's checkpoints."""

OPTIMIZER_PREFIX = "optimizer."


class CheckpointError(ValueError):
    """A checkpoint that cannot be read or does not fit the model; the message names the file."""


def file_name(step: int) -> str:
    """``checkpoint-NNNNNN.safetensors``, the name mulan-train gives the checkpoint of ``step``."""
    return "checkpoint-%06d.safetensors" % step


def newest(run_directory: str) -> Optional[str]:
    """The newest ``checkpoint-NNNNNN.safetensors`` of a run directory (by step), or None."""
    best: Optional[tuple[int, str]] = None
    for name in os.listdir(run_directory):
        if name.startswith("checkpoint-") and name.endswith(".safetensors"):
            digits = name[len("checkpoint-") : -len(".safetensors")]
            if digits.isdigit() and (best is None or int(digits) > best[0]):
                best = (int(digits), os.path.join(run_directory, name))
    return best[1] if best else None


@dataclass
class LoadedCheckpoint:
    """What a checkpoint holds: metadata decoded, tensors by name (float32, on the CPU)."""

    path: str
    step: int
    optimizer_step: int
    config: Dict[str, Any]
    sampler: Optional[Dict[str, Any]]
    tensors: Dict[str, torch.Tensor] = field(repr=False)
    metadata: Dict[str, str] = field(repr=False)

    @property
    def model_tensors(self) -> Dict[str, torch.Tensor]:
        """The tensors that are not optimizer state."""
        return {k: v for k, v in self.tensors.items() if not k.startswith(OPTIMIZER_PREFIX)}


def read(path: str, weights_only: bool = False) -> LoadedCheckpoint:
    """Reads a mulan checkpoint. ``weights_only`` skips the ``optimizer.*`` tensors and, as the
    Swift side, then accepts a checkpoint without ``sampler``.

    Raises ``CheckpointError`` naming the file for a missing, damaged or foreign file.
    """
    if not os.path.isfile(path):
        raise CheckpointError(f"the checkpoint {path} does not exist; pass a checkpoint-NNNNNN.safetensors "
                              "written by mulan-train or mulan_torch")
    try:
        with safe_open(path, framework="pt", device="cpu") as f:
            metadata = dict(f.metadata() or {})
            tensors = {name: f.get_tensor(name) for name in f.keys()
                       if not (weights_only and name.startswith(OPTIMIZER_PREFIX))}
    except Exception as error:  # safetensors raises its own error types (SafetensorError, OSError)
        raise CheckpointError(f"cannot read the checkpoint {path}: {error}; it is damaged or cut short, "
                              "use another checkpoint of the run") from error
    if metadata.get("format") != FORMAT or "config" not in metadata or not metadata.get("step", "").isdigit():
        raise CheckpointError(f"{path} is not a mulan-train checkpoint (metadata format "
                              f"{metadata.get('format', 'missing')!r}); pass a checkpoint-NNNNNN.safetensors "
                              "written by mulan-train or mulan_torch")
    if not weights_only and "sampler" not in metadata:
        raise CheckpointError(f"{path} holds no sampler state, so training cannot resume from it "
                              "(it can still be used for inference: read it with weights_only=True)")
    try:
        config = json.loads(metadata["config"])
        sampler = json.loads(metadata["sampler"]) if "sampler" in metadata else None
    except json.JSONDecodeError as error:
        raise CheckpointError(f"checkpoint {path} has unreadable metadata: {error}") from error
    if not isinstance(config, dict) or "logMel" not in config:
        raise CheckpointError(f"checkpoint {path}: the config metadata is not a mulan TrainingConfig (no logMel)")
    for name, tensor in tensors.items():
        if tensor.dtype != torch.float32:
            tensors[name] = tensor.float()
    step = int(metadata["step"])
    optimizer_step = int(metadata["optimizer_step"]) if metadata.get("optimizer_step", "").isdigit() else step
    return LoadedCheckpoint(path=path, step=step, optimizer_step=optimizer_step, config=config, sampler=sampler,
                            tensors=tensors, metadata=metadata)


def config_json(config: Mapping[str, Any]) -> str:
    """The TrainingConfig as the Swift side encodes it in checkpoints: compact JSON, keys sorted."""
    return json.dumps(config, sort_keys=True, separators=(",", ":"), allow_nan=False)


def write(path: str, tensors: Mapping[str, torch.Tensor], *, step: int, config: Mapping[str, Any],
          optimizer_step: Optional[int] = None, sampler: Optional[Mapping[str, Any]] = None) -> None:
    """Writes a checkpoint in mulan's format: float32 tensors, the metadata keys mulan-train writes
    (``sampler`` only when given). The file is written as ``PATH.tmp``, flushed to disk and renamed,
    so a crash never leaves a partial file under the real name.
    """
    if step < 0:
        raise ValueError(f"step must be ≥ 0, got {step}")
    out = {name: t.detach().to(device="cpu", dtype=torch.float32).contiguous().clone() for name, t in tensors.items()}
    metadata = {"format": FORMAT, "step": str(step),
                "optimizer_step": str(step if optimizer_step is None else optimizer_step),
                "config": config_json(config)}
    if sampler is not None:
        metadata["sampler"] = json.dumps(sampler, sort_keys=True, separators=(",", ":"))
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    tmp = path + ".tmp"
    save_file(out, tmp, metadata=metadata)
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
