#!/usr/bin/env bash
# Crash and resume, many times: the kill-and-resume test of every stage (ingest, filter, shard,
# train) with POINTS seeded kill points each instead of `make test`'s 3. Each kill point starts the
# stage on its test corpus, sends SIGKILL at a moment spread over an uninterrupted run's duration
# (retried earlier when the run finished first, so every point is a kill that landed), re-runs the
# stage to completion and compares with the uninterrupted run: catalog rows as sets, clip files,
# shards byte for byte, trainer weights/optimizer/sampler state and metrics, no leftover files.
# Usage: bash bench/kill-resume.sh [POINTS] [SEED]     (defaults: 20, 20261125)
set -euo pipefail
cd "$(dirname "$0")/.."
points=${1:-20}
seed=${2:-20261125}
scripts/setup.sh --python
swift build --build-tests >/dev/null
mkdir -p bench/results
stamp=$(date -u +%Y%m%dT%H%M%SZ)
report=bench/results/kill-resume-$stamp.jsonl
out=bench/results/kill-resume-$stamp.md
: > "$report"
started=$(date +%s)
# Stage by stage, so the four do not compete for the cores and distort each other's timing.
status=0
for test in crashResumeIngest crashResumeFilter crashResumeShard crashResumeTrain; do
  MULAN_KILL_POINTS=$points MULAN_KILL_SEED=$seed MULAN_KILL_REPORT=$PWD/$report \
    MULAN_TEST_PYTHON=$PWD/.venv/bin/python swift test --skip-build --filter "$test" > "bench/results/kill-resume-$stamp-$test.log" 2>&1 \
    || { status=1; echo "$test FAILED: see bench/results/kill-resume-$stamp-$test.log"; }
done
seconds=$(( $(date +%s) - started ))
python3 - "$report" "$points" "$seed" "$seconds" "$status" <<'EOF' | tee "$out"
import json, sys, collections
path, points, seed, seconds, status = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
rows = [json.loads(l) for l in open(path) if l.strip()]
by = collections.OrderedDict()
for r in rows:
    by.setdefault(r["stage"], []).append(r)
print(f"# kill -9 and resume: {points} kill points per stage, seed {seed}\n")
print(f"`bash bench/kill-resume.sh {points} {seed}`: {seconds} s in all; every test {'passed' if status == '0' else 'did NOT pass'}.\n")
print("| stage | kill points | landed mid-run | resumed result identical | leftover files | kill moments (s) | committed before the kill (min–max) |")
print("| --- | ---: | ---: | ---: | ---: | --- | --- |")
for stage, rs in by.items():
    d = sorted(r["delay_s"] for r in rs)
    p = [r["progress"] for r in rs]
    print(f"| {stage} | {len(rs)} | {sum(r['interrupted'] for r in rs)} | {sum(r['identical'] for r in rs)} | "
          f"{sum(len(r['leftovers']) for r in rs)} | {d[0]:.2f}–{d[-1]:.2f} | {min(p)}–{max(p)} |")
print("\ncommitted before the kill: ingest = clip files in the store, filter-* = completed filter versions,")
print("shard = finished .tar shards, train = step of the newest checkpoint.")
EOF
echo "results: $out (per kill point: $report)"
exit $status
