#!/usr/bin/env bash
# OpenBLAS's core and what it costs: single-thread sgemm GFLOP/s (`mulan-train blas --gflops`, 1024³)
# and `mulan-train` examples/s in its default configuration, with the core mulan chooses from the
# CPU's features (OPENBLAS_CORETYPE unset) next to each forced core (default: Prescott, OpenBLAS
# 0.3.21's generic fallback on CPU models it does not know, and Haswell), side by side in one run,
# alternating, on the training benchmark's dataset (bench/train-dataset.sh).
# Usage: bash bench/blas-cores.sh
#   Environment (all optional): CORES ("Prescott Haswell"): forced cores to compare; THREADS (2);
#   WARMUP (2) and STEPS (6): training steps excluded, then timed; ROUNDS (1): alternations;
#   COPIES (12): copies of the synthetic corpus; QUIET_WAIT (see cpu-accounting.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/cpu-accounting.sh
cores=(${CORES:-Prescott Haswell})
threads=${THREADS:-2}
warmup=${WARMUP:-2}
steps=${STEPS:-6}
rounds=${ROUNDS:-1}
copies=${COPIES:-12}
work=${TMPDIR:-/tmp}/mulan-bench-train   # shares the dataset with train-vs-pytorch.sh
mkdir -p "$work" bench/results

scripts/setup.sh --python
py=.venv/bin/python
source bench/release-binaries.sh   # sets $bin (BIN, or a release build in .build-bench)
source bench/train-dataset.sh
export CPU_BLAS="$(cpu_blas_line "$bin/mulan-train")"

# run LABEL CORE: one sgemm measurement and one training run with OPENBLAS_CORETYPE=CORE ("" = unset).
run() {
  local label=$1 core=$2 r=$3
  local env_core=(env -u OPENBLAS_CORETYPE)
  [ -n "$core" ] && env_core=(env OPENBLAS_CORETYPE="$core")
  "${env_core[@]}" "$bin/mulan-train" blas --gflops --json > "$work/blas-$label-$r.json"
  rm -rf "$work/run-blas-$label"
  "${env_core[@]}" "$bin/mulan-train" --dataset "$dataset" --run-dir "$work/run-blas-$label" --threads "$threads" \
    --steps $((warmup + steps)) --log-every 1 --quiet > /dev/null
  cp "$work/run-blas-$label/metrics.jsonl" "$work/metrics-blas-$label-$r.jsonl"
  cp "$work/run-blas-$label/summary.json" "$work/summary-blas-$label-$r.json"
}
labels=(chosen "${cores[@]}")
wait_for_quiet
cpu_mark
for r in $(seq "$rounds"); do
  run chosen "" "$r"
  for c in "${cores[@]}"; do run "$c" "$c" "$r"; done
done
cpu_report "timed section" > "$work/cpu-blas.txt"
accounting=$(cat "$work/cpu-blas.txt")
echo "$accounting"

stamp=$(date -u +%Y%m%dT%H%M%SZ)
out=bench/results/blas-cores-$stamp.md
grep -q WARNING "$work/cpu-blas.txt" && out=bench/results/blas-cores-$stamp-DISTURBED.md
commit=$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- Sources Package.swift || echo " plus uncommitted work")
$py - "$work" "$rounds" "$warmup" "$steps" "$threads" "$stamp" "$commit" "$accounting" "${labels[*]}" > "$out" <<'PY'
import json, os, statistics, sys
work, rounds, warmup, steps, threads, stamp, commit, accounting, labels = sys.argv[1:10]
rounds, warmup, steps, labels = int(rounds), int(warmup), int(steps), labels.split()
print(f"# OpenBLAS cores: sgemm and mulan-train — {stamp}\n")
print(f"- machine: {os.cpu_count()} cores; mulan at {commit}")
print(f"- {os.environ['CPU_BLAS']}")
print(f"- data: {open(f'{work}/dataset.txt').read().strip()}")
print(f"- sgemm: `mulan-train blas --gflops --json` (cblas_sgemm 1024×1024×1024, one thread, best of 5 after a warm-up)")
print(f"- training: `mulan-train --dataset D --run-dir R --threads {threads} --steps {warmup + steps} --log-every 1 --quiet` "
      f"(defaults: batch 64, ResNet 32-64-128-256, 4-layer BERT width 256); {warmup} warm-up steps excluded, "
      f"examples/s over the {steps} timed steps from metrics.jsonl")
print(f"- {rounds} round(s), the cores alternating within each; {accounting}\n")
print("| OPENBLAS_CORETYPE | core in use | how chosen | sgemm GFLOP/s | mulan-train examples/s | GEMM share of thread time |")
print("|---|---|---|---:|---:|---:|")
rates = {}
for label in labels:
    gflops, eps, share, core = [], [], [], None
    for r in range(1, rounds + 1):
        b = json.load(open(f"{work}/blas-{label}-{r}.json"))
        core = b["blas"]
        gflops.append(b["sgemm_gflops"])
        lines = [json.loads(l) for l in open(f"{work}/metrics-blas-{label}-{r}.jsonl")]
        timed = [l for l in lines if "split" not in l and warmup < l["step"] <= warmup + steps]
        assert len(timed) == steps, (label, len(timed))
        eps.append(sum(l["batch_size"] for l in timed) / sum(l["batch_size"] / l["examples_per_second"] for l in timed))
        s = json.load(open(f"{work}/summary-blas-{label}-{r}.json"))
        assert s["blas"]["core"] == core["core"], (s["blas"], core)
        share.append(s["time_share"].get("gemm", 0))
    rates[label] = (statistics.median(gflops), statistics.median(eps))
    print(f"| {'unset' if label == 'chosen' else label} | {core['core']} ({core['core_level']}) | {core['choice']} | "
          f"{statistics.median(gflops):.1f} | {statistics.median(eps):.2f} | {statistics.median(share):.0%} |")
print()
for label in labels[1:]:
    g, e = rates["chosen"][0] / rates[label][0], rates["chosen"][1] / rates[label][1]
    print(f"- chosen core against {label}: sgemm {g:.2f}×, mulan-train examples/s {e:.2f}×")
PY
cat "$out"
