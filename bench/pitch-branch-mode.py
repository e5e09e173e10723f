#!/usr/bin/env python3
"""Where a pitch-class model's mode signal goes (issue 19, docs/demo.md "The pitch-class branch").

For a mulan-train run with --pitch-profiles and a corpus written by scripts/make-demo-corpus.py, this
embeds every track and the texts "major" and "minor" with mulan-embed, then scores "major" three ways
on the corpus's ground truth (ROC-AUC): the whole audio embedding along d = t_major - t_minor (what
`mulan-eval --exclusive major,minor` ranks by, up to the softmax), the branch's own output u along d
(u recomputed here from the checkpoint's pitch.* tensors and each window's profile, averaged over
the windows mulan-embed uses), and the label-free difference of the first two key correlations
(f0 - f1: Krumhansl-Kessler major minus minor while the profiles stay near their start). It also
prints the spread (std over tracks) of the whole embedding and of u along d: when the first is much
larger, the tower's own variation along d drowns what the branch says. Last, the share of d's squared
norm within the span of the branch's projection (columns and bias): what of d the branch can reach.

Usage: .venv/bin/python bench/pitch-branch-mode.py RUN_DIR CORPUS VOCAB [MULAN_BIN]
"""
import csv
import json
import os
import subprocess
import sys
import tempfile

import librosa
import numpy as np
from safetensors.numpy import load_file

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
from mulan_torch.audio import pitch_class_profile  # noqa: E402

WINDOW = 160000  # 10 s at 16 kHz, the demo's window


def roc_auc(scores, positive):
    s, y = np.asarray(scores), np.asarray(positive)
    pos, neg = s[y], s[~y]
    return float((pos[:, None] > neg[None, :]).mean() + 0.5 * (pos[:, None] == neg[None, :]).mean())


def main(run, corpus, vocab, binaries):
    checkpoint = sorted(f for f in os.listdir(run) if f.startswith("checkpoint-"))[-1]
    t = load_file(os.path.join(run, checkpoint))
    profiles, weight, bias = t["pitch.profiles"], t["pitch.proj.weight"], t["pitch.proj.bias"]
    norm = [t[f"pitch.norm.{k}"] for k in ("weight", "bias", "running_mean", "running_var")] if "pitch.norm.weight" in t else None

    def branch(profile):
        z = (profile - profile.mean()) / max(profile.std(), 1e-6) if profile.std() >= 1e-6 else np.zeros(12)
        f = np.array([max((p * np.roll(z, -r)).sum() / 12 for r in range(12)) for p in profiles])
        if norm is not None:
            gamma, beta, mean, var = norm
            f_hat = (f - mean) / np.sqrt(var + 1e-5) * gamma + beta
        else:
            f_hat = f
        return f, weight @ f_hat + bias

    rows = list(csv.DictReader(open(os.path.join(corpus, "ground-truth.csv"), newline="")))
    out = tempfile.mkdtemp(prefix="pitch-branch-")
    subprocess.run([os.path.join(binaries, "mulan-embed"), "--run-dir", run, "--vocab", vocab, "--text", "major", "--text", "minor",
                    "--audio"] + [os.path.join(corpus, r["path"]) for r in rows] + ["--out", out, "--quiet", "--threads", "2"],
                   check=True)
    index = [json.loads(line) for line in open(os.path.join(out, "index.jsonl"))]
    e = np.load(os.path.join(out, "embeddings.npy"))
    text = {r["text"]: e[i] for i, r in enumerate(index) if r.get("kind") == "text"}
    audio = {os.path.basename(r["path"]): e[i] for i, r in enumerate(index) if r.get("kind") == "audio"}
    d = text["major"] - text["minor"]
    whole, own, label_free, major = [], [], [], []
    for r in rows:
        y, _ = librosa.load(os.path.join(corpus, r["path"]), sr=16000, mono=True, duration=30)
        span = max(0, len(y) - WINDOW)
        windows = [np.pad(y[o:o + WINDOW], (0, max(0, WINDOW - len(y[o:o + WINDOW])))) for o in sorted({0, span // 2, span})]
        parts = [branch(pitch_class_profile(w, 16000).astype(np.float64)) for w in windows]
        f = np.mean([p[0] for p in parts], axis=0)
        u = np.mean([p[1] for p in parts], axis=0)
        whole.append(audio[os.path.basename(r["path"])] @ d)
        own.append(u @ d)
        label_free.append(f[0] - f[1])
        major.append(r["mode"] == "major")
    print(f"{run} on {corpus} ({len(rows)} tracks): ROC-AUC for 'major'")
    print(f"  whole embedding along t_major - t_minor   {roc_auc(whole, major):.3f}   spread {np.std(whole):.3f}")
    print(f"  the branch's u along t_major - t_minor    {roc_auc(own, major):.3f}   spread {np.std(own):.3f}")
    print(f"  f0 - f1 (label-free)                      {roc_auc(label_free, major):.3f}")
    print(f"  cos(t_major, t_minor) {float(text['major'] @ text['minor']):.3f}")
    # How much of the texts' mode direction the branch can reach at all: the share of |d|^2 within
    # the span of pitch.proj's columns and bias (a random subspace of that size holds its dimension / D).
    # Only the directions the projection really spans count (a branch still at its zero start spans none).
    u_left, singular, _ = np.linalg.svd(np.concatenate([weight, bias[:, None]], axis=1).astype(np.float64), full_matrices=False)
    basis = u_left[:, singular > 1e-6 * singular.max()]
    d64 = d.astype(np.float64)
    share = float(np.sum((basis.T @ d64) ** 2) / np.sum(d64 ** 2))
    print(f"  share of |t_major - t_minor|^2 in the branch's span  {share:.3f}   (a random {basis.shape[1]}-d subspace: {basis.shape[1] / len(d):.3f})")


if __name__ == "__main__":
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4] if len(sys.argv) > 4 else ".build/release")
