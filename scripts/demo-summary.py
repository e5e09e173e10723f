#!/usr/bin/env python3
"""Prints what `make demo` learned: held-out zero-shot tagging ROC-AUC per attribute of the demo
corpus (the mean of its tags' ROC-AUC, as `mulan-eval --json` reports them) and caption retrieval
Recall@10, each next to chance level; also writes them as JSON.

Usage: demo-summary.py EVAL_JSON OUT_JSON [LABEL]
Standard library only.
"""
import json
import sys

ATTRIBUTES = {
    "instrument family": ["piano", "guitar", "strings", "brass", "flute", "organ", "bass", "synth"],
    "tempo": ["slow", "fast"],
    "mode": ["major", "minor"],
    "drums": ["drums"],
    "loudness": ["loud", "quiet"],
}

report = json.load(open(sys.argv[1]))
label = sys.argv[3] if len(sys.argv) > 3 else "demo"
per_tag = {t["tag"]: t.get("roc_auc") for t in report["tagging"]["per_tag"]}
rows, summary = [], {"checkpoint": report.get("checkpoint"), "step": report.get("step"),
                     "items": report["tagging"]["items"], "attributes": {}}
for name, tags in ATTRIBUTES.items():
    scored = [per_tag[t] for t in tags if per_tag.get(t) is not None]
    auc = sum(scored) / len(scored) if scored else None
    summary["attributes"][name] = {"roc_auc": auc, "tags": {t: per_tag.get(t) for t in tags}}
    rows.append((f"zero-shot ROC-AUC, {name}", auc, 0.5))
summary["macro_roc_auc"] = report["tagging"].get("macro_roc_auc")
retrieval = report.get("retrieval")
if retrieval:
    pairs = retrieval["pairs"]
    chance = min(1.0, 10 / pairs)
    for direction in ("text_to_audio", "audio_to_text"):
        r10 = retrieval[direction].get("recall_at_10")
        summary[f"{direction}_recall_at_10"] = r10
        rows.append((f"Recall@10, {direction.replace('_', ' ')} ({pairs} captions)", r10, chance))
    summary["recall_at_10_chance"] = chance
json.dump(summary, open(sys.argv[2], "w"), indent=2, sort_keys=True)

print(f"\n{label}: held-out test split, {summary['items']} tracks, checkpoint step {summary['step']}")
width = max(len(r[0]) for r in rows)
print(f"{'':{width}}   model   chance")
for name, value, chance in rows:
    shown = "   n/a" if value is None else f"{value:6.3f}"
    print(f"{name:{width}}  {shown}   {chance:6.3f}")
