#!/usr/bin/env bash
# bench/ingest-vs-ffmpeg.sh
#
# Times mulan-ingest against the ffmpeg command-line tool doing the same job — decode, downmix
# to mono, resample to 16 kHz and cut 30-second FLAC clips — on the real music of Debian's
# wesnoth-1.16-music package (41 Ogg Vorbis tracks, about 128 minutes), at 1 and 2 parallel jobs.
#
# What is compared (all in one hyperfine call, so on the same machine state):
#   mulan-j1     mulan-ingest --jobs 1
#   mulan-j2     mulan-ingest --jobs 2
#   ffmpeg-p1    one ffmpeg process per file, `xargs -P 1`, exactly the command of the brief
#                (ffmpeg's FLAC encoder then picks 24-bit samples for this input)
#   ffmpeg-p2    the same with `xargs -P 2`
#   ffmpeg16-p1  the same plus `-sample_fmt s16`, i.e. 16-bit FLAC like mulan writes by default
#   ffmpeg16-p2  the same with `xargs -P 2`
# Every timed run starts from an empty output folder (hyperfine --prepare), since mulan-ingest
# skips unchanged tracks on a re-run.
#
# Then one extra run of each configuration under /usr/bin/time -v gives the peak RSS.
# For xargs+ffmpeg, /usr/bin/time reports the largest maximum RSS among the processes it waited
# for (getrusage RUSAGE_CHILDREN keeps a maximum, not a sum), i.e. the largest single ffmpeg
# process; each ffmpeg is also wrapped in its own /usr/bin/time as a cross-check.
#
# Every codec users bring (issue 18; section 8, after the above, or alone with ONLY_CODECS=1): the
# same tracks transcoded with the ffmpeg CLI to Opus (48 kHz), MP3 (44.1 kHz), AAC (48 kHz, .m4a) and
# FLAC (48 kHz, 16-bit), Vorbis being the originals (44.1 kHz), all stereo; per codec one hyperfine call
# times mulan-ingest with everything on at 1 and 2 jobs, with --loudness integrated and with
# --fingerprint off at 1 job, and 16-bit ffmpeg at 1 and 2 processes; one table of wall times for all
# codecs, and one of CPU times (user + system of each command and the processes it waited for: what a
# user pays in core-hours, and how many cores each side kept busy) with mulan's peak RSS at 1 and 2
# jobs from one more run of each under /usr/bin/time.
#
# Usage: bash bench/ingest-vs-ffmpeg.sh
# Environment: RUNS (timed runs per command, default 5), WARMUP (default 1),
#              BENCH_TMP (scratch folder, default /tmp/mulan-bench-ingest-vs-ffmpeg),
#              RESULTS_DIR (default bench/results), QUIET_WAIT (seconds to wait for other
#              processes to leave the machine idle before measuring, default 600);
#              CODECS (default "opus vorbis mp3 aac flac"; empty: no codec section), CODEC_TRACKS
#              (how many of the sorted tracks, default 41), CODEC_INPUTS (where the transcodes are
#              kept between runs, default /tmp/mulan-bench-codec-inputs), ONLY_CODECS=1 (skip
#              sections 5-7, the Vorbis comparison with peak RSS); BEFORE_BIN (another mulan-ingest,
#              e.g. one built from an earlier commit: the codec section also times it at 1 and 2
#              jobs, everything on, in the same hyperfine call, as mulan-before-j1/-j2).
# Results: printed at the end and written to bench/results/ingest-vs-ffmpeg-<UTC time>.md,
#          with hyperfine's JSON export beside it.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
MUSIC=/usr/share/games/wesnoth/1.16/data/core/music
RUNS=${RUNS:-5}
WARMUP=${WARMUP:-1}
TMP=${BENCH_TMP:-/tmp/mulan-bench-ingest-vs-ffmpeg}
RESULTS_DIR=${RESULTS_DIR:-$ROOT/bench/results}
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
RESULT_MD=$RESULTS_DIR/ingest-vs-ffmpeg-$STAMP.md
RESULT_JSON=$RESULTS_DIR/ingest-vs-ffmpeg-$STAMP.hyperfine.json
BIN=$ROOT/.build-bench/release/mulan-ingest

source "$(dirname "${BASH_SOURCE[0]}")/packages.sh"
log "checking packages"
ensure_packages wesnoth-1.16-music hyperfine ffmpeg time python3

