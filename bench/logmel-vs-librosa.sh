#!/usr/bin/env bash
# Log-mel front end, one core each: mulan's LogMelSpectrogram (libavutil's av_tx real FFT, sparse
# Slaney filterbank) against librosa 0.11 melspectrogram + power_to_db with the same parameters
# (LogMelConfig's defaults: 25 ms Hann window, 10 ms hop, next-power-of-two FFT, 128 Slaney mels,
# amin 1e-10, top_db 80) on the same generated audio (a chirp plus seeded noise, produced
# identically by LogMelBenchmark.syntheticAudio and bench/logmel_librosa.py).
#
# Usage: bash bench/logmel-vs-librosa.sh [SECONDS]   (default 600: ten minutes of audio)
# Environment: RATE (16000), ROUNDS (3: mulan and librosa alternate, each ROUNDS times),
#   REPEATS (5 timed calls per process after one warm-up call), QUIET_WAIT (see cpu-accounting.sh),
#   MULAN_LOGMEL_BENCH (the command to time instead of `mulan-train logmel-bench`; it must accept
#   --seconds, --sample-rate, --repeats and print LogMelBenchmark.Result as JSON).
#
# Both sides are pinned to one CPU (taskset) with every thread pool at one thread. The figure is
# × realtime per core: seconds of audio per CPU second of one call, median over all timed calls.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-600}
rate=${RATE:-16000}
rounds=${ROUNDS:-3}
repeats=${REPEATS:-5}
work=${TMPDIR:-/tmp}/mulan-bench-logmel
mkdir -p "$work" bench/results
rm -f "$work"/*.json
source bench/cpu-accounting.sh

scripts/setup.sh --python
py=.venv/bin/python
$py -c 'import librosa' 2>/dev/null || .venv/bin/pip install --quiet --disable-pip-version-check 'librosa==0.11.*'
if [ -z "${MULAN_LOGMEL_BENCH:-}" ]; then
  swift build -c release --product mulan-train --scratch-path .build-bench >/dev/null
  MULAN_LOGMEL_BENCH=".build-bench/release/mulan-train logmel-bench"
fi
# The log-mel front end multiplies nothing with OpenBLAS (its FFT is libavutil's): the line says so.
export CPU_BLAS="$(cpu_blas_line)"   # printed in the result (bench/cpu-accounting.sh)
# One thread per pool, set per command: exported, OMP_NUM_THREADS would also make `nproc` say 1.
one=(env OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 NUMBA_NUM_THREADS=1)
pin=()
command -v taskset >/dev/null && pin=(taskset -c "$(($(nproc) - 1))")

wait_for_quiet
cpu_mark
for r in $(seq "$rounds"); do
  # shellcheck disable=SC2086  # MULAN_LOGMEL_BENCH is a command with arguments
  "${one[@]}" "${pin[@]}" $MULAN_LOGMEL_BENCH --seconds "$seconds" --sample-rate "$rate" --repeats "$repeats" \
    > "$work/mulan-$r.json"
  "${one[@]}" "${pin[@]}" $py bench/logmel_librosa.py --seconds "$seconds" --sample-rate "$rate" --repeats "$repeats" \
    > "$work/librosa-$r.json"
done
cpu_report "timed section" > "$work/cpu.txt"   # not in $( ): `times` must run in this shell
accounting=$(cat "$work/cpu.txt")
echo "$accounting"

stamp=$(date -u +%Y%m%dT%H%M%SZ)
out=bench/results/logmel-vs-librosa-$stamp.md
grep -q WARNING "$work/cpu.txt" && out=bench/results/logmel-vs-librosa-$stamp-DISTURBED.md
$py - "$work" "$rounds" "$stamp" "$accounting" "${pin[*]:-none}" "$MULAN_LOGMEL_BENCH" > "$out" <<'PY'
import json, os, statistics, sys
work, rounds, stamp, accounting, pin, command = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6]
runs = {name: [json.load(open(f"{work}/{name}-{r}.json")) for r in range(1, rounds + 1)] for name in ("mulan", "librosa")}
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
first = runs["mulan"][0]
def calls(name, key): return [t for run in runs[name] for t in run[key]]
stats = {}
for name in runs:
    c, w = calls(name, "cpuSeconds"), calls(name, "wallSeconds")
    stats[name] = dict(cpu=statistics.median(c), wall=statistics.median(w), best=min(c), n=len(c),
                       rt=first["audioSeconds"] / statistics.median(c), mean_db=runs[name][0]["meanDB"])
speedup = stats["librosa"]["cpu"] / stats["mulan"]["cpu"]
print(f"# Log-mel front end: mulan vs librosa — {stamp}\n")
print(f"- machine: {os.cpu_count()} cores, {cpu}; pinned with `{pin}`; OMP/OPENBLAS/MKL/NUMBA threads = 1")
print(f"- {os.environ['CPU_BLAS']}")
print(f"- audio: {first['audioSeconds']:.0f} s at {first['sampleRate']} Hz (chirp + seeded noise, generated identically on both sides)")
print(f"- parameters: window {first['windowLength']}, hop {first['hopLength']}, FFT {first['fftSize']}, "
      f"{first['melBands']} Slaney mels, amin 1e-10, top_db 80 → {first['frames']} frames")
print(f"- librosa {runs['librosa'][0]['librosa']}, numpy {runs['librosa'][0]['numpy']}; mulan command: `{command}`")
print(f"- {rounds} alternating rounds × {len(first['wallSeconds'])} timed calls each (after one warm-up call per process)")
print(f"- same result: mean of all values {stats['mulan']['mean_db']:.6f} dB (mulan) vs {stats['librosa']['mean_db']:.6f} dB (librosa)")
print(f"- {accounting}\n")
print("| implementation | median CPU s per call | best CPU s | median wall s | × realtime per core | calls |")
print("|---|---:|---:|---:|---:|---:|")
for name in ("mulan", "librosa"):
    s = stats[name]
    print(f"| {name} | {s['cpu']:.4f} | {s['best']:.4f} | {s['wall']:.4f} | {s['rt']:,.0f} | {s['n']} |")
print(f"\nmulan is **{speedup:.2f}×** librosa (ratio of median CPU seconds per call).")
PY
cat "$out"
