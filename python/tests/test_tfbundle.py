"""mulan_torch.tfbundle (TensorFlow checkpoint bundles without TensorFlow) and the musicnn converter:
round trips through bundles the tests write themselves (tfbundle_writer), and bad input."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from mulan_torch import musicnn
from mulan_torch.tfbundle import BundleError, TensorBundle, crc32c, mask_crc, snappy_decompress, unmask_crc

from tfbundle_writer import snappy_compress, varint, write_bundle

ROOT = Path(__file__).resolve().parents[2]


def _tensors(seed: int = 0) -> dict:
    """Names with long shared prefixes, a 200-byte name (multi-byte key lengths), sizes and offsets
    past 127 and 16383 (multi-byte varints), a scalar, an empty tensor, several dtypes."""
    rng = np.random.default_rng(seed)
    t = {
        "": None,
        "a": np.float32(rng.standard_normal()),
        "batch_normalization/beta": rng.standard_normal(3).astype(np.float32),
        "batch_normalization/gamma": rng.standard_normal(3).astype(np.float32),
        "batch_normalization_1/beta": rng.standard_normal(204).astype(np.float32),
        "batch_normalization_10/moving_variance": rng.standard_normal(200).astype(np.float32),
        "conv2d/kernel": rng.standard_normal((7, 38, 1, 20)).astype(np.float32),
        "conv2d/kernel/Adam": rng.standard_normal((7, 38, 1, 20)).astype(np.float32),
        "conv2d/kernel/Adam_1": rng.standard_normal((7, 38, 1, 20)).astype(np.float32),
        "counts": rng.integers(-5, 5, size=(4, 5)).astype(np.int64),
        "doubles": rng.standard_normal((2, 3)).astype(np.float64),
        "empty": np.zeros((0, 4), dtype=np.float32),
        "ints": np.arange(300, dtype=np.int32),
        "bytes": rng.integers(0, 255, size=(5000,)).astype(np.uint8),
        "big": rng.standard_normal((70, 300)).astype(np.float32),
        "x" * 200: rng.standard_normal(2).astype(np.float32),
    }
    del t[""]
    for k in range(40):  # enough entries for several restart intervals and blocks
        t[f"layer_{k:03d}/weights"] = rng.standard_normal(k + 1).astype(np.float32)
    return t


def _check(prefix: str, tensors: dict) -> TensorBundle:
    bundle = TensorBundle(prefix)
    assert bundle.names() == sorted(tensors)
    for name, value in tensors.items():
        got = bundle.tensor(name)
        assert got.dtype == np.asarray(value).dtype and got.shape == np.asarray(value).shape, name
        np.testing.assert_array_equal(got, value, err_msg=name)
    return bundle


def test_crc32c_known_values():
    assert crc32c(b"123456789") == 0xE3069283
    assert crc32c(b"") == 0
    assert crc32c(bytes(32)) == 0x8A9136AA  # RFC 3720's test vector: 32 bytes of zeros
    data = np.random.default_rng(1).integers(0, 256, size=200_003).astype(np.uint8).tobytes()
    from mulan_torch.tfbundle import _crc_update_python
    assert crc32c(data) == _crc_update_python(0xFFFFFFFF, data) ^ 0xFFFFFFFF  # the chunked path
    assert unmask_crc(mask_crc(0x12345678)) == 0x12345678


def test_snappy_round_trip_and_errors():
    data = (b"abcdefgh" * 50 + bytes(range(256)) * 3 + b"xyz" * 1000 + os.urandom(300)) * 2
    compressed = snappy_compress(data)
    assert len(compressed) < len(data)
    assert snappy_decompress(compressed, "t") == data
    # a literal of 3 then an overlapping copy (offset 1, length 5): "abc" + "ccccc"
    assert snappy_decompress(varint(8) + bytes([2 << 2]) + b"abc" + bytes([2 | (4 << 2)]) + (1).to_bytes(2, "little"),
                             "t") == b"abcccccc"
    with pytest.raises(BundleError, match="before the start"):
        snappy_decompress(varint(4) + bytes([2 | (3 << 2)]) + (1).to_bytes(2, "little"), "t")
    with pytest.raises(BundleError, match="header says"):
        snappy_decompress(varint(9) + bytes([2 << 2]) + b"abc", "t")


@pytest.mark.parametrize("shards,block_size,interval,compress", [
    (1, 4096, 16, False),      # musicnn's own layout: one shard, 4 KiB blocks
    (1, 64, 3, False),         # many small blocks, short restart intervals
    (3, 200, 1, False),        # three data shards, a restart at every entry
    (2, 300, 16, True),        # snappy-compressed blocks
])
def test_reader_round_trip(tmp_path, shards, block_size, interval, compress):
    tensors = _tensors()
    prefix = str(tmp_path / "model.ckpt")
    write_bundle(prefix, tensors, num_shards=shards, block_size=block_size, restart_interval=interval, compress=compress)
    bundle = _check(prefix, tensors)
    assert bundle.num_shards == shards
    assert {e.shard_id for e in bundle.entries.values()} == set(range(shards))
    assert max(e.offset for e in bundle.entries.values()) > 16383


def test_reader_without_crcs(tmp_path):
    tensors = _tensors(2)
    write_bundle(str(tmp_path / "m"), tensors, with_crc=False)
    _check(str(tmp_path / "m"), tensors)


def _musicnn_bundle(tmp_path: Path, architecture: str, seed: int = 0, drop: str = "", name: str = "MSD_x") -> tuple:
    """A model folder holding a bundle with every TensorFlow variable of ``architecture`` (random
    values of musicnn's shapes, plus Adam slots and beta powers as in musicnn's files)."""
    rng = np.random.default_rng(seed)
    tower = musicnn.build_tower(architecture)
    shapes = {n: tuple(t.shape) for n, t in tower.state_dict().items()}
    tf = {}
    for ours, (tf_name, rule) in musicnn.name_map(architecture).items():
        s = shapes[ours]
        tf_shape = s if rule == "id" else (s[2], s[1], 1, s[0]) if rule == "conv1d" else s[::-1]
        tf[tf_name] = rng.standard_normal(tf_shape).astype(np.float32)
    for n in list(tf)[:4]:
        tf[n + "/Adam"] = np.zeros_like(tf[n])
    tf["beta1_power"] = np.float32(0.9)
    tf.pop(drop, None)
    folder = tmp_path / name
    folder.mkdir()
    write_bundle(str(folder) + "/", tf)
    return folder, tf


@pytest.mark.parametrize("architecture", ["musicnn", "vgg"])
def test_converter_round_trip(tmp_path, architecture):
    folder, tf = _musicnn_bundle(tmp_path, architecture)
    out = tmp_path / "out.safetensors"
    r = subprocess.run([sys.executable, "-m", "mulan_torch.musicnn", "convert", "--model-dir", str(folder),
                        "--out", str(out)], capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(ROOT / "python")))
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["architecture"] == architecture
    tower, meta = musicnn.load_pretrained(str(out))
    assert meta["format"] == "mulan-pretrained-audio" and meta["architecture"] == architecture
    assert meta["source"] == "musicnn 0.1.0 MSD_x" and meta["licence"] == "ISC"
    assert json.loads(meta["tags"]) == musicnn.MSD_TAGS
    assert {k: meta[k] for k in ("sample_rate", "n_fft", "hop", "n_mels", "patch_frames", "log")} == {
        "sample_rate": "16000", "n_fft": "512", "hop": "256", "n_mels": "96", "patch_frames": "187",
        "log": "log10(10000x+1)"}
    sd = tower.state_dict()
    # Layouts, element by element, from the contract's rules
    if architecture == "musicnn":
        k = tf["conv2d/kernel"]  # [7 time, 38 bands, 1, 204]
        w = sd["timbral.0.conv.weight"]  # [204, 1, 38, 7]
        for (o, f, t) in [(0, 0, 0), (203, 37, 6), (17, 5, 2)]:
            assert w[o, 0, f, t].item() == k[t, f, 0, o]
        k = tf["conv2d_2/kernel"]  # [128, 1, 1, 51]
        assert sd["temporal.0.conv.weight"][50, 0, 0, 127].item() == k[127, 0, 0, 50]
        k = tf["conv2d_5/kernel"]  # [7, 561, 1, 64]
        assert sd["midend.0.conv.weight"][63, 560, 6].item() == k[6, 560, 0, 63]
        assert sd["midend.0.conv.weight"][1, 2, 3].item() == k[3, 2, 0, 1]
        k = tf["dense/kernel"]  # [1506, 200]: the interleaved (max, mean) order is kept
        assert sd["backend.dense.weight"][199, 1505].item() == k[1505, 199]
        assert sd["backend.dense.weight"][3, 2].item() == k[2, 3]
        np.testing.assert_array_equal(sd["backend.pool_bn.running_var"].numpy(), tf["batch_normalization_9/moving_variance"])
        np.testing.assert_array_equal(sd["backend.dense_bn.weight"].numpy(), tf["batch_normalization_10/gamma"])
        np.testing.assert_array_equal(sd["backend.logits.weight"].numpy(), tf["dense_1/kernel"].T)
        np.testing.assert_array_equal(sd["input_bn.bias"].numpy(), tf["batch_normalization/beta"])
    else:
        k = tf["3CNN/kernel"]  # [3 time, 3 bands, 128, 128]
        assert sd["blocks.2.conv.weight"][5, 7, 0, 2].item() == k[2, 0, 7, 5]
        np.testing.assert_array_equal(sd["blocks.4.bn.running_mean"].numpy(), tf["batch_normalization_5/moving_mean"])
        np.testing.assert_array_equal(sd["logits.weight"].numpy(), tf["dense/kernel"].T)
    # every tensor came from the bundle: the converted model differs from a fresh one everywhere
    fresh = musicnn.build_tower(architecture).state_dict()
    for name in sd:
        assert not torch.equal(sd[name], fresh[name]), name


def _convert_error(folder: Path, tmp_path: Path) -> str:
    with pytest.raises((musicnn.MusicnnError, BundleError)) as info:
        musicnn.convert(str(folder), str(tmp_path / "bad.safetensors"))
    assert not (tmp_path / "bad.safetensors").exists()
    return str(info.value)


def test_bad_input_another_architecture(tmp_path):
    folder = tmp_path / "MSD_other"
    folder.mkdir()
    write_bundle(str(folder) + "/", {"dense/kernel": np.zeros((3, 2), np.float32), "resnet/conv1": np.zeros(3, np.float32)})
    message = _convert_error(folder, tmp_path)
    assert "not a musicnn or vgg checkpoint" in message and str(folder) in message


def test_bad_input_wrong_shape(tmp_path):
    # musicnn's names with a bigger mid-end (as MSD_musicnn_big: 512 filters)
    folder, tf = _musicnn_bundle(tmp_path, "musicnn")
    tf["conv2d_5/kernel"] = np.zeros((7, 561, 1, 512), np.float32)
    write_bundle(str(folder) + "/", tf)
    message = _convert_error(folder, tmp_path)
    assert "conv2d_5/kernel" in message and "[7, 561, 1, 512]" in message and "another architecture" in message


def test_bad_input_missing_tensor(tmp_path):
    folder, _ = _musicnn_bundle(tmp_path, "musicnn", drop="batch_normalization_10/gamma")
    message = _convert_error(folder, tmp_path)
    assert "lacks tensor batch_normalization_10/gamma" in message and "backend.dense_bn.weight" in message


def test_bad_input_truncated_data(tmp_path):
    folder, _ = _musicnn_bundle(tmp_path, "vgg")
    data = folder / ".data-00000-of-00001"
    data.write_bytes(data.read_bytes()[: data.stat().st_size // 2])
    message = _convert_error(folder, tmp_path)
    assert str(data) in message and "the data file is truncated" in message and ": tensor batch_normalization/gamma (4 bytes" in message


def test_bad_input_damaged_data_and_index(tmp_path):
    folder, tf = _musicnn_bundle(tmp_path, "vgg")
    data = folder / ".data-00000-of-00001"
    bundle = TensorBundle(str(folder) + "/")
    entry = bundle.entries["2CNN/kernel"]
    raw = bytearray(data.read_bytes())
    raw[entry.offset + 1000] ^= 0x40
    data.write_bytes(bytes(raw))
    message = _convert_error(folder, tmp_path)
    assert "2CNN/kernel fails its CRC-32C check" in message and str(data) in message
    index = folder / ".index"
    raw = bytearray(index.read_bytes())
    raw[40] ^= 0x01
    index.write_bytes(bytes(raw))
    assert "fails its CRC-32C check; the index file is damaged" in _convert_error(folder, tmp_path)
    index.write_bytes(b"not a table" * 10)
    assert "not a TensorFlow checkpoint index" in _convert_error(folder, tmp_path)
    index.unlink()
    assert "holds no .index file" in _convert_error(folder, tmp_path)


def test_cli_exit_status_on_bad_input(tmp_path):
    folder = tmp_path / "MTT_y"
    folder.mkdir()
    write_bundle(str(folder) + "/", {"w": np.zeros(2, np.float32)})
    r = subprocess.run([sys.executable, "-m", "mulan_torch", "musicnn", "convert", "--model-dir", str(folder),
                        "--out", str(tmp_path / "o.safetensors")], capture_output=True, text=True,
                       env=dict(os.environ, PYTHONPATH=str(ROOT / "python")))
    assert r.returncode == 1 and "not a musicnn or vgg checkpoint" in r.stderr and str(folder) in r.stderr


def test_load_pretrained_rejects_other_mel_settings(tmp_path):
    folder, _ = _musicnn_bundle(tmp_path, "vgg", name="MTT_z")
    out = tmp_path / "v.safetensors"
    musicnn.convert(str(folder), str(out))
    from safetensors.numpy import load_file, save_file
    from safetensors import safe_open
    with safe_open(str(out), framework="np") as f:
        meta = dict(f.metadata())
    tensors = load_file(str(out))
    meta["n_mels"] = "128"
    save_file(tensors, str(tmp_path / "w.safetensors"), metadata=meta)
    with pytest.raises(musicnn.MusicnnError, match=r"w.safetensors: mel setting n_mels is '128'"):
        musicnn.load_pretrained(str(tmp_path / "w.safetensors"))
