"""The MuLan two-tower model in PyTorch, tensor for tensor the model of ``mulan-train``.

The towers, their parameter names and shapes, and the checkpoint metadata are those of the Swift
side (Sources/MulanTraining: AudioTower.swift, TextTower.swift, MuLanModel.swift, Checkpoint.swift;
Sources/MulanTensor: Normalization2d.swift, ContrastiveLoss.swift), so that

- a ``mulan-train`` checkpoint loads here (``MulanModel.from_checkpoint``) and embeds audio and text
  as ``mulan-embed`` does, and
- a checkpoint written here (``MulanModel.save_checkpoint``) is used unchanged by ``mulan-embed``,
  ``mulan-search``, ``mulan-eval`` and ``mulan-filter audio`` (and, with its optimizer state and a
  sampler state, by ``mulan-train --resume``).

Audio tower (``audio.*``), a compact ResNet named as torchvision's::

    [B, M, T] log-mel → [B, 1, M, T]
    conv1 3×3 stride 2 pad 1 (no bias) → bn1 → ReLU → max pool 2×2 (floor)
    layer{s+1}: blocksPerStage BasicBlocks of width widths[s]; the first block of a stage s > 0 has
                stride 2 and a projection shortcut downsample.0 (1×1 conv) / downsample.1 (BN)
    global average pool → fc (with bias) → L2 normalization

Batch norm is PyTorch's (ε 1e-5, momentum 0.1, the running variance updated with the unbiased batch
variance), exactly what mulan's BatchNorm2d does; mulan keeps no ``num_batches_tracked``, so neither
does this model.

Text tower (``text.*``), BERT with Hugging Face ``BertModel``'s names: word + position + token type 0
embeddings, LayerNorm, post-LN encoder layers (self-attention with a key padding mask, exact GELU),
no dropout; then [CLS] or mean pooling over the valid positions, ``projection`` and L2
normalization. Loss (``loss.log_temperature``): the symmetric contrastive loss with a learnable
temperature, decoupled (the positive left out of each denominator, MuLan's choice) or standard.

Pitch-class branch (``pitch.profiles`` [K, 12], ``pitch.norm``, ``pitch.proj``; only with
``pitchProfiles`` K > 0, ``PitchClassBranch.swift``): each window's 12-bin pitch-class profile,
correlated with K learned key profiles at all 12 transpositions (the best of each kept), batch
normalized, projected to the embedding and added to the audio tower's embedding before a last L2
normalization (``PitchClassBranch``).
"""

from __future__ import annotations

import copy
import json
import math
import os
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import checkpoint as ckpt

TEXT_SOURCES = ("tags", "descriptions", "playlists", "aset")
CLIP_SECONDS = 30.0
"""A clip up to this long is scored as the mean of three windows (start, middle, end), as mulan-embed does."""


# MARK: configuration


def _round_half_away(x: float) -> int:
    """Swift's ``Double.rounded()`` (ties away from zero)."""
    return int(math.floor(x + 0.5)) if x >= 0 else -int(math.floor(-x + 0.5))


def _fft_size(window_length: int) -> int:
    n = 1
    while n < window_length and n < (1 << 30):
        n <<= 1
    return n


def training_config(sample_rate: int = 16000, **overrides: Any) -> Dict[str, Any]:
    """A complete TrainingConfig as mulan-train encodes it (every key, mulan-train's defaults), for
    ``sample_rate``; ``overrides`` replace top-level keys (e.g. ``audio={...}``, ``text={...}``,
    ``windowSeconds=4``). ``audio.melBands`` follows ``logMel.melBands`` unless given.
    """
    window = round(0.025 * sample_rate)  # LogMelConfig.samples: half to even, as Python's round
    config: Dict[str, Any] = {
        "adam": {"beta1": 0.9, "beta2": 0.999, "epsilon": 1e-08, "weightDecay": 0.01},
        "audio": AudioTowerConfig().to_json(),
        "batchSize": 64,
        "checkpointEvery": 500,
        "clipNorm": 1.0,
        "decodedCacheMiB": 0,
        "decoupledLoss": True,
        "evalEvery": 500,
        "evalSamples": 1000,
        "initialTemperature": 0.1,
        "keepCheckpoints": 3,
        "learningRate": 3e-4,
        "logEvery": 10,
        "logMel": {"amin": 1e-10, "fMax": None, "fMin": 0.0, "fftSize": _fft_size(window), "hopSeconds": 0.01,
                   "melBands": 128, "sampleRate": sample_rate, "topDB": 80.0, "windowSeconds": 0.025},
        "minimumLearningRate": 0.0,
        "mix": {"weights": ["tags", 2.0, "descriptions", 2.0, "playlists", 1.0, "aset", 1.0]},
        "pitchLearningRateScale": 1.0,
        "pitchProfiles": 0,
        "seed": 0,
        "shuffleBuffer": 1000,
        "specAugment": {"frequencyMasks": 2, "maxFrequencyWidth": 15, "maxTimeFraction": 1.0, "maxTimeWidth": 50,
                        "timeMasks": 2},
        "steps": 1000,
        "text": TextTowerConfig().to_json(),
        "textCacheEntries": 1_000_000,
        "textCacheMiB": 2048,
        "textTraining": "full",
        "warmupSteps": 100,
        "windowSeconds": 10.0,
    }
    for key, value in overrides.items():
        config[key] = copy.deepcopy(value)
    if "audio" not in overrides or "melBands" not in overrides["audio"]:
        config["audio"]["melBands"] = config["logMel"]["melBands"]
    return config


@dataclass(frozen=True)
class AudioTowerConfig:
    """``AudioTowerConfig`` (the ``audio`` section of a TrainingConfig); missing keys take mulan's defaults."""

    mel_bands: int = 128
    widths: Tuple[int, ...] = (32, 64, 128, 256)
    blocks_per_stage: int = 1
    embedding_dim: int = 128
    kind: str = "resnet"
    """``resnet`` (the compact ResNet, from scratch), ``resnet50`` (ResNet-50's bottleneck stages),
    ``ast`` (an Audio Spectrogram Transformer, ``ASTTower``), ``musicnn`` or ``vgg`` (musicnn's pretrained
    taggers, mulan_torch.musicnn); a missing ``kind`` is resnet, and resnet is not written."""
    ast: Optional[Dict[str, int]] = None
    """The AST's encoder: ``width``, ``layers``, ``heads``, ``feedForward`` (kind ast only)."""

    KINDS = ("resnet", "resnet50", "ast", "musicnn", "vgg")
    RESNET50_DEPTHS = (3, 4, 6, 3)
    AST_DEFAULT = {"width": 128, "layers": 4, "heads": 4, "feedForward": 512}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> "AudioTowerConfig":
        kind = str(d.get("kind") or "resnet")
        if kind not in cls.KINDS:
            raise ValueError(f"audio.kind must be one of {', '.join(cls.KINDS)}, got {kind!r}")
        ast = None
        if d.get("ast") is not None:
            ast = {k: int(d["ast"].get(k, v)) for k, v in cls.AST_DEFAULT.items()}
        c = cls(kind=kind, mel_bands=int(d.get("melBands", cls.mel_bands)),
                widths=tuple(int(w) for w in d.get("widths", cls.widths)),
                blocks_per_stage=int(d.get("blocksPerStage", cls.blocks_per_stage)),
                embedding_dim=int(d.get("embeddingDim", cls.embedding_dim)), ast=ast)
        if c.mel_bands < 1 or not c.widths or min(c.widths) < 1 or c.blocks_per_stage < 1 or c.embedding_dim < 1:
            raise ValueError(f"invalid audio tower configuration {dict(d)}")
        if kind == "resnet50" and (len(c.widths) != 4 or any(w % 4 for w in c.widths)):
            raise ValueError(f"the resnet50 tower needs 4 stage widths, each a multiple of 4, got {list(c.widths)}")
        return c

    def to_json(self) -> Dict[str, Any]:
        d: Dict[str, Any] = {"blocksPerStage": self.blocks_per_stage, "embeddingDim": self.embedding_dim,
                             "melBands": self.mel_bands, "widths": list(self.widths)}
        if self.kind != "resnet":
            d["kind"] = self.kind
        if self.ast is not None:
            d["ast"] = dict(self.ast)
        return d


