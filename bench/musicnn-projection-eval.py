#!/usr/bin/env python3
"""Zero-shot scores of mulan-train runs with a *frozen* pretrained tower (musicnn/vgg), without
running the tower again for every run: the ablations of docs/demo.md ("Ablations of the frozen
musicnn model") train many such models on the same frozen features, and `mulan-eval` spends most of
its time (about 110 s of CPU on the held-out soundfont) in the tower, whose output is the same for
all of them.

`features` runs the frozen tower once over a corpus's evaluation audio (the tracks of
eval/test-tags.csv and eval/test-captions.jsonl), window by window as `mulan-eval` embeds a track
(`Embedder.windowOffsets`: up to 30 s the start, middle and end windows, longer tracks every
non-overlapping window from the start; decoded as `ffmpeg -ac 1 -ar 16000 -f f32le` decodes, which is
what mulan's AudioDecoder does), and stores each window's pooled tower feature (the mean over its
3-s patches of the 200-d penultimate feature) with a fingerprint of the tower's weights.

`score` then takes a run's checkpoint: its audio projection on the stored features (a track is the
renormalized sum of its unit window embeddings), its text tower on the tag names and captions, and
prints the figures `scripts/demo-summary.py` prints from `mulan-eval --json`: per-tag ROC-AUC
(Mann-Whitney, ties shared), the attribute means, caption Recall@10 both ways (pairs with the same
caption relevant to each other, ties counted against the positive). It refuses a checkpoint whose
tower weights differ from the features' (a run with --audio-train top:K or full: use mulan-eval).
`--json OUT` writes the figures. `--cross A,B` also prints, for the prompts A and B (e.g. loud,quiet),
each prompt's score's ROC-AUC for every tag of the corpus (what else the prompt ranks by), and the
ROC-AUC of the difference of the two scores for A (the pair's contrast, which the per-tag figures
do not use).

Check against mulan-eval: docs/demo.md gives both on the same checkpoint.

Usage:
  .venv/bin/python bench/musicnn-projection-eval.py features PRETRAINED.safetensors CORPUS OUT.npz
  .venv/bin/python bench/musicnn-projection-eval.py score FEATURES.npz RUN_DIR_OR_CHECKPOINT VOCAB [--json OUT] [--cross A,B]
"""
import csv
import hashlib
import json
import os
import subprocess
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
from mulan_torch import musicnn  # noqa: E402
from mulan_torch.evaluation import diagonal_ranks, recall_at, roc_auc  # noqa: E402
from mulan_torch.model import MulanModel  # noqa: E402

ATTRIBUTES = {
    "instrument family": ["piano", "guitar", "strings", "brass", "flute", "organ", "bass", "synth"],
    "tempo": ["slow", "fast"],
    "mode": ["major", "minor"],
    "drums": ["drums"],
    "loudness": ["loud", "quiet"],
}
RATE = 16000
WINDOW = 10 * RATE
CLIP_SECONDS = 30


def decode(path):
    """Mono float32 at 16 kHz, as mulan's AudioDecoder (libswresample defaults, like the ffmpeg CLI)."""
    out = subprocess.run(["ffmpeg", "-v", "error", "-nostdin", "-i", path, "-ac", "1", "-ar", str(RATE), "-f", "f32le", "-"],
                         check=True, capture_output=True).stdout
    return np.frombuffer(out, dtype=np.float32).copy()


