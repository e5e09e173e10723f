#!/usr/bin/env python3
"""How much of the demo's attributes a frozen audio representation carries to an unseen soundfont
(issue 19's ablation, docs/demo.md): per-track features of the training corpus (its train split,
rendered with the training soundfonts) fit one L2 logistic regression per attribute value, which is
then scored (ROC-AUC) on every track of the held-out soundfont's corpus. This is a linear probe, with
labels: an upper bound for what a contrastive model with that frozen representation and a linear
projection can reach zero-shot, not a zero-shot figure.

Representations: musicnn's penultimate feature (200-d, averaged over a track's 3-s patches; one
per converted file given), and the mean and standard deviation of the 96-band musicnn log-mel over
the track (192-d), the "spectral envelope" baseline. Three pitch-class representations ask whether a
chroma front end would carry mode (which none of the above does): the track's mean chroma
(librosa's chroma_stft, 12 bins, normalized to sum 1) rotated so that its strongest pitch class comes
first (12-d; no music theory, transposition removed); the magnitudes of the mean chroma's 12-point
DFT (7-d; invariant to transposition by construction); and its correlations with the
Krumhansl-Kessler major and minor key profiles, each at its best of the 12 transpositions (2-d).
The last is also scored without labels: major minus minor correlation as a mode score (ROC-AUC for
"major"), and the best-matching key against the generator's key (accuracy), next to the probes.

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


# Krumhansl & Kessler's probe-tone ratings (1982), tonic first.
KK_MAJOR = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
KK_MINOR = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])
NOTE_NAMES = ["C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B"]  # as the generator spells them


def load(corpus, row):
    samples, _ = librosa.load(os.path.join(corpus, row["path"]), sr=16000, mono=True, duration=MAX_SECONDS)
    return samples


def mean_chroma(samples):
    """The track's mean chroma (12 pitch classes from C, summing to 1)."""
    c = librosa.feature.chroma_stft(y=samples, sr=16000, n_fft=4096, hop_length=2048).mean(axis=1)
    return c / max(c.sum(), 1e-12)


def key_correlations(chroma):
    """Pearson correlation of the chroma with each profile at every tonic: [2, 12] (major, minor)."""
    out = np.zeros((2, 12))
    for m, profile in enumerate((KK_MAJOR, KK_MINOR)):
        for tonic in range(12):
            out[m, tonic] = np.corrcoef(chroma, np.roll(profile, tonic))[0, 1]
    return out


def pitch_class_features(chroma, corr):
    """The three representations of a mean chroma, given its key_correlations."""
    return {"chroma rotated to its strongest pitch class (12-d)": np.roll(chroma, -int(np.argmax(chroma))),
            "chroma DFT magnitudes (7-d)": np.abs(np.fft.rfft(chroma)),
            "Krumhansl-Kessler best major / minor correlation (2-d)": corr.max(axis=1)}


def estimated_key(corr):
    """The best-matching key of key_correlations, spelled as the generator's ground truth."""
    m, tonic = np.unravel_index(int(np.argmax(corr)), corr.shape)
    return f"{NOTE_NAMES[tonic]} {'major' if m == 0 else 'minor'}"


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
    return roc_auc(b @ w, test_y == 1)


def roc_auc(scores, positive):
    """ROC-AUC of scores for the positive (boolean) rows, ties counted half; None without both kinds."""
    pos, neg = scores[positive], scores[~positive]
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
    audio = {"train": [load(train_corpus, r) for r in train_rows], "test": [load(heldout_corpus, r) for r in test_rows]}
    specs = {k: [musicnn.log_mel(a) for a in v] for k, v in audio.items()}
    chroma = {k: [mean_chroma(a) for a in v] for k, v in audio.items()}
    features = {"log-mel envelope (mean+std, 192-d)": {k: np.stack([envelope(s) for s in v]) for k, v in specs.items()}}
    for path in models:
        tower, meta = musicnn.load_pretrained(path)
        tower.eval()
        name = f"{meta.get('source', os.path.basename(path))} penultimate (200-d)"
        features[name] = {k: np.stack([embed(tower, s) for s in v]) for k, v in specs.items()}
    keys = {k: [key_correlations(c) for c in v] for k, v in chroma.items()}
    pitch = {k: [pitch_class_features(c, r) for c, r in zip(v, keys[k])] for k, v in chroma.items()}
    for name in pitch["train"][0]:
        features[name] = {k: np.stack([f[name] for f in v]) for k, v in pitch.items()}
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
    # Without labels: the key profiles alone, on the held-out soundfont.
    best = np.stack([r.max(axis=1) for r in keys["test"]])
    auc = roc_auc(best[:, 0] - best[:, 1], np.array([r["mode"] == "major" for r in test_rows]))
    found = [estimated_key(r) for r in keys["test"]]
    exact = sum(k == r["key"] for k, r in zip(found, test_rows))
    modes = sum(k.split()[1] == r["mode"] for k, r in zip(found, test_rows))
    lines += ["", f"Without labels, on the {len(test_rows)} held-out tracks: Krumhansl-Kessler major minus minor "
              f"correlation as a score for \"major\": ROC-AUC **{auc:.3f}**; best-matching key equal to the "
              f"generator's {exact} of {len(test_rows)}, its mode {modes} of {len(test_rows)}."]
    text = "\n".join(lines) + "\n"
    print(text)
    if out:
        with open(out, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main(sys.argv[1:])
