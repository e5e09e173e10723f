#!/usr/bin/env python3
"""Prints `make demo-towers`: audio towers trained on the same demo corpus with the same options,
side by side — zero-shot tagging ROC-AUC per attribute and caption Recall@10 on the held-out test
split and on the held-out soundfont (`mulan-eval --json`), the linear probe's macro ROC-AUC on the
test split (`mulan-eval probe --json`) and text-triplet accuracy (`mulan-eval triplets --json`).

Usage: demo-towers.py LABEL EVAL_JSON HELDOUT_EVAL_JSON PROBE_JSON TRIPLETS_JSON [LABEL EVAL … ]…
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


def zero_shot(path):
    """{attribute: mean ROC-AUC of its tags} and text→audio Recall@10 of one mulan-eval report."""
    report = json.load(open(path))
    per_tag = {t["tag"]: t.get("roc_auc") for t in report["tagging"]["per_tag"]}
    out = {}
    for name, tags in ATTRIBUTES.items():
        scored = [per_tag[t] for t in tags if per_tag.get(t) is not None]
        out[name] = sum(scored) / len(scored) if scored else None
    retrieval = report.get("retrieval") or {}
    out["Recall@10 text→audio"] = (retrieval.get("text_to_audio") or {}).get("recall_at_10")
    return out, report.get("step")


def shown(value):
    return "n/a" if value is None else f"{value:.3f}"


def main(argv):
    if not argv or len(argv) % 5:
        sys.exit(__doc__.split("\n\n")[-1].strip())
    columns = []
    for i in range(0, len(argv), 5):
        label, split, heldout, probe, triplets = argv[i:i + 5]
        split_scores, step = zero_shot(split)
        heldout_scores, _ = zero_shot(heldout)
        rows = {f"{k}, split": v for k, v in split_scores.items()}
        rows.update({f"{k}, held-out soundfont": v for k, v in heldout_scores.items()})
        rows["linear probe macro ROC-AUC (test split)"] = json.load(open(probe))["probe"]["test"]["macro_roc_auc"]
        rows["text triplets, accuracy"] = json.load(open(triplets))["model"]["accuracy"]
        columns.append((f"{label} (step {step})", rows))
    names = list(columns[0][1])
    width = max(len(n) for n in names)
    print("\nAudio towers on the same corpus and options (zero-shot ROC-AUC: chance 0.5):")
    print(f"{'':{width}}  " + "  ".join(f"{c[0]:>{max(12, len(c[0]))}}" for c in columns))
    for n in names:
        print(f"{n:{width}}  " + "  ".join(f"{shown(c[1].get(n)):>{max(12, len(c[0]))}}" for c in columns))


if __name__ == "__main__":
    main(sys.argv[1:])
