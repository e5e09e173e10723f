"""musicnn's pretrained music taggers (musicnn 0.1.0, ISC licence, Jordi Pons and Xavier Serra) in
PyTorch: the converter of their TensorFlow checkpoints, the front end, and the two architectures.

``python -m mulan_torch.musicnn convert --model-dir DIR --out FILE`` (or ``mulan-torch musicnn
convert``) reads the TensorFlow 1 checkpoint bundle a musicnn model folder holds (``DIR/.index`` and
``DIR/.data-00000-of-00001``; ``DIR`` is e.g. ``…/site-packages/musicnn/MSD_musicnn``) with
``mulan_torch.tfbundle`` (no TensorFlow) and writes a safetensors file with the parameter names and
layouts of docs/pretrained-audio.md (the contract with mulan-train's Swift port), plus metadata
(``format`` = ``mulan-pretrained-audio``, architecture, source, licence, mel settings, tag names).

The architectures are musicnn's ``models.py`` (facts carried over, code written here); the tensors
here are in mulan's layout, [batch, 96 mel bands, frames]:

musicnn (``MSD_musicnn``, ``MTT_musicnn``)::

    input_bn (1 channel)
    timbral.{0,1}: conv [204, 1, 38|67 bands, 7 frames] (time padded 3+3, bands valid) → ReLU → BN → max over bands
    temporal.{0,1,2}: conv [51, 1, 1, 128|64|32 frames] (TF 'same': 63/64, 31/32, 15/16) → ReLU → BN → max over bands
    front = concat(timbral.0, timbral.1, temporal.0, temporal.1, temporal.2)        561 channels
    midend.0: conv1d [64, 561, 7] pad 3 → ReLU → BN;  midend.{1,2}: conv1d [64, 64, 7] → ReLU → BN, + input
    features = concat(front, midend.0, res1, res2)                                  753 channels
    backend: (max over time, mean over time) of each of the 753 channels, interleaved as TensorFlow's
             flatten of [753, 2] gives them (1506) → pool_bn → dense (200) → ReLU → dense_bn
             (the penultimate feature) → logits (50); the taggram is sigmoid(logits)

vgg (``MSD_vgg``, ``MTT_vgg``)::

    input_bn; blocks.{0..4}: conv 3×3 (128, pad 1) → ReLU → BN → max pool (block 0: 4 frames × 1 band,
    stride 2×2; blocks 1–3: 2×2 stride 2; block 4: 4×4 stride 4) → pool5 [128, 1 band, 2 frames]
    logits: [50, 256] over pool5 flattened in TensorFlow's (frame, band, channel) order;
    the penultimate feature is pool5 averaged over its bands and frames (128-d)

Batch norm is TensorFlow's (ε 0.001; running statistics' momentum 0.01 in PyTorch's convention, 0.99
in TensorFlow's). Dropout (musicnn's training used it) is left out, at inference and in fine-tuning.

Front end (``log_mel``): 16 kHz mono, ``librosa.feature.melspectrogram(y, sr=16000, n_fft=512,
hop_length=256, n_mels=96)`` (periodic Hann, centred frames padded with zeros — librosa ≥ 0.10's
``pad_mode='constant'`` — power 2, Slaney mel scale and area normalization), then
``log10(10000·x + 1)`` (mulan keeps float32; musicnn's own float16 arithmetic overflows: see
``log_mel``); patches of 187 frames from the start, not overlapping, a shorter remainder dropped.

As mulan's audio tower (``MusicnnAudioTower``, ``VggAudioTower``; ``audio.kind`` musicnn / vgg): the
penultimate feature of each patch of a window, averaged over the patches, → ``proj`` → L2
normalization; ``audioTraining`` full / frozen / top:K chooses the blocks that train (``BLOCKS``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Dict, List, Mapping, NoReturn, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .tfbundle import BundleError, TensorBundle

__all__ = ["SAMPLE_RATE", "N_FFT", "HOP", "N_MELS", "PATCH_FRAMES", "MSD_TAGS", "MTT_TAGS", "MusicnnError",
           "MusicnnTower", "VggTower", "log_mel", "patches", "convert", "load_pretrained", "build_tower",
           "check_metadata", "main", "MusicnnAudioTower", "VggAudioTower", "mulan_audio_tower", "check_front_end",
           "parse_audio_training", "front_end_config"]

SAMPLE_RATE = 16000
N_FFT = 512
HOP = 256
N_MELS = 96
PATCH_FRAMES = 187
"""Frames in one input patch: librosa.time_to_frames(3 s, sr=16000, hop_length=256, n_fft=512) + 1."""
BN_EPSILON = 1e-3
BN_MOMENTUM = 0.01
LOG_RULE = "log10(10000x+1)"
FORMAT = "mulan-pretrained-audio"
ARCHITECTURES = ("musicnn", "vgg")

MTT_TAGS = ['guitar', 'classical', 'slow', 'techno', 'strings', 'drums', 'electronic', 'rock', 'fast', 'piano',
            'ambient', 'beat', 'violin', 'vocal', 'synth', 'female', 'indian', 'opera', 'male', 'singing',
            'vocals', 'no vocals', 'harpsichord', 'loud', 'quiet', 'flute', 'woman', 'male vocal', 'no vocal',
            'pop', 'soft', 'sitar', 'solo', 'man', 'classic', 'choir', 'voice', 'new age', 'dance', 'male voice',
            'female vocal', 'beats', 'harp', 'cello', 'no voice', 'weird', 'country', 'metal', 'female voice',
            'choral']
MSD_TAGS = ['rock', 'pop', 'alternative', 'indie', 'electronic', 'female vocalists', 'dance', '00s',
            'alternative rock', 'jazz', 'beautiful', 'metal', 'chillout', 'male vocalists', 'classic rock', 'soul',
            'indie rock', 'Mellow', 'electronica', '80s', 'folk', '90s', 'chill', 'instrumental', 'punk',
            'oldies', 'blues', 'hard rock', 'ambient', 'acoustic', 'experimental', 'female vocalist', 'guitar',
            'Hip-Hop', '70s', 'party', 'country', 'easy listening', 'sexy', 'catchy', 'funk', 'electro',
            'heavy metal', 'Progressive rock', '60s', 'rnb', 'indie pop', 'sad', 'House', 'happy']

MEL_METADATA = {"sample_rate": str(SAMPLE_RATE), "n_fft": str(N_FFT), "hop": str(HOP), "n_mels": str(N_MELS),
                "patch_frames": str(PATCH_FRAMES), "log": LOG_RULE}
"""The metadata a converted file must carry, as written; a differing value is an error (check_metadata)."""


class MusicnnError(ValueError):
    """A musicnn checkpoint or converted file that does not fit; the message names the file and tensor."""


# MARK: front end


def front_end_config():  # -> audio.LogMelConfig
    """musicnn's front end as mulan's ``logMel`` settings (Swift's ``LogMelConfig.musicnn``)."""
    from .audio import MUSICNN_SCALE, LogMelConfig

    return LogMelConfig(sample_rate=SAMPLE_RATE, window_seconds=N_FFT / SAMPLE_RATE, hop_seconds=HOP / SAMPLE_RATE,
                        fft_size=N_FFT, mel_bands=N_MELS, f_min=0.0, f_max=None, scale=MUSICNN_SCALE)


def log_mel(samples: np.ndarray) -> np.ndarray:
    """musicnn's input representation of 16 kHz mono ``samples``: float32 [96, frames] (frames =
    1 + len // 256), log10(10000·x + 1) of the power mel spectrogram (mulan_torch.audio.log_mel with
    ``front_end_config()``: float32 power, the log in double precision).

    musicnn's own ``batch_data`` rounds the mel to float16 and computes the log in float16: its values
    then differ from these by up to half a float16 step (about 1e-3 at 3), and where the mel power
    reaches 6.55 the product overflows to inf and musicnn's taggram becomes NaN (on 5 of the 6 Wesnoth
    clips of the parity test). mulan keeps float32 throughout; the taggrams of the test are musicnn's
    TensorFlow graph run on librosa's float32 mel with the log in float32."""
    from .audio import log_mel as compute

    return compute(np.asarray(samples, dtype=np.float32), front_end_config())


def patches(spectrogram: np.ndarray, label: str = "the window") -> np.ndarray:
    """The non-overlapping 187-frame patches [n, 96, 187] of a [96, frames] spectrogram, from the start
    (musicnn's batch_data with overlap = 187); a remainder under 187 frames is dropped."""
    frames = spectrogram.shape[-1]
    if frames < PATCH_FRAMES:
        raise ValueError(f"{label} has {frames} frames; musicnn needs at least {PATCH_FRAMES} (3 s at 16 kHz)")
    n = frames // PATCH_FRAMES
    return np.stack([spectrogram[..., k * PATCH_FRAMES: (k + 1) * PATCH_FRAMES] for k in range(n)], axis=-3)


# MARK: the architectures


class _BatchNorm2d(nn.BatchNorm2d):
    """TensorFlow's batch norm (ε 0.001, momentum 0.99 = PyTorch's 0.01), no num_batches_tracked."""

    def __init__(self, channels: int) -> None:
        super().__init__(channels, eps=BN_EPSILON, momentum=BN_MOMENTUM)
        self.register_buffer("num_batches_tracked", None)

    def _load_from_state_dict(self, state_dict, prefix, *args):  # type: ignore[no-untyped-def,override]
        nn.Module._load_from_state_dict(self, state_dict, prefix, *args)


class _BatchNorm1d(nn.BatchNorm1d):
    """As _BatchNorm2d, over [B, C] or [B, C, T]."""

    def __init__(self, channels: int) -> None:
        super().__init__(channels, eps=BN_EPSILON, momentum=BN_MOMENTUM)
        self.register_buffer("num_batches_tracked", None)

    def _load_from_state_dict(self, state_dict, prefix, *args):  # type: ignore[no-untyped-def,override]
        nn.Module._load_from_state_dict(self, state_dict, prefix, *args)


class _FrontBlock(nn.Module):
    """conv (over [B, 1, bands, frames]) → ReLU → BN → max over bands: [B, C, frames]."""

    def __init__(self, filters: int, bands: int, frames: int, pad: Tuple[int, int]) -> None:
        super().__init__()
        self.pad = pad
        self.conv = nn.Conv2d(1, filters, (bands, frames))
        self.bn = _BatchNorm2d(filters)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv(F.pad(x, (self.pad[0], self.pad[1], 0, 0)))
        return self.bn(F.relu(h)).amax(dim=2)


class _MidBlock(nn.Module):
    def __init__(self, channels: int, filters: int) -> None:
        super().__init__()
        self.conv = nn.Conv1d(channels, filters, 7, padding=3)
        self.bn = _BatchNorm1d(filters)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(F.relu(self.conv(x)))


class _Backend(nn.Module):
    def __init__(self, channels: int, units: int, classes: int) -> None:
        super().__init__()
        self.pool_bn = _BatchNorm1d(2 * channels)
        self.dense = nn.Linear(2 * channels, units)
        self.dense_bn = _BatchNorm1d(units)
        self.logits = nn.Linear(units, classes)


class MusicnnTower(nn.Module):
    """musicnn (frontend 1.6×, 64 mid-end filters, 200 back-end units): [B, 96, T] → features / logits."""

    architecture = "musicnn"

    def __init__(self, classes: int = 50, midend: int = 64, units: int = 200) -> None:
        super().__init__()
        timbral, temporal = int(1.6 * 128), int(1.6 * 32)
        self.input_bn = _BatchNorm2d(1)
        self.timbral = nn.ModuleList([_FrontBlock(timbral, int(0.4 * N_MELS), 7, (3, 3)),
                                      _FrontBlock(timbral, int(0.7 * N_MELS), 7, (3, 3))])
        self.temporal = nn.ModuleList([_FrontBlock(temporal, 1, k, ((k - 1) // 2, k // 2)) for k in (128, 64, 32)])
        front = 2 * timbral + 3 * temporal
        self.midend = nn.ModuleList([_MidBlock(front, midend), _MidBlock(midend, midend), _MidBlock(midend, midend)])
        self.backend = _Backend(front + 3 * midend, units, classes)
        self.feature_dim = units

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The penultimate feature (dense_bn's output) [B, 200] of patches [B, 96, T]."""
        if x.dim() != 3 or x.shape[1] != N_MELS:
            raise ValueError(f"musicnn wants [batch, {N_MELS} bands, frames], got {list(x.shape)}")
        h = self.input_bn(x.unsqueeze(1))
        front = torch.cat([block(h) for block in self.timbral] + [block(h) for block in self.temporal], dim=1)
        m1 = self.midend[0](front)
        r2 = self.midend[1](m1) + m1
        r3 = self.midend[2](r2) + r2
        f = torch.cat([front, m1, r2, r3], dim=1)
        pooled = torch.stack([f.amax(dim=2), f.mean(dim=2)], dim=2).flatten(1)  # max_c, mean_c interleaved
        b = self.backend
        return b.dense_bn(F.relu(b.dense(b.pool_bn(pooled))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The 50 tag logits [B, 50]; the taggram is their sigmoid."""
        return self.backend.logits(self.features(x))


class _VggBlock(nn.Module):
    def __init__(self, channels: int, filters: int, pool: Tuple[int, int], stride: Tuple[int, int]) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, filters, 3, padding=1)
        self.bn = _BatchNorm2d(filters)
        self.pool, self.stride = pool, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.max_pool2d(self.bn(F.relu(self.conv(x))), self.pool, self.stride)


class VggTower(nn.Module):
    """musicnn's vgg (128 filters, 5 blocks), for 187-frame patches: [B, 96, 187] → features / logits."""

    architecture = "vgg"

    def __init__(self, classes: int = 50, filters: int = 128) -> None:
        super().__init__()
        self.input_bn = _BatchNorm2d(1)
        # (bands, frames) kernels and strides of TensorFlow's (frames, bands) pools
        pools = [((1, 4), (2, 2)), ((2, 2), (2, 2)), ((2, 2), (2, 2)), ((2, 2), (2, 2)), ((4, 4), (4, 4))]
        self.blocks = nn.ModuleList([_VggBlock(1 if i == 0 else filters, filters, p, s) for i, (p, s) in enumerate(pools)])
        self.logits = nn.Linear(filters * 2 * 1, classes)
        self.feature_dim = filters

    def _pool5(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 3 or x.shape[1] != N_MELS or x.shape[2] != PATCH_FRAMES:
            raise ValueError(f"vgg wants [batch, {N_MELS} bands, {PATCH_FRAMES} frames], got {list(x.shape)}")
        h = self.input_bn(x.unsqueeze(1))
        for block in self.blocks:
            h = block(h)
        return h  # [B, 128, 1 band, 2 frames]

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """pool5 averaged over its bands and frames [B, 128]."""
        return self._pool5(x).mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self._pool5(x).permute(0, 3, 2, 1).flatten(1)  # TensorFlow's (frame, band, channel) order
        return self.logits(h)


def build_tower(architecture: str) -> nn.Module:
    if architecture == "musicnn":
        return MusicnnTower()
    if architecture == "vgg":
        return VggTower()
    raise ValueError(f"unknown pretrained audio architecture {architecture!r} (musicnn or vgg)")


# MARK: as mulan's audio tower

BLOCKS: Dict[str, List[Tuple[str, ...]]] = {
    "musicnn": [("input_bn.", "timbral.", "temporal."), ("midend.",), ("backend.pool_bn.", "backend.dense.", "backend.dense_bn.")],
    "vgg": [("input_bn.", "blocks.0."), ("blocks.1.",), ("blocks.2.",), ("blocks.3.",), ("blocks.4.",)],
}
"""The blocks of each tower from the bottom, by parameter-name prefix, for ``audioTraining`` top:K
(musicnn: front end, midend, backend; vgg: its five conv blocks, input_bn with the first)."""
TAG_LAYER = {"musicnn": "backend.logits.", "vgg": "logits."}
"""The tag layer: kept in checkpoints (the taggram), not on the embedding's path, never trained."""


def parse_audio_training(mode: Optional[str], architecture: str) -> int:
    """Blocks that train, counted from the top, for ``full`` (all), ``frozen`` (none) or ``top:K``."""
    blocks = len(BLOCKS[architecture])
    mode = mode or "full"
    if mode == "full":
        return blocks
    if mode == "frozen":
        return 0
    if mode.startswith("top:") and mode[4:].isdigit() and int(mode[4:]) >= 1:
        if int(mode[4:]) > blocks:
            raise ValueError(f"audio training {mode}, but the {architecture} tower has {blocks} blocks")
        return int(mode[4:])
    raise ValueError(f"audio training must be full, frozen or top:K (K ≥ 1), got {mode!r}")


class _Embedding(nn.Module):
    """The pretrained tower as mulan's audio tower: log-mel windows [B, 96, T] (T ≥ 187) → the
    penultimate feature of each 187-frame patch (from the start, a remainder dropped), averaged over
    the patches → ``proj`` → L2 normalization. Parameters of blocks that do not train are left out
    of the optimizer by ``trains`` and their batch norms stay in inference mode (``train``)."""

    architecture: str  # from the tower class
    feature_dim: int

    def _setup(self, embedding_dim: int, training: Optional[str]) -> None:
        self.proj = nn.Linear(self.feature_dim, embedding_dim)
        self.trained_blocks = parse_audio_training(training, self.architecture)

    def trains(self, name: str) -> bool:
        """Whether parameter ``name`` (relative to the tower) trains."""
        if name.startswith("proj."):
            return True
        if name.startswith(TAG_LAYER[self.architecture]):
            return False
        blocks = BLOCKS[self.architecture]
        for index, prefixes in enumerate(blocks):
            if name.startswith(prefixes):
                return index >= len(blocks) - self.trained_blocks
        raise AssertionError(f"parameter {name} is in no block")

    def train(self, mode: bool = True) -> "_Embedding":
        super().train(mode)
        if mode:
            for name, module in self.named_modules():
                if isinstance(module, nn.modules.batchnorm._BatchNorm) and not self.trains(name + ".weight"):
                    module.eval()
        return self

    def forward(self, log_mel: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        if log_mel.dim() != 3 or log_mel.shape[1] != N_MELS:
            raise ValueError(f"the {self.architecture} audio tower wants [batch, {N_MELS}, frames], got {list(log_mel.shape)}")
        b, _, t = log_mel.shape
        n = t // PATCH_FRAMES
        if n < 1:
            raise ValueError(f"the {self.architecture} audio tower needs windows of at least {PATCH_FRAMES} frames, got {t}")
        x = log_mel[:, :, : n * PATCH_FRAMES].reshape(b, N_MELS, n, PATCH_FRAMES).permute(0, 2, 1, 3)
        f = self.features(x.reshape(b * n, N_MELS, PATCH_FRAMES)).reshape(b, n, -1).mean(dim=1)  # type: ignore[attr-defined]
        return F.normalize(self.proj(f), dim=-1, eps=1e-12)

    def load_pretrained_file(self, path: str) -> Dict[str, str]:
        """Loads a converted file's tensors (every tower tensor; ``proj`` keeps its initialization)."""
        tower, metadata = load_pretrained(path)
        if tower.architecture != self.architecture:
            raise MusicnnError(f"{path} holds a {tower.architecture} tower, not {self.architecture}")
        own = self.state_dict()
        with torch.no_grad():
            for name, t in tower.state_dict().items():
                own[name].copy_(t)
        return metadata


class MusicnnAudioTower(_Embedding, MusicnnTower):
    def __init__(self, embedding_dim: int, training: Optional[str] = None) -> None:
        MusicnnTower.__init__(self)
        self._setup(embedding_dim, training)


class VggAudioTower(_Embedding, VggTower):
    def __init__(self, embedding_dim: int, training: Optional[str] = None) -> None:
        VggTower.__init__(self)
        self._setup(embedding_dim, training)

    def forward(self, log_mel: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return _Embedding.forward(self, log_mel)


def mulan_audio_tower(kind: str, embedding_dim: int, training: Optional[str] = None) -> _Embedding:
    if kind == "musicnn":
        return MusicnnAudioTower(embedding_dim, training)
    if kind == "vgg":
        return VggAudioTower(embedding_dim, training)
    raise ValueError(f"unknown pretrained audio tower {kind!r}")


def check_front_end(log_mel: Mapping[str, object], window_seconds: float, kind: str, source: str) -> None:
    """Raises ValueError naming the first ``logMel`` setting that differs from musicnn's front end, or
    a window shorter than one patch."""
    from .audio import LogMelConfig

    ours, want = LogMelConfig.from_dict(log_mel), front_end_config()
    for name, got, need in [("sampleRate", ours.sample_rate, want.sample_rate),
                            ("windowLength", ours.window_length, want.window_length),
                            ("hopLength", ours.hop_length, want.hop_length), ("fftSize", ours.n_fft, want.n_fft),
                            ("melBands", ours.mel_bands, want.mel_bands), ("fMin", ours.f_min, want.f_min),
                            ("fMax", ours.resolved_f_max, want.resolved_f_max), ("scale", ours.scale, want.scale)]:
        if got != need:
            raise ValueError(f"{source}: the {kind} audio tower needs musicnn's front end, but logMel.{name} is "
                             f"{got}, not {need}")
    frames = 1 + int(round(window_seconds * SAMPLE_RATE)) // HOP
    if frames < PATCH_FRAMES:
        raise ValueError(f"{source}: a {window_seconds}-s window has {frames} frames, fewer than the {kind} "
                         f"tower's {PATCH_FRAMES}-frame patch; use windows of at least 3 s")


# MARK: TensorFlow names → mulan names


def _bn(ours: str, tf: str) -> Dict[str, Tuple[str, str]]:
    return {f"{ours}.weight": (f"{tf}/gamma", "id"), f"{ours}.bias": (f"{tf}/beta", "id"),
            f"{ours}.running_mean": (f"{tf}/moving_mean", "id"),
            f"{ours}.running_var": (f"{tf}/moving_variance", "id")}


def _bn_suffix(i: int) -> str:
    return "batch_normalization" if i == 0 else f"batch_normalization_{i}"


def _conv_suffix(i: int) -> str:
    return "conv2d" if i == 0 else f"conv2d_{i}"


def name_map(architecture: str) -> Dict[str, Tuple[str, str]]:
    """{mulan name: (TensorFlow name, layout rule)} of every tensor of the architecture, in the order
    musicnn's models.py creates the TensorFlow variables (which fixes their numbering)."""
    m: Dict[str, Tuple[str, str]] = {}
    if architecture == "musicnn":
        m.update(_bn("input_bn", _bn_suffix(0)))
        blocks = ["timbral.0", "timbral.1", "temporal.0", "temporal.1", "temporal.2", "midend.0", "midend.1", "midend.2"]
        for i, block in enumerate(blocks):
            rule = "conv1d" if block.startswith("midend") else "conv2d"
            m[f"{block}.conv.weight"] = (f"{_conv_suffix(i)}/kernel", rule)
            m[f"{block}.conv.bias"] = (f"{_conv_suffix(i)}/bias", "id")
            m.update(_bn(f"{block}.bn", _bn_suffix(i + 1)))
        m.update(_bn("backend.pool_bn", _bn_suffix(9)))
        m["backend.dense.weight"] = ("dense/kernel", "dense")
        m["backend.dense.bias"] = ("dense/bias", "id")
        m.update(_bn("backend.dense_bn", _bn_suffix(10)))
        m["backend.logits.weight"] = ("dense_1/kernel", "dense")
        m["backend.logits.bias"] = ("dense_1/bias", "id")
    elif architecture == "vgg":
        m.update(_bn("input_bn", _bn_suffix(0)))
        for i in range(5):
            m[f"blocks.{i}.conv.weight"] = (f"{i + 1}CNN/kernel", "conv2d")
            m[f"blocks.{i}.conv.bias"] = (f"{i + 1}CNN/bias", "id")
            m.update(_bn(f"blocks.{i}.bn", _bn_suffix(i + 1)))
        m["logits.weight"] = ("dense/kernel", "dense")
        m["logits.bias"] = ("dense/bias", "id")
    else:
        raise ValueError(f"unknown architecture {architecture!r}")
    return m


def _to_mulan(value: np.ndarray, rule: str) -> np.ndarray:
    if rule == "id":
        return value
    if rule == "conv2d":  # [kt, kf, in, out] → [out, in, kf, kt]
        return value.transpose(3, 2, 1, 0)
    if rule == "conv1d":  # [7, C, 1, out] → [out, C, 7]
        return value[:, :, 0, :].transpose(2, 1, 0)
    if rule == "dense":  # [in, out] → [out, in]
        return value.T
    raise AssertionError(rule)


def detect_architecture(bundle: TensorBundle) -> str:
    names = set(bundle.entries)
    if "1CNN/kernel" in names:
        return "vgg"
    if "conv2d/kernel" in names and "dense_1/kernel" in names:
        return "musicnn"
    some = ", ".join(sorted(n for n in names if not n.endswith(("/Adam", "/Adam_1")))[:6])
    raise MusicnnError(f"{bundle.index_path}: not a musicnn or vgg checkpoint of musicnn 0.1.0 (it holds {some} …); "
                       "convert MSD_musicnn, MTT_musicnn, MSD_vgg or MTT_vgg")


def convert_bundle(bundle: TensorBundle, architecture: Optional[str] = None) -> Tuple[str, Dict[str, np.ndarray]]:
    """(architecture, {mulan name: float32 array}) of a musicnn checkpoint bundle; every tensor is
    checked against the architecture's shape (PyTorch's module defines it)."""
    architecture = architecture or detect_architecture(bundle)
    expected = {n: tuple(t.shape) for n, t in build_tower(architecture).state_dict().items()}
    mapping = name_map(architecture)
    assert set(mapping) == set(expected), sorted(set(mapping) ^ set(expected))
    out: Dict[str, np.ndarray] = {}
    for ours, (tf_name, rule) in mapping.items():
        if tf_name not in bundle.entries:
            raise MusicnnError(f"{bundle.index_path}: the {architecture} checkpoint lacks tensor {tf_name} "
                               f"(for {ours}); not a complete musicnn 0.1.0 {architecture} checkpoint")
        value = bundle.tensor(tf_name)
        if value.dtype != np.float32:
            raise MusicnnError(f"{bundle.index_path}: tensor {tf_name} is {value.dtype}, not float32")
        try:
            converted: Optional[np.ndarray] = np.ascontiguousarray(_to_mulan(value, rule))
        except (IndexError, ValueError):
            converted = None
        if converted is None or tuple(converted.shape) != expected[ours] or (rule == "conv1d" and value.shape[2] != 1):
            raise MusicnnError(f"{bundle.index_path}: tensor {tf_name} has shape {list(value.shape)}, which does not "
                               f"give {ours} {list(expected[ours])}; a checkpoint of another architecture "
                               "(musicnn 0.1.0's MSD_musicnn_big, say) is not supported")
        out[ours] = converted
    return architecture, out


def _source_name(model_dir: str) -> str:
    return os.path.basename(os.path.normpath(model_dir))


def _tags_for(name: str, tags: Optional[str]) -> List[str]:
    kind = tags or ("msd" if name.startswith("MSD") else "mtt" if name.startswith("MTT") else None)
    if kind == "msd":
        return list(MSD_TAGS)
    if kind == "mtt":
        return list(MTT_TAGS)
    raise MusicnnError(f"cannot tell the tag set of model folder {name!r} (not MSD_* or MTT_*); pass --tags msd|mtt")


def convert(model_dir: str, out: str, tags: Optional[str] = None) -> Dict[str, str]:
    """Converts the musicnn model folder ``model_dir`` to ``out`` (safetensors, written under a
    temporary name and renamed); returns the metadata written."""
    from safetensors.numpy import save_file

    prefix = os.path.join(model_dir, "")
    if not os.path.isfile(prefix + ".index"):
        raise MusicnnError(f"{model_dir} holds no .index file; pass a musicnn model folder "
                           "(…/site-packages/musicnn/MSD_musicnn)")
    bundle = TensorBundle(prefix)
    architecture, tensors = convert_bundle(bundle)
    name = _source_name(model_dir)
    labels = _tags_for(name, tags)
    if tensors["backend.logits.bias" if architecture == "musicnn" else "logits.bias"].shape[0] != len(labels):
        raise MusicnnError(f"{bundle.index_path}: the logits do not have {len(labels)} outputs")
    metadata = {"format": FORMAT, "architecture": architecture, "source": f"musicnn 0.1.0 {name}",
                "licence": "ISC", **MEL_METADATA, "tags": json.dumps(labels)}
    directory = os.path.dirname(os.path.abspath(out))
    os.makedirs(directory, exist_ok=True)
    temporary = out + ".tmp"
    save_file(tensors, temporary, metadata=metadata)
    os.chmod(temporary, 0o644)
    os.replace(temporary, out)
    return metadata


# MARK: converted files


def check_metadata(metadata: Mapping[str, str], path: str) -> str:
    """The architecture of a converted file, after checking its format and mel settings."""
    if metadata.get("format") != FORMAT:
        raise MusicnnError(f"{path} is not a converted pretrained audio tower (format {metadata.get('format')!r}, "
                           f"want {FORMAT!r}); convert one with `python -m mulan_torch.musicnn convert`")
    architecture = metadata.get("architecture", "")
    if architecture not in ARCHITECTURES:
        raise MusicnnError(f"{path}: unknown architecture {architecture!r}")
    for key, value in MEL_METADATA.items():
        if metadata.get(key) != value:
            raise MusicnnError(f"{path}: mel setting {key} is {metadata.get(key)!r}; this tower's front end "
                               f"needs {value!r}")
    return architecture


def load_pretrained(path: str) -> Tuple[nn.Module, Dict[str, str]]:
    """(tower in eval mode, metadata) of a converted file; names and shapes must match exactly."""
    from safetensors import safe_open

    try:
        with safe_open(path, framework="pt") as f:
            metadata = dict(f.metadata() or {})
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as error:  # OSError, or safetensors' own error types for a damaged file
        raise MusicnnError(f"cannot read pretrained audio tower {path}: {error}") from error
    tower = build_tower(check_metadata(metadata, path))
    own = tower.state_dict()
    for name, target in own.items():
        t = tensors.get(name)
        if t is None or tuple(t.shape) != tuple(target.shape):
            found = "missing" if t is None else f"shape {list(t.shape)}"
            raise MusicnnError(f"{path}: tensor {name} {list(target.shape)} is {found}")
    extra = sorted(set(tensors) - set(own))
    if extra:
        raise MusicnnError(f"{path}: holds tensors the {tower.architecture} tower does not have: {', '.join(extra[:5])}")
    tower.load_state_dict(tensors)
    return tower.eval(), metadata


# MARK: command line


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(64, f"{self.prog}: error: {message}\n")


def _parser(prog: str) -> argparse.ArgumentParser:
    p = _Parser(prog=prog, description="musicnn's pretrained taggers for mulan.")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    c = sub.add_parser("convert", help="convert a musicnn model folder's TensorFlow checkpoint to safetensors",
                       description="Reads DIR/.index and DIR/.data-00000-of-00001 (no TensorFlow needed) and writes "
                                   "FILE with mulan's names and layouts and the model's metadata.")
    c.add_argument("--model-dir", required=True, help="a musicnn model folder, e.g. …/site-packages/musicnn/MSD_musicnn")
    c.add_argument("--out", required=True, help="the safetensors file to write")
    c.add_argument("--tags", choices=("msd", "mtt"), default=None,
                   help="the tag set (default: from the folder's name, MSD_* or MTT_*)")
    c.add_argument("--quiet", action="store_true")
    return p


def main(argv: Optional[Sequence[str]] = None, prog: str = "python -m mulan_torch.musicnn") -> int:
    args = _parser(prog).parse_args(list(sys.argv[1:] if argv is None else argv))
    try:
        metadata = convert(args.model_dir, args.out, args.tags)
    except (MusicnnError, BundleError) as error:
        print(f"{prog} convert: {error}", file=sys.stderr)
        return 1
    if not args.quiet:
        print(json.dumps({"out": args.out, "architecture": metadata["architecture"], "source": metadata["source"]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
