"""The shards as the rest of the PyTorch world reads them, each checked with the real consumer:

- LAION-CLAP (the ``laion-clap`` package): its own ``select_text`` and ``get_dataset_size``, taken
  from the installed ``laion_clap/training/data.py`` (importing that module downloads tokenizers
  and calls ``np.in1d``, gone from numpy 2.4, so the two functions are compiled from its source);
- ``wids.ShardListDataset`` over each split's ``SPLIT.wids.json``;
- Hugging Face ``datasets.load_dataset(DATASET, streaming=True)`` through the dataset card;
- ``mulan-torch export-parquet`` read back with pandas;
- a CLAP-style 48 kHz dataset (``mulan-ingest --sample-rate 48000``).

The reference reader for what the shards hold is Python's ``tarfile``.
"""

from __future__ import annotations

import ast
import importlib.util
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any, Callable, Dict, List, Tuple

import pytest

from conftest import BuiltDataset, Track, build_dataset, sine

SOURCES = ("tags", "descriptions", "playlists", "aset")


def tar_samples(path: Path) -> List[Tuple[str, bytes, Dict[str, Any]]]:
    """(key, FLAC bytes, JSON) of each sample of a shard, in order, read with tarfile."""
    out: List[Tuple[str, bytes, Dict[str, Any]]] = []
    flac: Dict[str, bytes] = {}
    with tarfile.open(path) as tar:
        for member in tar:
            key, _, ext = member.name.partition(".")
            data = tar.extractfile(member).read()
            if ext == "flac":
                flac[key] = data
            elif ext == "json":
                out.append((key, flac.pop(key), json.loads(data)))
    assert not flac, f"{path}: FLAC members without JSON: {sorted(flac)}"
    return out


def dataset_samples(ds: BuiltDataset, split: str) -> List[Tuple[str, bytes, Dict[str, Any]]]:
    return [s for shard in ds.manifest["splits"][split]["shards"] for s in tar_samples(ds.path / split / shard)]


def documented_captions(meta: Dict[str, Any]) -> List[str]:
    """docs/shards.md's rule, written out here: each kept description; the kept tags joined with
    ', '; each kept playlist text; the kept AudioSet labels joined with ', '; each caption once."""
    texts = {source: [t["text"] for t in meta["texts"].get(source, [])] for source in SOURCES}
    candidates = list(texts["descriptions"])
    if texts["tags"]:
        candidates.append(", ".join(dict.fromkeys(texts["tags"])))
    candidates += texts["playlists"]
    if texts["aset"]:
        candidates.append(", ".join(dict.fromkeys(texts["aset"])))
    return list(dict.fromkeys(candidates))


def clap_functions() -> Tuple[Callable[..., Any], Callable[..., Any], Path]:
    """``select_text`` and ``get_dataset_size`` of the installed laion-clap, compiled from its source."""
    spec = importlib.util.find_spec("laion_clap")
    assert spec is not None and spec.origin, "laion-clap is not installed: run scripts/setup.sh --python"
    source = Path(spec.origin).parent / "training" / "data.py"
    tree = ast.parse(source.read_text(encoding="utf-8"))
    wanted = {"select_text", "get_dataset_size"}
    nodes = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name in wanted]
    assert {n.name for n in nodes} == wanted, f"{source} no longer defines {wanted}"
    import braceexpand

    namespace: Dict[str, Any] = {"json": json, "os": os, "ast": ast, "braceexpand": braceexpand, "dataset_split": {}}
    exec(compile(ast.Module(body=nodes, type_ignores=[]), str(source), "exec"), namespace)
    return namespace["select_text"], namespace["get_dataset_size"], source


# LAION-CLAP ---------------------------------------------------------------------------------------


