"""mulan-train's audio front end in NumPy: FLAC decoding, the training window, log-mel and SpecAugment.

Each function computes what the Swift trainer computes (Sources/MulanTraining/AudioFrontEnd.swift,
Sources/MulanDSP/LogMel.swift), and python/tests/test_audio.py checks it against values that
``mulan-train frontend-dump`` writes from the trainer's own code:

- ``decode_flac``: the samples libavcodec decodes (``MemoryAudioDecoder``), bit for bit, for the mono
  16- and 24-bit FLAC clips mulan writes: an integer sample v of a B-bit stream is v / 2^(B-1),
  exactly, on both sides.
- ``log_mel``: ``LogMelSpectrogram.compute`` bit for bit where libavutil loads (the default there):
  MulanDSP's float32 steps in NumPy, with the same libavutil ``av_tx`` FFT called through ctypes.
  Without libavutil (or with ``exact=False``) a NumPy-only path with a double-precision FFT, within
  1e-4 relative (max |Δ| / max |value|; up to 4e-5 measured on tone clips, from MulanDSP's float32
  FFT in bins far below a frame's peak).
- ``spec_augment``: ``SpecAugment.apply``: the same draws from the same ``RandomSource``, the same
  masks, the same fill value (the mean summed in double precision, in order); identical output.
- ``training_example``: ``AudioFrontEnd.trainingExample``: the generator seeded by (seed, step,
  example index), the window drawn from it, log-mel, SpecAugment from the same generator.
- ``pitch_class_profile``: ``PitchClassProfile`` (Sources/MulanDSP), a window's 12-bin pitch-class
  profile, the input of the pitch-class branch (``--pitch-profiles``); in double precision, so within
  float32 rounding of mulan's, not bit for bit.

Configurations use mulan's field names in snake case (``sampleRate`` is ``sample_rate``);
``from_dict`` reads the camel-case objects of a run's ``config.json``, ``to_dict`` writes them.
"""

from __future__ import annotations

import io
import math
import os
import threading
import warnings
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import soundfile

from .random import MASK, RandomSource
from . import sampler as _sampler

if TYPE_CHECKING:  # torch is imported only by log_mel_torch
    import torch

__all__ = [
    "LogMelConfig",
    "SpecAugmentConfig",
    "FrontEndConfig",
    "decode_flac",
    "decode_flac_window",
    "log_mel",
    "exact_log_mel_available",
    "exact_log_mel_unavailable_reason",
    "EXACT_LOG_MEL_ENV",
    "spec_augment",
    "spec_augment_masks",
    "apply_masks",
    "example_random",
    "training_window_offset",
    "crop_window",
    "evaluation_window_offsets",
    "training_example",
    "log_mel_torch",
    "PITCH_CLASSES",
    "pitch_fft_size",
    "pitch_class_frames",
    "pitch_class_profile",
    "pitch_class_profiles",
]


# --------------------------------------------------------------------------------------------
# Configurations
# --------------------------------------------------------------------------------------------


def _seconds_to_samples(seconds: float, rate: int) -> int:
    """``LogMelConfig.samples``: seconds · rate rounded half to even (Python's ``round``), 0 if absurd."""
    x = seconds * float(rate)
    if not math.isfinite(x) or abs(x) >= 1e15:
        return 0
    return int(round(x))


def _round_half_away(x: float) -> int:
    """Swift's ``Double.rounded()`` (to nearest, ties away from zero), exactly."""
    r = math.floor(abs(x))
    if abs(x) - r >= 0.5:  # exact: abs(x) - floor(abs(x)) has no rounding error
        r += 1
    return int(math.copysign(r, x))


def _next_power_of_two(n: int) -> int:
    """``LogMelConfig.defaultFFTSize``: the smallest power of two ≥ n (1 for n ≤ 1)."""
    p = 1
    while p < n and p < (1 << 30):
        p <<= 1
    return p


def _number(d: Mapping[str, Any], key: str, default: Any) -> Any:
    """A JSON value that Swift's ``decodeIfPresent … ?? default`` reads: missing or null → default."""
    value = d.get(key)
    return default if value is None else value