# --- CPU accounting and waiting for a quiet machine (shared with the other bench scripts) ---------
source "$(dirname "${BASH_SOURCE[0]}")/cpu-accounting.sh"

# --- 2. Build mulan-ingest (release) in its own scratch folder ---------------------------------
log "building mulan-ingest (release, scratch path .build-bench)"
(cd "$ROOT" && swift build -c release --product mulan-ingest --scratch-path .build-bench)
[[ -x $BIN ]] || { echo "error: $BIN was not built" >&2; exit 1; }

# --- 3. Inputs: the sorted list of tracks and their total duration ------------------------------
rm -rf "$TMP"
mkdir -p "$TMP/out" "$RESULTS_DIR"
log "listing inputs in $MUSIC"
find "$MUSIC" -maxdepth 1 -type f -name '*.ogg' -print0 | sort -z > "$TMP/files.nul"
n_files=$(tr -cd '\0' < "$TMP/files.nul" | wc -c)
echo "files: $n_files"
[[ $n_files -eq 41 ]] || echo "warning: expected 41 tracks, found $n_files" >&2
# Container durations from ffprobe, one per line; their sum is the audio both tools decode.
xargs -0 -n 1 ffprobe -v error -show_entries format=duration -of csv=p=0 < "$TMP/files.nul" > "$TMP/durations.txt"
audio_seconds=$(awk '{s += $1} END {printf "%.3f", s}' "$TMP/durations.txt")
echo "total audio (ffprobe): $audio_seconds s"

# --- 4. The ffmpeg job for one file (run by xargs, one process per file) -----------------------
# Arguments: OUTDIR SAMPLE_FMT FILE ('-' = let ffmpeg choose). `exec` so that the process
# /usr/bin/time measures is ffmpeg itself.
cat > "$TMP/ffmpeg-segment-one.sh" <<'EOF'
#!/bin/sh
out=$1; fmt=$2; in=$3
name=$(basename "$in"); name=${name%.*}
if [ "$fmt" = "-" ]; then set --; else set -- -sample_fmt "$fmt"; fi
exec ffmpeg -nostdin -loglevel error -i "$in" -ac 1 -ar 16000 "$@" \
    -f segment -segment_time 30 "$out/$name-%03d.flac"
EOF

# Each configuration: a name, the timed command, the command that empties its output, and the
# command for the peak-RSS run (for ffmpeg, each process is also wrapped in /usr/bin/time).
names=() cmds=() preps=() rss_cmds=()
add_mulan() { # NAME JOBS
    local w=$TMP/out/$1
    names+=("$1")
    # Exit code 3 means "completed, some inputs failed"; this set has 6 tracks shorter than one
    # clip, which mulan-ingest records as too-short failures (checked in step 5), so 3 is expected.
    cmds+=("$BIN --scan $MUSIC --glob '*.ogg' --workdir $w --jobs $2 --quiet --report $TMP/out/$1.report.json > /dev/null || [ \$? -eq 3 ]")
    preps+=("rm -rf $w && sync")
    rss_cmds+=("${cmds[-1]}")
}
add_ffmpeg() { # NAME PARALLELISM SAMPLE_FMT
    local o=$TMP/out/$1
    names+=("$1")
    cmds+=("xargs -0 -n 1 -P $2 -a $TMP/files.nul sh $TMP/ffmpeg-segment-one.sh $o $3")
    preps+=("rm -rf $o && mkdir -p $o && sync")
    rss_cmds+=("xargs -0 -n 1 -P $2 -a $TMP/files.nul /usr/bin/time -f %M -a -o $TMP/out/$1.inner-rss.txt sh $TMP/ffmpeg-segment-one.sh $o $3")
}
add_mulan mulan-j1 1
add_mulan mulan-j2 2
add_ffmpeg ffmpeg-p1 1 -
add_ffmpeg ffmpeg-p2 2 -
add_ffmpeg ffmpeg16-p1 1 s16
add_ffmpeg ffmpeg16-p2 2 s16

