#!/usr/bin/env bash
# Where mulan-ingest's time goes, per codec (issue 18): `perf record` (cpu-clock, DWARF call graphs)
# of a release mulan-ingest --jobs 1 with every per-clip step on, over the first TRACKS sorted tracks of
# Debian's wesnoth-1.16-music transcoded with the ffmpeg CLI to Opus (48 kHz, libopus 128k), MP3
# (44.1 kHz, LAME 192k), AAC (48 kHz, ffmpeg's aac 192k) and FLAC (48 kHz, 16-bit); Vorbis is the
# originals (44.1 kHz); all stereo. Prints one table of shares of the samples: self time per library
# and inclusive time of the steps (decode, FLAC encode, loudness, fingerprint, ...).
#
# Debian's FFmpeg libraries have no symbols for their internal functions, so decode and the FLAC
# encoder (both libavcodec) are told apart by their callers (avcodec_send_packet/receive_frame under
# AudioDecoder; FLACWriter.write). Shares of a profile, not times: the machine may be busy.
#
# A second table puts the ffmpeg CLI's job of bench/ingest-vs-ffmpeg.sh's ffmpeg16-p1 (`ffmpeg -i F
# -ac 1 -ar 16000 -sample_fmt s16 -f segment -segment_time 30 …flac`, one process per file, one after
# the other) next to mulan's, in CPU seconds per library (perf samples ÷ frequency; no call graphs
# for ffmpeg), with each side's wall and CPU time from one run of its own outside perf: how much of
# ffmpeg's time mulan already spends on the work both do (decoding, resampling and FLAC encoding in
# the same libavcodec and libswresample), and whether the ffmpeg process used more than one core.
#
# Usage: bash bench/ingest-profile.sh
# Environment: BIN (mulan-ingest; default: built in release at .build-bench), TRACKS (3),
#   CODEC_INPUTS (where transcodes are kept, default /tmp/mulan-bench-codec-inputs; the same as
#   bench/ingest-vs-ffmpeg.sh's), FREQ (sampling frequency, 499 Hz).
# Results: printed and written to bench/results/ingest-profile-<UTC time>.md.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
MUSIC=/usr/share/games/wesnoth/1.16/data/core/music
CIN=${CODEC_INPUTS:-/tmp/mulan-bench-codec-inputs}
TRACKS=${TRACKS:-3}
WORK=${TMPDIR:-/tmp}/mulan-bench-ingest-profile
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
OUT=$ROOT/bench/results/ingest-profile-$STAMP.md
source "$ROOT/bench/packages.sh"
ensure_packages wesnoth-1.16-music ffmpeg linux-perf python3 time
if [[ -z ${BIN:-} ]]; then
    (cd "$ROOT" && swift build -c release -j 1 --product mulan-ingest --scratch-path .build-bench >/dev/null)
    BIN=$ROOT/.build-bench/release/mulan-ingest
fi
rm -rf "$WORK" && mkdir -p "$WORK" "$ROOT/bench/results"
source "$ROOT/bench/codec-inputs.sh"   # ext_of, codec_input
codecs="opus vorbis mp3 aac flac"
find "$MUSIC" -maxdepth 1 -type f -name '*.ogg' | sort | head -n "$TRACKS" > "$WORK/sources.txt"
for c in $codecs; do
    mkdir -p "$CIN/$c" "$WORK/in-$c"
    while read -r f; do
        o=$(codec_input "$c" "$f")
        ln -s "$o" "$WORK/in-$c/"
    done < "$WORK/sources.txt"
    log "perf record: $c"
    perf record -q -e cpu-clock -F "${FREQ:-499}" --call-graph dwarf,16384 -o "$WORK/perf-$c.data" -- \
        "$BIN" --scan "$WORK/in-$c" --glob "*.$(ext_of "$c")" --workdir "$WORK/wd-$c" --jobs 1 --quiet >/dev/null 2>&1 || true
    # Shares and sample counts per library (the first table reads the shares, the second the counts).
    perf report -i "$WORK/perf-$c.data" --no-children --sort dso -n --stdio -g none 2>/dev/null > "$WORK/dson-$c.txt"
    perf report -i "$WORK/perf-$c.data" --children --sort sym --stdio -g none 2>/dev/null | swift demangle --simplified \
        > "$WORK/children-$c.txt"
    # The ffmpeg CLI's job on the same files, as bench/ingest-vs-ffmpeg.sh's ffmpeg16-p1 runs it.
    cat > "$WORK/ffmpeg-$c.sh" <<SCRIPT
