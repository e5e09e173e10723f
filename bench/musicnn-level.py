#!/usr/bin/env python3
"""Does a frozen musicnn tower keep the level of its input? (docs/demo.md, "Why loudness drops with
the frozen musicnn tower").

The demo corpus's loudness tags are a level (the renderer scales each track to about -17 dBFS RMS when
loud, -29 when quiet, with jitter) and a playing style (loud tracks are played with higher
velocities, which changes the timbre). Two measurements on the first 10-s window of every track of a
corpus (the held-out soundfont's), each played at gains of -12, -6, 0, +6 and +12 dB:

1. **Features.** How far a gain moves a track's representation, relative to how far apart two
   different tracks are: mean over tracks of |f(gain) - f(0 dB)| divided by the mean distance
   between two tracks' f(0 dB) (0: the representation ignores the level; 1: a 12-dB change moves it
   as far as another track does). Representations: musicnn's pooled 200-d penultimate feature (what the
   frozen tower feeds its projection), and the mean+std of the musicnn log-mel (96 bands; its front
   end, log10(10000x+1)). Plus a linear probe, loud vs quiet, 8-fold cross-validated on the
   corpus's own tracks at 0 dB (with labels; an upper bound on what a linear map can read).
2. **Trained models.** Each run's zero-shot loudness score of a window, cos(a, "loud") - cos(a,
   "quiet"): its ROC-AUC for the loud tag at 0 dB, the gap between the loud and the quiet tracks'
   mean score at 0 dB, and how much +12 dB (or -12 dB) moves the mean score, as a fraction of that
   gap (1: turning a quiet track up by 12 dB makes it score like a loud one).

Usage: .venv/bin/python bench/musicnn-level.py CORPUS PRETRAINED.safetensors VOCAB RUN_DIR_OR_CHECKPOINT... [--out FILE.md]
"""
import csv
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
from mulan_torch import audio as mel  # noqa: E402
from mulan_torch import musicnn  # noqa: E402
from mulan_torch.evaluation import roc_auc  # noqa: E402
from mulan_torch.model import MulanModel  # noqa: E402

GAINS = [-12.0, -6.0, 0.0, 6.0, 12.0]
RATE = 16000
WINDOW = 10 * RATE