@dataclass(frozen=True)
class TextTowerConfig:
    """``TextTowerConfig`` (the ``text`` section); missing keys take mulan's defaults (a small BERT)."""

    vocabulary_size: int = 30522
    width: int = 256
    layers: int = 4
    heads: int = 4
    feed_forward: int = 1024
    max_length: int = 64
    """The longest sequence, [CLS] and [SEP] included; also the rows of the position table."""
    embedding_dim: int = 128
    layer_norm_epsilon: float = 1e-12
    pooling: str = "cls"

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> "TextTowerConfig":
        c = cls(vocabulary_size=int(d.get("vocabularySize", cls.vocabulary_size)),
                width=int(d.get("width", cls.width)), layers=int(d.get("layers", cls.layers)),
                heads=int(d.get("heads", cls.heads)), feed_forward=int(d.get("feedForward", cls.feed_forward)),
                max_length=int(d.get("maxLength", cls.max_length)),
                embedding_dim=int(d.get("embeddingDim", cls.embedding_dim)),
                layer_norm_epsilon=float(d.get("layerNormEpsilon", cls.layer_norm_epsilon)),
                pooling=str(d.get("pooling", cls.pooling)))
        if c.pooling not in ("cls", "mean"):
            raise ValueError(f"text pooling must be cls or mean, got {c.pooling!r}")
        if min(c.vocabulary_size, c.width, c.heads, c.feed_forward, c.embedding_dim) < 1 or c.layers < 0:
            raise ValueError(f"invalid text tower configuration {dict(d)}")
        if c.width % c.heads != 0:
            raise ValueError(f"text width {c.width} is not a multiple of heads {c.heads}")
        if c.max_length < 2:
            raise ValueError(f"text maxLength {c.max_length} cannot hold [CLS] and [SEP]")
        return c

    def to_json(self) -> Dict[str, Any]:
        return {"embeddingDim": self.embedding_dim, "feedForward": self.feed_forward, "heads": self.heads,
                "layerNormEpsilon": self.layer_norm_epsilon, "layers": self.layers, "maxLength": self.max_length,
                "pooling": self.pooling, "vocabularySize": self.vocabulary_size, "width": self.width}


# MARK: audio tower


class BatchNorm2d(nn.BatchNorm2d):
    """PyTorch's BatchNorm2d (ε 1e-5, momentum 0.1) without the ``num_batches_tracked`` buffer,
    which mulan's checkpoints do not hold (it only matters for momentum=None)."""

    def __init__(self, channels: int) -> None:
        super().__init__(channels, eps=1e-5, momentum=0.1)
        self.register_buffer("num_batches_tracked", None)

    def _load_from_state_dict(self, state_dict: Any, prefix: str, *args: Any) -> None:  # type: ignore[override]
        # Skip _NormBase's insertion of a num_batches_tracked entry for old state dicts.
        nn.Module._load_from_state_dict(self, state_dict, prefix, *args)


