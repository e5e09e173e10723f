"""``python -m mulan_torch.train``: mulan-train's training run in PyTorch, on one process or many.

Launched as a script (one process, CPU or one GPU) or under ``torchrun`` (DistributedDataParallel:
the gloo backend on CPU, NCCL on GPUs). It reads a mulan dataset with ``MulanShards`` (the batches
mulan-train draws), trains ``MulanModel`` (mulan-train's towers and checkpoint format) with the
options of ``mulan-train`` that apply, and writes the run directory as mulan-train does:
``config.json``, ``metrics.jsonl`` (the same keys), ``checkpoint-NNNNNN.safetensors`` (which
``mulan-eval``, ``mulan-embed``, ``mulan-search``, ``mulan-filter audio`` and ``mulan-train --resume``
read) and ``summary.json``.

What is the same as mulan-train: the batches (sampler, mix, windows, SpecAugment), the model and its
initialization's distributions, the decoupled/standard loss with a learnable temperature clamped to
τ ≤ 1, AdamW with decay on weights only, gradient clipping, linear warm-up then cosine decay, the
evaluation (``mulan_torch.evaluation``) and the metrics lines. What is not bit for bit: PyTorch's
kernels and AdamW sum in another order than mulan's BLAS, so losses agree in their first digits only.

Distributed: every rank draws the same global batch and keeps its slice (``MulanShards``); the
contrastive loss is over the **global** batch (each rank's embeddings are all-gathered with their
gradients, as OpenCLIP's ``gather_with_grad``), so W ranks train the model one process would with
the same batch size. Batch norm normalizes over each rank's slice unless ``--sync-batchnorm``
(then over the global batch, and a W-rank run follows the 1-process run to float rounding).

Resume: ``--resume`` continues from the newest checkpoint of the run directory: weights, AdamW's
moments and step, the temperature, the loader's position (the checkpoint's ``sampler`` state, the
format mulan-train writes) and the metrics lines (those after the checkpoint's step are dropped and
written again). On the same machine and thread count the resumed run ends in the uninterrupted run's
state, tensor for tensor (tested with a run killed by SIGKILL).
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import math
import os
import resource
import sys
import time
from typing import Any, Dict, IO, Iterator, List, Mapping, NoReturn, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from . import __version__
from . import checkpoint as ckpt
from .dataset import MulanLoader, MulanShards
from .evaluation import EvaluationClips, evaluate, evaluation_line
from .model import BatchNorm2d, MulanModel, _fft_size, training_config
from .shards import SOURCES
from .shards import MulanDataError, ShardSet

__all__ = ["main", "learning_rate", "SyncBatchNorm2d", "convert_sync_batchnorm", "gather_rows"]

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 64


class UsageError(Exception):
    """A bad option or a run directory that does not fit the request (exit 64)."""


class RunDirectoryBusy(Exception):
    """Another trainer holds the run directory (exit 1, as mulan-train)."""


# MARK: pieces of mulan-train's arithmetic


def learning_rate(step: int, peak: float, warmup: int, total: int, minimum: float = 0.0) -> float:
    """``LearningRateSchedule.rate(at:)`` for 0-based ``step``: linear warm-up to ``peak``, then a
    cosine decay to ``minimum`` at ``total`` (computed in float32 as mulan does)."""
    f = np.float32
    if step < warmup:
        return float(f(peak) * f(step + 1) / f(warmup))
    span = max(1, total - warmup)
    progress = min(1.0, (step - warmup) / span)
    return float(f(minimum) + (f(peak) - f(minimum)) * f(0.5 * (1 + math.cos(math.pi * progress))))


# MARK: distributed pieces


def _world() -> Tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


class SyncBatchNorm2d(BatchNorm2d):
    """mulan's batch norm with the batch statistics taken over all ranks' slices (two-pass mean and
    variance through differentiable all-reduces), for gloo (CPU) and NCCL alike: torch's own
    ``nn.SyncBatchNorm`` runs on GPUs only. Outside training, or in a single process, it is
    ``BatchNorm2d``. The parameter and buffer names are unchanged, so checkpoints are too."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rank, world = _world()
        if not self.training or world == 1:
            return super().forward(x)
        from torch.distributed.nn.functional import all_reduce

        c = x.shape[1]
        xf = x.float()
        local = torch.tensor([float(xf.numel() // c)], dtype=torch.float32, device=x.device)
        packed = all_reduce(torch.cat([xf.sum(dim=(0, 2, 3)), local]))
        count = packed[c]
        mean = packed[:c] / count
        centred = xf - mean.view(1, c, 1, 1)
        var = all_reduce(centred.square().sum(dim=(0, 2, 3))) / count
        with torch.no_grad():
            m = self.momentum if self.momentum is not None else 0.1
            n = float(count)
            self.running_mean.mul_(1 - m).add_(mean.detach(), alpha=m)
            self.running_var.mul_(1 - m).add_(var.detach() * (n / max(n - 1, 1.0)), alpha=m)
        y = centred * torch.rsqrt(var + self.eps).view(1, c, 1, 1)
        return (y * self.weight.view(1, c, 1, 1) + self.bias.view(1, c, 1, 1)).to(x.dtype)


def convert_sync_batchnorm(module: nn.Module) -> nn.Module:
    """Makes every ``BatchNorm2d`` of ``module`` a ``SyncBatchNorm2d`` in place (same tensors)."""
    for m in module.modules():
        if type(m) is BatchNorm2d:
            m.__class__ = SyncBatchNorm2d
    return module


def gather_rows(local: torch.Tensor) -> torch.Tensor:
    """All ranks' rows of ``local`` [b_r, d] concatenated in rank order (the global batch), with
    gradients flowing back to each rank's own rows; ranks may hold different row counts (a batch
    that lost damaged clips under ``--on-error skip``)."""
    rank, world = _world()
    if world == 1:
        return local
    from torch.distributed.nn.functional import all_gather

    counts = [torch.zeros(1, dtype=torch.long, device=local.device) for _ in range(world)]
    dist.all_gather(counts, torch.tensor([local.shape[0]], dtype=torch.long, device=local.device))
    sizes = [int(c.item()) for c in counts]
    top = max(sizes)
    padded = F.pad(local, (0, 0, 0, top - local.shape[0]))
    parts = all_gather(padded)
    return torch.cat([p[:n] for p, n in zip(parts, sizes)])


class _TrainingStep(nn.Module):
    """One forward pass to the global loss: the module DistributedDataParallel wraps, so that every
    trained parameter (the towers, the pitch-class branch and the temperature) is used inside its
    forward."""

    def __init__(self, model: MulanModel, autocast: Any) -> None:
        super().__init__()
        self.model = model
        self.autocast = autocast
        """A function giving the autocast context of the towers' forward (mixed precision)."""

    def forward(self, log_mel: torch.Tensor, ids: torch.Tensor, lengths: torch.Tensor,
                pitch_classes: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, int]:
        with self.autocast():
            audio, text = self.model(log_mel, ids, lengths, pitch_classes)
        audio, text = gather_rows(audio.float()), gather_rows(text.float())
        return self.model.loss(audio, text), audio.shape[0]


# MARK: the run directory


class MetricsLog:
    """``metrics.jsonl`` as mulan-train keeps it: one JSON object per line, appended and flushed."""

    def __init__(self, path: str) -> None:
        self.path = path

    def truncate(self, after: int) -> None:
        """Keeps the lines of steps before ``after`` and those of step ``after`` itself except its test
        evaluation (as mulan-train's ``MetricsLog.truncate``); rewrites through a temporary file."""
        kept: List[str] = []
        if os.path.exists(self.path):
            with open(self.path, encoding="utf-8") as f:
                for line in f:
                    try:
                        obj = json.loads(line)
                        s = int(obj["step"])
                    except (ValueError, KeyError, TypeError):
                        continue
                    if s < after or (s == after and obj.get("split") != "test"):
                        kept.append(line if line.endswith("\n") else line + "\n")
        _write_atomically(self.path, "".join(kept).encode())

    def append(self, obj: Mapping[str, Any]) -> None:
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(obj, sort_keys=True) + "\n")
            f.flush()


def _write_atomically(path: str, data: bytes) -> None:
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class RunLock:
    """``RUN/.lock`` held (flock) for the run's lifetime by rank 0: two trainers on one run directory
    would interleave checkpoints and metrics."""

    def __init__(self, run_dir: str) -> None:
        self.file: IO[str] = open(os.path.join(run_dir, ".lock"), "a")
        try:
            fcntl.flock(self.file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self.file.close()
            raise RunDirectoryBusy(f"the run directory {run_dir} is in use by another trainer: wait for it to "
                             "finish, or choose another --run-dir") from None

    def close(self) -> None:
        self.file.close()


# MARK: progress


class Progress:
    """A progress bar on a terminal (steps, rate, ETA), plain periodic lines otherwise, on stderr.
    ``MULAN_PROGRESS_INTERVAL`` (seconds) sets how often, as for the Swift tools."""

    def __init__(self, total: int, first: int, quiet: bool) -> None:
        self.total, self.first, self.quiet = total, first, quiet
        self.bar = sys.stderr.isatty()
        env = os.environ.get("MULAN_PROGRESS_INTERVAL")
        self.interval = float(env) if env else (0.2 if self.bar else 10.0)
        self.begin = self.last = time.monotonic()
        self.done = 0

    def advance(self, status: str) -> None:
        self.done += 1
        now = time.monotonic()
        if self.quiet or (now - self.last < self.interval and self.done < self.total):
            return
        self.last = now
        rate = self.done / max(now - self.begin, 1e-9)
        eta = (self.total - self.done) / rate if rate > 0 else 0.0
        text = f"{self.done}/{self.total} steps, {rate:.2f} steps/s, ETA {eta:.0f} s: {status}"
        if self.bar:
            width = 24
            filled = int(width * self.done / max(self.total, 1))
            sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {text}\033[K")
            if self.done == self.total:
                sys.stderr.write("\n")
        else:
            sys.stderr.write(f"mulan-torch train: {text}\n")
        sys.stderr.flush()


# MARK: options


def _parser() -> argparse.ArgumentParser:
    from .__main__ import _Parser  # argparse with the toolkit's usage exit code (64)

    p = _Parser(
        prog="python -m mulan_torch.train",
        description="Train mulan's two-tower model in PyTorch on mulan-shard shards (one process, or "
                    "DistributedDataParallel under torchrun), writing a run directory mulan's tools read.",
        epilog="Exit codes: 0 ok; 64 usage; 1 fatal (the message says what and where). "
               "Example: torchrun --standalone --nproc_per_node 2 -m mulan_torch.train --dataset "
               "W/shards/latest --run-dir runs/a --steps 1000",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    a = p.add_argument
    a("--dataset", required=True, help="dataset folder written by mulan-shard")
    a("--run-dir", required=True, help="run directory for config.json, metrics, checkpoints and summary")
    a("--resume", action="store_true", help="continue from the newest checkpoint in the run directory")
    a("--stop-at", type=int, default=None, help="stop after this step with a checkpoint (resume later)")
    # mulan-train's options
    a("--steps", type=int, default=1000, help="training steps in all")
    a("--batch-size", type=int, default=64, help="examples per global batch (all ranks together)")
    a("--lr", type=float, default=3e-4, help="peak learning rate (AdamW)")
    a("--min-lr", type=float, default=0.0, help="learning rate at the end of the cosine decay")
    a("--warmup-steps", type=int, default=100, help="linear warm-up steps")
    a("--weight-decay", type=float, default=0.01, help="AdamW weight decay (not on biases, norms or the temperature)")
    a("--clip-norm", type=float, default=1.0, help="clip the global gradient norm to this")
    a("--mix", default="tags=2,descriptions=2,playlists=1,aset=1", help="source mix per batch")
    a("--seed", type=int, default=0, help="random seed (model, sampler, crops, SpecAugment)")
    a("--shuffle-buffer", type=int, default=1000, help="shuffle buffer size per source")
    a("--temperature", type=float, default=0.1, help="initial temperature, in (0, 1]")
    a("--loss", choices=["decoupled", "standard"], default="decoupled",
      help="loss denominator: decoupled (MuLan: positive left out) or standard")
    a("--eval-every", type=int, default=500, help="evaluate on valid every N steps")
    a("--eval-samples", type=int, default=1000, help="clips per evaluation")
    a("--checkpoint-every", type=int, default=500, help="checkpoint every N steps (and at the end)")
    a("--keep-checkpoints", type=int, default=3, help="checkpoints to keep")
    a("--log-every", type=int, default=10, help="write a metrics line every N steps")
    a("--window-seconds", type=float, default=10.0, help="seconds per training window")
    a("--mel-bands", type=int, default=None, help="mel bands (default 128; musicnn/vgg: 96, fixed)")
    a("--mel-window", type=float, default=None, help="analysis window, seconds (default 0.025; musicnn/vgg: 0.032, fixed)")
    a("--mel-hop", type=float, default=None, help="hop, seconds (default 0.010; musicnn/vgg: 0.016, fixed)")
    a("--no-spec-augment", action="store_true", help="turn SpecAugment off")
    a("--freq-masks", type=int, default=2, help="SpecAugment frequency masks")
    a("--freq-mask-width", type=int, default=15, help="SpecAugment widest frequency mask (bands)")
    a("--time-masks", type=int, default=2, help="SpecAugment time masks")
    a("--time-mask-width", type=int, default=50, help="SpecAugment widest time mask (frames)")
    a("--audio-tower", choices=["resnet", "resnet50", "ast", "musicnn", "vgg"], default="resnet",
      help="audio tower: the compact ResNet, ResNet-50's bottleneck stages (resnet50), an Audio Spectrogram "
           "Transformer (ast, of --ast-*), or musicnn's pretrained musicnn / vgg (front end fixed: 16 kHz, "
           "512/256, 96 bands, log10(10000x+1); docs/pretrained-audio.md)")
    a("--ast-width", type=int, default=128, help="AST tower: Transformer width")
    a("--ast-layers", type=int, default=4, help="AST tower: encoder layers")
    a("--ast-heads", type=int, default=4, help="AST tower: attention heads")
    a("--ast-feed-forward", type=int, default=512, help="AST tower: feed-forward width")
    a("--audio-init", default=None, help="start the musicnn/vgg tower from a converted file "
                                         "(python -m mulan_torch.musicnn convert)")
    a("--audio-train", default="full", help="musicnn/vgg weights that train: full, frozen (proj only; batch norm "
                                            "in inference mode) or top:K (proj and the top K blocks)")
    a("--audio-widths", default=None, help="audio tower stage widths (default 32,64,128,256; resnet50: 256,512,1024,2048)")
    a("--audio-blocks", type=int, default=1, help="residual blocks per audio stage")
    a("--text-width", type=int, default=256, help="text tower width")
    a("--text-layers", type=int, default=4, help="text tower layers")
    a("--text-heads", type=int, default=4, help="text tower attention heads")
    a("--text-feed-forward", type=int, default=1024, help="text tower feed-forward width")
    a("--max-text-length", type=int, default=64, help="tokens per text (longer texts are cut, keeping [SEP])")
    a("--vocabulary-size", type=int, default=30522, help="vocabulary size of the token ids")
    a("--embedding-dim", type=int, default=128, help="embedding dimension of both towers")
    a("--text-init", default=None, help="start the text tower from a Hugging Face BERT folder")
    a("--text-train", default="full", help="text tower weights that train: full, frozen or top:K")
    a("--text-pooling", choices=["cls", "mean"], default=None,
      help="text pooling (default: mean with --text-init, cls otherwise)")
    a("--pitch-profiles", type=int, default=0,
      help="learned key profiles of the pitch-class branch, which adds each window's 12-bin pitch-class "
           "profile to the audio embedding (any audio tower; 0: no branch)")
    a("--pitch-lr-scale", type=float, default=1.0,
      help="multiply the learning rate of the pitch-class branch by this factor (above 0, at most 1000; "
           "its projection starts at zero)")
    # PyTorch's
    a("--device", default=None, help="cpu, cuda or cuda:N (default: cuda:LOCAL_RANK when CUDA is available, else cpu)")
    a("--backend", choices=["auto", "gloo", "nccl"], default="auto",
      help="torch.distributed backend under torchrun (auto: nccl on CUDA, gloo on CPU)")
    a("--precision", choices=["auto", "fp32", "bf16", "fp16"], default="auto",
      help="autocast precision of the towers (auto: bf16 on CUDA, fp32 on CPU); the loss is float32")
    a("--sync-batchnorm", action="store_true", help="batch-norm statistics over the global batch (all ranks)")
    a("--workers", type=int, default=2, help="DataLoader workers per rank")
    a("--on-error", choices=["raise", "skip"], default="raise",
      help="damaged shard members: stop with an error naming them, or skip and count them")
    a("--threads", type=int, default=None, help="torch CPU threads per process (default: torch's)")
    a("--quiet", action="store_true", help="no progress output")
    a("--version", action="version", version=f"mulan-torch {__version__}")
    return p


def _mix(spec: str) -> Dict[str, float]:
    weights: Dict[str, float] = {}
    for part in spec.split(","):
        name, sep, value = part.partition("=")
        name = name.strip()
        if not sep or name not in SOURCES:
            raise UsageError(f"--mix: '{part}' is not SOURCE=WEIGHT with SOURCE one of {', '.join(SOURCES)}")
        try:
            w = float(value)
        except ValueError:
            raise UsageError(f"--mix: the weight of {name} is not a number: '{value}'") from None
        if not (w >= 0 and math.isfinite(w)):
            raise UsageError(f"--mix: the weight of {name} must be a finite number ≥ 0")
        if w > 0:
            weights[name] = w
    if not weights:
        raise UsageError("--mix gives no source a weight above 0")
    return weights


def _validate(o: argparse.Namespace) -> None:
    if o.steps < 1:
        raise UsageError("--steps must be at least 1")
    if o.batch_size < 3:
        raise UsageError("--batch-size must be at least 3 (a contrastive batch needs negatives)")
    if not 0 < o.temperature <= 1:
        raise UsageError("--temperature must be in (0, 1]")
    for name in ("eval_every", "checkpoint_every", "log_every", "eval_samples", "keep_checkpoints", "shuffle_buffer"):
        if getattr(o, name) < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be at least 1")
    if o.max_text_length < 2:
        raise UsageError("--max-text-length must be at least 2 ([CLS] and [SEP])")
    if o.text_width % o.text_heads != 0:
        raise UsageError("--text-width must be a multiple of --text-heads")
    if o.text_train != "full" and o.text_init is None:
        raise UsageError(f"--text-train {o.text_train} needs --text-init (a frozen random encoder learns nothing)")
    if o.text_train not in ("full", "frozen") and not (o.text_train.startswith("top:") and o.text_train[4:].isdigit()
                                                        and int(o.text_train[4:]) >= 1):
        raise UsageError(f"--text-train must be full, frozen or top:K (K ≥ 1), got '{o.text_train}'")
    if o.audio_widths is None:
        o.audio_widths = "256,512,1024,2048" if o.audio_tower == "resnet50" else "32,64,128,256"
    if o.audio_tower == "resnet50" and o.audio_blocks != 1:
        raise UsageError("--audio-blocks does not apply to --audio-tower resnet50 (its stages have 3, 4, 6 and 3 blocks)")
    if o.audio_tower == "ast" and (min(o.ast_width, o.ast_layers, o.ast_heads, o.ast_feed_forward) < 1
                                   or o.ast_width % o.ast_heads):
        raise UsageError("--ast-width must be a positive multiple of --ast-heads, with positive --ast-layers "
                         "and --ast-feed-forward")
    if o.audio_tower in ("resnet", "resnet50", "ast"):
        o.mel_bands = 128 if o.mel_bands is None else o.mel_bands
        o.mel_window = 0.025 if o.mel_window is None else o.mel_window
        o.mel_hop = 0.010 if o.mel_hop is None else o.mel_hop
        if o.audio_init is not None or o.audio_train != "full":
            raise UsageError("--audio-init and --audio-train go with --audio-tower musicnn or vgg")
    else:
        fixed = {"mel_bands": 96, "mel_window": 0.032, "mel_hop": 0.016}
        for name, value in fixed.items():
            given = getattr(o, name)
            if given is not None and given != value:
                raise UsageError(f"--{name.replace('_', '-')} {given}: the {o.audio_tower} tower's front end is "
                                 f"fixed ({value}); leave the option out")
            setattr(o, name, value)
        try:
            from .musicnn import parse_audio_training

            parse_audio_training(o.audio_train, o.audio_tower)
        except ValueError as error:
            raise UsageError(f"--audio-train: {error}") from None
        if o.audio_train != "full" and o.audio_init is None:
            raise UsageError(f"--audio-train {o.audio_train} needs --audio-init (a frozen random tower learns nothing)")
        if o.audio_init is not None and not os.path.isfile(o.audio_init):
            raise UsageError(f"--audio-init {o.audio_init}: no such file; convert one with "
                             "python -m mulan_torch.musicnn convert --model-dir DIR --out FILE")
    if o.window_seconds <= 0 or o.mel_window <= 0 or o.mel_hop <= 0 or o.mel_bands < 1:
        raise UsageError("--window-seconds, --mel-window, --mel-hop and --mel-bands must be positive")
    if o.workers < 0:
        raise UsageError("--workers must be at least 0")
    if not 0 <= o.pitch_profiles <= 64:
        raise UsageError("--pitch-profiles must be between 0 (off) and 64")
    if not 0 < o.pitch_lr_scale <= 1000:
        raise UsageError("--pitch-lr-scale must be above 0 and at most 1000")
    if o.pitch_lr_scale != 1 and o.pitch_profiles == 0:
        raise UsageError("--pitch-lr-scale scales the pitch-class branch's learning rate; add --pitch-profiles K")
    if o.stop_at is not None and o.stop_at < 1:
        raise UsageError("--stop-at must be at least 1")
    try:
        widths = [int(w) for w in o.audio_widths.split(",")]
    except ValueError:
        widths = []
    if not widths or min(widths) < 1:
        raise UsageError("--audio-widths must be a comma list of positive integers")
    _mix(o.mix)


def make_config(o: argparse.Namespace, sample_rate: int) -> Dict[str, Any]:
    """The TrainingConfig (mulan-train's JSON) of these options, as ``mulan-train run`` makes it."""
    c = training_config(sample_rate)
    n = _fft_size(round(o.mel_window * sample_rate))   # LogMelConfig.samples, then its default FFT size
    c["logMel"].update({"windowSeconds": o.mel_window, "hopSeconds": o.mel_hop, "melBands": o.mel_bands, "fftSize": n})
    c["audio"].update({"melBands": o.mel_bands, "widths": [int(w) for w in o.audio_widths.split(",")],
                       "blocksPerStage": o.audio_blocks, "embeddingDim": o.embedding_dim})
    c["text"].update({"vocabularySize": o.vocabulary_size, "width": o.text_width, "layers": o.text_layers,
                      "heads": o.text_heads, "feedForward": o.text_feed_forward, "maxLength": o.max_text_length,
                      "embeddingDim": o.embedding_dim,
                      "pooling": o.text_pooling or ("mean" if o.text_init else "cls")})
    if o.text_init:
        c["textInit"] = o.text_init
    c["textTraining"] = o.text_train
    c["specAugment"] = None if o.no_spec_augment else {
        "frequencyMasks": o.freq_masks, "maxFrequencyWidth": o.freq_mask_width, "timeMasks": o.time_masks,
        "maxTimeWidth": o.time_mask_width, "maxTimeFraction": 1.0}
    weights = _mix(o.mix)
    c["mix"] = {"weights": [x for s in SOURCES if s in weights for x in (s, weights[s])]}
    c.update({"windowSeconds": o.window_seconds, "batchSize": o.batch_size, "steps": o.steps,
              "learningRate": o.lr, "minimumLearningRate": o.min_lr, "warmupSteps": o.warmup_steps,
              "clipNorm": o.clip_norm, "initialTemperature": o.temperature, "decoupledLoss": o.loss == "decoupled",
              "seed": o.seed, "shuffleBuffer": o.shuffle_buffer, "evalEvery": o.eval_every,
              "evalSamples": o.eval_samples, "checkpointEvery": o.checkpoint_every,
              "keepCheckpoints": o.keep_checkpoints, "logEvery": o.log_every})
    c["adam"]["weightDecay"] = o.weight_decay
    c["pitchProfiles"] = o.pitch_profiles
    c["pitchLearningRateScale"] = o.pitch_lr_scale
    if o.audio_tower in ("resnet50", "ast"):
        c["audio"]["kind"] = o.audio_tower
    if o.audio_tower == "ast":
        c["audio"]["ast"] = {"width": o.ast_width, "layers": o.ast_layers, "heads": o.ast_heads,
                             "feedForward": o.ast_feed_forward}
    if o.audio_tower in ("musicnn", "vgg"):
        from .musicnn import front_end_config

        c["logMel"] = front_end_config().to_dict()
        c["audio"]["kind"] = o.audio_tower
        c["audioTraining"] = o.audio_train
        if o.audio_init is not None:
            c["audioInit"] = o.audio_init
    return c


# MARK: the trainer


class Trainer:
    """A training run (see the module's documentation); ``run()`` trains and returns the summary."""

    def __init__(self, o: argparse.Namespace) -> None:
        self.o = o
        self.rank, self.world = _world()
        self.device = self._device()
        self.run_dir = o.run_dir
        self.lock: Optional[RunLock] = None
        if self.rank == 0:
            os.makedirs(self.run_dir, exist_ok=True)
            self.lock = RunLock(self.run_dir)
        self._barrier()
        shards = ShardSet.open(o.dataset, "train")
        sample_rate = shards.sample_rate
        if sample_rate is None:
            raise UsageError(f"{o.dataset} is not a mulan dataset folder (no dataset.json)")
        existing = ckpt.newest(self.run_dir)
        loaded: Optional[ckpt.LoadedCheckpoint] = None
        if o.resume and existing is not None:
            loaded = ckpt.read(existing)
            config = dict(loaded.config)
            config["steps"] = o.steps
        elif not o.resume and existing is not None:
            raise UsageError(f"{self.run_dir} already holds checkpoints: pass --resume to continue that run, "
                             "or choose another --run-dir")
        else:
            config = make_config(o, sample_rate)
        if int(config["logMel"]["sampleRate"]) != sample_rate:
            raise UsageError(f"the dataset's clips are {sample_rate} Hz but the run expects "
                             f"{config['logMel']['sampleRate']} Hz: start a new run directory for this dataset")
        self.config = config
        torch.manual_seed(int(config["seed"]) & 0x7FFF_FFFF_FFFF_FFFF)
        if loaded is None and config.get("textInit"):
            self._check_vocabulary(shards, str(config["textInit"]))
            pooling = str(config["text"].get("pooling", "mean"))
            self.model = MulanModel.warm_started(config, str(config["textInit"]), pooling=pooling)
            self.config = self.model.config
        else:
            try:
                self.model = MulanModel(config)
            except ValueError as error:  # a configuration the towers cannot be built from
                raise UsageError(str(error)) from None
        if loaded is not None:
            self.model.load_mulan_tensors(loaded.tensors, loaded.path)
        elif config.get("audioInit"):
            from .musicnn import MusicnnError

            try:
                self.model.audio.load_pretrained_file(str(config["audioInit"]))
            except MusicnnError as error:
                raise UsageError(f"--audio-init: {error}") from None
        self.model.to(self.device).train()
        adam = config["adam"]
        groups = self.model.parameter_groups()
        fused = self.device.type == "cuda"
        self.optimizer = torch.optim.AdamW(groups, lr=float(config["learningRate"]),
                                           betas=(float(adam["beta1"]), float(adam["beta2"])),
                                           eps=float(adam["epsilon"]), fused=fused or None)
        if loaded is not None:
            self.model.load_optimizer_state(self.optimizer, loaded)
        if o.sync_batchnorm:
            convert_sync_batchnorm(self.model)
        self.precision = self._precision()
        self.step_module: nn.Module = _TrainingStep(self.model, self._autocast)
        if self.world > 1:
            from torch.nn.parallel import DistributedDataParallel as DDP

            ids = [self.device.index] if self.device.type == "cuda" else None
            self.step_module = DDP(self.step_module, device_ids=ids, broadcast_buffers=False)
        self.scaler = torch.amp.GradScaler("cuda") if self.precision == "fp16" else None
        self.start_step = loaded.step if loaded is not None else 0
        self.dataset = MulanShards(o.dataset, "train", config=self.config, steps=None, on_error=o.on_error)
        if loaded is not None:
            self.dataset.load_state_dict({"step": loaded.step, "streams": (loaded.sampler or {}).get("streams", {})})
        self.loader = MulanLoader(self.dataset, num_workers=o.workers, pin_memory=self.device.type == "cuda")
        self.metrics = MetricsLog(os.path.join(self.run_dir, "metrics.jsonl"))
        self.valid = self._evaluation_clips("valid")
        self.test = self._evaluation_clips("test")
        if self.rank == 0:
            for name in os.listdir(self.run_dir):
                if name.endswith(".tmp"):  # left by a process killed while writing
                    os.remove(os.path.join(self.run_dir, name))
            self.metrics.truncate(after=self.start_step if loaded is not None else -1)
            record = dict(self.config)
            record["pytorch"] = {"version": torch.__version__, "mulan_torch": __version__, "world_size": self.world,
                                 "backend": dist.get_backend() if self.world > 1 else None,
                                 "device": str(self.device), "precision": self.precision,
                                 "sync_batchnorm": bool(o.sync_batchnorm)}
            _write_atomically(os.path.join(self.run_dir, "config.json"),
                              (json.dumps(record, indent=2, sort_keys=True) + "\n").encode())
            if loaded is not None:
                _log(f"resuming from {loaded.path} at step {loaded.step}")
        self._barrier()

    def _device(self) -> torch.device:
        if self.o.device:
            return torch.device(self.o.device)
        if torch.cuda.is_available():
            return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        return torch.device("cpu")

    def _precision(self) -> str:
        p = self.o.precision
        if p == "auto":
            return "bf16" if self.device.type == "cuda" else "fp32"
        if p == "fp16" and self.device.type != "cuda":
            raise UsageError("--precision fp16 needs a CUDA device (its loss scaling is CUDA's); use bf16 or fp32 on CPU")
        return p

    def _autocast(self) -> Any:
        if self.precision == "fp32":
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if self.precision == "bf16" else torch.float16
        return torch.autocast(device_type=self.device.type, dtype=dtype)

    def _barrier(self) -> None:
        if self.world > 1:
            dist.barrier()

    def _check_vocabulary(self, shards: ShardSet, folder: str) -> None:
        import hashlib

        want = (shards.manifest or {}).get("tokenizer_vocab_sha256")
        path = os.path.join(folder, "vocab.txt")
        if want and os.path.isfile(path):
            with open(path, "rb") as f:
                have = hashlib.sha256(f.read()).hexdigest()
            if have != want:
                raise UsageError(f"{path} is not the vocabulary the dataset's token ids come from (SHA-256 "
                                 f"{have[:12]}… vs the dataset's {want[:12]}…): filter the text with --vocab {path}, "
                                 "or start the text tower from scratch")

    def _evaluation_clips(self, split: str) -> Optional[EvaluationClips]:
        if self.rank != 0:
            return None
        try:
            shards = ShardSet.open(self.o.dataset, split)
        except MulanDataError:
            return None  # no such split: mulan-train skips it too
        return EvaluationClips.load(shards, self.config, split)

    def _evaluate(self, data: EvaluationClips, step: int) -> Dict[str, Any]:
        result = evaluate(self.model, data, self.config, self.device)
        self.metrics.append(evaluation_line(result, step, self.model.loss.temperature, int(self.config["batchSize"])))
        return result

    def _save(self, step: int) -> str:
        path = os.path.join(self.run_dir, ckpt.file_name(step))
        streams = self.loader.state_dict()["streams"]   # mulan's SamplerState: {"streams": {source: …}}
        self.model.save_checkpoint(path, step=step, optimizer=self.optimizer, sampler={"streams": streams})
        keep = max(1, int(self.config["keepCheckpoints"]))
        names = sorted(n for n in os.listdir(self.run_dir) if n.startswith("checkpoint-") and n.endswith(".safetensors"))
        for old in names[:-keep]:
            os.remove(os.path.join(self.run_dir, old))
        return path

    def run(self) -> Dict[str, Any]:
        c = self.config
        steps = int(c["steps"])
        end = min(steps, self.o.stop_at) if self.o.stop_at is not None else steps
        self.dataset.steps = max(end, self.start_step)
        begin = time.monotonic()
        window_start, window_examples, rate = begin, 0, 0.0
        examples = 0
        last_loss: Optional[float] = None
        last_valid: Optional[Dict[str, Any]] = None
        last_checkpoint: Optional[str] = None
        params = [p for g in self.optimizer.param_groups for p in g["params"]]
        progress = Progress(max(0, end - self.start_step), self.start_step, self.o.quiet or self.rank != 0)
        ema: Optional[float] = None
        for batch in self.loader:
            step = int(batch["step"])
            lengths = batch["attention_mask"].sum(dim=1)
            log_mel = batch["audio"].to(self.device, non_blocking=True)
            ids = batch["input_ids"].to(self.device, non_blocking=True)
            lengths = lengths.to(self.device, non_blocking=True)
            pitch = batch.get("pitch_classes")
            if pitch is not None:
                pitch = pitch.to(self.device, non_blocking=True)
            self.optimizer.zero_grad(set_to_none=True)
            loss, count = self.step_module(log_mel, ids, lengths, pitch)
            value = float(loss.detach())
            if not math.isfinite(value):
                raise MulanDataError(f"the loss became {value} at step {step}",
                                     hint="lower --lr or raise --warmup-steps; resume from the last checkpoint")
            if self.scaler is not None:
                self.scaler.scale(loss).backward()
                self.scaler.unscale_(self.optimizer)
            else:
                loss.backward()
            norm = float(torch.nn.utils.clip_grad_norm_(params, float(c["clipNorm"])))
            lr = learning_rate(step, float(c["learningRate"]), int(c["warmupSteps"]), steps,
                               float(c["minimumLearningRate"]))
            for g in self.optimizer.param_groups:
                g["lr"] = lr * float(g.get("lr_scale", 1.0))
            if self.scaler is not None:
                self.scaler.step(self.optimizer)
                self.scaler.update()
            else:
                self.optimizer.step()
            self.model.loss.clamp_temperature_()
            examples += count
            window_examples += count
            last_loss = value
            ema = value if ema is None else 0.9 * ema + 0.1 * value
            now = time.monotonic()
            if now > window_start:
                rate = window_examples / (now - window_start)
            done = step + 1
            if self.rank == 0 and (done % int(c["logEvery"]) == 0 or done == steps):
                sources: Dict[str, int] = {}
                for s in batch["sources"]:
                    sources[s] = sources.get(s, 0) + 1
                if self.world > 1:
                    sources = self._global_sources(batch)
                self.metrics.append({"step": done, "loss": value, "temperature": self.model.loss.temperature,
                                     "batch_size": count, "examples_per_second": rate, "learning_rate": lr,
                                     "gradient_norm": norm, "sources": sources})
                window_start, window_examples = now, 0
            elif self.world > 1 and (done % int(c["logEvery"]) == 0 or done == steps):
                self._global_sources(batch)
            if self.valid is not None and (done % int(c["evalEvery"]) == 0 or done == steps):
                last_valid = self._evaluate(self.valid, done)
                _log(f"step {done}: valid R@1 t→a {last_valid['text_to_audio']['recall_at_1']:.3f}, loss "
                     f"{'-' if last_valid['loss'] is None else format(last_valid['loss'], '.3f')}")
            if done % int(c["checkpointEvery"]) == 0 or done == end:
                if self.rank == 0:
                    last_checkpoint = self._save(done)
                self._barrier()
            progress.advance(f"step {done} loss {ema:.3f} τ {self.model.loss.temperature:.3f} {rate:.1f} ex/s")
        test_result = None
        if self.test is not None and end == steps:
            test_result = self._evaluate(self.test, steps)
        self._barrier()
        seconds = time.monotonic() - begin
        summary = {
            "run_directory": self.run_dir, "dataset_id": (self.dataset.shards.manifest or {}).get("dataset_id"),
            "first_step": self.start_step, "steps": steps, "last_step": max(self.start_step, end),
            "examples": examples, "seconds": seconds, "examples_per_second": examples / seconds if seconds > 0 else 0.0,
            "world_size": self.world, "backend": dist.get_backend() if self.world > 1 else None,
            "device": str(self.device), "precision": self.precision, "threads": torch.get_num_threads(),
            "workers": self.o.workers, "peak_rss_bytes": _peak_rss(),
            "peak_gpu_memory_bytes": torch.cuda.max_memory_allocated(self.device) if self.device.type == "cuda" else None,
            "final_loss": last_loss, "temperature": self.model.loss.temperature,
            "valid": last_valid, "test": test_result,
            "checkpoint": last_checkpoint or ckpt.newest(self.run_dir),
            "skipped": int(self.dataset.errors.count) if self.o.workers == 0 else None,
        }
        return summary

    def _global_sources(self, batch: Mapping[str, Any]) -> Dict[str, int]:
        """The global batch's examples per source (all ranks' slices)."""
        counts = torch.tensor([sum(1 for s in batch["sources"] if s == name) for name in SOURCES], dtype=torch.long)
        if self.device.type == "cuda":
            counts = counts.to(self.device)
        dist.all_reduce(counts)
        return {name: int(n) for name, n in zip(SOURCES, counts.tolist()) if n > 0}


def _peak_rss() -> int:
    """This process's peak resident memory plus the largest of its children's (DataLoader workers), in bytes."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return int(own + children) * 1024


def _log(message: str) -> None:
    sys.stderr.write(f"mulan-torch train: {message}\n")
    sys.stderr.flush()


def _init_distributed(o: argparse.Namespace) -> None:
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or dist.is_initialized():
        return
    backend = o.backend
    if backend == "auto":
        cuda = torch.cuda.is_available() and not (o.device or "").startswith("cpu")
        backend = "nccl" if cuda else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend=backend)


def main(argv: Optional[Sequence[str]] = None) -> int:
    o = _parser().parse_args(argv)
    if o.threads is not None:
        torch.set_num_threads(max(1, o.threads))
    trainer: Optional[Trainer] = None
    try:
        _validate(o)
        _init_distributed(o)
        trainer = Trainer(o)
        summary = trainer.run()
        if trainer.rank == 0:
            _write_atomically(os.path.join(o.run_dir, "summary.json"),
                              (json.dumps(summary, indent=2, sort_keys=True) + "\n").encode())
            print(json.dumps(summary, sort_keys=True))
        return EXIT_OK
    except UsageError as e:
        _log(f"error: {e}")
        return EXIT_USAGE
    except (MulanDataError, ckpt.CheckpointError, RunDirectoryBusy, OSError) as e:
        _log(f"error: {e}")
        return EXIT_FAILURE
    finally:
        if trainer is not None and trainer.lock is not None:
            trainer.lock.close()
        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()


def _entry() -> NoReturn:
    sys.exit(main())


if __name__ == "__main__":
    _entry()
