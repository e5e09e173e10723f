#!/usr/bin/env bash
# bench/memory-long-file.sh
#
# Peak memory of mulan-ingest on a very long input: one 3-hour file plus a few short ones,
# ingested with --jobs 2 (so a short file is decoded beside the long one). The target is a peak
# RSS under 300 MB: a streaming decoder must not hold a whole track in memory
# (3 h of 16 kHz mono float alone would be 3 * 3600 * 16000 * 4 B = 691 MB).
#
# The inputs are synthetic, made with the ffmpeg CLI from lavfi sources: a different sine tone
# in each channel plus pink noise, 44.1 kHz stereo, Ogg Vorbis at the lowest quality (-q:a -1).
# They are generated once into $BENCH_TMP/inputs and reused by later runs.
#
# Each of RUNS runs starts from an empty workdir and runs under /usr/bin/time -v
# ("Maximum resident set size"); the process's VmRSS is also sampled every 0.25 s to show
# whether memory grows with the length of the track.
#
# Usage: bash bench/memory-long-file.sh
# Environment: RUNS (default 3), LONG_SECONDS (default 10800),
#              BENCH_TMP (default /tmp/mulan-bench-memory-long-file),
#              RESULTS_DIR (default bench/results), QUIET_WAIT (seconds to wait for other
#              processes to leave the machine idle before measuring, default 600).
# Results: printed at the end and written to bench/results/memory-long-file-<UTC time>.md.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RUNS=${RUNS:-3}
LONG_SECONDS=${LONG_SECONDS:-10800}
SHORT_SECONDS=(45 125 420)   # the short files: 45 s, about 2 min, 7 min
TARGET_BYTES=300000000       # 300 MB (decimal)
TMP=${BENCH_TMP:-/tmp/mulan-bench-memory-long-file}
INPUTS=$TMP/inputs
RESULTS_DIR=${RESULTS_DIR:-$ROOT/bench/results}
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
RESULT_MD=$RESULTS_DIR/memory-long-file-$STAMP.md
BIN=$ROOT/.build-bench/release/mulan-ingest

source "$(dirname "${BASH_SOURCE[0]}")/packages.sh"
log "checking packages"
ensure_packages ffmpeg time python3

# --- CPU accounting and waiting for a quiet machine (shared with the other bench scripts) ---------
source "$(dirname "${BASH_SOURCE[0]}")/cpu-accounting.sh"

# --- 2. Build mulan-ingest (release) in its own scratch folder ---------------------------------
log "building mulan-ingest (release, scratch path .build-bench)"
(cd "$ROOT" && swift build -c release --product mulan-ingest --scratch-path .build-bench)
[[ -x $BIN ]] || { echo "error: $BIN was not built" >&2; exit 1; }

# --- 3. Generate the inputs (skipped when a file of the right length is already there) ----------
# make_input FILE SECONDS LEFT_HZ RIGHT_HZ
make_input() {
    local file=$1 seconds=$2 left=$3 right=$4 have
    if [[ -f $file ]]; then
        have=$(ffprobe -v error -show_entries format=duration -of csv=p=0 "$file" || echo 0)
        if awk -v h="$have" -v w="$seconds" 'BEGIN {exit !(h > w - 1 && h < w + 1)}'; then
            echo "reusing $file ($have s)"
            return
        fi
    fi
    echo "generating $file ($seconds s)"
    ffmpeg -nostdin -loglevel error -y -filter_complex "
        sine=frequency=$left:sample_rate=44100:duration=$seconds [s1];
        sine=frequency=$right:sample_rate=44100:duration=$seconds [s2];
        anoisesrc=color=pink:sample_rate=44100:amplitude=0.02:duration=$seconds, asplit [n1][n2];
        [s1][n1] amix=inputs=2 [l];
        [s2][n2] amix=inputs=2 [r];
        [l][r] join=inputs=2:channel_layout=stereo [out]" \
        -map '[out]' -c:a libvorbis -q:a -1 "$file.part.ogg"
    mv "$file.part.ogg" "$file"
}
mkdir -p "$INPUTS" "$RESULTS_DIR"
log "inputs in $INPUTS"
make_input "$INPUTS/long-3h.ogg" "$LONG_SECONDS" 220 331
i=0
for s in "${SHORT_SECONDS[@]}"; do
    i=$((i + 1))
    make_input "$INPUTS/short-$i.ogg" "$s" $((300 + 100 * i)) $((450 + 100 * i))
