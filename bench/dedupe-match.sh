#!/usr/bin/env bash
# Matching time and peak memory for N synthetic fingerprints (random 32-bit items, 240 items ≈ 30 s
# each, 1 % planted noisy copies at bit error rate 0.03, a random 60–100 % part of the original),
# to show near-linear growth. Usage: bench/dedupe-match.sh [N...]   (default: 100000 1000000)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.build-bench/release}
[ -x "$BIN/mulan-dedupe" ] || swift build -c release --product mulan-dedupe --scratch-path .build-bench
mkdir -p bench/results
echo "# $(date -u +%FT%TZ) $(nproc) cores, load average: $(cut -d' ' -f1-3 /proc/loadavg)"
sizes=("$@"); [ ${#sizes[@]} -gt 0 ] || sizes=(100000 1000000)
for count in "${sizes[@]}"; do
  /usr/bin/time -f "%e s wall, %M KB max RSS" "$BIN/mulan-dedupe" bench-match --count "$count" --items 240 \
    --duplicates 0.01 --bit-error-rate 0.03 --seed 1
done
