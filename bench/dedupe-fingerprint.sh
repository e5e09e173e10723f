#!/usr/bin/env bash
# Fingerprinting speed: mulan's path (libavcodec decode to mono 16 kHz + Chromaprint's C API, as
# mulan-ingest does it) against the fpcalc tool (libchromaprint-tools) on the same files, one
# process at a time, in × realtime. Usage: bench/dedupe-fingerprint.sh [FILES...]
# (default: Debian's Wesnoth soundtrack, /usr/share/games/wesnoth/*/data/core/music/*.ogg).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.build-bench/release}
[ -x "$BIN/mulan-dedupe" ] || swift build -c release --product mulan-dedupe --scratch-path .build-bench
mkdir -p bench/results
echo "# $(date -u +%FT%TZ) $(nproc) cores, load average: $(cut -d' ' -f1-3 /proc/loadavg)"
files=("$@")
if [ ${#files[@]} -eq 0 ]; then files=(/usr/share/games/wesnoth/*/data/core/music/*.ogg); fi
out=$(mktemp)
"$BIN/mulan-dedupe" bench-fingerprint "${files[@]}" > "$out"
fpcalc_s=0
for f in "${files[@]}"; do
  s=$(date +%s.%N); fpcalc -raw -length 0 "$f" > /dev/null 2>&1 || true; e=$(date +%s.%N)
  fpcalc_s=$(echo "$fpcalc_s + $e - $s" | bc -l)
done
python3 - "$out" "$fpcalc_s" "${#files[@]}" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
audio = sum(r["audio_s"] for r in rows); dec = sum(r["decode_s"] for r in rows); both = sum(r["decode_fingerprint_s"] for r in rows)
fp = float(sys.argv[2])
print(f"files: {sys.argv[3]}, audio: {audio/3600:.3f} h")
print(f"mulan decode only (16 kHz mono):        {dec:7.2f} s  {audio/dec:7.0f}x realtime")
print(f"mulan decode + Chromaprint (ingest's):  {both:7.2f} s  {audio/both:7.0f}x realtime  (fingerprint alone: {audio/max(both-dec,1e-9):.0f}x)")
print(f"fpcalc -raw -length 0 (whole file):     {fp:7.2f} s  {audio/fp:7.0f}x realtime")
print("statuses:", {s: sum(1 for r in rows if r["status"] == s) for s in sorted({r["status"] for r in rows})})
PY
rm -f "$out"