#!/bin/sh
for f in "$WORK/in-$c"/*; do
    o="$WORK/ff-$c/\$(basename "\$f")"; rm -rf "\$o"; mkdir -p "\$o"
    ffmpeg -nostdin -loglevel error -i "\$f" -ac 1 -ar 16000 -sample_fmt s16 -f segment -segment_time 30 "\$o/%03d.flac"
done
SCRIPT
    log "perf record: $c, ffmpeg CLI"
    perf record -q -e cpu-clock -F "${FREQ:-499}" -o "$WORK/perf-ff-$c.data" -- sh "$WORK/ffmpeg-$c.sh" >/dev/null 2>&1
    perf report -i "$WORK/perf-ff-$c.data" --sort dso -n --stdio 2>/dev/null > "$WORK/dson-ff-$c.txt"
    # Wall and CPU time of one run of each, outside perf (the files are in the page cache by now).
    rm -rf "$WORK/wd-$c"
    /usr/bin/time -f "%e %U %S" -o "$WORK/time-$c.txt" "$BIN" --scan "$WORK/in-$c" --glob "*.$(ext_of "$c")" \
        --workdir "$WORK/wd-$c" --jobs 1 --quiet >/dev/null 2>&1 || true
    /usr/bin/time -f "%e %U %S" -o "$WORK/time-ff-$c.txt" sh "$WORK/ffmpeg-$c.sh" >/dev/null 2>&1
done
{
    echo "# mulan-ingest profile per codec — $STAMP"
    echo
    echo "- $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'); load average $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "- mulan commit $(git -C "$ROOT" rev-parse --short HEAD); binary $BIN; mulan-ingest --jobs 1, defaults (loudness full, fingerprint on)"
    echo "- inputs: the first $TRACKS sorted tracks of $MUSIC in each codec (see the script)"
    echo
    python3 - "$WORK" "$(basename "$BIN")" $codecs <<'EOF'
import os, re, sys
work, binary, codecs = sys.argv[1], sys.argv[2], sys.argv[3:]
def dso(c):
    d = {}
    for l in open(f"{work}/dson-{c}.txt"):
        m = re.match(r"\s+([\d.]+)%\s+\d+\s+(\S+)", l)
        if m: d[m.group(2)] = float(m.group(1))
    return d
def children(c):
    d = {}
    for l in open(f"{work}/children-{c}.txt"):
        m = re.match(r"\s+([\d.]+)%\s+([\d.]+)%\s+\[.\]\s+(.*)$", l)
        if m and m.group(3).strip() not in d: d[m.group(3).strip()] = float(m.group(1))
    return d
def lib(D, name): return sum(v for k, v in D.items() if k.startswith(name))
def incl(C, name): return C.get(name, 0.0)
rows = [
    ("decode: avcodec_send_packet + avcodec_receive_frame (incl.)", lambda D, C: incl(C, "avcodec_send_packet") + incl(C, "avcodec_receive_frame")),
    ("FLAC encode + write: FLACWriter.write (incl.)", lambda D, C: incl(C, "static FLACWriter.write(_:sampleRate:bits:to:)")),
    ("libavcodec self (decode + FLAC encode)", lambda D, C: lib(D, "libavcodec")),
    ("libswresample self (downmix + resample)", lambda D, C: lib(D, "libswresample")),
    ("libavutil self", lambda D, C: lib(D, "libavutil")),
    ("loudness: LoudnessStep.apply (incl.)", lambda D, C: incl(C, "specialized static LoudnessStep.apply(_:settings:)")),
    ("… libebur128 self (I + LRA)", lambda D, C: lib(D, "libebur128")),
    ("… TruePeakMeter.feed (incl.)", lambda D, C: incl(C, "TruePeakMeter.feed(_:)")),
    ("fingerprint: Fingerprinter.feed (incl.)", lambda D, C: incl(C, "Fingerprinter.feed(_:gain:)")),
    ("… libchromaprint self", lambda D, C: lib(D, "libchromaprint")),
    ("SHA-256: libcrypto self", lambda D, C: lib(D, "libcrypto")),
    ("SQLite self", lambda D, C: lib(D, "libsqlite")),
    ("mulan's Swift code self", lambda D, C: lib(D, binary)),
    ("libc self (memcpy, malloc)", lambda D, C: lib(D, "libc.so")),
    ("kernel (I/O, page faults)", lambda D, C: lib(D, "[kernel")),
    ("ld.so (symbol lookup at start)", lambda D, C: lib(D, "ld-linux")),
]
data = {c: (dso(c), children(c)) for c in codecs}
print("| share of samples | " + " | ".join(codecs) + " |")
print("|---|" + "---:|" * len(codecs))
for name, f in rows:
    print(f"| {name} | " + " | ".join(f"{f(*data[c]):.1f}%" for c in codecs) + " |")

freq = float(os.environ.get("FREQ", "499"))
def counts(path):
    d = {}
    for l in open(path):
        m = re.match(r"\s+[\d.]+%\s+(\d+)\s+(\S+)", l)
        if m: d[m.group(2)] = d.get(m.group(2), 0) + int(m.group(1))
    return d
def seconds(d, *prefixes): return sum(v for k, v in d.items() if k.startswith(prefixes)) / freq
def timing(path):
    wall, user, system = map(float, open(path).read().split()[-3:])
    return wall, user + system
groups = [("libavcodec (decode; FLAC encode)", ("libavcodec",)), ("libswresample (downmix, resample)", ("libswresample",)),
          ("libavutil", ("libavutil",)), ("kernel", ("[kernel",)), ("ld.so", ("ld-linux",)), ("libc", ("libc.so",))]
named = tuple(p for _, ps in groups for p in ps)
mu = {c: counts(f"{work}/dson-{c}.txt") for c in codecs}
ff = {c: counts(f"{work}/dson-ff-{c}.txt") for c in codecs}
tm = {c: timing(f"{work}/time-{c}.txt") for c in codecs}
tf = {c: timing(f"{work}/time-ff-{c}.txt") for c in codecs}
def rest(d): return sum(v for k, v in d.items() if not k.startswith(named)) / freq
print()
print("CPU seconds per library from the profiles (samples ÷ frequency), mulan-ingest --jobs 1 / the ffmpeg CLI "
      "(16-bit, one process per file, one at a time); wall and CPU time from one run of each outside perf:")
print()
print("| CPU s, mulan / ffmpeg | " + " | ".join(codecs) + " |")
print("|---|" + "---:|" * len(codecs))
for name, prefixes in groups:
    print(f"| {name} | " + " | ".join(f"{seconds(mu[c], *prefixes):.2f} / {seconds(ff[c], *prefixes):.2f}" for c in codecs) + " |")
print("| everything else (mulan: its own code, loudness, fingerprint, SHA-256, SQLite; ffmpeg: the CLI, "
      "libavformat, libavfilter) | " + " | ".join(f"{rest(mu[c]):.2f} / {rest(ff[c]):.2f}" for c in codecs) + " |")
print("| all samples | " + " | ".join(f"{sum(mu[c].values()) / freq:.2f} / {sum(ff[c].values()) / freq:.2f}" for c in codecs) + " |")
print("| wall s, one run outside perf | " + " | ".join(f"{tm[c][0]:.2f} / {tf[c][0]:.2f}" for c in codecs) + " |")
print("| CPU s (user + system), same run | " + " | ".join(f"{tm[c][1]:.2f} / {tf[c][1]:.2f}" for c in codecs) + " |")
print("| cores used (CPU ÷ wall) | " + " | ".join(f"{tm[c][1] / tm[c][0]:.2f} / {tf[c][1] / tf[c][0]:.2f}" for c in codecs) + " |")
print("| mulan's libavcodec + libswresample CPU ÷ ffmpeg's wall | " + " | ".join(
    f"{seconds(mu[c], 'libavcodec', 'libswresample') / tf[c][0]:.2f}" for c in codecs) + " |")
print("| mulan's wall ÷ ffmpeg's wall (this one run) | " + " | ".join(f"{tm[c][0] / tf[c][0]:.2f}" for c in codecs) + " |")
EOF
} | tee "$OUT"
echo "written: $OUT"
