"""``MulanShards``: mulan's shards as a PyTorch ``IterableDataset`` with mulan-train's batches.

What it yields: whole batches, because the source quotas and the "a clip at most once per batch" rule
are per batch. Batch ``step`` is exactly the batch ``mulan-train`` draws at that step with the same
dataset, seed, batch size, mix and shuffle buffer (keys, sources, texts and token ids, window offsets;
tested against ``mulan-train --dump-batches``), cut to this rank's slice.

What an "epoch" is: there is none for the whole dataset. Every text source has its own endless stream
whose epochs (one pass over the clips that have a text of that source, in a fresh seeded shard order
and through a shuffle buffer) roll over independently, as in mulan-train. One iteration of
``MulanShards`` runs from its start step (0, or the step of a loaded ``state_dict``) up to ``steps``
(endless when ``steps`` is None). Within one epoch of a source each of its clips is drawn once, across
all ranks together.

Distributed: every rank (``torch.distributed``'s rank and world size when it is initialized, or the
explicit ``rank``/``world_size``) runs the same seeded sampler and draws the same global batches of
``batch_size`` examples; rank r keeps examples ``[r·B/W, (r+1)·B/W)`` of each (integer division). So
every rank yields the same number of batches (no DDP hang at the end), ranks' slices are disjoint and
together form the world-size-1 batch. DataLoader workers split the steps: worker w of n yields steps
start + w, start + w + n, …, and the DataLoader's in-order round robin puts them back in step order.
Every worker runs the sampler over all steps (tar headers and JSON only); each decodes audio only for
its own batches.

Resume: each batch carries ``state``, the loader state after it. ``load_state_dict(state)`` makes the
next iteration yield exactly the batches that would have followed, with any number of workers (and any
world size: the state is global). ``state_dict()`` gives the state after the last batch consumed in
this process, which is right with ``num_workers=0`` or through ``MulanLoader``; with a plain
``DataLoader`` and workers, keep the ``state`` of the last batch you used instead (the dataset object
in the main process does not see the workers' batches).
"""

from __future__ import annotations

import json
import math
import os
import warnings
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence, Union

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from . import audio
from .random import RandomSource
from .sampler import MULAN_MIX, Example, Sampler, SourceMix, example_random, window_offset, wrap_tokens
from .shards import AudioDecodeError, ErrorLog, MulanDataError, ShardSet

__all__ = ["MulanShards", "MulanLoader", "STATE_VERSION"]

STATE_VERSION = 1

#: mulan-train's defaults (TrainingConfig, `mulan-train run`'s options).
_DEFAULT_SPEC_AUGMENT = {"frequencyMasks": 2, "maxFrequencyWidth": 15, "timeMasks": 2, "maxTimeWidth": 50,
                         "maxTimeFraction": 1.0}


def _swift_round(x: float) -> int:
    """Swift's ``Double.rounded()``: to nearest, halves away from zero."""
    return int(math.floor(x + 0.5)) if x >= 0 else -int(math.floor(-x + 0.5))


def _mix_from_config(value: Any) -> Dict[str, float]:
    """A TrainingConfig's ``mix`` as JSON-encoded by Swift: ``{"weights": {...}}`` or, for a dictionary
    keyed by an enum, ``{"weights": [key, value, key, value, …]}``."""
    weights = value.get("weights", value) if isinstance(value, dict) else value
    if isinstance(weights, list):
        if len(weights) % 2:
            raise ValueError(f"config mix: an odd-length key/value list {weights!r}")
        return {str(weights[i]): float(weights[i + 1]) for i in range(0, len(weights), 2)}
    if isinstance(weights, dict):
        return {str(k): float(v) for k, v in weights.items()}
    raise ValueError(f"config mix: cannot read {value!r}")


