#!/usr/bin/env python3
"""Precision and recall of `mulan-filter audio` decisions against the demo corpus's ground truth.

    scripts/audio-filter-precision.py WORKDIR CORPUS VERSION=FAMILY [VERSION=FAMILY ...]

For each audio filter version (e.g. the run of `--keep "piano > others"`) and the family it should
keep: precision (kept clips that are of the family / kept clips) and recall (kept clips of the
family / clips of the family), over every clip and over the clips of each split of the corpus's
manifest (the model trained on `train`; `test` is held out). A track counts as kept at track level
when any of its clips is kept. Tracks without ground truth (the corpus's broken inputs) are skipped.
Standard library only.
"""
import csv
import sqlite3
import sys


def main() -> None:
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    workdir, corpus, pairs = sys.argv[1], sys.argv[2], sys.argv[3:]
    truth = {r["track_id"]: r for r in csv.DictReader(open(corpus + "/ground-truth.csv", encoding="utf-8"))}
    db = sqlite3.connect(f"file:{workdir}/catalog.sqlite?mode=ro", uri=True)
    print(f"{'rule':<28} {'split':<6} {'clip precision':>16} {'clip recall':>13} {'track precision':>17} {'track recall':>14}")
    for pair in pairs:
        version, _, family = pair.partition("=")
        rows = db.execute("SELECT track_id, status FROM audio_decisions WHERE version = ?", (version,)).fetchall()
        if not rows:
            sys.exit(f"{version}: no decisions in {workdir}/catalog.sqlite (run mulan-filter audio first)")
        rules = db.execute("SELECT rules FROM audio_filter_versions WHERE version = ?", (version,)).fetchone()[0]
        for split in ("all", "train", "test"):
            tp = kept = relevant = 0
            tracks_kept, tracks_relevant = set(), set()
            for track, status in rows:
                t = truth.get(track)
                if t is None or (split != "all" and t["split"] != split):
                    continue
                is_family, is_kept = t["family"] == family, status == "kept"
                tp += is_family and is_kept
                kept += is_kept
                relevant += is_family
                if is_kept:
                    tracks_kept.add(track)
                if is_family:
                    tracks_relevant.add(track)
            ttp = len(tracks_kept & tracks_relevant)

            def ratio(a: int, b: int) -> str:
                return f"{a / b:.2f} ({a}/{b})" if b else "- (0/0)"

            print(f"{rules.strip('[]').replace(chr(34), ''):<28} {split:<6} {ratio(tp, kept):>16} {ratio(tp, relevant):>13} "
                  f"{ratio(ttp, len(tracks_kept)):>17} {ratio(ttp, len(tracks_relevant)):>14}")


if __name__ == "__main__":
    main()
