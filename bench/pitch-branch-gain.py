#!/usr/bin/env python3
"""Would a louder pitch-class branch score mode? (issue 19, docs/demo.md "The pitch-class branch")

Loads a mulan-train checkpoint with --pitch-profiles in mulan_torch, embeds every track of a corpus
written by scripts/make-demo-corpus.py (decoded with librosa, so within about 0.02 of
mulan-eval's figures) as mulan-embed does, but with the branch's output u scaled by alpha in each
window, L2-normalize(a + alpha * u), and prints the plain zero-shot ROC-AUC per attribute (each tag's
text embedded with mulan-embed, tracks ranked by their cosine with it; attributes averaged over
their tags as scripts/demo-summary.py does). alpha 1 is the model as trained.

Usage: .venv/bin/python bench/pitch-branch-gain.py RUN_DIR CORPUS [VOCAB] [MULAN_BIN]
"""
import csv, json, os, subprocess, sys, tempfile
import numpy as np, torch, librosa
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
from mulan_torch.model import MulanModel
from mulan_torch import audio
torch.set_num_threads(1)
run, corpus = sys.argv[1], sys.argv[2]
vocab = sys.argv[3] if len(sys.argv) > 3 else "demo-work/text-model/vocab.txt"
binaries = sys.argv[4] if len(sys.argv) > 4 else ".build/release"
model = MulanModel.from_checkpoint(run); model.eval()
cfg = audio.LogMelConfig.from_dict(model.config["logMel"])
groups = {"family": ["piano","guitar","strings","brass","flute","organ","bass","synth"], "tempo": ["slow","fast"], "mode": ["major","minor"], "drums": ["drums"], "loudness": ["loud","quiet"]}
tags = [t for g in groups.values() for t in g]
out = tempfile.mkdtemp(prefix="pitch-gain-")
args = [os.path.join(binaries, "mulan-embed"), "--run-dir", run, "--vocab", vocab, "--out", out, "--quiet", "--threads", "1"]
for t in tags: args += ["--text", t]
subprocess.run(args, check=True, stdout=subprocess.DEVNULL)
idx = [json.loads(l) for l in open(os.path.join(out, "index.jsonl"))]
E = np.load(os.path.join(out, "embeddings.npy"))
T = {r["text"]: E[i] for i, r in enumerate(idx) if r.get("kind") == "text"}
rows = list(csv.DictReader(open(os.path.join(corpus, "eval/test-tags.csv")), delimiter="\t"))
A, U = [], []
for r in rows:
    y, _ = librosa.load(os.path.join(corpus, r["mp3_path"]), sr=16000, mono=True)
    ws = [model.window(y, o) for o in model.window_offsets(len(y))]
    lm = torch.as_tensor(np.stack([audio.log_mel(w, cfg) for w in ws]), dtype=torch.float32)
    with torch.no_grad():
        a = model.audio(lm); u = model.pitch.offsets(torch.from_numpy(audio.pitch_class_profiles(ws, 16000)))
    A.append(a.numpy()); U.append(u.numpy())
def auc(s, y):
    s, y = np.asarray(s), np.asarray(y).astype(bool); p, n = s[y], s[~y]
    return (p[:, None] > n[None, :]).mean() + 0.5 * (p[:, None] == n[None, :]).mean()
for alpha in [0, 1, 1.5, 2, 3, 4, 6]:
    emb = []
    for a, u in zip(A, U):
        e = a + alpha * u; e /= np.linalg.norm(e, axis=1, keepdims=True); m = e.sum(0); emb.append(m / np.linalg.norm(m))
    emb = np.array(emb)
    res = {g: np.mean([auc(emb @ T[t], [r[t] == "1" for r in rows]) for t in ts]) for g, ts in groups.items()}
    print(f"alpha {alpha}: " + "  ".join(f"{g} {v:.3f}" for g, v in res.items()), flush=True)
