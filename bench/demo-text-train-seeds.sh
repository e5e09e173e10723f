#!/usr/bin/env bash
# Zero-shot quality of the demo's pretrained-tower model with each text-tower training mode at several
# seeds: `mulan-train` with the flags of the Makefile's DEMO_MUSICNN_FLAGS (frozen MTT musicnn, 200 steps,
# --audio-cache 256), only --text-train and --seed changed, each run scored by `mulan-eval` with the
# demo's --exclusive groups on the demo's test split and on the held-out soundfont, as `make demo` scores
# them. Quality, not speed (bench/demo-stage-times.sh times the modes).
#
# Usage: bash bench/demo-text-train-seeds.sh
# Environment: BIN (release binaries, default .build/release), DEMO (a finished `make demo` folder,
#   default demo-work), PRETRAINED (default .venv/mulan-pretrained/musicnn/MTT_musicnn.safetensors),
#   MODES ("frozen top:1 top:2"), SEEDS ("7 8 9 10"), THREADS (2), RUNS_DIR (default
#   ${TMPDIR:-/tmp}/mulan-bench-text-train). A run whose two evaluations are already in RUNS_DIR is not
#   run again (REUSE=0 runs everything), so the table can be rebuilt from earlier runs.
# Results: printed and written to bench/results/demo-text-train-seeds-<UTC time>.md.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=$(cd "${BIN:-$ROOT/.build/release}" && pwd)
DEMO=$(cd "${DEMO:-$ROOT/demo-work}" && pwd)
PRETRAINED=${PRETRAINED:-$ROOT/.venv/mulan-pretrained/musicnn/MTT_musicnn.safetensors}
MODES=${MODES:-frozen top:1 top:2}
SEEDS=${SEEDS:-7 8 9 10}
THREADS=${THREADS:-2}
REUSE=${REUSE:-1}
RUNS_DIR=${RUNS_DIR:-${TMPDIR:-/tmp}/mulan-bench-text-train}
OUT=$ROOT/bench/results/demo-text-train-seeds-$(date -u +%Y%m%dT%H%M%SZ).md
mkdir -p "$RUNS_DIR" "$ROOT/bench/results"
for f in "$DEMO/work/shards/latest" "$DEMO/text-model/vocab.txt" "$DEMO/corpus/eval/test-tags.csv" \
         "$DEMO/heldout/corpus/eval/test-tags.csv" "$PRETRAINED"; do
    [ -e "$f" ] || { echo "demo-text-train-seeds: $f is missing (run make demo first)" >&2; exit 1; }
done
exclusive=(--exclusive piano,guitar,strings,brass,flute,organ,bass,synth --exclusive slow,fast
    --exclusive major,minor --exclusive loud,quiet)
for mode in $MODES; do
    for seed in $SEEDS; do
        name=${mode/:/}-$seed run=$RUNS_DIR/${mode/:/}-$seed
        if [ "$REUSE" = 1 ] && [ -s "$run.eval-corpus.json" ] && [ -s "$run.eval-heldout-corpus.json" ]; then
            echo "$name: reusing $run" >&2; continue
        fi
        echo "$name: training and evaluating" >&2
        rm -rf "$run"
        "$BIN/mulan-train" --workdir "$DEMO/work" \
            --run-dir "$run" --threads "$THREADS" --steps 200 --batch-size 32 --lr 2e-3 --warmup-steps 40 \
            --eval-every 200 --eval-samples 16 --checkpoint-every 200 --log-every 50 --window-seconds 10 \
            --audio-tower musicnn --audio-init "$PRETRAINED" --audio-train frozen --audio-cache 256 --no-spec-augment \
            --text-init "$DEMO/text-model" --text-train "$mode" --text-pooling mean --seed "$seed" --quiet > /dev/null
        for corpus in corpus heldout/corpus; do
            "$BIN/mulan-eval" --run-dir "$run" --vocab "$DEMO/text-model/vocab.txt" --csv "$DEMO/$corpus/eval/test-tags.csv" \
                "${exclusive[@]}" --audio-root "$DEMO/$corpus" --captions "$DEMO/$corpus/eval/test-captions.jsonl" \
                --threads "$THREADS" --json "$run.eval-${corpus/\//-}.json" --quiet > /dev/null
        done
    done
done

python3 - "$RUNS_DIR" "$OUT" "$MODES" "$SEEDS" <<'PY'
import json, statistics, sys
runs, out, modes, seeds = sys.argv[1], sys.argv[2], sys.argv[3].split(), sys.argv[4].split()
families = ["piano", "guitar", "strings", "brass", "flute", "organ", "bass", "synth"]
groups = {"family": families, "tempo": ["slow", "fast"], "mode": ["major", "minor"], "loudness": ["loud", "quiet"]}

def scores(path):
    d = json.load(open(path))
    tags = {t["tag"]: t for t in d["tagging"]["per_tag"]}
    row = {}
    for g, members in groups.items():
        row[g] = statistics.mean(tags[m]["roc_auc"] for m in members)
        row[g + " excl"] = statistics.mean(tags[m]["exclusive_roc_auc"] for m in members)
    row["guitar"], row["organ"] = tags["guitar"]["roc_auc"], tags["organ"]["roc_auc"]
    row["R@10 t→a"] = d["retrieval"]["text_to_audio"]["recall_at_10"]
    row["R@10 a→t"] = d["retrieval"]["audio_to_text"]["recall_at_10"]
    return row

columns = ["family", "family excl", "guitar", "organ", "tempo", "tempo excl", "mode", "mode excl",
           "loudness", "loudness excl", "R@10 t→a", "R@10 a→t"]
lines = ["# The demo's musicnn model by --text-train mode and seed", "",
         "DEMO_MUSICNN_FLAGS with --text-train MODE --seed SEED; zero-shot ROC-AUC (plain / among the "
         "attribute's tags: excl) and caption Recall@10.", ""]
for corpus, label in (("heldout-corpus", "held-out soundfont"), ("corpus", "test split of the training soundfonts")):
    lines += [f"## {label}", "", "| mode | seed | " + " | ".join(columns) + " |",
              "|---|---:|" + "---:|" * len(columns)]
    for mode in modes:
        rows = []
        for seed in seeds:
            base = f"{runs}/{mode.replace(':', '')}-{seed}"
            r = scores(f"{base}.eval-{corpus}.json")
            rows.append(r)
            lines.append(f"| {mode} | {seed} | " + " | ".join(f"{r[c]:.3f}" for c in columns) + " |")
        lines.append(f"| {mode} | mean | " + " | ".join(f"{statistics.mean(r[c] for r in rows):.3f}" for c in columns) + " |")
    lines.append("")
open(out, "w").write("\n".join(lines))
print("\n".join(lines))
print(f"written: {out}")
PY
