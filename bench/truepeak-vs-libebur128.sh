#!/usr/bin/env bash
# True peak (issue 18): mulan's TruePeakMeter (libebur128's interpolator design, SIMD8) against
# libebur128's own ebur128_true_peak, side by side in one process on the same synthetic music-like
# 30-s clips (`mulan-ingest truepeak-bench`, TruePeakBenchmark): libebur128 with I|LRA|TRUE_PEAK
# (the meter before), with I|LRA (the difference is its true peak), our TruePeakMeter and
# GatedLoudnessMeter (I + LRA, since issue 18's second step) alone, and LoudnessMeter as ingest runs
# it now (both of ours). CPU time of one thread, pinned to one core; medians.
#
# With BEFORE=path/to/mulan-ingest (built from a commit before the change, e.g. 3aeba90), it then
# times per-clip ingest, before against after, on the first TRACKS Ogg Vorbis tracks of Debian's
# wesnoth-1.16-music (--jobs 1, alternating, ROUNDS times each, every run into an empty workdir).
#
# Usage: bash bench/truepeak-vs-libebur128.sh
# Environment: CLIPS (8), RATE (16000), REPEATS (3 passes per timing), MULAN_INGEST (the binary;
#   default: built in release at .build-bench), BEFORE, TRACKS (8), ROUNDS (3), QUIET_WAIT (see
#   cpu-accounting.sh).
# Results: printed and written to bench/results/truepeak-<UTC time>.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/cpu-accounting.sh
clips=${CLIPS:-8}
rate=${RATE:-16000}
repeats=${REPEATS:-3}
tracks=${TRACKS:-8}
rounds=${ROUNDS:-3}
work=${TMPDIR:-/tmp}/mulan-bench-truepeak
stamp=$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$work" bench/results
out=bench/results/truepeak-$stamp.txt
if [ -z "${MULAN_INGEST:-}" ]; then
  swift build -c release -j 1 --product mulan-ingest --scratch-path .build-bench >/dev/null
  MULAN_INGEST=.build-bench/release/mulan-ingest
fi
pin=()
command -v taskset >/dev/null && pin=(taskset -c "$(($(nproc) - 1))")

{
  echo "# true peak: TruePeakMeter vs libebur128 — $stamp"
  echo "- machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
  echo "- mulan commit: $(git rev-parse --short HEAD)$( [[ -n $(git status --porcelain) ]] && echo ' (uncommitted changes)')"
} | tee "$out"

wait_for_quiet | tee -a "$out"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$out"
cpu_mark
"${pin[@]}" "$MULAN_INGEST" truepeak-bench --clips "$clips" --seconds 30 --sample-rate "$rate" --repeats "$repeats" \
  > "$work/bench.json"
cpu_report "true-peak bench" > "$work/cpu.txt"
python3 - "$work/bench.json" <<'EOF' | tee -a "$out"
import json, sys
r = json.load(open(sys.argv[1]))
ms = lambda s: f"{1000 * s:.2f} ms"
print(f"{r['clips']} clips of {r['clipSeconds']:.0f} s at {r['sampleRate']} Hz, CPU time per clip (median):")
print(f"| measurement | per clip |")
print(f"|---|---:|")
print(f"| libebur128 I+LRA+true peak (LoudnessMeter before) | {ms(r['libebur128Full'])} |")
print(f"| libebur128 I+LRA | {ms(r['libebur128WithoutTruePeak'])} |")
print(f"| libebur128's true peak (the difference) | {ms(r['libebur128TruePeak'])} |")
print(f"| TruePeakMeter | {ms(r['ours'])} |")
print(f"| GatedLoudnessMeter I+LRA | {ms(r['oursGated'])} |")
print(f"| LoudnessMeter now (GatedLoudnessMeter + TruePeakMeter) | {ms(r['loudnessMeter'])} |")
print(f"true peak: {r['speedup']:.1f}× faster than libebur128's; I+LRA {r['gatedSpeedup']:.1f}× faster; "
      f"whole meter {r['meterSpeedup']:.2f}× faster than libebur128 I+LRA+TP; "
      f"largest difference from ebur128_true_peak {r['maxDifferenceDB']:.2e} dB, "
      f"from ebur128_loudness_global/_range {r['maxGatedDifferenceLU']:.2e} LU")
EOF
cat "$work/cpu.txt" | tee -a "$out"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$out"

[ -n "${BEFORE:-}" ] || exit 0
# --- Per-clip ingest time, before and after, on real music ----------------------------------------
music=/usr/share/games/wesnoth/1.16/data/core/music
rm -rf "$work/in" && mkdir -p "$work/in"
find "$music" -maxdepth 1 -name '*.ogg' | sort | head -n "$tracks" | while read -r f; do ln -s "$f" "$work/in/"; done
run() { # BINARY NAME ROUND: prints "wall_seconds clips"
  local w=$work/wd-$2
  rm -rf "$w"; sync
  local t0 t1
  t0=$(date +%s.%N)
  "$1" --scan "$work/in" --glob '*.ogg' --workdir "$w" --jobs 1 --quiet --report "$work/$2.json" >/dev/null 2>&1 || [ $? -eq 3 ]
  t1=$(date +%s.%N)
  python3 -c "import json,sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.3f}', json.load(open(sys.argv[3]))['clips_written'])" \
    "$t0" "$t1" "$work/$2.json"
}
wait_for_quiet | tee -a "$out"
echo "load average before ingest timing: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$out"
cpu_mark
: > "$work/ingest.txt"
for r in $(seq "$rounds"); do
  echo "before $(run "$BEFORE" before "$r")" >> "$work/ingest.txt"
  echo "after $(run "$MULAN_INGEST" after "$r")" >> "$work/ingest.txt"
done
cpu_report "ingest timing" > "$work/cpu-ingest.txt"
python3 - "$work/ingest.txt" "$tracks" <<'EOF' | tee -a "$out"
import sys, statistics
rows = [l.split() for l in open(sys.argv[1])]
by = {}
for name, wall, clips in rows:
    by.setdefault(name, []).append((float(wall), int(clips)))
print(f"mulan-ingest --jobs 1 on the first {sys.argv[2]} wesnoth tracks, wall seconds per run: "
      + "; ".join(f"{n} " + ", ".join(f"{w:.2f}" for w, _ in v) for n, v in by.items()))
per = {n: statistics.median(w for w, _ in v) / v[0][1] for n, v in by.items()}
print(f"clips per run: {by['after'][0][1]}; per clip (median run): before {1000 * per['before']:.1f} ms, "
      f"after {1000 * per['after']:.1f} ms ({100 * (1 - per['after'] / per['before']):.1f}% less)")
EOF
cat "$work/cpu-ingest.txt" | tee -a "$out"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$out"