class BasicBlock(nn.Module):
    """torchvision's BasicBlock: relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, stride=1, padding=1, bias=False)
        self.bn2 = BatchNorm2d(out_channels)
        self.downsample: Optional[nn.Sequential] = None
        if stride != 1 or in_channels != out_channels:
            self.downsample = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                                            BatchNorm2d(out_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.bn1(self.conv1(x)))
        h = self.bn2(self.conv2(h))
        shortcut = x if self.downsample is None else self.downsample(x)
        return F.relu(h + shortcut)


class Bottleneck(nn.Module):
    """torchvision's Bottleneck (ResNet-50 v1.5, the stride on the 3×3 convolution):
    relu(bn3(conv3(relu(bn2(conv2(relu(bn1(conv1(x)))))))) + shortcut(x)), out = 4 · planes."""

    expansion = 4

    def __init__(self, in_channels: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        out = planes * self.expansion
        self.conv1 = nn.Conv2d(in_channels, planes, 1, bias=False)
        self.bn1 = BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, out, 1, bias=False)
        self.bn3 = BatchNorm2d(out)
        self.downsample: Optional[nn.Sequential] = None
        if stride != 1 or in_channels != out:
            self.downsample = nn.Sequential(nn.Conv2d(in_channels, out, 1, stride=stride, bias=False), BatchNorm2d(out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.bn1(self.conv1(x)))
        h = F.relu(self.bn2(self.conv2(h)))
        h = self.bn3(self.conv3(h))
        shortcut = x if self.downsample is None else self.downsample(x)
        return F.relu(h + shortcut)


class AudioTower(nn.Module):
    """The ResNet audio tower (see the module's documentation): [B, melBands, frames] → [B, dim], unit rows.
    With kind resnet50: ResNet-50's stages of 3, 4, 6, 3 ``Bottleneck`` blocks whose outputs are
    ``widths`` (256…2048), on the compact tower's stem (3×3 stride 2, 2×2 max pool) of widths[0] / 4."""

    def __init__(self, config: AudioTowerConfig) -> None:
        super().__init__()
        self.config = config
        bottleneck = config.kind == "resnet50"
        w0 = config.widths[0] // Bottleneck.expansion if bottleneck else config.widths[0]
        self.conv1 = nn.Conv2d(1, w0, 3, stride=2, padding=1, bias=False)
        self.bn1 = BatchNorm2d(w0)
        channels = w0
        for s, width in enumerate(config.widths):
            blocks: List[nn.Module] = []
            depth = AudioTowerConfig.RESNET50_DEPTHS[s] if bottleneck else config.blocks_per_stage
            for b in range(depth):
                stride = 2 if s > 0 and b == 0 else 1
                blocks.append(Bottleneck(channels, width // Bottleneck.expansion, stride) if bottleneck
                              else BasicBlock(channels, width, stride=stride))
                channels = width
            self.add_module(f"layer{s + 1}", nn.Sequential(*blocks))
        self.fc = nn.Linear(channels, config.embedding_dim)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):  # mulan: Kaiming normal for ReLU, std √(2 / fan_in)
                nn.init.kaiming_normal_(module.weight, mode="fan_in", nonlinearity="relu")

    def stages(self) -> List[nn.Sequential]:
        return [getattr(self, f"layer{s + 1}") for s in range(len(self.config.widths))]

    def forward(self, log_mel: torch.Tensor) -> torch.Tensor:
        if log_mel.dim() != 3 or log_mel.shape[1] != self.config.mel_bands:
            raise ValueError(f"the audio tower ({self.config.mel_bands} mel bands) wants [batch, "
                             f"{self.config.mel_bands}, frames], got {list(log_mel.shape)}")
        h = self.conv1(log_mel.unsqueeze(1))
        h = F.max_pool2d(F.relu(self.bn1(h)), 2)
        for stage in self.stages():
            h = stage(h)
        h = self.fc(h.mean(dim=(2, 3)))
        return F.normalize(h, dim=-1, eps=1e-12)


# MARK: text tower


class _Embeddings(nn.Module):
    def __init__(self, c: TextTowerConfig) -> None:
        super().__init__()
        self.word_embeddings = nn.Embedding(c.vocabulary_size, c.width)
        self.position_embeddings = nn.Embedding(c.max_length, c.width)
        self.token_type_embeddings = nn.Embedding(2, c.width)
        self.LayerNorm = nn.LayerNorm(c.width, eps=c.layer_norm_epsilon)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        length = ids.shape[1]
        extra = self.position_embeddings.weight[:length] + self.token_type_embeddings.weight[0]
        return self.LayerNorm(self.word_embeddings(ids) + extra)


class _SelfAttention(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.query = nn.Linear(width, width)
        self.key = nn.Linear(width, width)
        self.value = nn.Linear(width, width)


class _DenseNorm(nn.Module):
    def __init__(self, in_features: int, width: int, eps: float) -> None:
        super().__init__()
        self.dense = nn.Linear(in_features, width)
        self.LayerNorm = nn.LayerNorm(width, eps=eps)


class _Attention(nn.Module):
    def __init__(self, width: int, eps: float) -> None:
        super().__init__()
        self.self = _SelfAttention(width)
        self.output = _DenseNorm(width, width, eps)


class _Intermediate(nn.Module):
    def __init__(self, width: int, feed_forward: int) -> None:
        super().__init__()
        self.dense = nn.Linear(width, feed_forward)


class EncoderLayer(nn.Module):
    """BERT's post-LN layer: h = LN₁(x + Attention(x)); y = LN₂(h + W₂·GELU(W₁·h)), no dropout."""

    def __init__(self, c: TextTowerConfig) -> None:
        super().__init__()
        self.heads = c.heads
        self.attention = _Attention(c.width, c.layer_norm_epsilon)
        self.intermediate = _Intermediate(c.width, c.feed_forward)
        self.output = _DenseNorm(c.feed_forward, c.width, c.layer_norm_epsilon)

    def forward(self, x: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        """x [B, L, width]; allowed [B, 1, 1, L]: True for the keys a query may attend to."""
        b, length, width = x.shape
        d = width // self.heads
        attn = self.attention.self

        def heads(t: torch.Tensor) -> torch.Tensor:
            return t.view(b, length, self.heads, d).transpose(1, 2)

        context = F.scaled_dot_product_attention(heads(attn.query(x)), heads(attn.key(x)), heads(attn.value(x)),
                                                 attn_mask=allowed)
        context = context.transpose(1, 2).reshape(b, length, width)
        h = self.attention.output.LayerNorm(self.attention.output.dense(context) + x)
        f = F.gelu(self.intermediate.dense(h), approximate="none")
        return self.output.LayerNorm(self.output.dense(f) + h)


class _Encoder(nn.Module):
    def __init__(self, c: TextTowerConfig) -> None:
        super().__init__()
        self.layer = nn.ModuleList(EncoderLayer(c) for _ in range(c.layers))


class TextTower(nn.Module):
    """BERT encoder → [CLS] or mean pooling → projection → L2 normalization (``TextTower.swift``)."""

    def __init__(self, config: TextTowerConfig) -> None:
        super().__init__()
        self.config = config
        self.embeddings = _Embeddings(config)
        self.encoder = _Encoder(config)
        self.projection = nn.Linear(config.width, config.embedding_dim)
        # BERT's initialization (N(0, 0.02²), biases 0); the projection keeps Linear's default, as in mulan.
        for name, module in self.named_modules():
            if name == "projection":
                continue
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, std=0.02)
                if isinstance(module, nn.Linear) and module.bias is not None:
                    nn.init.zeros_(module.bias)

    def _check(self, ids: torch.Tensor, lengths: torch.Tensor) -> None:
        if ids.dim() != 2 or lengths.dim() != 1 or lengths.shape[0] != ids.shape[0]:
            raise ValueError(f"the text tower wants ids [batch, length] and lengths [batch], got "
                             f"{list(ids.shape)} and {list(lengths.shape)}")
        length = ids.shape[1]
        if length > self.config.max_length:
            raise ValueError(f"text length {length} exceeds the tower's maxLength {self.config.max_length}")
        if bool((lengths < 1).any()) or bool((lengths > length).any()):
            raise ValueError(f"every text length must be in 1…{length}, got {lengths.tolist()}")
        if bool((ids < 0).any()) or bool((ids >= self.config.vocabulary_size).any()):
            raise ValueError(f"a token id is outside 0..<{self.config.vocabulary_size}")

    def encode(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """The last hidden states [B, L, width] (padded positions too, which no valid position sees)."""
        self._check(ids, lengths)
        length = ids.shape[1]
        valid = torch.arange(length, device=ids.device)[None, :] < lengths.to(ids.device)[:, None]
        allowed = valid[:, None, None, :]
        h = self.embeddings(ids)
        for layer in self.encoder.layer:
            h = layer(h, allowed)
        return h

    def pooled(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """The pooled last hidden states [B, width], before the projection."""
        h = self.encode(ids, lengths)
        if self.config.pooling == "cls":
            return h[:, 0]
        lengths = lengths.to(h.device)
        valid = (torch.arange(h.shape[1], device=h.device)[None, :] < lengths[:, None]).to(h.dtype)
        return (h * valid[:, :, None]).sum(dim=1) / lengths[:, None].to(h.dtype)

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """[B, embeddingDim] unit rows."""
        return F.normalize(self.projection(self.pooled(ids, lengths)), dim=-1, eps=1e-12)


class ASTTower(nn.Module):
    """The Audio Spectrogram Transformer of ``ASTTower.swift``: 16×16 log-mel patches at stride 10
    (``patch_embed``, a convolution with bias), ``cls_token`` and ``pos_embed`` (learned, one row per
    position of the window's patch grid plus [CLS]), BERT's post-LN ``encoder.layer.{i}`` (the text
    tower's layer), the [CLS] state → ``proj`` → L2 normalization."""

    PATCH, STRIDE = 16, 10

    def __init__(self, config: AudioTowerConfig, frames: int) -> None:
        super().__init__()
        a = config.ast or AudioTowerConfig.AST_DEFAULT
        self.config = config
        self.frames = frames
        width, heads = a["width"], a["heads"]
        if width % heads:
            raise ValueError(f"the AST's width {width} is not a multiple of its heads {heads}")
        self.grid = (self.patches(config.mel_bands), self.patches(frames))
        if min(self.grid) < 1:
            raise ValueError(f"the AST's 16×16 patches need at least 16 mel bands and 16 frames per window, "
                             f"got {config.mel_bands} bands and {frames} frames")
        self.patch_embed = nn.Conv2d(1, width, self.PATCH, stride=self.STRIDE)
        self.cls_token = nn.Parameter(torch.randn(width) * 0.02)
        self.pos_embed = nn.Parameter(torch.randn(1 + self.grid[0] * self.grid[1], width) * 0.02)
        layer = TextTowerConfig(width=width, layers=a["layers"], heads=heads, feed_forward=a["feedForward"])
        self.encoder = _Encoder(layer)
        for module in self.encoder.modules():
            if isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, std=0.02)
                nn.init.zeros_(module.bias)
        self.proj = nn.Linear(width, config.embedding_dim)

    @classmethod
    def patches(cls, size: int) -> int:
        return 0 if size < cls.PATCH else (size - cls.PATCH) // cls.STRIDE + 1

    def forward(self, log_mel: torch.Tensor) -> torch.Tensor:
        if log_mel.dim() != 3 or tuple(log_mel.shape[1:]) != (self.config.mel_bands, self.frames):
            raise ValueError(f"the AST tower wants [batch, {self.config.mel_bands}, {self.frames}], got {list(log_mel.shape)}")
        tokens = self.patch_embed(log_mel.unsqueeze(1)).flatten(2).transpose(1, 2)  # [B, P, width], (band, frame) order
        cls = self.cls_token.expand(tokens.shape[0], 1, -1)
        x = torch.cat([cls, tokens], dim=1) + self.pos_embed
        for layer in self.encoder.layer:
            x = layer(x, None)
        return F.normalize(self.proj(x[:, 0]), dim=-1, eps=1e-12)


def token_batch(sequences: Sequence[Sequence[int]], max_length: int, add_special_tokens: bool = True,
                pad_to_max_length: bool = False, cls: int = 101, sep: int = 102,
                pad: int = 0) -> Tuple[torch.Tensor, torch.Tensor]:
    """Token ids and lengths of a batch of texts, as mulan's ``TokenBatch`` makes them.

    With ``add_special_tokens`` (for the shards' ``token_ids``, which hold the text's WordPiece ids
    alone), each row is [CLS] + the first ``max_length − 2`` ids + [SEP]; without, each sequence
    must start with [CLS], and one longer than ``max_length`` keeps its first ``max_length − 1`` ids
    and gets [SEP] last. Rows are padded with ``pad`` to the longest (or to ``max_length``).
    Returns (ids [B, L] int64, lengths [B] int64).
    """
    if not sequences:
        raise ValueError("token_batch: no sequences")
    if max_length < 2:
        raise ValueError(f"max_length {max_length} cannot hold [CLS] and [SEP]")
    rows: List[List[int]] = []
    for s in sequences:
        s = [int(t) for t in s]
        if add_special_tokens:
            rows.append([cls] + s[: max_length - 2] + [sep])
        else:
            if not s or s[0] != cls:
                raise ValueError(f"token_batch: a sequence does not start with [CLS] ({cls})")
            rows.append(s if len(s) <= max_length else s[: max_length - 1] + [sep])
    length = max_length if pad_to_max_length else max(len(r) for r in rows)
    ids = torch.full((len(rows), length), pad, dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.tensor(r, dtype=torch.long)
    return ids, torch.tensor([len(r) for r in rows], dtype=torch.long)


# MARK: loss


class ContrastiveLoss(nn.Module):
    """The symmetric contrastive loss with a learnable temperature τ (``log_temperature`` = log τ).

    Logits S = A·Tᵀ/τ; the loss is the mean over both directions (audio→text rows, text→audio
    columns) of −Sᵢᵢ + log Σⱼ exp Sᵢⱼ, where the decoupled form (MuLan's, the default) leaves the
    positive j = i out of the sum: a collapsed model then scores ln(B−1) (ln B in the standard form).
    """

    def __init__(self, initial_temperature: float = 0.1, decoupled: bool = True) -> None:
        super().__init__()
        if not 0 < initial_temperature <= 1:
            raise ValueError(f"the temperature must be in (0, 1], got {initial_temperature}")
        self.decoupled = decoupled
        self.log_temperature = nn.Parameter(torch.tensor([math.log(initial_temperature)], dtype=torch.float32))

    @property
    def temperature(self) -> float:
        return float(self.log_temperature.detach().exp())

    def clamp_temperature_(self) -> None:
        """Keeps τ ≤ 1 (log τ ≤ 0), as mulan-train does after every optimizer step."""
        with torch.no_grad():
            self.log_temperature.clamp_(max=0.0)

    def forward(self, audio: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        b = audio.shape[0]
        if text.shape != audio.shape:
            raise ValueError(f"audio {list(audio.shape)} and text {list(text.shape)} embeddings differ in shape")
        if b < (3 if self.decoupled else 2):
            raise ValueError(f"a contrastive batch needs at least {3 if self.decoupled else 2} pairs, got {b}")
        logits = (audio @ text.t()) / self.log_temperature.exp()
        positives = logits.diagonal()
        if self.decoupled:
            eye = torch.eye(b, dtype=torch.bool, device=logits.device)
            logits = logits.masked_fill(eye, float("-inf"))
        rows = torch.logsumexp(logits, dim=1) - positives
        columns = torch.logsumexp(logits, dim=0) - positives
        return (rows.sum() + columns.sum()) / (2 * b)


# MARK: pitch-class branch


PITCH_CLASSES = 12
KRUMHANSL_KESSLER_MAJOR = (6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88)
"""Krumhansl and Kessler's (1982) probe-tone ratings of the major key, tonic first."""
KRUMHANSL_KESSLER_MINOR = (6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17)
"""Their ratings of the minor key, tonic first."""


def standardize_pitch_classes(profiles: torch.Tensor) -> torch.Tensor:
    """(c − mean c) / std c over the last axis (12 bins; population std), and zeros for a row
    whose std is below 1e-6 (silence, or a flat profile)."""
    centred = profiles - profiles.mean(dim=-1, keepdim=True)
    std = centred.square().mean(dim=-1, keepdim=True).sqrt()
    flat = std < 1e-6
    return torch.where(flat, torch.zeros_like(centred), centred / torch.where(flat, torch.ones_like(std), std))


class PitchClassBranch(nn.Module):
    """The pitch-class branch of ``mulan-train --pitch-profiles K`` (``PitchClassBranch.swift``;
    docs/training.md, "Pitch-class branch"): a window's 12-bin pitch-class profile
    (``mulan_torch.audio.pitch_class_profile``) added to the audio tower's embedding, the same for
    every transposition of the input::

        z       = standardize(c)                                  [B, 12] (``standardize_pitch_classes``)
        s[k, r] = (1/12) Σ_j profiles[k, j] · z[(j + r) mod 12]     K learned profiles, 12 rotations
        f[k]    = max over r of s[k, r]                            (the first r on ties)
        u       = proj(norm(f))                                    batch norm over K, Linear K → embedding dim
        e       = L2-normalize(a + u)                              a: the tower's unit-norm embedding

    ``norm`` is PyTorch's batch norm over the K correlations (ε 1e-5, momentum 0.1; its running
    statistics in eval mode), mulan's ``BatchNorm2d`` on f seen as [B, K, 1, 1]: the correlations
    differ little between windows (what tells major from minor is a tenth or two), and standardized
    that difference is what the projection sees. Row 0 of ``profiles`` starts as Krumhansl and
    Kessler's major profile, row 1 as their minor one (each standardized: f then starts as the best
    Pearson correlation with a major and a minor key), further rows N(0, 1) from torch's generator;
    ``proj`` starts at zero, so a fresh branch leaves the tower's embedding unchanged. The branch
    computes in float32 (autocast off): it is tiny, and mulan's is float32.
    """

    def __init__(self, profiles: int, embedding_dim: int) -> None:
        super().__init__()
        if profiles < 1:
            raise ValueError(f"a pitch-class branch needs at least one profile, got {profiles}")
        rows = []
        for k in range(profiles):
            if k < 2:
                start = torch.tensor(KRUMHANSL_KESSLER_MAJOR if k == 0 else KRUMHANSL_KESSLER_MINOR, dtype=torch.float64)
                rows.append(standardize_pitch_classes(start).float())
            else:
                rows.append(torch.randn(PITCH_CLASSES))
        self.profiles = nn.Parameter(torch.stack(rows))
        self.norm = BatchNorm2d(profiles)
        self.proj = nn.Linear(profiles, embedding_dim)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)
        # rotation[r, j] = (j + r) mod 12: z[:, rotation] holds the 12 rotations of each input row.
        rotation = (torch.arange(PITCH_CLASSES)[None, :] + torch.arange(PITCH_CLASSES)[:, None]) % PITCH_CLASSES
        self.register_buffer("rotation", rotation, persistent=False)

    @property
    def profile_count(self) -> int:
        return int(self.profiles.shape[0])

    def correlations(self, pitch_classes: torch.Tensor) -> torch.Tensor:
        """s [B, K, 12]: each profile's correlation with each rotation r of each standardized input."""
        if pitch_classes.dim() != 2 or pitch_classes.shape[1] != PITCH_CLASSES:
            raise ValueError(f"the pitch-class branch wants profiles [batch, {PITCH_CLASSES}], got "
                             f"{list(pitch_classes.shape)}")
        z = standardize_pitch_classes(pitch_classes.float())
        rotated = z[:, self.rotation]  # [B, r, j] = z[b, (j + r) mod 12]
        return torch.einsum("kj,brj->bkr", self.profiles, rotated) / PITCH_CLASSES

    def features(self, pitch_classes: torch.Tensor) -> torch.Tensor:
        """f [B, K]: each profile's best correlation over the 12 rotations of each input."""
        return self.correlations(pitch_classes).max(dim=2).values

    def offsets(self, pitch_classes: torch.Tensor) -> torch.Tensor:
        """u [B, D] = proj(norm(f)): what the branch adds to the tower's embeddings (batch norm on
        the batch's statistics in training mode, on its running statistics in eval mode)."""
        f = self.features(pitch_classes)
        return self.proj(self.norm(f[:, :, None, None])[:, :, 0, 0])

    def forward(self, audio: torch.Tensor, pitch_classes: torch.Tensor) -> torch.Tensor:
        """L2-normalize(audio + proj(norm(f))) [B, D] from the tower's embeddings ``audio`` [B, D]
        and the windows' profiles ``pitch_classes`` [B, 12]."""
        if pitch_classes.shape[0] != audio.shape[0]:
            raise ValueError(f"{audio.shape[0]} audio embeddings but {pitch_classes.shape[0]} pitch-class profiles")
        with torch.autocast(device_type=audio.device.type, enabled=False):
            u = self.offsets(pitch_classes.to(audio.device))
            return F.normalize(audio.float() + u, dim=-1, eps=1e-12)


# MARK: pretrained text (Hugging Face BERT folder)


def _bert_config(path: str) -> Dict[str, Any]:
    """Reads and checks a Hugging Face BERT ``config.json`` as mulan's ``BertConfig.read`` does."""
    try:
        with open(path, encoding="utf-8") as f:
            raw = json.load(f)
    except (OSError, json.JSONDecodeError) as error:
        raise ValueError(f"{path} is not readable JSON: {error}") from error
    if not isinstance(raw, dict):
        raise ValueError(f"{path} is not a JSON object")
    if "model_type" in raw and raw["model_type"] != "bert":
        raise ValueError(f"{path}: model_type is {raw['model_type']!r}, not bert; only BERT checkpoints "
                         "(BertModel, e.g. all-MiniLM-L6-v2) load into the text tower")
    if raw.get("position_embedding_type", "absolute") != "absolute":
        raise ValueError(f"{path}: position_embedding_type {raw['position_embedding_type']!r} is not supported "
                         "(only absolute)")
    if raw.get("hidden_act", "gelu") != "gelu":
        raise ValueError(f"{path}: hidden_act {raw['hidden_act']!r} is not supported; the text tower's GELU is "
                         "the exact erf form, hidden_act \"gelu\"")
    out: Dict[str, Any] = {}
    for key in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
                "max_position_embeddings"):
        if key not in raw:
            raise ValueError(f"{path} lacks {key}; a Hugging Face BERT config.json gives it")
        value = raw[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value) or value < 1:
            raise ValueError(f"{path}: {key} is {value!r}, not a positive integer")
        out[key] = int(value)
    out["type_vocab_size"] = int(raw.get("type_vocab_size", 2))
    out["layer_norm_eps"] = float(raw.get("layer_norm_eps", 1e-12))
    if out["hidden_size"] % out["num_attention_heads"] != 0:
        raise ValueError(f"{path}: hidden_size {out['hidden_size']} is not a multiple of num_attention_heads "
                         f"{out['num_attention_heads']}")
    return out


def load_pretrained_text(directory: str, max_length: int, embedding_dim: int = 128,
                         pooling: str = "mean") -> TextTower:
    """A text tower whose encoder holds a Hugging Face BERT folder's weights, as mulan's
    ``PretrainedText.load`` builds it for ``mulan-train --text-init``.

    The folder holds ``config.json``, ``model.safetensors`` (a ``BertModel``, or a model with the
    encoder under ``bert.``) and ``vocab.txt``. Tensors are matched by name with or without the
    ``bert.`` prefix; others (pooler, heads, ``position_ids``) are ignored. The position table is cut
    to ``max_length`` rows; token-type rows 0 and 1 are copied (row 1 stays 0 when the checkpoint has
    one). ``projection`` is not in BERT checkpoints: it keeps a fresh initialization (PyTorch's own
    random draws, not mulan's, so a warm-started model here and one in mulan-train differ in it).
    """
    from safetensors import safe_open

    files = {name: os.path.join(directory, name) for name in ("config.json", "model.safetensors", "vocab.txt")}
    for name, path in files.items():
        if not os.path.isfile(path):
            raise ValueError(f"pretrained text model {directory} has no readable {name}; a Hugging Face BERT "
                             "folder holds config.json, model.safetensors and vocab.txt")
    bert = _bert_config(files["config.json"])
    if max_length < 2:
        raise ValueError(f"max_length {max_length} cannot hold [CLS] and [SEP]")
    if max_length > bert["max_position_embeddings"]:
        raise ValueError(f"max_length {max_length} exceeds the {bert['max_position_embeddings']} positions of "
                         f"{files['config.json']}")
    config = TextTowerConfig(vocabulary_size=bert["vocab_size"], width=bert["hidden_size"],
                             layers=bert["num_hidden_layers"], heads=bert["num_attention_heads"],
                             feed_forward=bert["intermediate_size"], max_length=max_length,
                             embedding_dim=embedding_dim, layer_norm_epsilon=bert["layer_norm_eps"], pooling=pooling)
    TextTowerConfig.from_json(config.to_json())  # validates
    tower = TextTower(config)
    h = config.width
    wanted = {name: t for name, t in tower.state_dict().items() if not name.startswith("projection.")}
    weights = files["model.safetensors"]
    with safe_open(weights, framework="pt", device="cpu") as f:
        names = set(f.keys())
        prefix = "bert." if "embeddings.word_embeddings.weight" not in names and \
            "bert.embeddings.word_embeddings.weight" in names else ""
        with torch.no_grad():
            for name, target in wanted.items():
                source = prefix + name
                if source not in names:
                    raise ValueError(f"checkpoint {weights} has no tensor {source}; expected a Hugging Face "
                                     "BertModel (names with or without the bert. prefix)")
                t = f.get_tensor(source).float()
                expected = list(target.shape)
                if name == "embeddings.position_embeddings.weight":
                    expected = [bert["max_position_embeddings"], h]
                elif name == "embeddings.token_type_embeddings.weight":
                    expected = [bert["type_vocab_size"], h]
                if list(t.shape) != expected:
                    raise ValueError(f"checkpoint {weights}: tensor {source} has shape {list(t.shape)}, "
                                     f"config.json says {expected}")
                if t.shape == target.shape:
                    target.copy_(t)
                else:  # the position table cut to max_length rows, or the token-type table fit to 2 rows
                    rows = min(target.shape[0], t.shape[0])
                    target.zero_()
                    target[:rows].copy_(t[:rows])
    with open(files["vocab.txt"], encoding="utf-8") as f:
        tokens = sum(1 for _ in f)
    if tokens != bert["vocab_size"]:
        raise ValueError(f"{files['vocab.txt']} has {tokens} tokens but the word embeddings of {weights} have "
                         f"{bert['vocab_size']} rows; use the vocab.txt that was trained with this checkpoint")
    return tower


# MARK: the model


class MulanModel(nn.Module):
    """The two towers and the loss's temperature: everything a mulan checkpoint holds as weights.

    ``config`` is a TrainingConfig as JSON (the ``config`` metadata of a checkpoint, or
    ``training_config(...)``); the model keeps it and writes it into its checkpoints. Its ``audio``
    and ``text`` sections shape the towers (missing keys take mulan's defaults);
    ``initialTemperature`` and ``decoupledLoss`` the loss. ``text`` replaces the text tower (e.g.
    ``load_pretrained_text``), whose shape then defines ``config["text"]``.

    ``forward(log_mel, ids, lengths)`` gives the audio and text embeddings of a training batch;
    ``self.loss(audio, text)`` their contrastive loss.

    ``pitchProfiles`` K > 0 (``mulan-train --pitch-profiles K``; missing: 0) adds the pitch-class
    branch ``self.pitch`` (``PitchClassBranch``, tensors ``pitch.*``): the audio embedding is then
    L2-normalize(tower + branch), and ``forward``, ``embed_audio`` and ``audio_embedding`` need each
    window's pitch-class profile (``pitch_classes`` [B, 12], ``mulan_torch.audio.pitch_class_profile``
    of the window's samples); a model without the branch refuses them.
    """

    def __init__(self, config: Optional[Mapping[str, Any]] = None, text: Optional[TextTower] = None) -> None:
        super().__init__()
        self.config: Dict[str, Any] = copy.deepcopy(dict(config)) if config is not None else training_config()
        if "logMel" not in self.config or "sampleRate" not in self.config["logMel"]:
            raise ValueError("the configuration has no logMel.sampleRate (use training_config(sample_rate) "
                             "or a checkpoint's config)")
        audio_config = AudioTowerConfig.from_json(self.config.get("audio", {}))
        if text is not None:
            self.config["text"] = text.config.to_json()
        text_config = TextTowerConfig.from_json(self.config.get("text", {}))
        if audio_config.embedding_dim != text_config.embedding_dim:
            raise ValueError(f"the towers have different widths ({audio_config.embedding_dim}, "
                             f"{text_config.embedding_dim})")
        mel = int(self.config["logMel"].get("melBands", 128))
        if audio_config.mel_bands != mel:
            raise ValueError(f"audio.melBands {audio_config.mel_bands} differs from logMel.melBands {mel}")
        self.audio: nn.Module
        if audio_config.kind in ("resnet", "resnet50", "ast"):
            if self.config.get("audioTraining") not in (None, "full") or self.config.get("audioInit"):
                raise ValueError("audioTraining and audioInit go with a pretrained audio tower (audio.kind musicnn "
                                 f"or vgg), not the {audio_config.kind} tower")
            if audio_config.kind == "ast":
                self.audio = ASTTower(audio_config, self.window_frames)
            else:
                self.audio = AudioTower(audio_config)
        else:
            from . import musicnn

            musicnn.check_front_end(self.config["logMel"], float(self.config.get("windowSeconds", 10.0)),
                                    audio_config.kind, "the configuration")
            self.audio = musicnn.mulan_audio_tower(audio_config.kind, audio_config.embedding_dim,
                                                   self.config.get("audioTraining"))
            self.audio.config = audio_config  # type: ignore[assignment]
        self.text = text if text is not None else TextTower(text_config)
        self.loss = ContrastiveLoss(float(self.config.get("initialTemperature", 0.1)),
                                    bool(self.config.get("decoupledLoss", True)))
        profiles = self.config.get("pitchProfiles") or 0
        if isinstance(profiles, bool) or not isinstance(profiles, int) or not 0 <= profiles <= 64:
            raise ValueError(f"pitchProfiles must be an integer between 0 (no pitch-class branch) and 64, as "
                             f"mulan-train takes it, got {profiles!r}")
        self.pitch: Optional[PitchClassBranch] = (PitchClassBranch(profiles, audio_config.embedding_dim)
                                                  if profiles > 0 else None)
        """The pitch-class branch (``pitch.*``) when the config's ``pitchProfiles`` is above 0, else None."""
        self.step = 0
        """The checkpoint step the weights come from (0 for a fresh model)."""
        self.checkpoint_path: Optional[str] = None

    # Construction

    @classmethod
    def warm_started(cls, config: Mapping[str, Any], directory: str, pooling: str = "mean") -> "MulanModel":
        """A fresh model whose text encoder starts from a Hugging Face BERT folder, as
        ``mulan-train --text-init DIR`` starts one (mean pooling by default, as its ``--text-pooling``).
        ``config["text"]`` gives ``maxLength`` and ``embeddingDim``; the rest of the text shape comes
        from the folder's config.json, and ``textInit`` records the folder.
        """
        text_section = TextTowerConfig.from_json(config.get("text", {}))
        tower = load_pretrained_text(directory, max_length=text_section.max_length,
                                     embedding_dim=text_section.embedding_dim, pooling=pooling)
        merged = copy.deepcopy(dict(config))
        merged["textInit"] = directory
        return cls(merged, text=tower)

    @classmethod
    def from_checkpoint(cls, path: str, map_location: Union[str, torch.device] = "cpu") -> "MulanModel":
        """The model of a mulan checkpoint (mulan-train's or one this class wrote), or of the newest
        checkpoint of a run directory: built from its ``config`` metadata, every tensor loaded (names
        and shapes must match), in eval mode. The optimizer state is not read (see
        ``load_optimizer_state``).
        """
        if os.path.isdir(path):
            newest = ckpt.newest(path)
            if newest is None:
                raise ckpt.CheckpointError(f"{path} holds no checkpoint-NNNNNN.safetensors; train first or pass a "
                                           "checkpoint file")
            path = newest
        loaded = ckpt.read(path, weights_only=True)
        model = cls(loaded.config)
        model.load_mulan_tensors(loaded.tensors, path)
        model.step = loaded.step
        model.checkpoint_path = path
        return model.to(map_location).eval()

    # Checkpoints

    def mulan_state_dict(self) -> Dict[str, torch.Tensor]:
        """The tensors of a mulan checkpoint, by name: parameters and batch-norm running statistics."""
        return {name: t for name, t in self.state_dict().items()}

    def load_mulan_tensors(self, tensors: Mapping[str, torch.Tensor], path: str = "<tensors>") -> None:
        """Copies every model tensor in from ``tensors`` (a checkpoint's); each must be present with
        its shape. Extra ``optimizer.*`` entries are ignored; any other extra name is an error (a
        checkpoint of another architecture)."""
        own = self.state_dict()
        for name, target in own.items():
            t = tensors.get(name)
            if t is None or tuple(t.shape) != tuple(target.shape):
                found = "missing" if t is None else f"shape {list(t.shape)}"
                raise ckpt.CheckpointError(f"checkpoint {path} lacks {name} with shape {list(target.shape)} "
                                           f"({found}); it was written for another model configuration")
        extra = sorted(n for n in tensors if n not in own and not n.startswith(ckpt.OPTIMIZER_PREFIX))
        if extra:
            raise ckpt.CheckpointError(f"checkpoint {path} holds tensors this model does not have: "
                                       f"{', '.join(extra[:5])}{' …' if len(extra) > 5 else ''}")
        with torch.no_grad():
            for name, target in own.items():
                target.copy_(tensors[name].to(target.device, target.dtype))

    def save_checkpoint(self, path: str, step: int, optimizer: Optional[torch.optim.Optimizer] = None,
                        sampler: Optional[Mapping[str, Any]] = None, optimizer_step: Optional[int] = None) -> None:
        """Writes a checkpoint in mulan's format (``PATH.tmp``, then renamed): the model's tensors,
        and with ``optimizer`` (a ``torch.optim.AdamW`` over this model's parameters) its moments
        as ``optimizer.m.NAME`` / ``optimizer.v.NAME`` for every parameter mulan-train would
        optimize (zeros for one without state yet) and its step count as ``optimizer_step``.
        ``sampler`` (mulan's SamplerState JSON) is written when given: mulan-train needs it, and
        the optimizer state, to ``--resume``; the inference tools need neither.
        """
        tensors = dict(self.mulan_state_dict())
        if optimizer is not None:
            moments, counted = self.optimizer_tensors(optimizer)
            tensors.update(moments)
            if optimizer_step is None:
                optimizer_step = counted
        self.step = step
        ckpt.write(path, tensors, step=step, config=self.config, optimizer_step=optimizer_step, sampler=sampler)

    # Optimization

    def text_trains(self, name: str, text_training: Optional[str] = None) -> bool:
        """Whether text-tower parameter ``name`` (relative to the tower) trains under ``full``,
        ``frozen`` (projection only) or ``top:K`` (projection and the top K layers), as mulan's
        ``TextTraining.trains``; default: the config's ``textTraining``."""
        mode = text_training or str(self.config.get("textTraining", "full"))
        if mode == "full":
            return True
        if name.startswith("projection."):
            return True
        if mode == "frozen":
            return False
        if not mode.startswith("top:") or not mode[4:].isdigit() or int(mode[4:]) < 1:
            raise ValueError(f"text training must be full, frozen or top:K (K ≥ 1), got {mode!r}")
        if not name.startswith("encoder.layer."):
            return False
        index = int(name[len("encoder.layer."):].split(".", 1)[0])
        return index >= self.text.config.layers - int(mode[4:])

    def audio_trains(self, name: str) -> bool:
        """Whether audio-tower parameter ``name`` (relative to the tower) trains: always for the
        ResNet; for a pretrained tower as the config's ``audioTraining`` says (``proj`` always, the
        tag layer never). The pitch-class branch (``pitch.*``) is not the tower's: it always trains."""
        trains = getattr(self.audio, "trains", None)
        return True if trains is None else bool(trains(name))

    def optimized_parameters(self, text_training: Optional[str] = None) -> List[Tuple[str, nn.Parameter]]:
        """The parameters mulan-train's AdamW updates, by name: every parameter except the text
        tower's that ``text_training`` keeps frozen and the audio tower's that ``audioTraining``
        keeps frozen (batch-norm running statistics are buffers). The temperature and the
        pitch-class branch (``pitch.*``) always train, also beside a frozen audio tower."""
        return [(name, p) for name, p in self.named_parameters()
                if (not name.startswith("text.") or self.text_trains(name[len("text."):], text_training))
                and (not name.startswith("audio.") or self.audio_trains(name[len("audio."):]))]

    def decays(self, name: str) -> bool:
        """Whether AdamW's weight decay applies to parameter ``name``: the weights of convolutions,
        linear layers and embeddings; not biases, norms, the temperature or the pitch-class branch's
        profiles and norm (mulan's convention; ``pitch.proj.weight`` decays)."""
        module_name, _, leaf = name.rpartition(".")
        module = self.get_submodule(module_name) if module_name else self
        return leaf == "weight" and isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Linear, nn.Embedding))

    def parameter_groups(self, weight_decay: Optional[float] = None,
                         text_training: Optional[str] = None) -> List[Dict[str, Any]]:
        """AdamW parameter groups as mulan-train forms them: decayed weights, then the rest (decay 0).
        Each group's ``lr_scale`` is its factor on the learning rate (the trainer sets ``lr`` to the
        schedule's rate times it): 1, except that with a config ``pitchLearningRateScale`` other than
        1 the pitch-class branch's parameters form two more groups (decayed, then not) at that factor,
        as ``mulan-train --pitch-lr-scale`` trains them. Sets ``requires_grad`` False on text
        parameters that do not train."""
        decay = float(self.config.get("adam", {}).get("weightDecay", 0.01)) if weight_decay is None else weight_decay
        chosen = {name for name, _ in self.optimized_parameters(text_training)}
        for name, p in self.named_parameters():
            p.requires_grad_(name in chosen)
        params = [(n, p) for n, p in self.named_parameters() if n in chosen]
        scale = float(self.config.get("pitchLearningRateScale", 1.0))
        def scaled(name: str) -> bool:
            return scale != 1.0 and name.startswith("pitch.")

        apart = [(n, p) for n, p in params if scaled(n)]
        rest = [(n, p) for n, p in params if not scaled(n)]
        groups = [{"params": [p for n, p in rest if self.decays(n)], "weight_decay": decay, "lr_scale": 1.0},
                  {"params": [p for n, p in rest if not self.decays(n)], "weight_decay": 0.0, "lr_scale": 1.0}]
        if apart:
            groups += [{"params": [p for n, p in apart if self.decays(n)], "weight_decay": decay, "lr_scale": scale},
                       {"params": [p for n, p in apart if not self.decays(n)], "weight_decay": 0.0, "lr_scale": scale}]
        return groups

    def optimizer_tensors(self, optimizer: torch.optim.Optimizer) -> Tuple[Dict[str, torch.Tensor], int]:
        """AdamW's state in mulan's layout: ``optimizer.m.NAME`` (first moment) and ``optimizer.v.NAME``
        (second moment) for every parameter of ``optimized_parameters()`` (zeros where the optimizer
        holds no state), and the optimizer's step count."""
        out: Dict[str, torch.Tensor] = {}
        step = 0
        for name, p in self.optimized_parameters():
            state = optimizer.state.get(p, {})
            m, v = state.get("exp_avg"), state.get("exp_avg_sq")
            out["optimizer.m." + name] = m.detach() if m is not None else torch.zeros_like(p)
            out["optimizer.v." + name] = v.detach() if v is not None else torch.zeros_like(p)
            if "step" in state:
                step = max(step, int(float(state["step"])))
        return out, step

    def load_optimizer_state(self, optimizer: torch.optim.Optimizer, loaded: ckpt.LoadedCheckpoint) -> None:
        """Puts a checkpoint's AdamW moments and step count into ``optimizer`` (a ``torch.optim.AdamW``
        over this model's parameters), so that training continues where mulan-train (or
        ``save_checkpoint``) stopped. Every parameter in ``optimizer`` needs its moments."""
        names = {id(p): n for n, p in self.named_parameters()}
        for group in optimizer.param_groups:
            for p in group["params"]:
                name = names.get(id(p))
                if name is None:
                    raise ValueError("the optimizer holds a parameter that is not this model's")
                m, v = loaded.tensors.get("optimizer.m." + name), loaded.tensors.get("optimizer.v." + name)
                if m is None or v is None or tuple(m.shape) != tuple(p.shape) or tuple(v.shape) != tuple(p.shape):
                    raise ckpt.CheckpointError(f"checkpoint {loaded.path} lacks the optimizer state of {name}")
                on_device = bool(group.get("capturable") or group.get("fused"))
                optimizer.state[p] = {
                    "step": torch.tensor(float(loaded.optimizer_step), dtype=torch.float32,
                                         device=p.device if on_device else "cpu"),
                    "exp_avg": m.to(p.device, p.dtype).clone(),
                    "exp_avg_sq": v.to(p.device, p.dtype).clone(),
                }

    # Embedding

    def forward(self, log_mel: torch.Tensor, ids: torch.Tensor, lengths: torch.Tensor,
                pitch_classes: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, torch.Tensor]:
        """Audio embeddings of ``log_mel`` [B, melBands, frames] (with the pitch-class branch: and of
        the windows' profiles ``pitch_classes`` [B, 12]) and text embeddings of ``ids`` [B, L] /
        ``lengths`` [B] (see ``token_batch``): two [B, dim] tensors of unit rows."""
        return self.audio_embedding(log_mel, pitch_classes), self.text(ids, lengths)

    @property
    def pitch_profiles(self) -> int:
        """K, the learned profiles of the pitch-class branch; 0 when the model has none."""
        return 0 if self.pitch is None else self.pitch.profile_count

    def audio_embedding(self, log_mel: torch.Tensor, pitch_classes: Optional[torch.Tensor] = None) -> torch.Tensor:
        """The audio embeddings [B, dim] (unit rows) in the model's current mode: the tower's, or with
        the pitch-class branch L2-normalize(tower + branch) of the windows' profiles
        ``pitch_classes`` [B, 12]. Raises ValueError naming ``pitchProfiles`` when the profiles are
        missing for a model with the branch, or given to one without it."""
        if self.pitch is None:
            if pitch_classes is not None:
                raise ValueError("pitch-class profiles were given, but this model has no pitch-class branch "
                                 "(its configuration's pitchProfiles is 0): leave pitch_classes out")
            return self.audio(log_mel)
        if pitch_classes is None:
            raise ValueError(f"this model has a pitch-class branch (pitchProfiles = {self.pitch_profiles}): pass "
                             "each window's pitch-class profile as pitch_classes [batch, 12] "
                             "(mulan_torch.audio.pitch_class_profiles of the windows' samples)")
        return self.pitch(self.audio(log_mel), torch.as_tensor(pitch_classes, dtype=torch.float32))

    @property
    def sample_rate(self) -> int:
        return int(self.config["logMel"]["sampleRate"])

    @property
    def window_samples(self) -> int:
        """Samples in one window: round(windowSeconds · sampleRate), as mulan rounds it."""
        return _round_half_away(float(self.config.get("windowSeconds", 10.0)) * self.sample_rate)

    @property
    def window_frames(self) -> int:
        """Log-mel frames of one window (centred frames), as ``TrainingConfig.windowFrames``."""
        mel = self.config["logMel"]
        n = int(mel["fftSize"])
        hop = _round_half_away(float(mel["hopSeconds"]) * self.sample_rate)
        padded = self.window_samples + 2 * (n // 2)
        return 0 if padded < n else 1 + (padded - n) // hop

    def _inference(self, fn: Callable[[], torch.Tensor]) -> torch.Tensor:
        was_training = self.training
        self.eval()
        try:
            with torch.no_grad():
                return fn()
        finally:
            self.train(was_training)

    def embed_audio(self, log_mel: torch.Tensor, pitch_classes: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Unit-norm embeddings [B, dim] of log-mel windows [B, melBands, frames] (mulan's log-mel),
        in inference mode (batch norm on its running statistics, no gradients), as mulan-embed
        runs the audio tower. A model with the pitch-class branch needs the windows' profiles
        ``pitch_classes`` [B, 12] too (see ``audio_embedding``)."""
        device = next(self.parameters()).device
        pitch = None if pitch_classes is None else torch.as_tensor(pitch_classes, dtype=torch.float32, device=device)
        return self._inference(lambda: self.audio_embedding(
            torch.as_tensor(log_mel, dtype=torch.float32, device=device), pitch))

    def embed_text(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Unit-norm embeddings [B, dim] of a token batch (``token_batch``), in inference mode."""
        device = next(self.parameters()).device
        return self._inference(lambda: self.text(ids.to(device), lengths.to(device)))

    def embed_token_ids(self, sequences: Sequence[Sequence[int]], batch_size: int = 64) -> torch.Tensor:
        """Unit-norm embeddings [n, dim] of WordPiece id sequences without [CLS]/[SEP] (as the shards
        store them and mulan-embed tokenizes its texts): each wrapped in [CLS] … [SEP] and cut to
        the text tower's ``maxLength``, as mulan-embed does."""
        out = []
        for lo in range(0, len(sequences), batch_size):
            ids, lengths = token_batch(sequences[lo: lo + batch_size], self.text.config.max_length)
            out.append(self.embed_text(ids, lengths))
        return torch.cat(out) if out else torch.zeros(0, self.text.config.embedding_dim)

    def window_offsets(self, sample_count: int) -> List[int]:
        """Start offsets of the windows mulan-embed averages for audio of ``sample_count`` samples:
        up to 30 s (or one window), the start, middle and end windows (duplicates dropped); longer,
        every non-overlapping window from the start (a shorter tail is left out)."""
        w = self.window_samples
        limit = _round_half_away(CLIP_SECONDS * self.sample_rate)
        if sample_count <= max(limit, w):
            span = max(0, sample_count - w)
            offsets: List[int] = []
            for o in (0, span // 2, span):
                if o not in offsets:
                    offsets.append(o)
            return offsets
        return list(range(0, sample_count - w + 1, w))

    def window(self, samples: np.ndarray, offset: int) -> np.ndarray:
        """``window_samples`` samples from ``offset``; audio no longer than a window is zero-padded."""
        w = self.window_samples
        samples = np.asarray(samples, dtype=np.float32)
        if samples.shape[0] <= w:
            return np.concatenate([samples, np.zeros(w - samples.shape[0], dtype=np.float32)])
        return samples[offset: offset + w]

    def embed_clip(self, samples: np.ndarray, log_mel: Callable[[np.ndarray], np.ndarray]) -> torch.Tensor:
        """The embedding [dim] of mono audio at the model's sample rate, as mulan-embed scores a clip
        or track: the renormalized mean of its windows' embeddings (``window_offsets``).
        ``log_mel`` maps a window's samples to its [melBands, frames] log-mel (mulan's front end,
        e.g. ``mulan_torch.audio``). With the pitch-class branch, each window's profile comes from
        the same (zero-padded) window's samples."""
        windows = [self.window(samples, o) for o in self.window_offsets(int(np.asarray(samples).shape[0]))]
        pitch = None
        if self.pitch is not None:
            from .audio import pitch_class_profiles

            pitch = torch.from_numpy(pitch_class_profiles(windows, self.sample_rate))
        e = self.embed_audio(torch.as_tensor(np.stack([log_mel(w) for w in windows]), dtype=torch.float32), pitch)
        return F.normalize(e.sum(dim=0), dim=0, eps=1e-12)


def parameter_names_and_shapes(tensors: Mapping[str, torch.Tensor]) -> Dict[str, Tuple[int, ...]]:
    """{name: shape} of the model tensors (``optimizer.*`` left out), for comparing checkpoints."""
    return {n: tuple(t.shape) for n, t in tensors.items() if not n.startswith(ckpt.OPTIMIZER_PREFIX)}


__all__ = ["AudioTower", "AudioTowerConfig", "BasicBlock", "BatchNorm2d", "ContrastiveLoss", "EncoderLayer",
           "MulanModel", "PitchClassBranch", "TextTower", "TextTowerConfig", "load_pretrained_text",
           "parameter_names_and_shapes", "standardize_pitch_classes", "token_batch", "training_config"]
