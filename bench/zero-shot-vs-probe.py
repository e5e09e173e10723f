#!/usr/bin/env python3
"""Do a trained model's audio embeddings carry what its zero-shot scores miss? (issue 19, docs/demo.md)

For a mulan-train run and two corpora written by scripts/make-demo-corpus.py (the training corpus and
a held-out-soundfont corpus), prints per attribute of the demo corpus (instrument family, tempo, mode,
loudness), side by side:

- zero-shot: the held-out tracks ranked by their cosine with each tag's text alone (`mulan-eval`'s
  plain score, the mean over the attribute's tags, as scripts/demo-summary.py averages them);
- probe: `mulan-eval probe` (one logistic regression per tag on the model's frozen audio embeddings)
  trained on the training corpus's train split, its L2 strength chosen on its valid split, and scored
  on every track of the held-out corpus: what a linear read-out of the same embeddings can tell on the
  unseen soundfont, given labels.

Then, for each tag, what the zero-shot score of that tag follows: the share of its variance over the
held-out tracks that lies between the groups of each attribute (one-way ANOVA's between-group sum of
squares over the total), from the same embeddings (`mulan-embed`). A tag whose score varies mostly
with another attribute ranks tracks by that attribute, whatever the embedding holds about its own.

Last, mode scored zero-shot with other wordings of its two prompts (PROMPT_PAIRS): each prompt alone
(the mean of "major"'s and "minor"'s ROC-AUC, as above) and the two prompts' difference.

Usage: .venv/bin/python bench/zero-shot-vs-probe.py RUN_DIR TRAIN_CORPUS HELDOUT_CORPUS [VOCAB] [MULAN_BIN]
(VOCAB defaults to demo-work/text-model/vocab.txt, MULAN_BIN to .build/release.)
"""
import csv
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

ATTRIBUTES = {
    "family": ["piano", "guitar", "strings", "brass", "flute", "organ", "bass", "synth"],
    "tempo": ["slow", "fast"],
    "mode": ["major", "minor"],
    "loudness": ["loud", "quiet"],
}
TAGS = [t for tags in ATTRIBUTES.values() for t in tags]
PROMPT_PAIRS = [("major", "minor"), ("major key", "minor key"), ("in a major key", "in a minor key"),
                ("a song in a major key", "a song in a minor key"), ("major mode", "minor mode"), ("happy", "sad"),
                ("bright", "dark"), ("uplifting", "melancholic")]


COLUMN = {t: attribute for attribute, tags in ATTRIBUTES.items() for t in tags}  # ground-truth.csv's column per tag


def truth(row, tag):
    return row[COLUMN[tag]] == tag


def good_rows(corpus):
    """Ground-truth rows whose audio file exists (the broken inputs are left out)."""
    rows = list(csv.DictReader(open(os.path.join(corpus, "ground-truth.csv"), newline="")))
    return [r for r in rows if os.path.exists(os.path.join(corpus, r["path"]))]