def test_laion_clap_reads_text_and_sizes(four_source_dataset: BuiltDataset) -> None:
    select_text, get_dataset_size, _ = clap_functions()
    ds = four_source_dataset
    seen_sources = set()
    for split, info in ds.manifest["splits"].items():
        last = len(info["shards"]) - 1
        pattern = f"{ds.path}/{split}/shard-{{000000..{last:06d}}}.tar" if last > 0 else f"{ds.path}/{split}/shard-000000.tar"
        assert get_dataset_size(pattern) == (info["samples"], len(info["shards"]))
        assert get_dataset_size([str(ds.path / split / s) for s in info["shards"]]) == (info["samples"], len(info["shards"]))
        for key, _, meta in dataset_samples(ds, split):
            seen_sources |= set(meta["texts"])
            for selection in (None, "none", "all"):
                texts = select_text(meta, selection)
                # What preprocess_single does next: a list of strings, one picked when there are several.
                assert isinstance(texts, list) and texts and all(isinstance(t, str) and t for t in texts), key
            assert meta["text"] == documented_captions(meta), key
            assert meta["tag"] == list(dict.fromkeys(t["text"] for t in meta["texts"].get("tags", []))), key
    # The fixture has kept texts of every source, so every caption rule was exercised.
    assert seen_sources == set(SOURCES)


def test_laion_clap_class_labels_from_tag(four_source_dataset: BuiltDataset) -> None:
    """CLAP's class_label: ones where a class name is in json["tag"] (np.in1d in 1.1.7; np.isin here)."""
    import numpy as np

    _, _, source = clap_functions()
    assert 'np.in1d(list(class_index_dict.keys()), json_dict_raw["tag"])' in source.read_text(encoding="utf-8")
    samples = [s for split in four_source_dataset.split_names() for s in dataset_samples(four_source_dataset, split)]
    classes = sorted({tag for _, _, meta in samples for tag in meta["tag"]})
    assert classes == ["ambient", "jazz", "rock"]
    for _, _, meta in samples:
        labels = np.isin(classes, meta["tag"]).astype(float)
        assert labels.sum() == len(meta["tag"]) >= 1


# wids ---------------------------------------------------------------------------------------------


def as_bytes(sample: Dict[str, Any]) -> Dict[str, Any]:
    """A wids transformation: each member's stream read into bytes."""
    return {k: (v.read() if hasattr(v, "read") else v) for k, v in sample.items()}