if [[ -z ${ONLY_CODECS:-} ]]; then
# --- 5. A checked run of each configuration, under /usr/bin/time -v for the peak RSS ------------
# This also shows that every configuration succeeds before it is timed.
log "one run of each configuration under /usr/bin/time -v (peak RSS, output check)"
wait_for_quiet
cpu_mark
for i in "${!names[@]}"; do
    name=${names[$i]}
    eval "${preps[$i]}"
    /usr/bin/time -v -o "$TMP/out/$name.time.txt" sh -c "${rss_cmds[$i]}"
    grep -E 'Maximum resident set size|Elapsed \(wall' "$TMP/out/$name.time.txt" | sed "s/^\s*/$name: /"
done
cpu_report "peak-RSS runs" > "$TMP/cpu-rss.txt"; cat "$TMP/cpu-rss.txt"
# mulan's report: what it did, and that the only failures are the too-short tracks.
for name in mulan-j1 mulan-j2; do
    python3 - "$TMP/out/$name.report.json" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
print(f"{sys.argv[1].rsplit('/', 1)[1]}: tracks_total={r['tracks_total']} ingested={r['tracks_ingested']} "
      f"failed={r['tracks_failed']} {r['failures_by_reason']} clips_written={r['clips_written']} "
      f"hours_in={r['hours_in']:.6f} exit_code={r['exit_code']}")
unexpected = {k: v for k, v in r["failures_by_reason"].items() if k != "too-short"}
if unexpected or r["tracks_total"] != 41:
    sys.exit(f"unexpected failures or track count: {r['failures_by_reason']}, {r['tracks_total']} tracks")
EOF
done
# What each configuration wrote: number of FLAC files and bytes.
for name in "${names[@]}"; do
    files=$(find "$TMP/out/$name" -name '*.flac' | wc -l)
    bytes=$(find "$TMP/out/$name" -name '*.flac' -printf '%s\n' | awk '{s += $1} END {print s + 0}')
    echo "$name $files $bytes" >> "$TMP/outputs.txt"
done
cat "$TMP/outputs.txt"

# --- 6. Timing: all six commands in one hyperfine call ------------------------------------------
log "hyperfine: $RUNS runs of each command after $WARMUP warm-up run(s)"
hf_args=(--runs "$RUNS" --warmup "$WARMUP" --style basic --export-json "$RESULT_JSON")
for i in "${!names[@]}"; do
    hf_args+=(--prepare "${preps[$i]}")
done
for i in "${!names[@]}"; do
    hf_args+=(--command-name "${names[$i]}" "${cmds[$i]}")
done
wait_for_quiet
echo "load average before timing: $(cut -d' ' -f1-3 /proc/loadavg)"
cpu_mark
hyperfine "${hf_args[@]}"
cpu_report "hyperfine (timed runs)" > "$TMP/cpu-hyperfine.txt"; cat "$TMP/cpu-hyperfine.txt"

