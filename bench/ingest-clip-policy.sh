#!/usr/bin/env bash
# bench/ingest-clip-policy.sh
#
# Issue 10, "seek instead of decoding everything": how much faster `mulan-ingest --clip-policy
# center` (one 30-s clip per track, as MuLan kept, decoded by seeking) is than `--clip-policy all`
# (every clip, the whole track decoded) and than the ffmpeg CLI decoding each whole file to mono
# 16 kHz float (ingest's default rate) and throwing it away, on the real music of Debian's
# wesnoth-1.16-music package (41 Ogg Vorbis tracks, about 128 minutes). Target: center ≥ 4× faster
# than decoding the whole file with ffmpeg.
#
# The three commands run alternately, one run of each per round (center, all, ffmpeg, then again),
# so that a change in the machine's load hits all three alike; each mulan run starts from an empty
# work directory. All run on one core (mulan --jobs 1, one ffmpeg process at a time).
#
#   center   mulan-ingest --scan DIR --glob '*.ogg' --clip-policy center --jobs 1 --quiet --report R
#   all      the same with --clip-policy all
#   ffmpeg   for each file: ffmpeg -nostdin -loglevel error -y -i FILE -ac 1 -ar 16000 -f f32le /dev/null
#
# Usage: bash bench/ingest-clip-policy.sh
# Environment: RUNS (rounds, default 5), WARMUP (untimed rounds first, default 1), QUIET_WAIT
#              (seconds to wait for the machine to go quiet, default 600), BENCH_TMP, RESULTS_DIR.
# Results: printed and written to bench/results/ingest-clip-policy-<UTC time>[-DISTURBED].md;
#          "-DISTURBED" when other processes used more than 5 % of the cores while it measured.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
MUSIC=${MUSIC:-/usr/share/games/wesnoth/1.16/data/core/music}
RUNS=${RUNS:-5}
WARMUP=${WARMUP:-1}
TMP=${BENCH_TMP:-/tmp/mulan-bench-clip-policy}
RESULTS_DIR=${RESULTS_DIR:-$ROOT/bench/results}
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
SCRATCH=${SCRATCH:-.build-bench}
BIN=$ROOT/$SCRATCH/release/mulan-ingest

source "$(dirname "${BASH_SOURCE[0]}")/packages.sh"
log "checking packages"
ensure_packages wesnoth-1.16-music ffmpeg python3

source "$(dirname "${BASH_SOURCE[0]}")/cpu-accounting.sh"

log "building mulan-ingest (release, scratch path $SCRATCH)"
(cd "$ROOT" && swift build -c release --product mulan-ingest --scratch-path "$SCRATCH")
[[ -x $BIN ]] || { echo "error: $BIN was not built" >&2; exit 1; }

rm -rf "$TMP"
mkdir -p "$TMP" "$RESULTS_DIR"
find "$MUSIC" -maxdepth 1 -type f -name '*.ogg' -print0 | sort -z > "$TMP/files.nul"
n_files=$(tr -cd '\0' < "$TMP/files.nul" | wc -c)
[[ $n_files -gt 0 ]] || { echo "error: no .ogg files in $MUSIC" >&2; exit 1; }
xargs -0 -n 1 ffprobe -v error -show_entries format=duration -of csv=p=0 < "$TMP/files.nul" > "$TMP/durations.txt"
audio_seconds=$(awk '{s += $1} END {printf "%.3f", s}' "$TMP/durations.txt")
echo "files: $n_files, total audio (ffprobe): $audio_seconds s"

names=(center all ffmpeg)
run_one() { # NAME ROUND: runs one configuration once, from an empty output
    local w=$TMP/work-$1
    case $1 in
        center|all)
            rm -rf "$w"
            # Exit code 3: completed with recorded failures (this set has tracks shorter than 30 s).
            "$BIN" --scan "$MUSIC" --glob '*.ogg' --workdir "$w" --clip-policy "$1" --jobs 1 --quiet \
                --report "$TMP/$1.report.json" > /dev/null || [[ $? -eq 3 ]]
            ;;
        ffmpeg)
            xargs -0 -n 1 -a "$TMP/files.nul" sh -c \
                'exec ffmpeg -nostdin -loglevel error -y -i "$0" -ac 1 -ar 16000 -f f32le /dev/null'
            ;;
    esac
}

log "warm-up: $WARMUP round(s)"
for ((r = 0; r < WARMUP; r++)); do for n in "${names[@]}"; do run_one "$n"; done; done