def load_module(name):
    import importlib.util

    here = os.path.dirname(os.path.abspath(__file__))
    spec = importlib.util.spec_from_file_location(name, os.path.join(here, "musicnn-projection-eval.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def probe_cv(x, y, folds=8, l2=1.0):
    """Out-of-fold scores of an L2 logistic regression (standardized features, Newton), then ROC-AUC."""
    n = len(y)
    order = np.random.default_rng(0).permutation(n)
    scores = np.zeros(n)
    for k in range(folds):
        test = order[k::folds]
        train = np.setdiff1d(order, test)
        mu, sd = x[train].mean(0), x[train].std(0) + 1e-6
        a = np.hstack([(x[train] - mu) / sd, np.ones((len(train), 1))])
        b = np.hstack([(x[test] - mu) / sd, np.ones((len(test), 1))])
        w = np.zeros(a.shape[1])
        reg = l2 * np.eye(a.shape[1])
        reg[-1, -1] = 0
        for _ in range(100):
            p = 1 / (1 + np.exp(-a @ w))
            step = np.linalg.solve(a.T @ (a * (p * (1 - p))[:, None]) + reg, a.T @ (p - y[train]) + reg @ w)
            w -= step
            if np.abs(step).max() < 1e-8:
                break
        scores[test] = b @ w
    return roc_auc([float(s) for s in scores], [bool(v) for v in y])


def relative_move(f):
    """{gain: mean |f(g) - f(0)| / mean pairwise distance at 0 dB} of f [gains, tracks, d]."""
    zero = f[GAINS.index(0.0)]
    d = np.linalg.norm(zero[:, None, :] - zero[None, :, :], axis=-1)
    spread = d[~np.eye(len(zero), dtype=bool)].mean()
    return {g: float(np.linalg.norm(f[k] - zero, axis=-1).mean() / spread) for k, g in enumerate(GAINS)}


def main(argv):
    out = None
    if "--out" in argv:
        k = argv.index("--out")
        out, argv = argv[k + 1], argv[:k] + argv[k + 2:]
    corpus, pretrained, vocab, runs = argv[0], argv[1], argv[2], argv[3:]
    torch.set_num_threads(int(os.environ.get("THREADS", "1")))
    pe = load_module("projection_eval")
    started = time.time()
    with open(os.path.join(corpus, "ground-truth.csv"), newline="") as f:
        rows = [r for r in csv.DictReader(f)]
    loud = np.array([r["loudness"] == "loud" for r in rows], dtype=float)
    windows = []
    for r in rows:
        s = pe.decode(os.path.join(corpus, r["path"]))
        windows.append(pe.window(s, 0))
    base = np.stack(windows)  # [tracks, samples]
    rms = 20 * np.log10(np.sqrt((base.astype(np.float64) ** 2).mean(axis=1)) + 1e-12)
    tower, meta = musicnn.load_pretrained(pretrained)
    tower.eval()
    specs = {g: [musicnn.log_mel(w * np.float32(10 ** (g / 20))) for w in base] for g in GAINS}
    envelope = np.stack([[np.concatenate([s.mean(axis=1), s.std(axis=1)]) for s in specs[g]] for g in GAINS])
    with torch.no_grad():
        feats = []
        for g in GAINS:
            x = torch.from_numpy(np.stack([musicnn.patches(s) for s in specs[g]]))
            t, n = x.shape[0], x.shape[1]
            feats.append(tower.features(x.reshape(t * n, x.shape[2], x.shape[3])).reshape(t, n, -1).mean(dim=1).numpy())
    feats = np.stack(feats)  # [gains, tracks, 200]
    zero = GAINS.index(0.0)
    lines = ["# Does the frozen musicnn tower keep the level? (bench/musicnn-level.py)", "",
             f"- corpus: {corpus}, {len(rows)} tracks ({int(loud.sum())} loud), first 10-s window of each; "
             f"gains {', '.join(f'{g:+.0f}' for g in GAINS)} dB; {meta.get('source', pretrained)}",
             f"- command: `.venv/bin/python bench/musicnn-level.py {' '.join(sys.argv[1:])}`", "",
             "## 1. Representations", "",
             "| representation | moved by -12 dB | -6 dB | +6 dB | +12 dB | loud vs quiet, 8-fold linear probe ROC-AUC |",
             "|---|---:|---:|---:|---:|---:|"]
    reps = {"RMS level of the window (1-d, dBFS)": np.stack([rms + g for g in GAINS])[..., None],
            "musicnn log-mel envelope (mean+std of 96 bands)": envelope,
            f"musicnn penultimate feature (200-d, {meta.get('source', '')})": feats}
    for name, f in reps.items():
        move = relative_move(f)
        lines.append(f"| {name} | " + " | ".join(f"{move[g]:.2f}" for g in GAINS if g != 0) +
                     f" | {probe_cv(f[zero], loud):.3f} |")
    lines += ["", "(moved: mean distance a gain moves a track's representation / mean distance between two tracks at 0 dB)",
              "", "## 2. Trained models: zero-shot loudness score cos(a, \"loud\") - cos(a, \"quiet\")", "",
              "| run | tower | ROC-AUC loud at 0 dB | gap loud - quiet at 0 dB | -12 dB moves by (of the gap) | +12 dB moves by (of the gap) |",
              "|---|---|---:|---:|---:|---:|"]
    from transformers import BertTokenizer

    for run in runs:
        model = MulanModel.from_checkpoint(run)
        tokenizer = BertTokenizer(vocab, do_lower_case=True)
        text = model.embed_token_ids([tokenizer.encode(t, add_special_tokens=False) for t in ("loud", "quiet")]).numpy()
        kind = model.config["audio"].get("kind", "resnet")
        per_gain = []
        with torch.no_grad():
            for k, g in enumerate(GAINS):
                if kind in ("musicnn", "vgg"):
                    if pe.tower_fingerprint(dict(model.audio.state_dict())) != pe.tower_fingerprint(dict(tower.state_dict())):
                        sys.exit(f"{run}: its tower is not {pretrained}'s")
                    a = F.normalize(model.audio.proj(torch.from_numpy(feats[k])), dim=-1).numpy()
                else:
                    cfg = mel.LogMelConfig.from_dict(model.config["logMel"])
                    x = np.stack([mel.log_mel(w * np.float32(10 ** (g / 20)), cfg) for w in base])
                    a = model.embed_audio(torch.from_numpy(x)).numpy()
                per_gain.append(a @ text[0] - a @ text[1])
        s = np.stack(per_gain)
        gap = s[zero][loud == 1].mean() - s[zero][loud == 0].mean()
        auc = roc_auc([float(v) for v in s[zero]], [bool(v) for v in loud])
        down = (s[GAINS.index(-12.0)].mean() - s[zero].mean()) / gap
        up = (s[GAINS.index(12.0)].mean() - s[zero].mean()) / gap
        lines.append(f"| {run} (step {model.step}) | {kind} | {auc:.3f} | {gap:.3f} | {down:+.2f} | {up:+.2f} |")
    lines += ["", f"({time.time() - started:.0f} s)"]
    text = "\n".join(lines) + "\n"
    print(text)
    if out:
        with open(out, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main(sys.argv[1:])