done
ls -l "$INPUTS"/*.ogg
audio_seconds=$(for f in "$INPUTS"/*.ogg; do ffprobe -v error -show_entries format=duration -of csv=p=0 "$f"; done |
    awk '{s += $1} END {printf "%.3f", s}')
echo "total audio: $audio_seconds s"

# --- 4. Ingest RUNS times with --jobs 2, each into an empty workdir ------------------------------
# Samples VmRSS of PID about every 0.25 s into FILE as "seconds-since-start kB" lines until it exits.
sample_rss() {
    local pid=$1 file=$2 start=$EPOCHREALTIME rss
    : > "$file"
    while kill -0 "$pid" 2>/dev/null; do
        rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status" 2>/dev/null || true)
        [[ -n $rss ]] && awk -v s="$start" -v n="$EPOCHREALTIME" -v r="$rss" 'BEGIN {printf "%.2f %s\n", n - s, r}' >> "$file"
        sleep 0.25
    done
}
wait_for_quiet
echo "load average before the runs: $(cut -d' ' -f1-3 /proc/loadavg)"
cpu_mark
for run in $(seq 1 "$RUNS"); do
    log "run $run of $RUNS: mulan-ingest --jobs 2"
    w=$TMP/work-$run
    rm -rf "$w"
    sync
    # /usr/bin/time runs mulan-ingest directly, so its child is the process to sample.
    /usr/bin/time -v -o "$TMP/time-$run.txt" \
        "$BIN" --scan "$INPUTS" --glob '*.ogg' --workdir "$w" --jobs 2 --quiet \
        --report "$TMP/report-$run.json" > "$TMP/stdout-$run.txt" 2> "$TMP/stderr-$run.txt" &
    time_pid=$!
    mulan_pid=""
    for _ in $(seq 1 100); do
        mulan_pid=$(pgrep -P "$time_pid" || true)
        [[ -n $mulan_pid ]] && break
        sleep 0.05
    done
    [[ -n $mulan_pid ]] && sample_rss "$mulan_pid" "$TMP/rss-$run.txt"
    status=0
    wait "$time_pid" || status=$?
    cat "$TMP/stdout-$run.txt"
    cat "$TMP/stderr-$run.txt" >&2
    if [[ $status -ne 0 ]]; then
        echo "error: mulan-ingest exited with status $status (see $TMP/time-$run.txt)" >&2
        exit 1
    fi
    grep -E 'Maximum resident set size|Elapsed \(wall' "$TMP/time-$run.txt"
done
cpu_report "ingest runs" > "$TMP/cpu.txt"; cat "$TMP/cpu.txt"

# --- 5. Figures and the markdown table -----------------------------------------------------------
log "results"
{
    echo "# mulan-ingest peak memory on a 3-hour file — $STAMP"
    echo
    echo "- machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(awk '/MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo) RAM"
    echo "- $(ffmpeg -version | head -1 | cut -d' ' -f1-3)"
    echo "- mulan commit: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)$( [[ -n $(git -C "$ROOT" status --porcelain 2>/dev/null) ]] && echo ' (work tree has uncommitted changes)')"
    echo "- inputs: $(cd "$INPUTS" && for f in *.ogg; do printf '%s %s s (%s bytes); ' "$f" \
        "$(ffprobe -v error -show_entries format=duration -of csv=p=0 "$f")" "$(stat -c %s "$f")"; done)"
    echo "- other load: $(cat "$TMP/cpu.txt")"
    echo "- command: mulan-ingest --scan INPUTS --glob '*.ogg' --workdir FRESH --jobs 2 --quiet --report R.json"
    echo
    python3 - "$TMP" "$RUNS" "$audio_seconds" "$TARGET_BYTES" <<'EOF'
import json, re, sys
tmp, runs, audio_s, target = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
print(f"Total audio: {audio_s:.3f} s = {audio_s / 3600:.4f} h. Target: peak RSS < {target / 1e6:.0f} MB "
      f"({target / 1048576:.1f} MiB).")
print()
print("| run | peak RSS (kB, time -v) | MB | MiB | wall s (time -v) | report wall_seconds | report realtime_factor "
      "| hours_in | clips_written | tracks ok/failed | RSS at 25/50/75/100 % of run (MiB, sampled) |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|")
peaks = []
for run in range(1, runs + 1):
    t = open(f"{tmp}/time-{run}.txt").read()
    kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", t).group(1))
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (\S+)", t).group(1)
    parts = [float(p) for p in wall.split(":")]
    wall_s = sum(p * 60 ** i for i, p in enumerate(reversed(parts)))
    r = json.load(open(f"{tmp}/report-{run}.json"))
    samples = [tuple(map(float, l.split())) for l in open(f"{tmp}/rss-{run}.txt") if l.strip()]
    profile = "—"
    if samples:
        pick = lambda q: samples[min(len(samples) - 1, int(q * (len(samples) - 1)))][1] / 1024
        profile = " / ".join(f"{pick(q):.0f}" for q in (0.25, 0.5, 0.75, 1.0))
    peaks.append(kb * 1024)
    print(f"| {run} | {kb} | {kb * 1024 / 1e6:.1f} | {kb / 1024:.1f} | {wall_s:.2f} | {r['wall_seconds']:.2f} | "
          f"{r['realtime_factor']:.1f} | {r['hours_in']:.4f} | {r['clips_written']} | "
          f"{r['tracks_ingested']}/{r['tracks_failed']} | {profile} |")
worst = max(peaks)
print()
print(f"Highest peak RSS over {runs} run(s): {worst / 1e6:.1f} MB ({worst / 1048576:.1f} MiB) — target < "
      f"{target / 1e6:.0f} MB: {'met' if worst < target else 'NOT met'} "
      f"({(target - worst) / 1e6:+.1f} MB of headroom).")
EOF
} | tee "$RESULT_MD"
echo
echo "written: $RESULT_MD"