def _integer(value: Any, key: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    raise ValueError(f"{key} must be an integer, got {value!r}")


def _real(value: Any, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{key} must be a number, got {value!r}")
    return float(value)


DB_SCALE = "dB"
MUSICNN_SCALE = "log10(10000x+1)"
SCALES = (DB_SCALE, MUSICNN_SCALE)


@dataclass(frozen=True)
class LogMelConfig:
    """Sources/MulanDSP/LogMel.swift's ``LogMelConfig``, field for field.

    The defaults are a 25 ms periodic Hann window, a 10 ms hop, an FFT of the next power of two of
    the window, 128 Slaney mel bands from 0 Hz to Nyquist, and decibels floored at ``amin`` and
    clamped to ``top_db`` below each spectrogram's maximum (at 16 kHz: window 400, hop 160, FFT 512).
    ``fft_size`` None resolves to the next power of two at construction, as Swift's initializer does.
    """

    sample_rate: int
    window_seconds: float = 0.025
    hop_seconds: float = 0.010
    fft_size: Optional[int] = None
    mel_bands: int = 128
    f_min: float = 0.0
    f_max: Optional[float] = None
    amin: float = 1e-10
    top_db: Optional[float] = 80.0
    scale: str = "dB"
    """How mel powers become features: ``"dB"`` (``10 · log10(max(amin, x))``, clamped to ``top_db``
    below the maximum) or ``"log10(10000x+1)"`` (musicnn's compression, computed in double precision
    on the float32 power; ``amin`` and ``top_db`` do not apply). Swift's ``LogMelConfig.scale``."""

    def __post_init__(self) -> None:
        if self.fft_size is None:
            object.__setattr__(self, "fft_size", _next_power_of_two(self.window_length))

    @property
    def window_length(self) -> int:
        """The window in samples: ``round(window_seconds · sample_rate)``, ties to even."""
        return _seconds_to_samples(self.window_seconds, self.sample_rate)

    @property
    def hop_length(self) -> int:
        """The hop in samples (rounded as ``window_length``)."""
        return _seconds_to_samples(self.hop_seconds, self.sample_rate)

    @property
    def n_fft(self) -> int:
        """The resolved FFT length."""
        assert self.fft_size is not None
        return self.fft_size

    @property
    def resolved_f_max(self) -> float:
        """The upper edge of the filterbank in Hz (``f_max`` or Nyquist)."""
        return float(self.f_max) if self.f_max is not None else self.sample_rate / 2

    def frame_count(self, sample_count: int) -> int:
        """``LogMelSpectrogram.frameCount``: frames of ``sample_count`` samples with centred framing."""
        n = self.n_fft
        padded = sample_count + 2 * (n // 2)
        return 0 if padded < n else 1 + (padded - n) // self.hop_length

    def validate(self) -> None:
        """Raises ``ValueError`` for the configurations ``LogMelSpectrogram.init`` refuses."""
        win, hop, n = self.window_length, self.hop_length, self.n_fft
        where = f"(sampleRate {self.sample_rate} Hz, window {win}, hop {hop}, FFT {n})"

        def invalid(what: str) -> ValueError:
            return ValueError(f"invalid log-mel configuration: {what} {where}; fix the logMel settings")

        if self.sample_rate <= 0:
            raise invalid("the sample rate must be positive")
        if win < 1:
            raise invalid("the window must be at least one sample")
        if hop < 1:
            raise invalid("the hop must be at least one sample")
        if n < win:
            raise invalid(f"the FFT length {n} is shorter than the window ({win} samples)")
        if n > 1 << 22:
            raise invalid(f"the FFT length {n} is too large")
        if not 1 <= self.mel_bands <= 10_000:
            raise invalid("melBands must be between 1 and 10000")
        f_max = self.resolved_f_max
        if not (math.isfinite(self.f_min) and math.isfinite(f_max) and 0 <= self.f_min < f_max):
            raise invalid(f"the mel filterbank needs 0 ≤ fMin < fMax (fMin {self.f_min}, fMax {f_max})")
        if not (math.isfinite(self.amin) and float(np.float32(self.amin)) >= float(np.finfo(np.float32).tiny)):
            raise invalid("amin must be a positive normal float (≥ 1.2e-38)")
        if self.top_db is not None and not (math.isfinite(self.top_db) and self.top_db >= 0):
            raise invalid("topDB must be non-negative")
        if self.scale not in SCALES:
            raise invalid(f"scale must be one of {', '.join(SCALES)}, got {self.scale!r}")

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "LogMelConfig":
        """Reads a ``logMel`` object as Swift's ``Codable`` decodes it: ``sampleRate`` is required; a
        missing (or null) key takes its default, except that an explicit null ``fMax`` or ``topDB``
        means none (a missing ``topDB`` is 80 dB, a missing ``fMax`` Nyquist)."""
        if not isinstance(d, Mapping):
            raise ValueError(f"a logMel configuration must be a JSON object, got {type(d).__name__}")
        if d.get("sampleRate") is None:
            raise ValueError("the logMel configuration has no sampleRate")
        f_max = d.get("fMax")
        fft = d.get("fftSize")
        return cls(
            sample_rate=_integer(d["sampleRate"], "sampleRate"),
            window_seconds=_real(_number(d, "windowSeconds", 0.025), "windowSeconds"),
            hop_seconds=_real(_number(d, "hopSeconds", 0.010), "hopSeconds"),
            fft_size=None if fft is None else _integer(fft, "fftSize"),
            mel_bands=_integer(_number(d, "melBands", 128), "melBands"),
            f_min=_real(_number(d, "fMin", 0.0), "fMin"),
            f_max=None if f_max is None else _real(f_max, "fMax"),
            amin=_real(_number(d, "amin", 1e-10), "amin"),
            top_db=(None if d["topDB"] is None else _real(d["topDB"], "topDB")) if "topDB" in d else 80.0,
            scale=str(d.get("scale") or DB_SCALE),
        )

    def to_dict(self) -> Dict[str, Any]:
        """The ``logMel`` object as Swift encodes it (every key; null for no ``fMax`` / ``topDB``;
        ``scale`` only when it is not dB)."""
        d: Dict[str, Any] = {
            "sampleRate": self.sample_rate,
            "windowSeconds": self.window_seconds,
            "hopSeconds": self.hop_seconds,
            "fftSize": self.n_fft,
            "melBands": self.mel_bands,
            "fMin": self.f_min,
            "fMax": self.f_max,
            "amin": self.amin,
            "topDB": self.top_db,
        }
        if self.scale != DB_SCALE:
            d["scale"] = self.scale
        return d


@dataclass(frozen=True)
class SpecAugmentConfig:
    """Sources/MulanDSP/LogMel.swift's ``SpecAugmentConfig``: two frequency masks of up to 15 bands
    and two time masks of up to 50 frames, each at most ``max_time_fraction`` of the frames."""

    frequency_masks: int = 2
    max_frequency_width: int = 15
    time_masks: int = 2
    max_time_width: int = 50
    max_time_fraction: float = 1.0

    @classmethod
    def none(cls) -> "SpecAugmentConfig":
        """No masks: ``spec_augment`` leaves values unchanged."""
        return cls(frequency_masks=0, time_masks=0)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "SpecAugmentConfig":
        """Reads a ``specAugment`` object as Swift decodes it: missing (or null) keys take their defaults."""
        if not isinstance(d, Mapping):
            raise ValueError(f"a specAugment configuration must be a JSON object, got {type(d).__name__}")
        return cls(
            frequency_masks=_integer(_number(d, "frequencyMasks", 2), "frequencyMasks"),
            max_frequency_width=_integer(_number(d, "maxFrequencyWidth", 15), "maxFrequencyWidth"),
            time_masks=_integer(_number(d, "timeMasks", 2), "timeMasks"),
            max_time_width=_integer(_number(d, "maxTimeWidth", 50), "maxTimeWidth"),
            max_time_fraction=_real(_number(d, "maxTimeFraction", 1.0), "maxTimeFraction"),
        )

    def to_dict(self) -> Dict[str, Any]:
        return {
            "frequencyMasks": self.frequency_masks,
            "maxFrequencyWidth": self.max_frequency_width,
            "timeMasks": self.time_masks,
            "maxTimeWidth": self.max_time_width,
            "maxTimeFraction": self.max_time_fraction,
        }


@dataclass(frozen=True)
class FrontEndConfig:
    """The parts of a mulan-train ``TrainingConfig`` the audio front end uses."""

    log_mel: LogMelConfig
    spec_augment: Optional[SpecAugmentConfig] = field(default_factory=SpecAugmentConfig)
    window_seconds: float = 10.0
    seed: int = 0

    @property
    def window_samples(self) -> int:
        """``TrainingConfig.windowSamples``: ``window_seconds · sample_rate`` rounded, ties away from zero."""
        return _round_half_away(self.window_seconds * float(self.log_mel.sample_rate))

    @property
    def frames(self) -> int:
        """Log-mel frames of one window."""
        return self.log_mel.frame_count(self.window_samples)

    @classmethod
    def from_training_config(cls, d: Mapping[str, Any]) -> "FrontEndConfig":
        """Reads a run's ``config.json`` (a ``TrainingConfig``) as Swift decodes it: ``logMel`` is
        required; a missing or null ``specAugment`` means no SpecAugment; ``windowSeconds`` and
        ``seed`` default to 10 and 0."""
        if not isinstance(d, Mapping) or not isinstance(d.get("logMel"), Mapping):
            raise ValueError("a mulan-train configuration needs a logMel object")
        spec = d.get("specAugment")
        seed = _integer(_number(d, "seed", 0), "seed")
        if not 0 <= seed <= MASK:
            raise ValueError(f"seed must be a 64-bit unsigned integer, got {seed}")
        return cls(
            log_mel=LogMelConfig.from_dict(d["logMel"]),
            spec_augment=None if spec is None else SpecAugmentConfig.from_dict(spec),
            window_seconds=_real(_number(d, "windowSeconds", 10.0), "windowSeconds"),
            seed=seed,
        )


# --------------------------------------------------------------------------------------------
# Decoding
# --------------------------------------------------------------------------------------------


def decode_flac(data: bytes, sample_rate: int, label: str) -> np.ndarray:
    """The float32 mono samples of a FLAC member, as mulan's ``MemoryAudioDecoder.decode`` gives them.

    Decodes with soundfile (libsndfile / libFLAC) to integers and scales them by 2^-(bits-1) with
    bits the stream's sample width (libsndfile returns them left-aligned in 32 bits, so that is one
    multiplication by 2^-31): libavcodec's samples converted by libswresample are the same numbers,
    bit for bit, for the mono 16- and 24-bit FLAC mulan writes. A stereo stream is downmixed as
    libswresample does for float output (√½ · L + √½ · R in float32, as ``ffmpeg -ac 1 -f f32le``);
    more channels raise ``ValueError``.

    Shards hold clips at the dataset's rate, so no resampling is done: a stream at another rate
    raises ``ValueError`` (mulan-train would resample it with libswresample, which this package does
    not reproduce). So do undecodable bytes, an empty stream, and a stream shorter than its FLAC
    header says (cut short); every message names ``label`` (say, the shard and member).
    """
    if sample_rate <= 0:
        raise ValueError(f"cannot decode {label} to {sample_rate} Hz: the sample rate must be positive")
    if len(data) == 0:
        raise ValueError(f"cannot decode the audio of {label}: it is empty (0 bytes); rebuild the shard that holds it")
    try:
        with soundfile.SoundFile(io.BytesIO(data)) as f:
            kind, rate, channels, declared = f.format, f.samplerate, f.channels, f.frames
            ints = f.read(dtype="int32", always_2d=True) if kind == "FLAC" else None
    except Exception as error:  # soundfile raises LibsndfileError (a RuntimeError) and others
        raise ValueError(
            f"cannot decode the audio of {label}: the bytes are damaged or not FLAC "
            f"({type(error).__name__}: {error}); rebuild or re-download the shard that holds them"
        ) from error
    if ints is None:
        raise ValueError(
            f"cannot decode the audio of {label}: it is {kind}, not FLAC; "
            "mulan-shard writes FLAC members: rebuild the shard that holds it"
        )
    if rate != sample_rate:
        raise ValueError(
            f"the audio of {label} is at {rate} Hz, not the dataset's {sample_rate} Hz; "
            "mulan-shard stores clips at the dataset's rate: re-shard, or pass the rate the shard was written at"
        )
    if ints.shape[0] == 0:
        raise ValueError(f"cannot decode the audio of {label}: it holds no audio samples")
    # libsndfile's frame count is STREAMINFO's total; a stream cut at a frame boundary decodes
    # without error but shorter (MemoryAudioDecoder refuses it the same way).
    if declared > 0 and ints.shape[0] < declared - 2:
        raise ValueError(
            f"cannot decode the audio of {label}: it is truncated: {ints.shape[0]} samples of the "
            f"{declared} its header states (at {rate} Hz); rebuild the shard that holds it"
        )
    if channels > 2:
        raise ValueError(
            f"the audio of {label} has {channels} channels; mulan-shard writes mono clips and this decoder "
            "downmixes only stereo: downmix it to mono first (ffmpeg -ac 1)"
        )
    samples = ints.astype(np.float32) * np.float32(2.0**-31)
    if channels == 1:
        return np.ascontiguousarray(samples[:, 0])
    # libswresample's stereo → mono for float output: each channel times float(√½), then summed
    # (no normalization for float output), as `ffmpeg -ac 1 -f f32le` gives.
    half = np.float32(math.sqrt(0.5))
    return half * samples[:, 0] + half * samples[:, 1]


def decode_flac_window(
    data: bytes, sample_rate: int, label: str, window_samples: int, choose_offset: Callable[[int], int]
) -> Tuple[int, np.ndarray]:
    """One window of a FLAC member without decoding the rest: ``choose_offset(sample_count)`` gets
    the clip's length from the FLAC header (STREAMINFO) and returns the window's first sample
    (``training_window_offset`` does it as the trainer does); libFLAC seeks there (sample-exact) and
    decodes ``window_samples`` samples. Returns (offset, the window as ``crop_window`` of
    ``decode_flac`` gives it: the same samples, bit for bit; zero-padded when the clip is no longer
    than a window). Mono 16- or 24-bit FLAC at ``sample_rate`` only; other input, damaged frames
    inside the window, and a stream shorter than its header raise ``ValueError`` naming ``label``
    (damage outside the window goes unseen: use ``decode_flac`` to check a whole clip)."""
    if len(data) == 0:
        raise ValueError(f"cannot decode the audio of {label}: it is empty (0 bytes); rebuild the shard that holds it")
    try:
        with soundfile.SoundFile(io.BytesIO(data)) as f:
            kind, rate, channels, declared = f.format, f.samplerate, f.channels, f.frames
            if kind != "FLAC" or rate != sample_rate or channels != 1 or declared <= 0:
                ints = None
                offset = 0
            else:
                offset = choose_offset(declared) if declared > window_samples else 0
                if not 0 <= offset <= max(0, declared - window_samples):
                    raise IndexError(f"window offset {offset} is outside 0…{declared - window_samples}")
                if offset:
                    f.seek(offset)
                ints = f.read(min(window_samples, declared), dtype="int32", always_2d=True)
    except IndexError as error:
        raise ValueError(f"{label}: {error}") from None
    except Exception as error:
        raise ValueError(
            f"cannot decode the audio of {label}: the bytes are damaged or not FLAC "
            f"({type(error).__name__}: {error}); rebuild or re-download the shard that holds them"
        ) from error
    if ints is None:  # not the simple case: decode it all, with decode_flac's checks and messages
        samples = decode_flac(data, sample_rate, label)
        offset = choose_offset(samples.shape[0]) if samples.shape[0] > window_samples else 0
        return offset, crop_window(samples, offset, window_samples)
    if ints.shape[0] < min(window_samples, declared):
        raise ValueError(
            f"cannot decode the audio of {label}: it is truncated: the window at {offset} ends past the "
            f"{offset + ints.shape[0]} samples that decode of the {declared} its header states; "
            "rebuild the shard that holds it"
        )
    window = np.zeros(window_samples, dtype=np.float32)
    np.multiply(ints[:, 0], np.float32(2.0**-31), out=window[: ints.shape[0]], dtype=np.float32)
    return offset, window


# --------------------------------------------------------------------------------------------
# Log-mel
# --------------------------------------------------------------------------------------------

# Slaney's mel scale: linear below 1 kHz (200/3 Hz per mel), logarithmic above.
_MEL_LINEAR_STEP = 200.0 / 3
_MEL_LOG_START = 1000.0 / _MEL_LINEAR_STEP
_MEL_LOG_STEP = math.log(6.4) / 27


def _hz_to_mel(f: float) -> float:
    return _MEL_LOG_START + math.log(f / 1000) / _MEL_LOG_STEP if f >= 1000 else f / _MEL_LINEAR_STEP


def _mel_to_hz(mel: float) -> float:
    return 1000 * math.exp(_MEL_LOG_STEP * (mel - _MEL_LOG_START)) if mel >= _MEL_LOG_START else _MEL_LINEAR_STEP * mel


def mel_filterbank(cfg: LogMelConfig) -> np.ndarray:
    """The Slaney-scale, Slaney-normalized mel filterbank, float32 [mel_bands, n_fft // 2 + 1], as
    ``librosa.filters.mel(htk=False, norm='slaney')`` and mulan's ``melFilters`` compute it: in double
    precision (the band edges with the C library's log and exp, as Swift calls them), each weight
    rounded to float32 before and after its normalization."""
    n, rate, bands = cfg.n_fft, cfg.sample_rate, cfg.mel_bands
    bins = n // 2 + 1
    step = 1.0 / (n * (1.0 / rate))  # numpy.fft.rfftfreq
    mel_low, mel_high = _hz_to_mel(cfg.f_min), _hz_to_mel(cfg.resolved_f_max)
    points = bands + 2
    delta = (mel_high - mel_low) / (points - 1)  # numpy.linspace
    mel_f = np.array([_mel_to_hz(mel_high if i == points - 1 else mel_low + i * delta) for i in range(points)])
    freqs = np.arange(bins, dtype=np.float64) * step
    lower = -(mel_f[:-2, None] - freqs[None, :]) / (mel_f[1:-1] - mel_f[:-2])[:, None]
    upper = (mel_f[2:, None] - freqs[None, :]) / (mel_f[2:] - mel_f[1:-1])[:, None]
    enorm = 2.0 / (mel_f[2:] - mel_f[:-2])
    ramp = np.maximum(0.0, np.minimum(lower, upper)).astype(np.float32).astype(np.float64)
    return (ramp * enorm[:, None]).astype(np.float32)


def _periodic_hann(length: int) -> np.ndarray:
    """``scipy.signal.get_window('hann', length, fftbins=True)`` as MulanDSP computes it: in double with
    the C library's ``cos`` (``math.cos``; NumPy's vectorized cos may differ in the last bit), each
    value ``0.5 - 0.5 * cos(2 * pi * i / length)`` rounded to float32."""
    return np.array([0.5 - 0.5 * math.cos(2 * math.pi * i / length) for i in range(length)], dtype=np.float32)


@lru_cache(maxsize=16)
def _tables(cfg: LogMelConfig) -> Tuple[np.ndarray, np.ndarray]:
    cfg.validate()
    return _periodic_hann(cfg.window_length), mel_filterbank(cfg)


def _frames(x: np.ndarray, cfg: LogMelConfig, window: np.ndarray, frames: int, out: np.ndarray, step: int) -> None:
    """Writes the windowed frames of ``x`` (float32 products, ``window[i] * x[s]``) into ``out``
    [frames, ·] at columns ``lead + i`` times ``step`` (1 for real input, 2 for interleaved complex),
    the rest of each row left as it is (zeros)."""
    n, win, hop = cfg.n_fft, cfg.window_length, cfg.hop_length
    lead = (n - win) // 2  # zeros before the window (librosa's pad_center)
    half = n // 2
    padded = np.zeros(x.shape[0] + 2 * half, dtype=np.float32)
    padded[half : half + x.shape[0]] = x
    # The window's samples of frame t are padded[t·hop + lead : t·hop + lead + win].
    view = np.lib.stride_tricks.sliding_window_view(padded[lead:], win)[: (frames - 1) * hop + 1 : hop]
    np.multiply(view, window, out=out[:, step * lead : step * (lead + win) : step])


def _mono(samples: np.ndarray) -> np.ndarray:
    x = np.asarray(samples, dtype=np.float32)
    if x.ndim != 1:
        raise ValueError(f"log_mel needs mono samples (a 1-D array), got shape {x.shape}")
    return x


def _floor_top_db(db: np.ndarray, cfg: LogMelConfig) -> np.ndarray:
    if cfg.top_db is not None and db.size:
        floor = np.float32(db.max()) - np.float32(cfg.top_db)
        np.maximum(db, floor, out=db)
    return db


def _mel_power_numpy(samples: np.ndarray, cfg: LogMelConfig) -> np.ndarray:
    """The float32 mel power [mel_bands, frames] of the NumPy path."""
    window, filters = _tables(cfg)
    x = _mono(samples)
    frames = cfg.frame_count(x.shape[0])
    if frames == 0:
        return np.zeros((cfg.mel_bands, 0), dtype=np.float32)
    buffer = np.zeros((frames, cfg.n_fft), dtype=np.float32)
    _frames(x, cfg, window, frames, buffer, 1)
    spectrum = np.fft.rfft(buffer.astype(np.float64), axis=1)  # double precision (MulanDSP: float32)
    power = np.square(spectrum.real)
    power += np.square(spectrum.imag)
    return filters @ power.astype(np.float32).T  # [mel_bands, frames], float32


def _compress(mel: np.ndarray) -> np.ndarray:
    """musicnn's log10(10000·x + 1), in double precision, rounded to float32."""
    return np.log10(10000.0 * np.maximum(mel, 0).astype(np.float64) + 1.0).astype(np.float32)


def _log_mel_numpy(samples: np.ndarray, cfg: LogMelConfig) -> np.ndarray:
    """The fast path: a double-precision NumPy FFT, a dense float32 filterbank product and log10."""
    mel = _mel_power_numpy(samples, cfg)
    if mel.shape[1] == 0:
        return mel
    if cfg.scale == MUSICNN_SCALE:
        return _compress(mel)
    np.maximum(mel, np.float32(cfg.amin), out=mel)
    db = np.log10(mel)
    db *= np.float32(10)
    return _floor_top_db(db, cfg)


# ---- The exact path: MulanDSP's own arithmetic, with libavutil's FFT through ctypes ----------------

_F32 = np.float32


def _decibels(x: np.ndarray, out: Optional[np.ndarray] = None, scratch: Optional[List[np.ndarray]] = None) -> np.ndarray:
    """``LogMelSpectrogram.decibels`` for positive normal float32 values, operation for operation in
    float32 (NumPy's float32 arithmetic rounds each operation as Swift's does; nothing is fused):
    x = m · 2^e with m in [√½, √2), ln m = 2 atanh(s), s = (m − 1) / (m + 1), to s⁹. ``out`` (float32,
    x's shape) receives the values; ``scratch``: three more float32 arrays of x's shape to work in,
    so that nothing is allocated."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    if out is None:
        out = np.empty_like(x)
    a, b, c = scratch if scratch is not None else (np.empty_like(x), np.empty_like(x), np.empty_like(x))
    u = a.view(np.uint32)
    np.subtract(x.view(np.uint32), np.uint32(0x3F3504F3), out=u)  # wraps modulo 2^32, as Swift's &-
    np.right_shift(u.view(np.int32), 23, out=b.view(np.int32))
    np.copyto(out, b.view(np.int32), casting="unsafe")  # e, exactly (|e| < 2^24)
    np.bitwise_and(u, np.uint32(0x007FFFFF), out=u)
    np.add(u, np.uint32(0x3F3504F3), out=u)
    m = a  # its float32 bits now: m in [√½, √2)
    np.add(m, _F32(1), out=b)
    np.subtract(m, _F32(1), out=c)
    np.divide(c, b, out=c)  # s
    np.multiply(c, c, out=b)  # s2
    np.multiply(b, _F32(1) / _F32(9), out=a)  # series, from the innermost term
    a += _F32(1) / _F32(7)
    a *= b
    a += _F32(1) / _F32(5)
    a *= b
    a += _F32(1) / _F32(3)
    a *= b
    a += _F32(1)
    c *= _F32(2)
    c *= a  # lnM = 2 · s · series, left to right
    np.multiply(out, _F32(1.428606765330187e-6), out=b)
    b += c
    out *= _F32(0.693145751953125)
    out += b  # ln = e · C1 + (e · C2 + lnM)
    out *= _F32(4.342944819032518)  # 10 / ln 10
    return out


class _AvUtil:
    """libavutil's ``av_tx`` through ctypes, loaded once per process; ``error`` says why not."""

    def __init__(self) -> None:
        self.lib: Any = None
        self.error: Optional[str] = None
        import ctypes
        import ctypes.util

        self.ctypes = ctypes
        name = ctypes.util.find_library("avutil")
        if name is None:
            self.error = "libavutil (FFmpeg) is not installed: ctypes.util.find_library('avutil') found nothing"
            return
        try:
            lib = ctypes.CDLL(name)
            lib.av_tx_init.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.POINTER(ctypes.c_void_p),
                                       ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_void_p, ctypes.c_uint64]
            lib.av_tx_init.restype = ctypes.c_int
            lib.av_tx_uninit.argtypes = [ctypes.POINTER(ctypes.c_void_p)]
            lib.av_tx_uninit.restype = None
        except (OSError, AttributeError) as error:  # too old for av_tx (FFmpeg < 4.3), or unloadable
            self.error = f"{name} cannot be used for the FFT: {error}"
            return
        # Probe the float RDFT MulanDSP uses (av_tx has it from FFmpeg 5.1 on; older ones refuse it).
        context, function, scale = ctypes.c_void_p(), ctypes.c_void_p(), ctypes.c_float(1.0)
        ret = lib.av_tx_init(ctypes.byref(context), ctypes.byref(function), _Transform.AV_TX_FLOAT_RDFT, 0, 512,
                             ctypes.byref(scale), 0)
        lib.av_tx_uninit(ctypes.byref(context))
        if ret < 0:
            self.error = f"{name} has no float real FFT in av_tx (av_tx_init returned {ret}; FFmpeg ≥ 5.1 has it)"
            return
        self.lib = lib
        self.name = name
        # void (*av_tx_fn)(AVTXContext *s, void *out, void *in, ptrdiff_t stride)
        self.fn_type = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_ssize_t)


_AVUTIL: Optional[_AvUtil] = None
_AVUTIL_LOCK = threading.Lock()


def _avutil() -> _AvUtil:
    global _AVUTIL
    if _AVUTIL is None:
        with _AVUTIL_LOCK:
            if _AVUTIL is None:
                _AVUTIL = _AvUtil()
    return _AVUTIL


class _Transform:
    """One ``av_tx`` context as MulanDSP sets it up: ``AV_TX_FLOAT_RDFT`` of length n, or
    ``AV_TX_FLOAT_FFT`` (fed a zero imaginary part) when n % 4 != 0; scale 1, no flags (so aligned
    buffers, as av_malloc gives MulanDSP). A context is not thread-safe: one per thread."""

    AV_TX_FLOAT_FFT = 0
    AV_TX_FLOAT_RDFT = 6

    def __init__(self, av: _AvUtil, n: int) -> None:
        ctypes = av.ctypes
        self.av = av
        self.n = n
        self.complex_input = n % 4 != 0
        context = ctypes.c_void_p()
        function = ctypes.c_void_p()
        scale = ctypes.c_float(1.0)  # av_tx dereferences the scale of an RDFT: never NULL
        kind = self.AV_TX_FLOAT_FFT if self.complex_input else self.AV_TX_FLOAT_RDFT
        ret = av.lib.av_tx_init(ctypes.byref(context), ctypes.byref(function), kind, 0, n,
                                ctypes.byref(scale), 0)
        if ret < 0 or not context.value or not function.value:
            av.lib.av_tx_uninit(ctypes.byref(context))
            raise RuntimeError(f"libavutil cannot set up an FFT of length {n} (av_tx_init returned {ret})")
        self.context = context
        self.call = av.fn_type(function.value)
        self.stride = 8 if self.complex_input else 4  # bytes between input values
        # Row lengths in floats, padded to whole 64-byte lines so that every row stays aligned.
        self.in_row = _round_up(2 * n if self.complex_input else n, 16)
        self.out_row = _round_up(2 * n if self.complex_input else n + 2, 16)

    def __del__(self) -> None:
        try:
            self.av.lib.av_tx_uninit(self.av.ctypes.byref(self.context))
        except Exception:  # interpreter shutdown
            pass

    def run(self, frames_in: np.ndarray, frames_out: np.ndarray) -> None:
        """Transforms each row of ``frames_in`` into the same row of ``frames_out`` (both aligned)."""
        call, context, stride = self.call, self.context.value, self.stride
        src, dst = frames_in.ctypes.data, frames_out.ctypes.data
        in_bytes, out_bytes = frames_in.strides[0], frames_out.strides[0]
        for t in range(frames_in.shape[0]):
            call(context, dst + t * out_bytes, src + t * in_bytes, stride)


def _round_up(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


def _aligned(rows: int, columns: int) -> np.ndarray:
    """A zeroed float32 [rows, columns] array whose data starts on a 64-byte boundary (av_malloc's
    widest alignment); with ``columns`` a multiple of 16, every row does."""
    raw = np.zeros(rows * columns + 16, dtype=np.float32)
    skip = (-raw.ctypes.data % 64) // 4
    return raw[skip : skip + rows * columns].reshape(rows, columns)


_THREAD = threading.local()


def _transform(n: int) -> _Transform:
    cache = getattr(_THREAD, "transforms", None)
    if cache is None:
        cache = _THREAD.transforms = {}
    t = cache.get(n)
    if t is None:
        av = _avutil()
        if av.lib is None:
            raise RuntimeError(f"the exact log-mel needs libavutil: {av.error}")
        t = cache[n] = _Transform(av, n)
    return t


class _SparseFilters:
    """MulanDSP's sparse filterbank (``melFilters``: per band, the first bin of its nonzero weights and
    those weights, the first contiguous run of them), laid out for summing in NumPy: the bands
    sorted by weight count, widest first (``order``), so that the bands with a j-th weight are the
    first ``active[j]``; ``starts`` and ``weights`` [bands, widest] in that order."""

    def __init__(self, filters: np.ndarray) -> None:
        bins = filters.shape[1]
        runs: List[Tuple[int, np.ndarray]] = []
        for row in filters:
            nonzero = np.flatnonzero(row)
            if nonzero.size == 0:
                runs.append((0, row[:0]))
                continue
            start = end = int(nonzero[0])
            while end < bins and row[end] != 0:
                end += 1
            runs.append((start, row[start:end]))
        counts = np.array([len(w) for _, w in runs], dtype=np.intp)
        self.order = np.argsort(-counts, kind="stable")
        self.inverse = np.argsort(self.order, kind="stable")
        widest = int(counts.max(initial=0))
        self.starts = np.array([runs[b][0] for b in self.order], dtype=np.intp)
        self.weights = np.zeros((len(runs), widest), dtype=np.float32)
        for i, b in enumerate(self.order):
            self.weights[i, : counts[b]] = runs[b][1]
        self.active = [int(np.sum(counts > j)) for j in range(widest)]

    def apply(self, power: np.ndarray, mel: np.ndarray, term: np.ndarray) -> None:
        """mel [bands, frames] (in the sorted band order) from power [bins, frames]: for each band, 0, then += weight[j] · power[start + j] for j in order, each
        product and sum rounded to float32 (MulanDSP's loop). ``term``: scratch like ``mel``."""
        mel[...] = 0
        for j, k in enumerate(self.active):
            t = term[:k]
            np.take(power, self.starts[:k] + j, axis=0, out=t)
            t *= self.weights[:k, j : j + 1]
            mel[:k] += t


@lru_cache(maxsize=16)
def _sparse_filters(cfg: LogMelConfig) -> _SparseFilters:
    return _SparseFilters(_tables(cfg)[1])


class _Workspace:
    """One thread's buffers for the exact log-mel of one configuration, reused from call to call (as
    MulanDSP's instance reuses its own): fresh arrays of a few MB each cost more in page faults than
    the arithmetic on them. Grown to the largest frame count seen."""

    def __init__(self, cfg: LogMelConfig) -> None:
        self.cfg = cfg
        self.fft = _transform(cfg.n_fft)
        self.capacity = 0

    def reserve(self, frames: int) -> None:
        if frames <= self.capacity:
            return
        cfg, fft = self.cfg, self.fft
        bins, bands = cfg.n_fft // 2 + 1, cfg.mel_bands
        self.capacity = frames
        self.frames_in = _aligned(frames, fft.in_row)  # zeros outside the window stay zero
        self.frames_out = _aligned(frames, fft.out_row)
        self.power = np.empty((frames, bins), dtype=np.float32)
        self.squares = np.empty((frames, bins), dtype=np.float32)
        self.flat = [np.empty(bins * frames, dtype=np.float32)] + \
            [np.empty(bands * frames, dtype=np.float32) for _ in range(5)]

    def views(self, frames: int) -> List[np.ndarray]:
        """Contiguous [bins, frames] and five [bands, frames] arrays over the flat buffers."""
        bins, bands = self.cfg.n_fft // 2 + 1, self.cfg.mel_bands
        return [self.flat[0][: bins * frames].reshape(bins, frames)] + \
            [f[: bands * frames].reshape(bands, frames) for f in self.flat[1:]]


def _workspace(cfg: LogMelConfig) -> _Workspace:
    spaces = getattr(_THREAD, "workspaces", None)
    if spaces is None:
        spaces = _THREAD.workspaces = {}
    ws = spaces.get(cfg)
    if ws is None:
        if len(spaces) >= 4:  # a few configurations per thread at most
            spaces.pop(next(iter(spaces)))
        ws = spaces[cfg] = _Workspace(cfg)
    return ws


def _log_mel_exact(samples: np.ndarray, cfg: LogMelConfig) -> np.ndarray:
    """MulanDSP's ``LogMelSpectrogram.compute``, bit for bit: the same float32 windowed frames,
    libavutil's own float32 FFT (the same ``av_tx`` transform, one call per frame), power
    ``re·re + im·im``, the sparse filterbank summed bin by bin in MulanDSP's order, ``decibels``'
    float32 polynomial, the amin floor and the top_db clamp."""
    window, _ = _tables(cfg)
    filters = _sparse_filters(cfg)
    x = _mono(samples)
    frames = cfg.frame_count(x.shape[0])
    if frames == 0:
        return np.zeros((cfg.mel_bands, 0), dtype=np.float32)
    n, win = cfg.n_fft, cfg.window_length
    bins, lead = n // 2 + 1, (n - win) // 2
    ws = _workspace(cfg)
    ws.reserve(frames)
    fft = ws.fft
    frames_in, frames_out = ws.frames_in[:frames], ws.frames_out[:frames]
    step = 2 if fft.complex_input else 1
    # Zeros around the window (and the imaginary parts), as MulanDSP writes them before each frame.
    frames_in[:, : step * lead] = 0
    frames_in[:, step * (lead + win) : step * n] = 0
    if fft.complex_input:
        frames_in[:, 2 * lead + 1 : 2 * (lead + win) : 2] = 0
    _frames(x, cfg, window, frames, frames_in, step)
    fft.run(frames_in, frames_out)
    # Bins 0 … n/2 as (re, im) pairs; the RDFT's Nyquist bin is real (FFmpeg 5.1 leaves its
    # imaginary part unwritten), so its power is re·re + 0.
    re, im = frames_out[:, 0 : 2 * bins : 2], frames_out[:, 1 : 2 * bins : 2]
    power, squares = ws.power[:frames], ws.squares[:frames]
    np.multiply(re, re, out=power)
    np.multiply(im, im, out=squares)
    if not fft.complex_input:
        squares[:, bins - 1] = 0
    power += squares
    by_bin, mel, term, floored, a, b = ws.views(frames)
    by_bin[...] = power.T
    filters.apply(by_bin, mel, term)
    np.take(mel, filters.inverse, axis=0, out=floored)
    np.maximum(floored, np.float32(cfg.amin), out=floored)
    db = np.empty((cfg.mel_bands, frames), dtype=np.float32)
    return _floor_top_db(_decibels(floored, db, [a, b, term]), cfg)


def exact_log_mel_available() -> bool:
    """Whether the exact log-mel can run here: libavutil (FFmpeg ≥ 4.3, with ``av_tx``) loads."""
    return _avutil().lib is not None


def exact_log_mel_unavailable_reason() -> Optional[str]:
    """Why the exact log-mel cannot run here; None when it can."""
    return _avutil().error


#: The environment variable that sets what ``log_mel(..., exact=None)`` does, in every process
#: (DataLoader workers included): "1" the exact path (an error where libavutil is missing), "0"
#: the NumPy path; unset or empty, the exact path where libavutil loads and otherwise the NumPy
#: path with a warning.
EXACT_LOG_MEL_ENV = "MULAN_TORCH_EXACT_LOG_MEL"

_FALLBACK_WARNED = False


def _default_exact() -> bool:
    global _FALLBACK_WARNED
    setting = os.environ.get(EXACT_LOG_MEL_ENV, "").strip()
    if setting:
        if setting not in ("0", "1"):
            raise ValueError(f"{EXACT_LOG_MEL_ENV} must be 0 (NumPy log-mel) or 1 (exact log-mel), got {setting!r}")
        return setting == "1"
    if exact_log_mel_available():
        return True
    if not _FALLBACK_WARNED:
        _FALLBACK_WARNED = True
        warnings.warn(
            f"mulan_torch.audio.log_mel: {exact_log_mel_unavailable_reason()}; using the NumPy log-mel, within "
            "1e-4 relative of mulan-train's (not bit for bit). Install FFmpeg's libavutil (e.g. apt-get install "
            f"libavutil57) for the exact one, or set {EXACT_LOG_MEL_ENV}=0 to choose the NumPy one silently",
            RuntimeWarning, stacklevel=3)
    return False


def log_mel(samples: np.ndarray, cfg: LogMelConfig, exact: Optional[bool] = None) -> np.ndarray:
    """The log-mel spectrogram of mono ``samples`` at ``cfg.sample_rate``, float32 [mel_bands, frames],
    in dB, as MulanDSP's ``LogMelSpectrogram.compute`` gives it.

    Frame t is centred on sample t · hop of the input padded with n_fft // 2 zeros on each side; the
    periodic Hann window of the window length sits zero-padded, centred, in the FFT's n_fft samples
    (float32 products); power spectra through the Slaney mel filterbank; then
    ``10 · log10(max(amin, power))``, clamped to ``top_db`` below the maximum. The same as
    ``librosa.power_to_db(librosa.feature.melspectrogram(..., center=True, pad_mode='constant',
    power=2.0, htk=False, norm='slaney'), ref=1.0, amin=amin, top_db=top_db)`` to float rounding.

    ``exact=True``: MulanDSP's own arithmetic, with libavutil's float32 FFT (the same ``av_tx``
    transform, called through ctypes): bit for bit what mulan-train computes when both use the same
    libavutil on the same kind of CPU (av_tx picks its SIMD code by CPU); tested equal. Raises
    RuntimeError where libavutil cannot be loaded. ``exact=False``: NumPy only (a double-precision
    FFT, a dense filterbank product, log10): within 1e-4 relative of mulan-train (max |Δ| / max
    |value|; up to 4e-5 measured, from MulanDSP's float32 FFT in cells ~70 dB below a frame's peak).
    ``exact=None`` (the default): as ``$MULAN_TORCH_EXACT_LOG_MEL`` says (1 exact, 0 NumPy); unset,
    exact where libavutil loads, else NumPy with a RuntimeWarning (once per process).

    With ``cfg.scale`` ``"log10(10000x+1)"`` (musicnn's front end) the features are
    ``log10(10000 · power + 1)`` instead of dB, always from the NumPy path (``exact`` is ignored);
    within 1e-4 of librosa with musicnn's settings (python/tests/test_musicnn.py).
    """
    if cfg.scale == MUSICNN_SCALE:  # musicnn's front end: the NumPy path (docs/pretrained-audio.md)
        return _log_mel_numpy(samples, cfg)
    if exact is None:
        exact = _default_exact()
    if exact:
        return _log_mel_exact(samples, cfg)
    return _log_mel_numpy(samples, cfg)


# --------------------------------------------------------------------------------------------
# Pitch-class profiles (the input of the pitch-class branch, ``mulan-train --pitch-profiles``)
# --------------------------------------------------------------------------------------------

PITCH_CLASSES = 12
"""Bins of a pitch-class profile: C, C#, D, …, B (C = 0)."""
PITCH_LOWEST_NOTE = 36
"""The lowest MIDI note counted: C2 (65.406 Hz)."""
PITCH_HIGHEST_NOTE = 96
"""The first MIDI note no longer counted: C7 (2093.005 Hz)."""
PITCH_SILENT_FRAME = 1e-10
"""A frame counts when its pitch-class power totals more than this."""


def pitch_fft_size(sample_rate: int) -> int:
    """The pitch-class profile's FFT length: the smallest power of two ≥ 0.2 · ``sample_rate``
    (16 kHz: 4096; 22.05 kHz: 8192); its hop is half of it."""
    n = 1
    while n < 0.2 * sample_rate:
        n <<= 1
    return n


def _note_frequency(note: int) -> float:
    """The frequency of MIDI note ``note`` in Hz (A4 = 69 = 440 Hz)."""
    return 440.0 * 2.0 ** ((note - 69) / 12)


@lru_cache(maxsize=8)
def _pitch_tables(sample_rate: int) -> Tuple[np.ndarray, np.ndarray]:
    """(the periodic Hann window of the FFT length, float64; a [N/2 + 1, 12] float64 matrix whose row
    k is the one-hot pitch class of bin k, all zeros for the bins not counted)."""
    if sample_rate <= 0:
        raise ValueError(f"pitch-class profiles need a positive sample rate, got {sample_rate}")
    n = pitch_fft_size(sample_rate)
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n, dtype=np.float64) / n)
    low, high = _note_frequency(PITCH_LOWEST_NOTE), _note_frequency(PITCH_HIGHEST_NOTE)
    classes = np.zeros((n // 2 + 1, PITCH_CLASSES), dtype=np.float64)
    for k in range(1, n // 2):
        f = k * sample_rate / n
        if low <= f < high:
            note = round(69 + 12 * math.log2(f / 440))  # half to even; no bin lies on a half
            classes[k, note % PITCH_CLASSES] = 1.0
    window.setflags(write=False)
    classes.setflags(write=False)
    return window, classes


def pitch_class_frames(samples: np.ndarray, sample_rate: int) -> np.ndarray:
    """The per-frame pitch-class power of mono ``samples`` at ``sample_rate``: float64
    [frames, 12], unnormalized, silent frames included (``pitch_class_profile`` describes the
    frames and bins)."""
    x = np.asarray(samples, dtype=np.float64)
    if x.ndim != 1:
        raise ValueError(f"pitch-class profiles need mono samples (a 1-D array), got shape {x.shape}")
    window, classes = _pitch_tables(sample_rate)
    n = window.shape[0]
    if x.shape[0] < n:  # one frame, zero-padded
        x = np.concatenate([x, np.zeros(n - x.shape[0])])
    frames = np.lib.stride_tricks.sliding_window_view(x, n)[:: n // 2]  # starts 0, hop, 2·hop, … (start + N ≤ len)
    spectrum = np.fft.rfft(frames * window, axis=1)
    power = np.square(spectrum.real) + np.square(spectrum.imag)
    return power @ classes


def pitch_class_profile(samples: np.ndarray, sample_rate: int) -> np.ndarray:
    """The 12-bin pitch-class profile of a window of mono ``samples`` at ``sample_rate``, float32
    [12] (C = 0), as mulan-train's ``PitchClassProfile`` computes it (docs/training.md, "Pitch-class
    branch"); the input of the pitch-class branch (``mulan_torch.model.PitchClassBranch``).

    FFT length N = ``pitch_fft_size(sample_rate)``, hop N/2, a periodic Hann window of length N, no
    centring: frames start at 0, hop, 2·hop, … while start + N ≤ ``len(samples)`` (fewer samples than
    N: one frame, zero-padded). The power |X_k|² (an unnormalized real FFT) of every bin k in
    1 … N/2 − 1 whose frequency f = k · sr / N lies in [C2, C7) = [65.406, 2093.005) Hz adds to pitch
    class ``round(69 + 12 · log2(f / 440)) mod 12``. A frame whose 12 sums total at most 1e-10 is
    skipped; every other frame is divided by its total, and the profile is the mean over the counted
    frames: it sums to 1, or is all zeros when no frame counts (silence). Computed in double
    precision (mulan-train: float32), so the two agree to float32 rounding, not bit for bit.

    The samples are those of the window the log-mel of the same example sees (zero-padded alike:
    ``crop_window``, ``MulanModel.window``).
    """
    frames = pitch_class_frames(samples, sample_rate)
    totals = frames.sum(axis=1)
    counted = totals > PITCH_SILENT_FRAME
    if not counted.any():
        return np.zeros(PITCH_CLASSES, dtype=np.float32)
    normalized = frames[counted] / totals[counted, None]
    return normalized.mean(axis=0).astype(np.float32)


def pitch_class_profiles(windows: Sequence[np.ndarray], sample_rate: int) -> np.ndarray:
    """``pitch_class_profile`` of each window (a sequence of 1-D arrays, or a [B, samples] array):
    float32 [B, 12], the ``pitch_classes`` a model with a pitch-class branch takes beside the
    windows' log-mel."""
    out = np.zeros((len(windows), PITCH_CLASSES), dtype=np.float32)
    for i, w in enumerate(windows):
        out[i] = pitch_class_profile(w, sample_rate)
    return out


# --------------------------------------------------------------------------------------------
# SpecAugment
# --------------------------------------------------------------------------------------------


def spec_augment_masks(
    mel_bands: int, frames: int, cfg: SpecAugmentConfig, random: RandomSource
) -> Tuple[List[Tuple[int, int]], List[Tuple[int, int]]]:
    """``SpecAugment.masks``: the (first, end) bands of each frequency mask, then the (first, end)
    frames of each time mask, drawn from ``random`` as Swift draws them (width uniform in 0…widest,
    then first uniform in 0…extent − width, each ``next(upperBound:)``)."""

    def draw(count: int, width: int, extent: int) -> List[Tuple[int, int]]:
        if extent <= 0:
            return []
        widest = min(max(width, 0), extent)
        ranges = []
        for _ in range(max(count, 0)):
            w = random.below(widest + 1)
            start = random.below(extent - w + 1)
            ranges.append((start, start + w))
        return ranges

    fraction = min(max(cfg.max_time_fraction, 0.0), 1.0) if math.isfinite(cfg.max_time_fraction) else 1.0
    time_limit = min(cfg.max_time_width, int(math.floor(fraction * float(max(frames, 0)))))
    frequency = draw(cfg.frequency_masks, cfg.max_frequency_width, mel_bands)
    time = draw(cfg.time_masks, time_limit, frames)
    return frequency, time


def apply_masks(values: np.ndarray, frequency: List[Tuple[int, int]], time: List[Tuple[int, int]]) -> None:
    """``SpecAugment.apply(_:to:)``: sets the masked bands and frames of ``values`` [mel_bands, frames]
    to the mean of all values before masking (summed in double precision in row-major order, as
    Swift sums them, then rounded to float32)."""
    if values.size == 0 or (not frequency and not time):
        return
    mel_bands, frames = values.shape
    mean = np.float32(np.cumsum(values, dtype=np.float64)[-1] / values.size)
    for first, end in frequency:
        values[max(first, 0) : min(end, mel_bands), :] = mean
    for first, end in time:
        values[:, max(first, 0) : min(end, frames)] = mean


def spec_augment(values: np.ndarray, cfg: SpecAugmentConfig, random: RandomSource) -> None:
    """Masks ``values`` (float32 [mel_bands, frames]) in place, drawing from ``random`` exactly as
    Swift's ``SpecAugment.apply`` does: no draw at all when the configuration has no masks."""
    if values.ndim != 2:
        raise ValueError(f"spec_augment needs a [mel_bands, frames] array, got shape {values.shape}")
    if cfg.frequency_masks <= 0 and cfg.time_masks <= 0:
        return
    frequency, time = spec_augment_masks(values.shape[0], values.shape[1], cfg, random)
    apply_masks(values, frequency, time)


# --------------------------------------------------------------------------------------------
# Windows and training examples
# --------------------------------------------------------------------------------------------


# The example's generator and its window offset are the sampler's (mulan_torch.sampler), which draws
# the same windows for MulanShards; re-exported here as this module's names.
example_random = _sampler.example_random
training_window_offset = _sampler.window_offset


def crop_window(samples: np.ndarray, offset: int, length: int) -> np.ndarray:
    """``AudioFrontEnd.window``: ``length`` samples from ``offset``; a clip no longer than one window
    is zero-padded to it."""
    if samples.shape[0] <= length:
        out = np.zeros(length, dtype=np.float32)
        out[: samples.shape[0]] = samples
        return out
    if not 0 <= offset <= samples.shape[0] - length:
        raise ValueError(f"window offset {offset} is outside 0…{samples.shape[0] - length}")
    return np.asarray(samples[offset : offset + length], dtype=np.float32)


def evaluation_window_offsets(sample_count: int, window_samples: int) -> List[int]:
    """``AudioFrontEnd.clipWindowOffsets``: the start, middle and end windows, as MuLan scores a clip."""
    span = max(0, sample_count - window_samples)
    return [0, span // 2, span]


def training_example(samples: np.ndarray, cfg: FrontEndConfig, step: int, index: int) -> Tuple[int, np.ndarray]:
    """``AudioFrontEnd.trainingExample``: example ``index`` of batch ``step`` from a clip's decoded
    samples: (window offset, float32 [mel_bands, frames] log-mel with SpecAugment when configured)."""
    random = example_random(cfg.seed, step, index)
    w = cfg.window_samples
    offset = training_window_offset(samples.shape[0], w, random)
    values = log_mel(crop_window(samples, offset, w), cfg.log_mel)
    if cfg.spec_augment is not None:
        spec_augment(values, cfg.spec_augment, random)
    return offset, values


# --------------------------------------------------------------------------------------------
# Batches in torch
# --------------------------------------------------------------------------------------------


def log_mel_torch(batch: "torch.Tensor", cfg: LogMelConfig) -> "torch.Tensor":
    """``log_mel`` for a batch of equal-length windows, float32 [B, samples] → [B, mel_bands, frames],
    on the batch's device (for example a GPU), with the NumPy ``log_mel``'s arithmetic: the same centred,
    zero-padded frames times the float32 periodic Hann window, a double-precision real FFT, float32
    power through the same mel filterbank, and the ``top_db`` floor taken per example (each
    example's own maximum). Within 1e-4 relative of MulanDSP (tested; up to 4e-5 measured), as
    ``log_mel(exact=False)``; not the exact path's bit-for-bit equality."""
    import torch
    import torch.nn.functional as F

    window, filters = _tables(cfg)
    if batch.dim() != 2:
        raise ValueError(f"log_mel_torch needs a [batch, samples] tensor, got shape {tuple(batch.shape)}")
    x = batch.to(torch.float32)
    frames = cfg.frame_count(x.shape[1])
    if frames == 0:
        return x.new_zeros((x.shape[0], cfg.mel_bands, 0))
    n, win, hop = cfg.n_fft, cfg.window_length, cfg.hop_length
    lead = (n - win) // 2  # zeros before the window (librosa's pad_center)
    padded = F.pad(x, (n // 2, n // 2))
    chunks = padded[:, lead:].unfold(1, win, hop)[:, :frames]  # [B, frames, win]
    windowed = (chunks * torch.from_numpy(window).to(x.device)).to(torch.float64)
    spectrum = torch.fft.rfft(F.pad(windowed, (lead, n - lead - win)), dim=2)  # [B, frames, bins]
    power = (spectrum.real.square() + spectrum.imag.square()).to(torch.float32)
    mel = torch.matmul(torch.from_numpy(filters).to(x.device), power.transpose(1, 2))  # [B, mel_bands, frames]
    if cfg.scale == MUSICNN_SCALE:
        return torch.log10(mel.clamp_min(0).to(torch.float64) * 10000.0 + 1.0).to(torch.float32)
    db = torch.log10(torch.clamp_min(mel, float(np.float32(cfg.amin)))) * 10
    if cfg.top_db is not None:
        floor = db.amax(dim=(1, 2), keepdim=True) - float(np.float32(cfg.top_db))
        db = torch.maximum(db, floor)
    return db
