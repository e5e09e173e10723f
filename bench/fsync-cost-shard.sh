#!/usr/bin/env bash
# What the durability order costs mulan-shard with small shards (issue 22), finer than
# bench/fsync-cost.sh: only the shard stage, many alternating runs, and several mulan-shard
# binaries side by side (e.g. main's and this branch's release builds), each with its syncs (as
# built) and with MULAN_UNSAFE_SKIP_FSYNC=all (no fsync of mulan's own). Every run writes a fresh
# output folder from the same work directory; the shards must be byte-identical across all cells.
# The work directory is bench/fsync-cost.sh's (TRACKS ingested tracks, their tags filtered): run that
# script once first, or this one ingests it (untimed) the same way.
# Usage: bash bench/fsync-cost-shard.sh RUNS SAMPLES_PER_SHARD LABEL=MULAN_SHARD_BINARY [LABEL=BINARY ...]
#        (TRACKS from $TRACKS, default 40)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=$1
per=$2
shift 2
tracks=${TRACKS:-40}
scratch=${TMPDIR:-/tmp}/mulan-fsync-cost
work=$scratch/work-with
if [ ! -f "$work/catalog.sqlite" ] || [ ! -d "$scratch/corpus-$tracks" ]; then
  echo "no work directory at $work: run MULAN_BENCH_NO_BUILD=1 bash bench/fsync-cost.sh $tracks 1 first" >&2
  exit 1
fi
mkdir -p bench/results
stamp=$(date -u +%Y%m%dT%H%M%SZ)
out=bench/results/fsync-cost-shard-$stamp.md
times=$scratch/shard-times-$stamp.txt
: > "$times"
loads=()
for r in $(seq 1 "$runs"); do
  loads+=("$(cut -d' ' -f1 /proc/loadavg)")
  for pair in "$@"; do
    label=${pair%%=*}
    bin=${pair#*=}
    for mode in with without; do
      dest=$scratch/shards-$label-$mode
      rm -rf "$dest"
      t0=$(date +%s.%N)
      if [ "$mode" = without ]; then
        MULAN_UNSAFE_SKIP_FSYNC=all "$bin" --workdir "$work" --quiet --out "$dest" --samples-per-shard "$per" --split train=1.0 >/dev/null
      else
        "$bin" --workdir "$work" --quiet --out "$dest" --samples-per-shard "$per" --split train=1.0 >/dev/null
      fi
      t1=$(date +%s.%N)
      echo "$label $mode $(echo "$t1 - $t0" | bc)" >> "$times"
    done
  done
done
same=yes
first=""
for pair in "$@"; do
  label=${pair%%=*}
  for mode in with without; do
    sums=$(cd "$scratch/shards-$label-$mode" && find . -name '*.tar' -exec sha256sum {} + | sort | sha256sum)
    if [ -z "$first" ]; then first=$sums; elif [ "$sums" != "$first" ]; then same=NO; fi
  done
done
shards=$(find "$scratch/shards-${1%%=*}-with" -name '*.tar' | wc -l)
python3 - "$times" "$runs" "$per" "$same" "$(nproc)" "${loads[*]}" "$(df -T "$scratch" | awk 'NR==2 {print $2}')" "$shards" "$@" <<'PY' | tee "$out"
import sys, statistics, collections
path, runs, per, same, cores, loads, fs, shards = sys.argv[1:9]
pairs = sys.argv[9:]
t = collections.defaultdict(list)
for line in open(path):
    label, mode, s = line.split()
    t[(label, mode)].append(float(s))
loads = [float(x) for x in loads.split()]
print(f"# mulan-shard with and without its syncs: {runs} alternating runs per cell, {per} samples per shard ({shards} shards)\n")
print(f"{cores} cores; 1-min load average at the start of each round {min(loads):.1f}–{max(loads):.1f} (median "
      f"{statistics.median(loads):.1f}); scratch file system {fs}; shards byte-identical in every cell: {same}.\n")
print("| binary | with syncs: median s (min–max) | without: median s (min–max) | slower by (medians) | slower by (minimums) |")
print("| --- | --- | --- | ---: | ---: |")
for pair in pairs:
    label, binary = pair.split("=", 1)
    a, b = t[(label, "with")], t[(label, "without")]
    ma, mb = statistics.median(a), statistics.median(b)
    print(f"| {label} (`{binary}`) | {ma:.3f} ({min(a):.3f}–{max(a):.3f}) | {mb:.3f} ({min(b):.3f}–{max(b):.3f}) | "
          f"{100 * (ma / mb - 1):+.1f} % | {100 * (min(a) / min(b) - 1):+.1f} % |")
print("\nEvery run, in order (label mode seconds):\n")
print("```")
print(open(path).read().rstrip())
print("```")
PY
echo "results: $out"
