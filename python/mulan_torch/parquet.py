"""``mulan-torch export-parquet DATASET``: one Parquet row per sample of a mulan-shard dataset.

The table is written beside the shards (``DATASET/samples.parquet`` unless told otherwise), first
under a temporary name (``.samples.parquet.tmp``) and renamed when complete, one row group per
shard, so memory does not grow with the dataset. Rows come in dataset order: split by name, then
shard by shard, then as the samples lie in the shard, so ``split_index`` is the index that
``wids.ShardListDataset(DATASET/SPLIT.wids.json)`` takes.

Columns: ``dataset_id``, ``split``, ``shard`` (relative to the dataset folder), ``index_in_shard``,
``split_index``, ``key``, ``track_id``, ``clip_index``, ``start_s``, ``duration_s``, ``sample_rate``,
the kept texts of each source (``tags``, ``descriptions``, ``playlists``, ``aset``: lists, empty
when none), ``lufs``, ``loudness_range``, ``true_peak_db`` (null when unknown),
``duplicate_group`` (null outside a group), ``filter_version_SOURCE`` for each source, the dataset's
``audio_filter_version`` (null when none), ``flac_sha256`` and ``flac_bytes``.

pyarrow is needed only here (``pip install 'mulan-torch[parquet]'``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

from .shardfiles import ShardError, UsageError, iter_shard, load_manifest, split_shards

SOURCES = ("tags", "descriptions", "playlists", "aset")


@dataclass
class ExportSummary:
    """What an export wrote."""

    path: Path
    rows: int = 0
    rows_by_split: Dict[str, int] = field(default_factory=dict)
    shards: int = 0


def _schema() -> Any:
    import pyarrow as pa

    text_list = pa.list_(pa.string())
    fields = [
        ("dataset_id", pa.string()), ("split", pa.string()), ("shard", pa.string()),
        ("index_in_shard", pa.int32()), ("split_index", pa.int64()), ("key", pa.string()),
        ("track_id", pa.string()), ("clip_index", pa.int32()), ("start_s", pa.float64()),
        ("duration_s", pa.float64()), ("sample_rate", pa.int32()),
    ]
    fields += [(source, text_list) for source in SOURCES]
    fields += [("lufs", pa.float64()), ("loudness_range", pa.float64()), ("true_peak_db", pa.float64()),
               ("duplicate_group", pa.string())]
    fields += [(f"filter_version_{source}", pa.string()) for source in SOURCES]
    fields += [("audio_filter_version", pa.string()), ("flac_sha256", pa.string()), ("flac_bytes", pa.int64())]
    return pa.schema(fields)


def _texts(meta: Dict[str, Any], source: str, where: str) -> List[str]:
    items = (meta.get("texts") or {}).get(source) or []
    try:
        return [str(item["text"]) for item in items]
    except (TypeError, KeyError):
        raise ShardError(f"{where}: texts.{source} is not a list of {{text, token_ids, raw_text_id}}") from None


def export_parquet(dataset: Path, out: Optional[Path] = None) -> ExportSummary:
    """Writes the sample table of ``dataset``; raises ShardError / UsageError naming what is wrong.

    Counts are checked against ``sizes.json`` (per shard) and ``dataset.json`` (per split) before the
    file is renamed into place; on any error nothing is left behind.
    """
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise UsageError("export-parquet needs pyarrow: pip install 'mulan-torch[parquet]'") from error

    dataset = Path(dataset)
    manifest = load_manifest(dataset)
    target = Path(out) if out is not None else dataset / "samples.parquet"
    tmp = target.with_name("." + target.name + ".tmp")
    schema = _schema()
    summary = ExportSummary(path=target)
    dataset_id = str(manifest.get("dataset_id", ""))
    audio_version = manifest.get("audio_filter_version")
    writer = None
    try:
        writer = pq.ParquetWriter(str(tmp), schema)
        for split in sorted(manifest["splits"]):
            split_index = 0
            for shard, expected in split_shards(dataset, manifest, split):
                columns: Dict[str, List[Any]] = {name: [] for name in schema.names}
                for sample in iter_shard(dataset, split, shard, expected):
                    meta = sample.meta
                    where = f"{sample.shard}, member {sample.key}.json"
                    versions = (meta.get("provenance") or {}).get("filter_versions") or {}
                    row: Dict[str, Any] = {
                        "dataset_id": dataset_id, "split": split, "shard": sample.shard,
                        "index_in_shard": sample.index_in_shard, "split_index": split_index, "key": sample.key,
                        "track_id": meta.get("track_id"), "clip_index": meta.get("clip_index"),
                        "start_s": meta.get("start_s"), "duration_s": meta.get("duration_s"),
                        "sample_rate": meta.get("sample_rate"),
                        "lufs": meta.get("lufs"), "loudness_range": meta.get("loudness_range"),
                        "true_peak_db": meta.get("true_peak_db"), "duplicate_group": meta.get("duplicate_group"),
                        "audio_filter_version": audio_version,
                        "flac_sha256": (meta.get("provenance") or {}).get("flac_sha256"),
                        "flac_bytes": sample.flac_bytes,
                    }
                    for source in SOURCES:
                        row[source] = _texts(meta, source, where)
                        row[f"filter_version_{source}"] = versions.get(source)
                    for name in schema.names:
                        columns[name].append(row[name])
                    split_index += 1
                try:
                    table = pa.Table.from_pydict(columns, schema=schema)
                except (pa.ArrowInvalid, pa.ArrowTypeError) as error:
                    raise ShardError(f"{split}/{shard}: a sample's JSON has a field of the wrong type ({error})") from error
                writer.write_table(table)
                summary.shards += 1
            declared = int(manifest["splits"][split].get("samples", -1))
            if split_index != declared:
                raise ShardError(f"{split}: the shards hold {split_index} samples, dataset.json says {declared}")
            summary.rows_by_split[split] = split_index
            summary.rows += split_index
        writer.close()
        writer = None
        os.replace(tmp, target)
    finally:
        if writer is not None:
            writer.close()
        if tmp.exists():
            tmp.unlink()
    return summary
