#!/usr/bin/env bash
# GFLOP/s of cblas_sgemm as one call and as fixed blocks (the price of BLAS.parallelGemm's
# thread-count-independent split on one thread), with the core mulan would choose; writes
# bench/results/gemm-blocks-STAMP.md. Usage: bash bench/gemm-blocks.sh   (about a minute)
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/cpu-accounting.sh
scripts/setup.sh
mkdir -p bench/results
work=$(mktemp -d)
cc -O2 bench/gemm-blocks.c -o "$work/gemm-blocks" -lopenblas
swift build -c release --product mulan-train --scratch-path .build-bench >/dev/null
line=$(cpu_blas_line .build-bench/release/mulan-train)
# The same core as mulan's stages: the one mulan-train reports (this program links OpenBLAS itself).
core=$(.build-bench/release/mulan-train blas --json | python3 -c 'import json, sys; print(json.load(sys.stdin)["blas"]["core"])')
wait_for_quiet
cpu_mark
OPENBLAS_CORETYPE=$core OPENBLAS_NUM_THREADS=1 "$work/gemm-blocks" > "$work/table.md"
cpu_report "timed section" > "$work/cpu.txt"
stamp=$(date -u +%Y%m%dT%H%M%SZ)
out=bench/results/gemm-blocks-$stamp.md
grep -q WARNING "$work/cpu.txt" && out=bench/results/gemm-blocks-$stamp-DISTURBED.md
{ echo "# sgemm as one call and as fixed blocks — $stamp"; echo
  echo "- $line"; echo "- $(cat "$work/cpu.txt")"; echo
  cat "$work/table.md"; } > "$out"
cat "$out"
rm -rf "$work"