def test_wids_indexed_access_and_exact_epochs(four_source_dataset: BuiltDataset, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    import wids

    # wids' default cache names each shard by its whole url; an explicit cache_dir names it by file
    # name alone, where every split's shard-000000.tar would be the same file (docs/shards.md).
    monkeypatch.setenv("WIDS_CACHE", str(tmp_path / "cache"))
    ds = four_source_dataset
    for split, info in ds.manifest["splits"].items():
        expected = dataset_samples(ds, split)
        index = json.loads((ds.path / f"{split}.wids.json").read_text())
        assert index["wids_version"] == 1 and index["name"].endswith(split)
        # wids' default decoder wants PIL for images; read the members as bytes instead.
        dataset = wids.ShardListDataset(str(ds.path / f"{split}.wids.json"), transformations=[as_bytes])
        assert len(dataset) == info["samples"] == len(expected)
        for i, (key, flac, meta) in enumerate(expected):
            sample = dataset[i]
            assert sample["__key__"] == key
            assert json.loads(sample[".json"]) == meta
            assert sample[".flac"] == flac
        # One epoch of wids' sampler visits every sample exactly once.
        order = list(iter(wids.ShardedSampler(dataset)))
        assert sorted(order) == list(range(len(dataset)))
        dataset.close()


# Hugging Face datasets ----------------------------------------------------------------------------


def test_hf_datasets_streaming_reads_every_split(four_source_dataset: BuiltDataset) -> None:
    import datasets

    ds = four_source_dataset
    loaded = datasets.load_dataset(str(ds.path), streaming=True)
    # The folder names stay the split names: valid is not renamed validation.
    assert sorted(loaded.keys()) == ds.split_names() == ["test", "train", "valid"]
    assert loaded["train"].features["flac"] == datasets.Value("binary")
    for split, info in ds.manifest["splits"].items():
        rows = list(loaded[split])
        expected = dataset_samples(ds, split)
        assert len(rows) == info["samples"] == len(expected)
        assert [r["__key__"] for r in rows] == [key for key, _, _ in expected]
        for row, (key, flac, meta) in zip(rows, expected):
            assert row["flac"] == flac
            got = row["json"]
            # Every field of the sample arrives; sources the sample lacks are null, not dropped fields.
            for name, value in meta.items():
                if name == "texts":
                    for source in SOURCES:
                        assert got["texts"][source] == value.get(source), (key, source)
                elif name == "provenance":
                    for field, v in value.items():
                        if field == "filter_versions":
                            assert {s: got[name][field][s] for s in v} == v
                        else:
                            assert got[name][field] == v
                else:
                    assert got[name] == value, (key, name)


def test_hf_datasets_without_streaming(four_source_dataset: BuiltDataset, tmp_path: Path) -> None:
    """Without streaming too (the card's num_examples are checked by datasets itself), with no audio
    backend installed: the FLAC bytes decode with soundfile."""
    import datasets
    import soundfile

    ds = four_source_dataset
    loaded = datasets.load_dataset(str(ds.path), cache_dir=str(tmp_path / "hf-cache"))
    assert {split: loaded[split].num_rows for split in loaded} == {
        split: info["samples"] for split, info in ds.manifest["splits"].items()}
    first = loaded["valid"][0]
    audio, rate = soundfile.read(io.BytesIO(first["flac"]))
    assert rate == first["json"]["sample_rate"] == 16000 and len(audio) == 5 * rate


def test_hf_datasets_without_the_card_fails_as_reported(four_source_dataset: BuiltDataset, tmp_path: Path) -> None:
    """The defect the card fixes (GUIDE §10): without README.md, datasets reads the sidecars and
    sizes.json as data. Kept as a test so that the card stays necessary and sufficient."""
    import datasets

    from datasets.table import CastError

    copy = tmp_path / "no-card"
    shutil.copytree(four_source_dataset.path, copy)
    (copy / "README.md").unlink()
    loaded = datasets.load_dataset(str(copy), streaming=True)
    assert sorted(loaded.keys()) == ["test", "train", "validation"]  # valid renamed
    first = next(iter(loaded["train"]))
    assert "sha256" in first and "flac" not in first  # a shard's sidecar, read as a sample
    with pytest.raises(CastError):
        for _ in loaded["train"]:  # then sizes.json, whose columns differ
            pass


# Parquet ------------------------------------------------------------------------------------------


def export(dataset: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mulan_torch", "export-parquet", str(dataset), *extra],
                          capture_output=True, text=True)


def test_parquet_export_counts_against_dataset_json(four_source_dataset: BuiltDataset, tmp_path: Path) -> None:
    import pandas

    ds = four_source_dataset
    out = tmp_path / "samples.parquet"
    result = export(ds.path, "--out", str(out))
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    frame = pandas.read_parquet(out)
    total = sum(info["samples"] for info in ds.manifest["splits"].values())
    assert len(frame) == summary["rows"] == total
    assert not list(tmp_path.glob(".*.tmp"))
    for split, info in ds.manifest["splits"].items():
        rows = frame[frame["split"] == split]
        assert len(rows) == info["samples"]
        for source in SOURCES:
            assert int(rows[source].map(len).sum()) == info["texts_by_source"].get(source, 0), (split, source)
        expected = dataset_samples(ds, split)
        assert list(rows["key"]) == [key for key, _, _ in expected]
        assert list(rows["split_index"]) == list(range(info["samples"]))
        for (_, row), (key, flac, meta) in zip(rows.iterrows(), expected):
            assert row["shard"].startswith(f"{split}/shard-") and row["shard"].endswith(".tar")
            assert row["track_id"] == meta["track_id"] and row["clip_index"] == meta["clip_index"]
            assert row["start_s"] == meta["start_s"] and row["duration_s"] == meta["duration_s"]
            assert row["flac_bytes"] == len(flac) and row["flac_sha256"] == meta["provenance"]["flac_sha256"]
            assert row["lufs"] == pytest.approx(meta["lufs"]) if meta["lufs"] is not None else pandas.isna(row["lufs"])
            assert pandas.isna(row["duplicate_group"])  # no mulan-dedupe run
            for source in SOURCES:
                assert list(row[source]) == [t["text"] for t in meta["texts"].get(source, [])]
                assert row[f"filter_version_{source}"] == ds.manifest["filter_versions"].get(source)
            assert pandas.isna(row["audio_filter_version"])
    assert frame["key"].is_unique
    # The default place: beside the shards.
    result = export(ds.path, "--quiet")
    assert result.returncode == 0 and result.stdout == ""
    assert len(pandas.read_parquet(ds.path / "samples.parquet")) == total
    (ds.path / "samples.parquet").unlink()


def test_parquet_export_names_the_damaged_shard_and_member(four_source_dataset: BuiltDataset, tmp_path: Path) -> None:
    copy = tmp_path / "damaged"
    shutil.copytree(four_source_dataset.path, copy)
    shard = copy / "train" / "shard-000001.tar"
    original = shard.read_bytes()
    # A shard cut in half.
    shard.write_bytes(original[: len(original) // 2])
    result = export(copy)
    assert result.returncode == 1
    assert "train/shard-000001.tar" in result.stderr and "truncated" in result.stderr, result.stderr
    assert not (copy / "samples.parquet").exists() and not list(copy.glob(".*.tmp"))
    # A JSON member whose bytes were damaged.
    with tarfile.open(fileobj=io.BytesIO(original)) as tar:
        member = next(m for m in tar if m.name.endswith(".json"))
    damaged = bytearray(original)
    damaged[member.offset_data] = ord("X")
    shard.write_bytes(bytes(damaged))
    result = export(copy)
    assert result.returncode == 1
    assert f"train/shard-000001.tar, member {member.name}: not valid JSON" in result.stderr, result.stderr
    # A shard that lost its last sample (at a member boundary: a tar reader alone sees a shorter archive).
    shard.write_bytes(original)
    with tarfile.open(fileobj=io.BytesIO(original)) as tar:
        members = list(tar)
    cut = members[-2].offset  # the last sample's .flac header
    shard.write_bytes(original[:cut] + bytes(1024))
    result = export(copy)
    assert result.returncode == 1
    assert "train/shard-000001.tar: holds" in result.stderr and "sizes.json says" in result.stderr, result.stderr
    # Not a dataset folder; an unknown option: usage errors (64).
    result = export(tmp_path)
    assert result.returncode == 64 and "has no dataset.json" in result.stderr
    result = export(copy, "--bogus")
    assert result.returncode == 64 and "unrecognized arguments: --bogus" in result.stderr


# 48 kHz -------------------------------------------------------------------------------------------


def test_clap_style_48khz_dataset(tmp_path: Path) -> None:
    import soundfile

    tracks = [Track(f"h{i}", sine(300 + 100 * i, 6, rate=48000), "Jazz", "train") for i in range(2)]
    ds = build_dataset(tmp_path, tracks, sample_rate=48000, clip_seconds=5)
    assert ds.manifest["sample_rate"] == 48000
    _, get_dataset_size, _ = clap_functions()
    samples = dataset_samples(ds, "train")
    assert len(samples) == ds.manifest["splits"]["train"]["samples"] == 2
    assert get_dataset_size(f"{ds.path}/train/shard-000000.tar") == (2, 1)
    for key, flac, meta in samples:
        info = soundfile.info(io.BytesIO(flac))
        assert (info.format, info.samplerate, info.channels) == ("FLAC", 48000, 1), key
        assert meta["sample_rate"] == 48000 and info.frames == 5 * 48000
        assert meta["text"] == ["jazz"] and meta["tag"] == ["jazz"]
