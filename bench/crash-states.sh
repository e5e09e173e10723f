#!/usr/bin/env bash
# Power-loss crash states, many of them: each stage's crash-state test (Tests/MulanTestSupport/
# CrashStates.swift) with POINTS kill points instead of `make test`'s 2. A kill point runs the stage
# under strace and kills it at the K-th call of one system call (or lets it finish: the power goes
# after it exited); each becomes 4 states (as the process left it; unsynced data dropped; torn;
# dropped with unsynced names undone). On each: the stage's invariants, a re-run, the invariants
# again and the result against an uninterrupted run's. Then the tests showing the checker fails
# when a sync is skipped (MULAN_UNSAFE_SKIP_FSYNC=data).
# Usage: bash bench/crash-states.sh [POINTS] [STAGES]   (defaults: 50 = 200 states per stage;
#        STAGES a space-separated subset of "text dedupe shard ingest filter train")
# The test bundle is run directly (not through `swift test`), so that it does not wait for
# SwiftPM's lock on .build while another build runs.
set -euo pipefail
cd "$(dirname "$0")/.."
points=${1:-50}
stages=${2:-text dedupe shard ingest filter train}
scripts/setup.sh --python
swift build --build-tests >/dev/null
bundle=.build/debug/mulanPackageTests.xctest
mkdir -p bench/results
stamp=$(date -u +%Y%m%dT%H%M%SZ)
report=bench/results/crash-states-$stamp.jsonl
out=bench/results/crash-states-$stamp.md
: > "$report"
declare -A filters=(
  [text]="IngestCrashStateTests/textPowerLossStates"
  [dedupe]="DedupeCrashStateTests/powerLossStates"
  [shard]="ShardCrashStateTests/powerLossStatesKeepPublishedShardsWhole"
  [ingest]="IngestCrashStateTests/audioPowerLossStates"
  [filter]="FilterCrashStateTests/powerLossStates"
  [train]="TrainCrashStateTests/powerLossStates"
)
status=0
started=$(date +%s)
for stage in $stages; do
  MULAN_CRASH_POINTS=$points MULAN_CRASH_REPORT=$PWD/$report MULAN_TEST_PYTHON=$PWD/.venv/bin/python \
    "$bundle" --testing-library swift-testing --filter "${filters[$stage]}" > "bench/results/crash-states-$stamp-$stage.log" 2>&1 \
    || { status=1; echo "$stage FAILED: see bench/results/crash-states-$stamp-$stage.log"; }
done
# The checker can fail: without the data syncs, a power cut after the run is reported.
MULAN_CRASH_REPORT=$PWD/$report "$bundle" --testing-library swift-testing \
  --filter "checkerCatchesMissingDataSync|audioCheckerCatchesMissingDataSync" > "bench/results/crash-states-$stamp-broken.log" 2>&1 \
  || { status=1; echo "broken-order tests FAILED: see bench/results/crash-states-$stamp-broken.log"; }
seconds=$(( $(date +%s) - started ))
python3 - "$report" "$points" "$seconds" "$status" "$(nproc)" "$(cut -d' ' -f1-3 /proc/loadavg)" <<'PY' | tee "$out"
import json, sys, collections
path, points, seconds, status, cores, load = sys.argv[1:7]
rows = [json.loads(l) for l in open(path) if l.strip()]
by = collections.OrderedDict()
summary = {}
for r in rows:
    if r.get("summary"):
        summary[r["stage"]] = r
    else:
        by.setdefault(r["stage"], []).append(r)
print(f"# Power-loss crash states: {points} kill points per stage (4 states each)\n")
print(f"`bash bench/crash-states.sh {points}`: {seconds} s in all, debug build, {cores} cores, load average at the end {load}; "
      f"every test {'passed' if status == '0' else 'did NOT pass'}.\n")
print("| stage | states | violating states | states with files cut | states with names undone | kill points (distinct) | seconds |")
print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
for stage, rs in by.items():
    s = summary.get(stage, {})
    print(f"| {stage} | {len(rs)} | {sum(1 for r in rs if r['violations'])} | {sum(1 for r in rs if r['files_cut'])} | "
          f"{sum(1 for r in rs if r['names_undone'])} | {len(set(r['point'] for r in rs))} | {s.get('seconds', '')} |")
print("\n`*-skip-data-sync` rows are the broken-order tests (MULAN_UNSAFE_SKIP_FSYNC=data): there a violation is the")
print("expected outcome. First violation of each such state:\n")
for stage, rs in by.items():
    for r in rs:
        if r["violations"]:
            print(f"- {stage}, {r['point']}, {r['variant']}: {r['violations'][0][:300]}")
PY
echo "results: $out (per state: $report)"
exit $status