# --- 7. Figures and the markdown table -----------------------------------------------------------
log "results"
{
    echo "# mulan-ingest vs ffmpeg CLI — $STAMP"
    echo
    echo "- machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(awk '/MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo) RAM"
    echo "- $(ffmpeg -version | head -1 | cut -d' ' -f1-3); $(hyperfine --version)"
    echo "- mulan commit: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)$( [[ -n $(git -C "$ROOT" status --porcelain 2>/dev/null) ]] && echo ' (work tree has uncommitted changes)')"
    echo "- input: $n_files files in $MUSIC; $RUNS timed runs per command after $WARMUP warm-up"
    echo "- other load: $(cat "$TMP/cpu-hyperfine.txt"); $(cat "$TMP/cpu-rss.txt")"
    echo
    python3 - "$RESULT_JSON" "$audio_seconds" "$TMP/out" "$TMP/outputs.txt" "$TMP/durations.txt" <<'EOF'
import json, re, sys, statistics
hf_path, audio_s, out, outputs_path, durations_path = sys.argv[1], float(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
res = {r["command"]: r for r in json.load(open(hf_path))["results"]}
outputs = {l.split()[0]: (int(l.split()[1]), int(l.split()[2])) for l in open(outputs_path)}

def rss_kib(name):  # from /usr/bin/time -v of the whole command
    text = open(f"{out}/{name}.time.txt").read()
    return int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", text).group(1))

def inner_max_kib(name):  # largest of the per-ffmpeg /usr/bin/time figures
    vals = [int(v) for v in open(f"{out}/{name}.inner-rss.txt").read().split()]
    return max(vals) if vals else None

mulan_report = json.load(open(f"{out}/mulan-j2.report.json"))
print(f"Total audio: {audio_s:.3f} s = {audio_s / 60:.3f} min (sum of ffprobe container durations; "
      f"× realtime below = this / mean wall time). mulan's report (--jobs 2) says hours_in = "
      f"{mulan_report['hours_in']:.6f} h = {mulan_report['hours_in'] * 3600:.3f} s, "
      f"clips_written = {mulan_report['clips_written']}, tracks_total = {mulan_report['tracks_total']}, "
      f"failures = {mulan_report['failures_by_reason']}.")
print()
print("| configuration | mean wall s | ± sd | min–max s | × realtime | peak RSS (MiB) | FLAC files | output MiB |")
print("|---|---:|---:|---:|---:|---:|---:|---:|")
for name, r in res.items():
    rss = rss_kib(name)
    note = ""
    if name.startswith("ffmpeg"):
        inner = inner_max_kib(name)
        note = f" (largest single ffmpeg: {inner / 1024:.1f})"
    files, size = outputs[name]
    sd = "—" if r["stddev"] is None else f"{r['stddev']:.2f}"
    print(f"| {name} | {r['mean']:.2f} | {sd} | {r['min']:.2f}–{r['max']:.2f} | "
          f"{audio_s / r['mean']:.0f} | {rss / 1024:.1f}{note} | {files} | {size / 1048576:.1f} |")
print()
m = lambda n: res[n]["mean"]
lo = lambda n: res[n]["min"]  # the fastest run: least affected by anything else running
print("| figure | from mean times | from fastest runs | target | met (means) |")
print("|---|---:|---:|---:|---|")
for j in (1, 2):
    for ff, label in (("ffmpeg16", "16-bit ffmpeg (same output format)"), ("ffmpeg", "ffmpeg as specified (24-bit)")):
        ratio = m(f"mulan-j{j}") / m(f"{ff}-p{j}")
        print(f"| wall mulan / {label}, {j} job(s) | {ratio:.3f} | {lo(f'mulan-j{j}') / lo(f'{ff}-p{j}'):.3f} | "
              f"≤ 1.0 | {'yes' if ratio <= 1.0 else 'no'} |")
sp = m("mulan-j1") / m("mulan-j2")
print(f"| speed-up 1→2 jobs, mulan | {sp:.3f}× | {lo('mulan-j1') / lo('mulan-j2'):.3f}× | ≥ 1.8× | "
      f"{'yes' if sp >= 1.8 else 'no'} |")
for ff in ("ffmpeg16", "ffmpeg"):
    print(f"| speed-up 1→2 jobs, {ff} | {m(f'{ff}-p1') / m(f'{ff}-p2'):.3f}× | "
          f"{lo(f'{ff}-p1') / lo(f'{ff}-p2'):.3f}× | — | — |")
print()
print("Per-run wall times (s):")
print()
for name, r in res.items():
    print(f"- {name}: " + ", ".join(f"{t:.3f}" for t in r["times"]))
print()
print("Peak RSS is `Maximum resident set size` from `/usr/bin/time -v` over one extra run of each "
      "configuration. For xargs+ffmpeg that is the largest of the processes waited for (the largest "
      "single ffmpeg), cross-checked by wrapping each ffmpeg in its own /usr/bin/time.")
EOF
} | tee "$RESULT_MD"
echo
echo "written: $RESULT_MD and $RESULT_JSON"
fi

# --- 8. Every codec users bring (issue 18) ---------------------------------------------------------
CODECS=${CODECS-opus vorbis mp3 aac flac}
[[ -n $CODECS ]] || exit 0
CIN=${CODEC_INPUTS:-/tmp/mulan-bench-codec-inputs}
CODEC_MD=$RESULTS_DIR/ingest-codecs-$STAMP.md
log "codec inputs in $CIN (transcoded once, kept)"
find "$MUSIC" -maxdepth 1 -type f -name '*.ogg' | sort | head -n "${CODEC_TRACKS:-41}" > "$TMP/codec-sources.txt"
source "$ROOT/bench/codec-inputs.sh"   # ext_of, codec_input
for c in $CODECS; do
    while read -r f; do codec_input "$c" "$f" > /dev/null || exit 1; done < "$TMP/codec-sources.txt"
done
: > "$TMP/codec-runs.txt"
for c in $CODECS; do
    e=$(ext_of "$c")
    # Only this run's tracks (CIN may hold more from an earlier, larger run).
    while read -r f; do printf '%s\0' "$CIN/$c/$(basename "$f" .ogg).$e"; done < "$TMP/codec-sources.txt" > "$TMP/$c.nul"
    rm -rf "$TMP/in-$c" && mkdir -p "$TMP/in-$c"
    xargs -0 -I{} ln -s {} "$TMP/in-$c/" < "$TMP/$c.nul"
    names=() cmds=() preps=()
    add_codec_mulan() { # NAME JOBS EXTRA-OPTIONS
        local w=$TMP/out/$c-$1
        names+=("$1")
        cmds+=("${4:-$BIN} --scan $TMP/in-$c --glob '*.$e' --workdir $w --jobs $2 $3 --quiet > /dev/null || [ \$? -eq 3 ]")
        preps+=("rm -rf $w && sync")
    }
    add_codec_ffmpeg() { # NAME PARALLELISM
        local o=$TMP/out/$c-$1
        names+=("$1")
        cmds+=("xargs -0 -n 1 -P $2 -a $TMP/$c.nul sh $TMP/ffmpeg-segment-one.sh $o s16")
        preps+=("rm -rf $o && mkdir -p $o && sync")
    }
    add_codec_mulan mulan-j1 1 ""
    add_codec_mulan mulan-j2 2 ""
    add_codec_mulan mulan-j1-integrated 1 "--loudness integrated"
    add_codec_mulan mulan-j1-nofingerprint 1 "--fingerprint off"
    if [[ -n ${BEFORE_BIN:-} ]]; then
        add_codec_mulan mulan-before-j1 1 "" "$BEFORE_BIN"
        add_codec_mulan mulan-before-j2 2 "" "$BEFORE_BIN"
    fi
    add_codec_ffmpeg ffmpeg16-p1 1
    add_codec_ffmpeg ffmpeg16-p2 2
    hf_args=(--runs "$RUNS" --warmup "$WARMUP" --style basic --export-json "$TMP/codec-$c.json")
    for i in "${!names[@]}"; do hf_args+=(--prepare "${preps[$i]}"); done
    for i in "${!names[@]}"; do hf_args+=(--command-name "${names[$i]}" "${cmds[$i]}"); done
    log "codec $c: hyperfine, $RUNS runs of each command after $WARMUP warm-up run(s)"
    wait_for_quiet
    load=$(cut -d' ' -f1-3 /proc/loadavg)
    cpu_mark
    hyperfine "${hf_args[@]}"
    audio=$(xargs -0 -n 1 ffprobe -v error -show_entries format=duration -of csv=p=0 < "$TMP/$c.nul" | awk '{s += $1} END {printf "%.3f", s}')
    cpu_report "$c" > "$TMP/cpu-$c.txt"   # not in $( ): `times` must run in this shell
    # Peak RSS (issue 18: < 300 MB) from one more run of mulan at 1 and 2 jobs, everything on.
    for j in 1 2; do
        rm -rf "$TMP/out/$c-rss-j$j"
        /usr/bin/time -f %M -o "$TMP/rss-$c-j$j.txt" "$BIN" --scan "$TMP/in-$c" --glob "*.$e" \
            --workdir "$TMP/out/$c-rss-j$j" --jobs "$j" --quiet > /dev/null 2>&1 || true
    done
    printf '%s\t%s\t%s\t%s\n' "$c" "$TMP/codec-$c.json" "$audio" "load average before $load; $(cat "$TMP/cpu-$c.txt")" >> "$TMP/codec-runs.txt"
done
{
    echo "# mulan-ingest vs ffmpeg CLI, per codec — $STAMP"
    echo
    echo "- machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'); $(ffmpeg -version | head -1 | cut -d' ' -f1-3)"
    echo "- mulan commit: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)$( [[ -n $(git -C "$ROOT" status --porcelain 2>/dev/null) ]] && echo ' (work tree has uncommitted changes)')"
    echo "- inputs: the first ${CODEC_TRACKS:-41} sorted tracks of $MUSIC, transcoded (Opus 48 kHz libopus 128k, MP3 44.1 kHz LAME 192k, AAC 48 kHz ffmpeg aac 192k, FLAC 48 kHz 16-bit; Vorbis: the originals, 44.1 kHz), stereo; $RUNS timed runs per command after $WARMUP warm-up"
    echo
    python3 - "$TMP/codec-runs.txt" <<'EOF'
import json, os, sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1])]
print("| codec | audio s | mulan j1, all on | j1 --loudness integrated | j1 --fingerprint off | mulan j2 | ffmpeg16 p1 | ffmpeg16 p2 | mulan/ffmpeg j1 | j2 | mulan 1→2 jobs |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for codec, path, audio, _ in rows:
    r = {x["command"]: x["mean"] for x in json.load(open(path))["results"]}
    print(f"| {codec} | {float(audio):.0f} | {r['mulan-j1']:.2f} s | {r['mulan-j1-integrated']:.2f} s | "
          f"{r['mulan-j1-nofingerprint']:.2f} s | {r['mulan-j2']:.2f} s | {r['ffmpeg16-p1']:.2f} s | {r['ffmpeg16-p2']:.2f} s | "
          f"{r['mulan-j1'] / r['ffmpeg16-p1']:.3f} | {r['mulan-j2'] / r['ffmpeg16-p2']:.3f} | {r['mulan-j1'] / r['mulan-j2']:.2f}× |")
print()
# CPU time (user + system of the command and every process it waited for, hyperfine's means): what a
# user pays in core-hours, and how many cores each side kept busy (ffmpeg's CLI decodes FLAC with
# frame threads and starts a thread pool of a library it links, so one ffmpeg process is not one core).
def peak_mb(codec, jobs, folder):  # /usr/bin/time's %M (KiB) is the last line of its file
    return int(open(f"{folder}/rss-{codec}-j{jobs}.txt").read().split()[-1]) * 1024 / 1e6
print("| codec | CPU s: mulan j1 | ffmpeg16 p1 | mulan/ffmpeg CPU, 1 at a time | CPU s: mulan j2 | ffmpeg16 p2 | mulan/ffmpeg CPU, 2 at a time | cores busy: mulan j1 | ffmpeg16 p1 | mulan peak RSS j1 / j2 |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for codec, path, _, _ in rows:
    res = {x["command"]: x for x in json.load(open(path))["results"]}
    cpu = {k: v["user"] + v["system"] for k, v in res.items()}
    print(f"| {codec} | {cpu['mulan-j1']:.2f} | {cpu['ffmpeg16-p1']:.2f} | {cpu['mulan-j1'] / cpu['ffmpeg16-p1']:.3f} | "
          f"{cpu['mulan-j2']:.2f} | {cpu['ffmpeg16-p2']:.2f} | {cpu['mulan-j2'] / cpu['ffmpeg16-p2']:.3f} | "
          f"{cpu['mulan-j1'] / res['mulan-j1']['mean']:.2f} | {cpu['ffmpeg16-p1'] / res['ffmpeg16-p1']['mean']:.2f} | "
          f"{peak_mb(codec, 1, os.path.dirname(path)):.1f} / {peak_mb(codec, 2, os.path.dirname(path)):.1f} MB |")
print()
before = [(codec, {x["command"]: x["mean"] for x in json.load(open(path))["results"]}) for codec, path, _, _ in rows]
if all("mulan-before-j1" in r for _, r in before):
    print("| codec | BEFORE_BIN j1 | this j1 | BEFORE_BIN j2 | this j2 | BEFORE_BIN/ffmpeg j1 | j2 | BEFORE_BIN 1→2 jobs |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for codec, r in before:
        print(f"| {codec} | {r['mulan-before-j1']:.2f} s | {r['mulan-j1']:.2f} s | {r['mulan-before-j2']:.2f} s | "
              f"{r['mulan-j2']:.2f} s | {r['mulan-before-j1'] / r['ffmpeg16-p1']:.3f} | "
              f"{r['mulan-before-j2'] / r['ffmpeg16-p2']:.3f} | {r['mulan-before-j1'] / r['mulan-before-j2']:.2f}× |")
    print()
print("Mean wall times (hyperfine). Targets (issue 18): mulan/ffmpeg ≤ 0.8 with everything on; 1→2 jobs ≥ 1.85×.")
print()
print("Load during each codec's timing:")
for codec, _, _, load in rows:
    print(f"- {codec}: {load}")
EOF
} | tee "$CODEC_MD"
echo "written: $CODEC_MD"