log "timing: $RUNS rounds, the three configurations alternating"
wait_for_quiet
echo "load average before timing: $(cut -d' ' -f1-3 /proc/loadavg)"
: > "$TMP/times.txt"
cpu_mark
for ((r = 1; r <= RUNS; r++)); do
    for n in "${names[@]}"; do
        sync
        t0=$(date +%s.%N)
        run_one "$n"
        t1=$(date +%s.%N)
        echo "$n $r $(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.3f", b - a}')" | tee -a "$TMP/times.txt"
    done
done
cpu_report "timed rounds" > "$TMP/cpu.txt"; cat "$TMP/cpu.txt"
suffix=""
grep -q "WARNING" "$TMP/cpu.txt" && suffix="-DISTURBED"
RESULT_MD=$RESULTS_DIR/ingest-clip-policy-$STAMP$suffix.md

{
    echo "# mulan-ingest --clip-policy center vs all vs ffmpeg whole-file decode — $STAMP$suffix"
    echo
    echo "- machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(awk '/MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo) RAM"
    echo "- $(ffmpeg -version | head -1 | cut -d' ' -f1-3)"
    echo "- mulan commit: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)$( [[ -n $(git -C "$ROOT" status --porcelain -- Sources Package.swift 2>/dev/null) ]] && echo ' (sources have uncommitted changes)')"
    echo "- input: $n_files files in $MUSIC, $audio_seconds s of audio; $RUNS alternating rounds after $WARMUP warm-up"
    echo "- other load: $(cat "$TMP/cpu.txt")"
    [[ -n $suffix ]] && echo "- **DISTURBED**: other processes were busy while this ran; the ratios are indicative only, a quiet re-run is needed"
    echo
    python3 - "$TMP/times.txt" "$audio_seconds" "$TMP/center.report.json" "$TMP/all.report.json" <<'EOF'
import json, statistics, sys
times_path, audio_s, center_path, all_path = sys.argv[1], float(sys.argv[2]), sys.argv[3], sys.argv[4]
times = {}
for line in open(times_path):
    name, _, t = line.split()
    times.setdefault(name, []).append(float(t))
reports = {"center": json.load(open(center_path)), "all": json.load(open(all_path))}
labels = {"center": "mulan-ingest --clip-policy center (seeks)", "all": "mulan-ingest --clip-policy all",
          "ffmpeg": "ffmpeg CLI, whole file to f32le 16 kHz mono"}
print("| configuration | mean wall s | ± sd | fastest s | × realtime | clips | audio decoded (h) | tracks seeked / fell back |")
print("|---|---:|---:|---:|---:|---:|---:|---|")
for name in ("center", "all", "ffmpeg"):
    t = times[name]
    sd = statistics.stdev(t) if len(t) > 1 else 0
    if name in reports:
        r = reports[name]
        extra = (f"{r['clips_written']} | {r['hours_in']:.3f} | {r.get('tracks_seeked', 0)} / {r.get('seek_fallbacks', 0)}"
                 + (f" {r['seek_fallbacks_by_reason']}" if r.get('seek_fallbacks_by_reason') else ""))
    else:
        extra = f"— | {audio_s / 3600:.3f} | —"
    print(f"| {labels[name]} | {statistics.mean(t):.2f} | {sd:.2f} | {min(t):.2f} | {audio_s / statistics.mean(t):.0f} | {extra} |")
print()
m = {n: statistics.mean(t) for n, t in times.items()}
lo = {n: min(t) for n, t in times.items()}
print("| figure | from means | from fastest runs | target | met (means) |")
print("|---|---:|---:|---:|---|")
r = m["ffmpeg"] / m["center"]
print(f"| speed-up center vs ffmpeg whole-file decode | {r:.2f}× | {lo['ffmpeg'] / lo['center']:.2f}× | ≥ 4× | {'yes' if r >= 4 else 'no'} |")
print(f"| speed-up center vs all | {m['all'] / m['center']:.2f}× | {lo['all'] / lo['center']:.2f}× | — | — |")
print(f"| all vs ffmpeg (wall all / ffmpeg) | {m['all'] / m['ffmpeg']:.3f} | {lo['all'] / lo['ffmpeg']:.3f} | — | — |")
print()
print("Per-run wall times (s), in the order run:")
print()
for name in ("center", "all", "ffmpeg"):
    print(f"- {name}: " + ", ".join(f"{t:.3f}" for t in times[name]))
EOF
} | tee "$RESULT_MD"
echo
echo "written: $RESULT_MD"
