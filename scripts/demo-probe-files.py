#!/usr/bin/env python3
"""Writes the demo's linear-probe tags and text triplets from a demo corpus's ground truth.

Usage: scripts/demo-probe-files.py CORPUS OUT_DIR [--triplets-per-attribute N] [--seed S]

- OUT_DIR/probe-tags.csv: every good track of CORPUS/ground-truth.csv with its true tags (the eval
  tags of scripts/make-demo-corpus.py: the instrument families, slow, fast, major, minor, drums, loud,
  quiet), its mp3_path and its split (train, valid, test), tab-separated: `mulan-eval probe --csv`.
- OUT_DIR/triplets.jsonl: text triplets for `mulan-eval triplets`, N per attribute (family, tempo,
  mode, loudness, drums). The anchor is the caption of a corpus track (the captions of
  make-demo-corpus.py, from its known attributes); the positive and the negative are captions of
  attribute sets that agree with each other on every attribute but the one asked about, where the
  positive has the anchor's value and the negative another: only that attribute tells them apart
  (the positive is never the anchor's own caption).

Standard library only; the output depends only on the ground truth, N and the seed.
"""
import argparse
import csv
import importlib.util
import json
import os
import random
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def corpus_module():
    """make-demo-corpus.py (its caption template, tags and attribute values), loaded by path."""
    spec = importlib.util.spec_from_file_location("make_demo_corpus", os.path.join(HERE, "make-demo-corpus.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("corpus", help="a demo corpus folder (with ground-truth.csv)")
    parser.add_argument("out", help="the folder to write probe-tags.csv and triplets.jsonl to")
    parser.add_argument("--triplets-per-attribute", type=int, default=40)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    m = corpus_module()
    truth_path = os.path.join(args.corpus, "ground-truth.csv")
    try:
        with open(truth_path, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    except OSError as e:
        sys.exit(f"demo-probe-files: cannot read {truth_path}: {e.strerror} (generate the corpus first)")
    if not rows:
        sys.exit(f"demo-probe-files: {truth_path} lists no track")

    def attributes(row):
        return {"family": row["family"], "tempo": row["tempo"], "mode": row["mode"],
                "drums": row["drums"] == "yes", "loudness": row["loudness"]}

    def tags(a):
        return {"slow": a["tempo"] == "slow", "fast": a["tempo"] == "fast", "major": a["mode"] == "major",
                "minor": a["mode"] == "minor", "drums": a["drums"], "loud": a["loudness"] == "loud",
                "quiet": a["loudness"] == "quiet"}

    def caption(a):
        return m.caption(m.Track(**a))

    os.makedirs(args.out, exist_ok=True)
    tmp = os.path.join(args.out, "probe-tags.csv.tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, delimiter="\t", lineterminator="\n")
        w.writerow(["clip_id"] + m.EVAL_TAGS + ["mp3_path", "split"])
        for row in rows:
            a = attributes(row)
            t = tags(a)
            w.writerow([row["track_id"]] + [int(t.get(tag, a["family"] == tag)) for tag in m.EVAL_TAGS]
                       + [row["path"], row["split"]])
    os.replace(tmp, os.path.join(args.out, "probe-tags.csv"))

    values = {"family": m.FAMILIES, "tempo": list(m.TEMPI), "mode": list(m.SCALES), "drums": [True, False],
              "loudness": ["loud", "quiet"]}
    rng = random.Random(f"demo-triplets/{args.seed}")
    anchors = [attributes(r) for r in sorted(rows, key=lambda r: r["track_id"])]
    lines = []
    for attribute in ["family", "tempo", "mode", "loudness", "drums"]:
        for _ in range(args.triplets_per_attribute):
            anchor = rng.choice(anchors)
            positive = dict(anchor)
            while positive == anchor:   # never the anchor's own caption
                positive = {k: rng.choice(v) for k, v in values.items()}
                positive[attribute] = anchor[attribute]
            negative = dict(positive)
            negative[attribute] = rng.choice([v for v in values[attribute] if v != anchor[attribute]])
            lines.append({"anchor": caption(anchor), "positive": caption(positive), "negative": caption(negative),
                          "attribute": attribute})
    tmp = os.path.join(args.out, "triplets.jsonl.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        for line in lines:
            f.write(json.dumps(line) + "\n")
    os.replace(tmp, os.path.join(args.out, "triplets.jsonl"))
    splits = {s: sum(r["split"] == s for r in rows) for s in ("train", "valid", "test")}
    print(f"demo probe files: {len(rows)} tracks (train {splits['train']}, valid {splits['valid']}, test {splits['test']}), "
          f"{len(lines)} triplets in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