class MulanShards(IterableDataset):
    """A mulan dataset's split as mulan-train's training batches (see the module docstring).

    Args:
        dataset_dir: a folder written by mulan-shard (``dataset.json`` + split folders), or a shard list
            webdataset accepts (brace pattern, ``::``-joined, ``pipe:`` URLs, or a list).
        split: the split of a dataset folder.
        batch_size: examples per global batch (all ranks together); default the config's or 64.
        mix: source weights; default the config's or ``{"tags": 2, "descriptions": 2, "playlists": 1,
            "aset": 1}``. Sources without texts in the split are left out and the rest renormalized
            (with a warning), as mulan-train does.
        seed: the run seed (sampler, windows, SpecAugment); default the config's or 0.
        shuffle_buffer: per-source shuffle buffer; default the config's or 1000.
        window_seconds: training window; default the config's or 10.
        config: a mulan-train TrainingConfig (a dict, or the path of a run's ``config.json``): the
            defaults above, ``text.maxLength``, ``logMel`` and ``specAugment`` come from it (an absent
            ``specAugment`` means none, as in mulan-train). Explicit arguments win.
        features: ``"logmel"`` ([B, mel bands, frames] float32, with SpecAugment as configured) or
            ``"samples"`` (the raw window, [B, window samples]).
        on_error: ``"raise"`` (a ``MulanDataError`` naming shard and member) or ``"skip"`` (damaged
            members are left out, counted in ``batch["skipped"]`` and ``dataset.errors``, and warned
            about once each).
        steps: iterate up to this step (exclusive), like ``mulan-train --steps``; None: endless.
        rank, world_size: this process's share; default torch.distributed's, else 0 and 1.
        max_text_length: tokens per text with [CLS] and [SEP]; default the config's or 64.
        pitch_classes: also yield each example's pitch-class profile (``batch["pitch_classes"]``,
            float32 [B, 12]: ``audio.pitch_class_profile`` of the same window the features come
            from), the input of a model's pitch-class branch; default: when the config's
            ``pitchProfiles`` is above 0.
    """

    def __init__(self, dataset_dir: Union[str, os.PathLike, Sequence[str]], split: str = "train",
                 batch_size: Optional[int] = None, mix: Optional[Mapping[str, float]] = None,
                 seed: Optional[int] = None, shuffle_buffer: Optional[int] = None,
                 window_seconds: Optional[float] = None, config: Optional[Union[Mapping[str, Any], str]] = None,
                 features: str = "logmel", on_error: str = "raise", steps: Optional[int] = None,
                 rank: Optional[int] = None, world_size: Optional[int] = None,
                 max_text_length: Optional[int] = None, pitch_classes: Optional[bool] = None) -> None:
        super().__init__()
        if isinstance(config, (str, os.PathLike)):
            with open(config, "rb") as f:
                config = json.load(f)
        cfg: Dict[str, Any] = dict(config or {})
        if features not in ("logmel", "samples"):
            raise ValueError(f"features must be 'logmel' or 'samples', got {features!r}")
        if on_error not in ("raise", "skip"):
            raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
        self.shards = ShardSet.open(dataset_dir, split)
        self.batch_size = int(batch_size if batch_size is not None else cfg.get("batchSize", 64))
        self.seed = int(seed if seed is not None else cfg.get("seed", 0))
        self.shuffle_buffer = int(shuffle_buffer if shuffle_buffer is not None else cfg.get("shuffleBuffer", 1000))
        self.window_seconds = float(window_seconds if window_seconds is not None else cfg.get("windowSeconds", 10.0))
        text_cfg = cfg.get("text", {}) if isinstance(cfg.get("text"), dict) else {}
        self.max_text_length = int(max_text_length if max_text_length is not None else text_cfg.get("maxLength", 64))
        if self.batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        if self.shuffle_buffer < 1:
            raise ValueError("shuffle_buffer must be at least 1")
        if self.max_text_length < 2:
            raise ValueError("max_text_length must be at least 2 ([CLS] and [SEP])")
        if not self.window_seconds > 0:
            raise ValueError("window_seconds must be positive")
        requested = SourceMix(mix if mix is not None else (_mix_from_config(cfg["mix"]) if "mix" in cfg else MULAN_MIX))
        if not requested.sources:
            raise ValueError("mix gives no source a weight above 0")
        available = self.shards.available_sources()
        self.mix = requested.restricted(available) if available is not None else requested
        if not self.mix.sources:
            raise MulanDataError(f"no source of mix {requested} has texts in split '{split}' "
                                 f"(it has: {', '.join(sorted(available or []))})")
        if available is not None and len(self.mix.sources) < len(requested.sources):
            missing = [s for s in requested.sources if s not in available]
            warnings.warn(f"the {split} split has no {', '.join(missing)} texts; mixing {self.mix} instead "
                          f"(the remaining weights, renormalized)", stacklevel=2)
        self.features = features
        self.pitch_classes = bool(pitch_classes if pitch_classes is not None else int(cfg.get("pitchProfiles") or 0) > 0)
        self.on_error = on_error
        self.steps = steps
        if rank is None or world_size is None:
            if torch.distributed.is_available() and torch.distributed.is_initialized():
                rank = torch.distributed.get_rank() if rank is None else rank
                world_size = torch.distributed.get_world_size() if world_size is None else world_size
            else:
                rank = 0 if rank is None else rank
                world_size = 1 if world_size is None else world_size
        if not (world_size >= 1 and 0 <= rank < world_size):
            raise ValueError(f"rank {rank} is not in 0..<world_size {world_size}")
        if world_size > self.batch_size:
            raise ValueError(f"world_size {world_size} is larger than the global batch_size {self.batch_size}: "
                             "some ranks would get empty batches")
        self.rank = int(rank)
        self.world_size = int(world_size)
        sample_rate = self.shards.sample_rate
        log_mel_dict = cfg.get("logMel")
        if sample_rate is None and isinstance(log_mel_dict, dict):
            sample_rate = int(log_mel_dict["sampleRate"])
        self._sample_rate = sample_rate          # None: from the first record read
        self._log_mel_dict = dict(log_mel_dict) if isinstance(log_mel_dict, dict) else None
        if config is None:
            self._spec_dict: Optional[Dict[str, Any]] = dict(_DEFAULT_SPEC_AUGMENT)
        else:
            spec = cfg.get("specAugment")
            self._spec_dict = dict(spec) if isinstance(spec, dict) else None
        if self._log_mel_dict is not None and sample_rate is not None \
                and int(self._log_mel_dict["sampleRate"]) != sample_rate:
            raise MulanDataError(f"the dataset's clips are {sample_rate} Hz but the config's logMel expects "
                                 f"{self._log_mel_dict['sampleRate']} Hz", hint="use a config made for this dataset")
        #: Damage skipped under on_error="skip" by iterations run in this process.
        self.errors = ErrorLog()
        self._start: Dict[str, Any] = self._state(0, {})
        self._consumed: Dict[str, Any] = self._start

    # MARK: state

    def _state(self, step: int, streams: Mapping[str, Mapping[str, int]]) -> Dict[str, Any]:
        return {
            "version": STATE_VERSION, "step": step,
            "streams": {s: {"epoch": int(p["epoch"]), "drawn": int(p["drawn"])} for s, p in streams.items()},
            "seed": self.seed, "batch_size": self.batch_size, "mix": repr(self.mix),
            "shuffle_buffer": self.shuffle_buffer, "shards": len(self.shards),
        }

    def state_dict(self) -> Dict[str, Any]:
        """The loader state after the last batch consumed in this process (a JSON-able dict).

        ``streams`` is mulan-train's checkpoint ``sampler`` state (per source epoch and draws), ``step``
        the next step. With DataLoader workers use ``MulanLoader`` or the last batch's ``state``.
        """
        return json.loads(json.dumps(self._consumed))

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """The next iteration starts where ``state`` (from ``state_dict()`` or a batch's ``state``) stood.

        Refuses a state of another seed, batch size, mix, shuffle buffer or shard count. A mulan-train
        checkpoint's sampler state can be given as ``{"step": N, "streams": ...}``.
        """
        if int(state.get("version", STATE_VERSION)) != STATE_VERSION:
            raise ValueError(f"loader state version {state.get('version')} is not {STATE_VERSION}")
        mine = self._state(0, {})
        for k in ("seed", "batch_size", "mix", "shuffle_buffer", "shards"):
            if k in state and state[k] != mine[k]:
                raise ValueError(f"the loader state was saved with {k} = {state[k]!r}, this dataset has {mine[k]!r}")
        self._start = self._state(int(state["step"]), state.get("streams", {}))
        self._consumed = self._start

    def _note_consumed(self, state: Mapping[str, Any]) -> None:
        self._consumed = dict(state)

    # MARK: iteration

    def _slice(self) -> range:
        return range(self.rank * self.batch_size // self.world_size, (self.rank + 1) * self.batch_size // self.world_size)

    def __iter__(self) -> Iterator[Dict[str, Any]]:
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        errors = self.errors if info is None else ErrorLog()
        sampler = Sampler(self.shards, self.mix, self.batch_size, self.seed, self.shuffle_buffer,
                          errors if self.on_error == "skip" else None)
        start = int(self._start["step"])
        sampler.restore(self._start["streams"])
        front = _FrontEnd(self, errors)
        reported = errors.count
        step = start
        while self.steps is None or step < self.steps:
            examples = sampler.batch(step)
            state = self._state(step + 1, sampler.state)
            if (step - start) % workers == worker:
                batch = front.batch(examples, step, self._slice())
                batch["state"] = state
                batch["skipped"] = errors.count
                for e in errors.entries[reported:]:
                    warnings.warn(f"skipped: {e}", stacklevel=2)
                reported = errors.count
                if info is None:
                    self._note_consumed(state)
                yield batch
            step += 1


class _FrontEnd:
    """Decode, window, log-mel and SpecAugment for a rank's slice of a batch (AudioFrontEnd.trainingBatch)."""

    def __init__(self, ds: MulanShards, errors: ErrorLog) -> None:
        self.ds = ds
        self.errors = errors
        self.audio = audio
        self.sample_rate = ds._sample_rate
        self.log_mel_cfg: Any = None
        self.spec_cfg: Any = None

    def _configure(self, sample_rate: int) -> None:
        self.sample_rate = sample_rate
        if self.ds.features == "logmel":
            d = self.ds._log_mel_dict if self.ds._log_mel_dict is not None else {"sampleRate": sample_rate}
            self.log_mel_cfg = self.audio.LogMelConfig.from_dict(d)
            if self.ds._spec_dict is not None:
                self.spec_cfg = self.audio.SpecAugmentConfig.from_dict(self.ds._spec_dict)

    @property
    def window(self) -> int:
        assert self.sample_rate is not None
        return _swift_round(self.ds.window_seconds * self.sample_rate)

    def example(self, ex: Example, step: int, index: int) -> "tuple[np.ndarray, int, Optional[np.ndarray]]":
        """Example ``index`` of global batch ``step``: its features, window offset and (when the
        dataset yields them) the window's pitch-class profile."""
        if self.sample_rate is None or (self.log_mel_cfg is None and self.ds.features == "logmel"):
            self._configure(self.sample_rate or int(ex.clip.record.get("sample_rate", 0)))
        url = self.ds.shards.urls[ex.shard]
        data = self.ds.shards.read_flac(ex.clip)
        random: RandomSource = example_random(self.ds.seed, step, index)
        w = self.window
        # Only the window is decoded (the clip's length comes from its FLAC header): the same offset
        # draw and the same samples as decoding the whole clip and cropping, as mulan-train does.
        try:
            offset, window = self.audio.decode_flac_window(
                data, self.sample_rate, f"{url} member {ex.clip.flac_member}", w,
                lambda count: window_offset(count, w, random))
        except ValueError as e:
            raise AudioDecodeError(f"shard {url}, member {ex.clip.flac_member}: {e}", shard=url,
                                   member=ex.clip.flac_member, hint=self.ds.shards.verify_hint) from e
        profile = self.audio.pitch_class_profile(window, self.sample_rate) if self.ds.pitch_classes else None
        if self.ds.features == "samples":
            return window, offset, profile
        values = self.audio.log_mel(window, self.log_mel_cfg)
        if self.spec_cfg is not None:
            self.audio.spec_augment(values, self.spec_cfg, random)
        return values, offset, profile

    def batch(self, examples: List[Example], step: int, indices: range) -> Dict[str, Any]:
        kept: List[int] = []
        arrays: List[np.ndarray] = []
        offsets: List[int] = []
        profiles: List[np.ndarray] = []
        for i in indices:
            try:
                values, offset, profile = self.example(examples[i], step, i)
            except MulanDataError as e:
                if self.ds.on_error != "skip":
                    raise
                self.errors.add(e)
                continue
            arrays.append(values)
            kept.append(i)
            offsets.append(offset)
            if profile is not None:
                profiles.append(profile)
        chosen = [examples[i] for i in kept]
        wrapped = [wrap_tokens(e.token_ids, self.ds.max_text_length) for e in chosen]
        length = max((len(r) for r in wrapped), default=0)
        input_ids = torch.zeros((len(wrapped), length), dtype=torch.long)
        mask = torch.zeros((len(wrapped), length), dtype=torch.long)
        for b, row in enumerate(wrapped):
            input_ids[b, : len(row)] = torch.tensor(row, dtype=torch.long)
            mask[b, : len(row)] = 1
        audio = torch.from_numpy(np.stack(arrays)) if arrays else torch.zeros((0,), dtype=torch.float32)
        batch: Dict[str, Any] = {
            "step": step,
            "index": torch.tensor(kept, dtype=torch.long),
            "keys": [e.key for e in chosen],
            "sources": [e.source for e in chosen],
            "texts": [e.text for e in chosen],
            "token_ids": [list(e.token_ids) for e in chosen],
            "input_ids": input_ids,
            "attention_mask": mask,
            "window_offsets": torch.tensor(offsets, dtype=torch.long),
            "audio": audio,
        }
        if self.ds.pitch_classes:
            batch["pitch_classes"] = (torch.from_numpy(np.stack(profiles)) if profiles
                                      else torch.zeros((0, self.audio.PITCH_CLASSES), dtype=torch.float32))
        return batch


class MulanLoader(DataLoader):
    """A ``DataLoader(dataset, batch_size=None, …)`` over ``MulanShards`` that knows which batch was
    consumed last, whatever ``num_workers``: ``state_dict()`` / ``load_state_dict()`` resume exactly."""

    def __init__(self, dataset: MulanShards, num_workers: int = 0, **kwargs: Any) -> None:
        if not isinstance(dataset, MulanShards):
            raise TypeError("MulanLoader reads a MulanShards dataset")
        if kwargs.get("persistent_workers"):
            # Persistent workers keep the dataset copy they started with: a later load_state_dict
            # would not reach them and the next iteration would silently start from the old state.
            raise ValueError("MulanLoader does not take persistent_workers=True: a loaded state would not "
                             "reach the workers; each iteration starts its workers afresh")
        super().__init__(dataset, batch_size=None, num_workers=num_workers, **kwargs)

    def __iter__(self) -> Iterator[Dict[str, Any]]:  # type: ignore[override]
        ds: MulanShards = self.dataset  # type: ignore[assignment]
        for batch in super().__iter__():
            ds._note_consumed(batch["state"])
            yield batch

    def state_dict(self) -> Dict[str, Any]:
        """The state after the last batch this loader handed out."""
        ds: MulanShards = self.dataset  # type: ignore[assignment]
        return ds.state_dict()

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """The next iteration continues after the batch ``state`` was taken from."""
        ds: MulanShards = self.dataset  # type: ignore[assignment]
        ds.load_state_dict(state)