def window_offsets(count):
    """Embedder.windowOffsets for 10-s windows at 16 kHz."""
    if count <= max(CLIP_SECONDS * RATE, WINDOW):
        span = max(0, count - WINDOW)
        offsets = []
        for o in (0, span // 2, span):
            if o not in offsets:
                offsets.append(o)
        return offsets
    return list(range(0, count - WINDOW + 1, WINDOW))


def window(samples, offset):
    if samples.shape[0] <= WINDOW:
        return np.concatenate([samples, np.zeros(WINDOW - samples.shape[0], dtype=np.float32)])
    return samples[offset:offset + WINDOW]


def tower_fingerprint(named_tensors):
    """SHA-256 over the tower's tensors (names sorted; the projection and the tag layer left out)."""
    h = hashlib.sha256()
    for name in sorted(named_tensors):
        if name.startswith(("proj.", "backend.logits.", "logits.")) or name.endswith("num_batches_tracked"):
            continue
        h.update(name.encode())
        h.update(np.ascontiguousarray(named_tensors[name].detach().cpu().numpy(), dtype=np.float32).tobytes())
    return h.hexdigest()


def corpus_items(corpus):
    """(tags, [(path, set of tags)], [(path, caption)]) of a demo corpus's eval files."""
    with open(os.path.join(corpus, "eval", "test-tags.csv"), newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    tags = [c for c in rows[0].keys() if c not in ("clip_id", "mp3_path")]
    items = [(os.path.abspath(os.path.join(corpus, r["mp3_path"])), {t for t in tags if r[t] == "1"}) for r in rows]
    captions = []
    with open(os.path.join(corpus, "eval", "test-captions.jsonl")) as f:
        for line in f:
            if line.strip():
                c = json.loads(line)
                captions.append((os.path.abspath(os.path.join(corpus, c["path"])), c["caption"]))
    return tags, items, captions


def features(pretrained, corpus, out):
    tower, meta = musicnn.load_pretrained(pretrained)
    tower.eval()
    _, items, captions = corpus_items(corpus)
    paths = list(dict.fromkeys([p for p, _ in items] + [p for p, _ in captions]))
    feats, owner, spans = [], [], []
    with torch.no_grad():
        for k, path in enumerate(paths):
            samples = decode(path)
            wins = [musicnn.log_mel(window(samples, o)) for o in window_offsets(samples.shape[0])]
            x = torch.from_numpy(np.stack([musicnn.patches(w) for w in wins]))  # [windows, patches, 96, 187]
            w, n = x.shape[0], x.shape[1]
            f = tower.features(x.reshape(w * n, x.shape[2], x.shape[3])).reshape(w, n, -1).mean(dim=1)
            feats.append(f.numpy())
            owner += [k] * w
            print(f"{k + 1}/{len(paths)} {os.path.basename(path)}: {w} windows", file=sys.stderr)
    np.savez(out, features=np.concatenate(feats), owner=np.array(owner), paths=np.array(paths),
             fingerprint=np.array(tower_fingerprint(dict(tower.state_dict()))), corpus=np.array(os.path.abspath(corpus)),
             source=np.array(meta.get("source", pretrained)))


def score(features_path, run, vocab, json_out=None, cross=None):
    from transformers import BertTokenizer

    data = np.load(features_path)
    corpus = str(data["corpus"])
    model = MulanModel.from_checkpoint(run)
    tower_state = {k: v for k, v in model.audio.state_dict().items()}
    if tower_fingerprint(tower_state) != str(data["fingerprint"]):
        sys.exit(f"{model.checkpoint_path}: its audio tower's weights differ from those of {features_path} "
                 f"({data['source']}); the tower trained in that run (use mulan-eval) or the features are of other weights")
    paths = [str(p) for p in data["paths"]]
    owner = data["owner"]
    with torch.no_grad():
        win = F.normalize(model.audio.proj(torch.from_numpy(data["features"])), dim=-1, eps=1e-12).numpy()
    audio = np.zeros((len(paths), win.shape[1]), dtype=np.float32)
    np.add.at(audio, owner, win)
    audio /= np.maximum(np.linalg.norm(audio, axis=1, keepdims=True), 1e-12)
    row = {p: i for i, p in enumerate(paths)}
    tokenizer = BertTokenizer(vocab, do_lower_case=True)

    def embed(texts):
        ids = [tokenizer.encode(t, add_special_tokens=False) for t in texts]
        return model.embed_token_ids(ids).numpy()

    tags, items, captions = corpus_items(corpus)
    item_audio = audio[[row[p] for p, _ in items]]
    scores = embed(tags) @ item_audio.T
    per_tag = {t: roc_auc([float(x) for x in scores[k]], [t in labels for _, labels in items]) for k, t in enumerate(tags)}
    summary = {"checkpoint": model.checkpoint_path, "step": model.step, "items": len(items), "per_tag": per_tag,
               "attributes": {}}
    for name, group in ATTRIBUTES.items():
        vals = [per_tag[t] for t in group if per_tag.get(t) is not None]
        summary["attributes"][name] = sum(vals) / len(vals) if vals else None
    text = embed([c for _, c in captions])
    cap_audio = audio[[row[p] for p, _ in captions]]
    sim = cap_audio @ text.T
    groups, seen = [], {}
    for _, c in captions:
        groups.append(seen.setdefault(c, len(seen)))
    summary["text_to_audio_recall_at_10"] = recall_at(10, diagonal_ranks(sim, transpose=True, groups=groups))
    summary["audio_to_text_recall_at_10"] = recall_at(10, diagonal_ranks(sim, groups=groups))
    summary["retrieval_pairs"] = len(captions)
    a = summary["attributes"]
    print(f"{run}: step {model.step}, {len(items)} tracks ({corpus})")
    print("family {:.3f}  tempo {:.3f}  mode {:.3f}  drums {:.3f}  loudness {:.3f}  R@10 t2a {:.3f}  a2t {:.3f}".format(
        a["instrument family"], a["tempo"], a["mode"], a["drums"], a["loudness"],
        summary["text_to_audio_recall_at_10"], summary["audio_to_text_recall_at_10"]))
    print("  " + "  ".join(f"{t} {per_tag[t]:.3f}" for t in ATTRIBUTES["instrument family"]))
    # Each attribute's tags scored among their own group (log-softmax at the model's temperature;
    # what `mulan-eval --exclusive` computes), beside the prompt-alone figures above.
    tau = float(model.loss.log_temperature.detach().exp())
    grouped = {}
    for name, group in ATTRIBUTES.items():
        if len(group) < 2:
            continue
        ks = [tags.index(t) for t in group]
        z = scores[ks] / tau
        z = z - np.logaddexp.reduce(z, axis=0, keepdims=True)
        for j, t in enumerate(group):
            grouped[t] = roc_auc([float(x) for x in z[j]], [t in labels for _, labels in items])
    summary["per_tag_exclusive"] = grouped
    print("  exclusive: " + "  ".join(
        f"{name} {np.mean([grouped[t] for t in g]):.3f}" for name, g in ATTRIBUTES.items() if len(g) > 1))
    print("  exclusive: " + "  ".join(f"{t} {grouped[t]:.3f}" for t in ATTRIBUTES["instrument family"]))
    if cross:
        pair = cross.split(",")
        e = embed(pair)
        s = e @ item_audio.T
        for k, prompt in enumerate(pair):
            print(f"  prompt {prompt!r}, its score's ROC-AUC for each tag: " + " ".join(
                f"{t} {roc_auc([float(x) for x in s[k]], [t in labels for _, labels in items]):.2f}" for t in tags))
        if len(pair) == 2:
            diff = roc_auc([float(x) for x in s[0] - s[1]], [pair[0] in labels for _, labels in items])
            print(f"  score({pair[0]!r}) - score({pair[1]!r}): ROC-AUC {diff:.3f} for {pair[0]}; "
                  f"cosine of the two prompts' embeddings {float(e[0] @ e[1]):.2f}")
    if json_out:
        with open(json_out, "w") as f:
            json.dump(summary, f, indent=2, sort_keys=True)


def main(argv):
    json_out = cross = None
    if "--cross" in argv:
        k = argv.index("--cross")
        cross, argv = argv[k + 1], argv[:k] + argv[k + 2:]
    if "--json" in argv:
        k = argv.index("--json")
        json_out, argv = argv[k + 1], argv[:k] + argv[k + 2:]
    torch.set_num_threads(int(os.environ.get("THREADS", "1")))
    if len(argv) == 4 and argv[0] == "features":
        features(*argv[1:])
    elif len(argv) == 4 and argv[0] == "score":
        score(*argv[1:], json_out=json_out, cross=cross)
    else:
        sys.exit(__doc__.split("Usage:")[1])


if __name__ == "__main__":
    main(sys.argv[1:])
