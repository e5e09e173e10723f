#!/usr/bin/env python3
"""Prints what `make demo` learned: zero-shot tagging ROC-AUC per attribute of the demo corpus (the
mean of its tags' ROC-AUC, as `mulan-eval --json` reports them) and caption retrieval Recall@10, each
next to chance level; also writes them as JSON. With --heldout, the same for a second evaluation (the
held-out soundfont) beside the first, and a per-family table of both.

Usage: demo-summary.py EVAL_JSON OUT_JSON [LABEL] [--heldout EVAL_JSON OUT_JSON LABEL]
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
# The targets of issue 19 on the held-out soundfont.
TARGETS = {"instrument family": 0.90, "tempo": 0.75, "mode": 0.70, "loudness": 0.85, "text_to_audio": 0.85}


def summarize(eval_path, out_path):
    """The summary of one mulan-eval report (written to out_path) and its rows (name, key, value, chance)."""
    report = json.load(open(eval_path))
    per_tag = {t["tag"]: t.get("roc_auc") for t in report["tagging"]["per_tag"]}
    rows, summary = [], {"checkpoint": report.get("checkpoint"), "step": report.get("step"),
                         "items": report["tagging"]["items"], "attributes": {}}
    for name, tags in ATTRIBUTES.items():
        scored = [per_tag[t] for t in tags if per_tag.get(t) is not None]
        auc = sum(scored) / len(scored) if scored else None
        summary["attributes"][name] = {"roc_auc": auc, "tags": {t: per_tag.get(t) for t in tags}}
        rows.append((f"zero-shot ROC-AUC, {name}", name, auc, 0.5))
    summary["macro_roc_auc"] = report["tagging"].get("macro_roc_auc")
    retrieval = report.get("retrieval")
    if retrieval:
        pairs = retrieval["pairs"]
        chance = min(1.0, 10 / pairs)
        summary["retrieval_pairs"] = pairs
        for direction in ("text_to_audio", "audio_to_text"):
            r10 = retrieval[direction].get("recall_at_10")
            summary[f"{direction}_recall_at_10"] = r10
            rows.append((f"Recall@10, {direction.replace('_', ' ')}", direction, r10, chance))
        summary["recall_at_10_chance"] = chance
    json.dump(summary, open(out_path, "w"), indent=2, sort_keys=True)
    return summary, rows


def shown(value):
    return "   n/a" if value is None else f"{value:6.3f}"


def main(argv):
    heldout = None
    if "--heldout" in argv:
        k = argv.index("--heldout")
        heldout, argv = argv[k + 1:k + 4], argv[:k]
        if len(heldout) != 3:
            sys.exit("demo-summary.py: --heldout takes EVAL_JSON OUT_JSON LABEL")
    if len(argv) < 2:
        sys.exit(__doc__.split("\n\n")[-1].strip())
    label = argv[2] if len(argv) > 2 else "demo"
    summary, rows = summarize(argv[0], argv[1])
    if heldout is None:
        print(f"\n{label}: held-out test split, {summary['items']} tracks, checkpoint step {summary['step']}")
        width = max(len(r[0]) for r in rows)
        print(f"{'':{width}}   model   chance")
        for name, _, value, chance in rows:
            print(f"{name:{width}}  {shown(value)}   {chance:6.3f}")
        return
    other, other_rows = summarize(heldout[0], heldout[1])
    other_by_key = {key: (value, chance) for _, key, value, chance in other_rows}
    print(f"\n{label}: checkpoint step {summary['step']}, zero-shot on the held-out test split ({summary['items']} tracks) "
          f"and on the {heldout[2]} ({other['items']} tracks)")
    width = max(len(r[0]) for r in rows)
    print(f"{'':{width}}   split   chance   soundfont   chance   target")
    met = []
    for name, key, value, chance in rows:
        o_value, o_chance = other_by_key.get(key, (None, None))
        target = TARGETS.get(key)
        mark = ""
        if target is not None:
            ok = o_value is not None and o_value >= target
            met.append(ok)
            mark = f"≥ {target:.2f} {'met' if ok else 'not met'}"
        print(f"{name:{width}}  {shown(value)}   {chance:6.3f}      {shown(o_value)}   {shown(o_chance)}   {mark}".rstrip())
    print(f"(Recall@10 over {summary.get('retrieval_pairs', '?')} captions on the split, "
          f"{other.get('retrieval_pairs', '?')} on the held-out soundfont; targets of issue 19 on the held-out soundfont: "
          f"{sum(met)} of {len(met)} met)")
    print(f"\nInstrument family, zero-shot ROC-AUC per family (chance 0.5):")
    print(f"{'family':8}   split   soundfont")
    split_tags = summary["attributes"]["instrument family"]["tags"]
    other_tags = other["attributes"]["instrument family"]["tags"]
    for family in ATTRIBUTES["instrument family"]:
        print(f"{family:8}  {shown(split_tags.get(family))}      {shown(other_tags.get(family))}")


if __name__ == "__main__":
    main(sys.argv[1:])