def roc_auc(scores, positive):
    s, y = np.asarray(scores), np.asarray(positive, dtype=bool)
    pos, neg = s[y], s[~y]
    return float((pos[:, None] > neg[None, :]).mean() + 0.5 * (pos[:, None] == neg[None, :]).mean())


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    run, train_corpus, heldout = sys.argv[1], sys.argv[2], sys.argv[3]
    vocab = sys.argv[4] if len(sys.argv) > 4 else "demo-work/text-model/vocab.txt"
    binaries = sys.argv[5] if len(sys.argv) > 5 else ".build/release"
    work = tempfile.mkdtemp(prefix="zero-shot-vs-probe-")

    # One tags table for mulan-eval probe: the training corpus's train and valid tracks, and every
    # held-out track as the test split, under one audio root that links to both corpora.
    root = os.path.join(work, "audio")
    os.makedirs(root)
    os.symlink(os.path.abspath(train_corpus), os.path.join(root, "train"))
    os.symlink(os.path.abspath(heldout), os.path.join(root, "heldout"))
    table = os.path.join(work, "tags.tsv")
    train_rows = [r for r in good_rows(train_corpus) if r["split"] in ("train", "valid")]
    heldout_rows = good_rows(heldout)
    with open(table, "w", newline="") as f:
        w = csv.writer(f, delimiter="\t", lineterminator="\n")
        w.writerow(["clip_id"] + TAGS + ["mp3_path", "split"])
        for prefix, rows, split in (("train", train_rows, None), ("heldout", heldout_rows, "test")):
            for r in rows:
                w.writerow([f"{prefix}-{r['track_id']}"] + [int(truth(r, t)) for t in TAGS]
                           + [f"{prefix}/{r['path']}", split or r["split"]])
    probe_json = os.path.join(work, "probe.json")
    subprocess.run([os.path.join(binaries, "mulan-eval"), "probe", "--run-dir", run, "--csv", table, "--audio-root", root,
                    "--json", probe_json, "--quiet", "--threads", "2"], check=True, stdout=subprocess.DEVNULL)
    probe = {t["tag"]: t["roc_auc"] for t in json.load(open(probe_json))["probe"]["test"]["per_tag"]}

    # Zero-shot, from the same embeddings mulan-eval uses (mulan-embed: three windows per track).
    out = os.path.join(work, "embed")
    args = [os.path.join(binaries, "mulan-embed"), "--run-dir", run, "--vocab", vocab, "--out", out, "--quiet",
            "--threads", "2"]
    for t in sorted(set(TAGS) | {p for pair in PROMPT_PAIRS for p in pair}):
        args += ["--text", t]
    args += ["--audio"] + [os.path.join(heldout, r["path"]) for r in heldout_rows]
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL)
    index = [json.loads(line) for line in open(os.path.join(out, "index.jsonl"))]
    e = np.load(os.path.join(out, "embeddings.npy"))
    text = {r["text"]: e[i] for i, r in enumerate(index) if r.get("kind") == "text"}
    audio = {os.path.abspath(r["path"]): e[i] for i, r in enumerate(index) if r.get("kind") == "audio"}
    x = np.stack([audio[os.path.abspath(os.path.join(heldout, r["path"]))] for r in heldout_rows])

    print(f"{run}: {len(train_rows)} training-corpus tracks (train + valid) for the probe, "
          f"{len(heldout_rows)} held-out tracks ({heldout})")
    print(f"{'attribute':10} {'zero-shot':>10} {'probe':>8}")
    for attribute, tags in ATTRIBUTES.items():
        zero = np.mean([roc_auc(x @ text[t], [truth(r, t) for r in heldout_rows]) for t in tags])
        read = np.mean([probe[t] for t in tags])
        print(f"{attribute:10} {zero:10.3f} {read:8.3f}")
    print()
    print("share of each tag's zero-shot score variance between the groups of each attribute (held-out tracks):")
    print(f"{'tag':8} " + " ".join(f"{a:>9}" for a in ATTRIBUTES) + f" {'drums':>9}")
    for t in TAGS:
        s = x @ text[t]
        shares = []
        for column in list(ATTRIBUTES) + ["drums"]:
            groups = {}
            for v, r in zip(s, heldout_rows):
                groups.setdefault(r[column], []).append(v)
            between = sum(len(g) * (np.mean(g) - s.mean()) ** 2 for g in groups.values())
            shares.append(between / (s.var() * len(s)))
        print(f"{t:8} " + " ".join(f"{v:9.3f}" for v in shares))
    print()
    print("mode, zero-shot, with other wordings of the two prompts (held-out tracks):")
    major = [r["mode"] == "major" for r in heldout_rows]
    minor = [not m for m in major]
    for a, b in PROMPT_PAIRS:
        alone = (roc_auc(x @ text[a], major) + roc_auc(x @ text[b], minor)) / 2
        print(f"  {a + ' / ' + b:46} each alone {alone:.3f}   their difference {roc_auc(x @ (text[a] - text[b]), major):.3f}"
              f"   cosine of the two {float(text[a] @ text[b]):.3f}")


if __name__ == "__main__":
    main()
