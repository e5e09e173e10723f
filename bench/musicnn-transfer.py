#!/usr/bin/env python3
"""How much of the demo's attributes a frozen audio representation carries to an unseen soundfont
(issue 19's ablation, docs/demo.md): per-track features of the training corpus (its train split,
rendered with the training soundfonts) fit one L2 logistic regression per attribute value, which is
then scored (ROC-AUC) on every track of the held-out soundfont's corpus. This is a linear probe, with
labels: an upper bound for what a contrastive model with that frozen representation and a linear
projection can reach zero-shot, not a zero-shot figure.

Representations: musicnn's penultimate feature (200-d, averaged over a track's 3-s patches; one
per converted file given), and the mean and standard deviation of the 96-band musicnn log-mel over
the track (192-d), the "spectral envelope" baseline.

Usage: .venv/bin/python bench/musicnn-transfer.py TRAIN_CORPUS HELDOUT_CORPUS MODEL.safetensors... [--out FILE.md]
(corpora written by scripts/make-demo-corpus.py; models by `python -m mulan_torch.musicnn convert`).
"""
import csv
import os
import sys
import time

import librosa
import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
from mulan_torch import musicnn  # noqa: E402

FAMILIES = ["piano", "guitar", "strings", "brass", "flute", "organ", "bass", "synth"]
MAX_SECONDS = 60.0


def tracks(corpus, split):
    with open(os.path.join(corpus, "ground-truth.csv"), newline="") as f:
        rows = list(csv.DictReader(f))
    return [r for r in rows if split is None or r["split"] == split]


def log_mel(corpus, row):
    samples, _ = librosa.load(os.path.join(corpus, row["path"]), sr=16000, mono=True, duration=MAX_SECONDS)
    return musicnn.log_mel(samples)


def envelope(spec):
    return np.concatenate([spec.mean(axis=1), spec.std(axis=1)])


def embed(tower, spec):
    with torch.no_grad():
        x = torch.from_numpy(musicnn.patches(spec))
        return tower.features(x).mean(dim=0).numpy()


def probe(train_x, train_y, test_x, test_y, l2=1.0, steps=300):
    """ROC-AUC on test of an L2 logistic regression fitted on train (standardized features, Newton)."""
    mu, sd = train_x.mean(0), train_x.std(0) + 1e-6
    a = np.hstack([(train_x - mu) / sd, np.ones((len(train_x), 1))])
    b = np.hstack([(test_x - mu) / sd, np.ones((len(test_x), 1))])
    w = np.zeros(a.shape[1])
    reg = l2 * np.eye(a.shape[1])
    reg[-1, -1] = 0
    for _ in range(steps):
        p = 1 / (1 + np.exp(-a @ w))
        grad = a.T @ (p - train_y) + reg @ w
        hess = a.T @ (a * (p * (1 - p))[:, None]) + reg
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    scores = b @ w
    pos, neg = scores[test_y == 1], scores[test_y == 0]
    if len(pos) == 0 or len(neg) == 0:
        return None
    return float((pos[:, None] > neg[None, :]).mean() + 0.5 * (pos[:, None] == neg[None, :]).mean())


def main(argv):
    out = None
    if "--out" in argv:
        k = argv.index("--out")
        out, argv = argv[k + 1], argv[:k] + argv[k + 2:]
    train_corpus, heldout_corpus, models = argv[0], argv[1], argv[2:]
    torch.set_num_threads(os.cpu_count() or 1)
    train_rows, test_rows = tracks(train_corpus, "train"), tracks(heldout_corpus, None)
    started = time.time()
    specs = {"train": [log_mel(train_corpus, r) for r in train_rows],
             "test": [log_mel(heldout_corpus, r) for r in test_rows]}
    features = {"log-mel envelope (mean+std, 192-d)": {k: np.stack([envelope(s) for s in v]) for k, v in specs.items()}}
    for path in models:
        tower, meta = musicnn.load_pretrained(path)
        tower.eval()
        name = f"{meta.get('source', os.path.basename(path))} penultimate (200-d)"
        features[name] = {k: np.stack([embed(tower, s) for s in v]) for k, v in specs.items()}
    attributes = {f: ("family", f) for f in FAMILIES}
    attributes.update({"fast": ("tempo", "fast"), "slow": ("tempo", "slow"), "major": ("mode", "major"),
                       "minor": ("mode", "minor")})
    lines = [f"# Frozen representations on the held-out soundfont: linear probe ROC-AUC",
             "", f"- training tracks: {len(train_rows)} ({train_corpus}, split train); held-out tracks: "
             f"{len(test_rows)} ({heldout_corpus}); first {MAX_SECONDS:.0f} s of each; {time.time() - started:.0f} s",
             f"- command: `.venv/bin/python bench/musicnn-transfer.py {' '.join(sys.argv[1:])}`", "",
             "| attribute | " + " | ".join(features) + " |", "|---|" + "---:|" * len(features)]
    groups = {"family": [], "tempo": [], "mode": []}
    table = {}
    for tag, (column, value) in attributes.items():
        ytr = np.array([r[column] == value for r in train_rows], dtype=float)
        yte = np.array([r[column] == value for r in test_rows], dtype=float)
        table[tag] = [probe(f["train"], ytr, f["test"], yte) for f in features.values()]
        groups[column].append(table[tag])
    for tag, row in table.items():
        lines.append(f"| {tag} | " + " | ".join("–" if v is None else f"{v:.3f}" for v in row) + " |")
    for column, rows in groups.items():
        means = []
        for i in range(len(features)):
            vals = [r[i] for r in rows if r[i] is not None]
            means.append(sum(vals) / len(vals) if vals else None)
        lines.append(f"| **{column} (mean)** | " + " | ".join("–" if v is None else f"**{v:.3f}**" for v in means) + " |")
    text = "\n".join(lines) + "\n"
    print(text)
    if out:
        with open(out, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main(sys.argv[1:])
