#!/usr/bin/env bash
# Audio embedding throughput of `mulan-embed`, in × realtime (seconds of audio embedded per second of
# wall time), at 1 and 2 threads: decoding (libavcodec), resampling to the model's rate, log-mel,
# the audio tower on every window of every file (a track of up to 30 s: start, middle and end
# windows; a longer track: all its windows), averaging, writing the index.
#
# The files: the demo corpus (scripts/make-demo-corpus.py: ogg, mp3, opus, flac and wav, 35-90 s,
# 22.05-48 kHz); the model: the demo's architecture (make demo-pipeline with DEMO_STEPS=2: the
# weights do not change the cost).
#
# Usage: bash bench/embed-audio.sh [TRACKS]   (default 36)
# Environment: THREADS ("1 2"), ROUNDS (2, best kept), QUIET_WAIT (see cpu-accounting.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
tracks=${1:-36}
rounds=${ROUNDS:-2}
thread_counts=${THREADS:-1 2}
work=${TMPDIR:-/tmp}/mulan-bench-embed-audio
mkdir -p "$work" bench/results
source bench/cpu-accounting.sh

make --no-print-directory release >/dev/null
scripts/setup.sh --python
make --no-print-directory demo-pipeline DEMO_DIR="$work/demo" DEMO_TRACKS="$tracks" DEMO_STEPS=2 >"$work/pipeline.log" 2>&1 \
  || { cat "$work/pipeline.log"; exit 1; }
audio="$work/demo/corpus/audio"
export CPU_BLAS="$(cpu_blas_line .build/release/mulan-train)"   # printed in the result (bench/cpu-accounting.sh)

wait_for_quiet
cpu_mark
for t in $thread_counts; do
  for r in $(seq "$rounds"); do
    rm -rf "$work/index"
    status=0
    .build/release/mulan-embed --run-dir "$work/demo/run" --audio "$audio" --out "$work/index" --threads "$t" --quiet \
      > "$work/embed-$t-$r.json" || status=$?
    # 3: done, with the corpus's deliberately broken files recorded as failures.
    [ "$status" -eq 0 ] || [ "$status" -eq 3 ] || exit "$status"
  done
done
cpu_report "timed section" > "$work/cpu.txt"
accounting=$(cat "$work/cpu.txt")
echo "$accounting"

stamp=$(date -u +%Y%m%dT%H%M%SZ)
out=bench/results/embed-audio-$stamp.md
grep -q WARNING "$work/cpu.txt" && out=bench/results/embed-audio-$stamp-DISTURBED.md
python3 - "$work" "$rounds" "$stamp" "$accounting" "$thread_counts" "$tracks" > "$out" <<'PY'
import json, os, sys
work, rounds, stamp, accounting, threads, tracks = sys.argv[1:7]
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
config = json.load(open(f"{work}/demo/run/config.json"))
print(f"# Audio embedding throughput — {stamp}\n")
print(f"- machine: {os.cpu_count()} cores, {cpu}")
print(f"- {os.environ['CPU_BLAS']}")
print(f"- files: the demo corpus at {tracks} tracks (scripts/make-demo-corpus.py; ogg/mp3/opus/flac/wav, 35-90 s)")
print(f"- model: the demo's architecture (run config: {work}/demo/run/config.json)")
print(f"- {rounds} runs per thread count, the best kept; command: `mulan-embed --run-dir RUN --audio DIR --out IDX --threads T`")
print(f"- {accounting}\n")
print("| threads | audio files embedded | audio seconds | wall seconds | × realtime |")
print("|---:|---:|---:|---:|---:|")
for t in threads.split():
    runs = [json.load(open(f"{work}/embed-{t}-{r}.json")) for r in range(1, int(rounds) + 1)]
    best = min(runs, key=lambda s: s["seconds"])
    print(f"| {t} | {best['audio_rows']} | {best['audio_seconds_embedded']:.0f} | {best['seconds']:.1f} | "
          f"**{best['audio_seconds_embedded'] / best['seconds']:.0f}×** |")
PY
cat "$out"
