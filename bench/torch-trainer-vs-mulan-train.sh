#!/usr/bin/env bash
# Issue 16: the PyTorch trainer (`python -m mulan_torch.train`) next to `mulan-train` on the same
# shards, model and batch, CPU only, side by side in one run: examples/s and peak memory. No target:
# the figures say what a user gives up or gains by training in PyTorch on a CPU machine.
# Runs: mulan-train at 1 and 2 threads; mulan_torch.train in one process at 1 and 2 torch threads
# (data loading in the main process, --workers 0) and at 1 thread with one DataLoader worker; and
# torchrun with 2 gloo processes of 1 thread each (DDP, batch 64 = 2 × 32).
# Usage: bash bench/torch-trainer-vs-mulan-train.sh
#   Environment (optional): WARMUP (3) and STEPS (10): steps excluded, then timed, per run;
#   COPIES (12): copies of the synthetic corpus; QUIET_WAIT (600); RETRIES (2) as the other benches.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/cpu-accounting.sh
warmup=${WARMUP:-3}
steps=${STEPS:-10}
copies=${COPIES:-12}
work=${TMPDIR:-/tmp}/mulan-bench-train
mkdir -p "$work" bench/results

scripts/setup.sh --python          # .venv: torch (CPU), safetensors, webdataset, soundfile, …
command -v /usr/bin/time >/dev/null || { apt-get update -qq && apt-get install -y --no-install-recommends time; }
source bench/release-binaries.sh   # sets $bin (BIN, or a release build in .build-bench)
py=.venv/bin/python
export PYTHONPATH=$PWD/python      # this tree's mulan_torch
export CPU_BLAS="$(cpu_blas_line "$bin/mulan-train")"
source bench/train-dataset.sh      # sets $dataset, writes $work/dataset.txt

total=$((warmup + steps))
common=(--steps "$total" --log-every 1 --quiet --eval-every 100000 --checkpoint-every 100000)
stamp=$(date -u +%Y%m%dT%H%M%SZ)
out=bench/results/torch-trainer-vs-mulan-train-$stamp.md
: > "$work/cpu-torch-trainer.txt"
measure() { measure_into "$work/cpu-torch-trainer.txt" "$@"; }   # bench/cpu-accounting.sh
run_mulan() {  # THREADS
  rm -rf "$work/tt-mulan-$1"
  /usr/bin/time -v -o "$work/tt-time-mulan-$1.txt" "$bin/mulan-train" --dataset "$dataset" \
    --run-dir "$work/tt-mulan-$1" --threads "$1" "${common[@]}" > /dev/null
}
run_torch() {  # NAME THREADS WORKERS
  rm -rf "$work/tt-$1"
  OMP_NUM_THREADS=$2 /usr/bin/time -v -o "$work/tt-time-$1.txt" $py -m mulan_torch.train --dataset "$dataset" \
    --run-dir "$work/tt-$1" --threads "$2" --workers "$3" "${common[@]}" > /dev/null
}
run_ddp() {  # NAME: 2 gloo processes × 1 thread
  rm -rf "$work/tt-$1"
  OMP_NUM_THREADS=1 /usr/bin/time -v -o "$work/tt-time-$1.txt" $py -m torch.distributed.run --standalone \
    --nproc_per_node 2 -m mulan_torch.train --dataset "$dataset" --run-dir "$work/tt-$1" --threads 1 --workers 0 \
    "${common[@]}" > /dev/null 2> "$work/tt-$1.log"
}
measure mulan-1 "mulan-train, 1 thread" run_mulan 1
measure torch-1 "mulan_torch.train, 1 thread, no workers" run_torch torch-1 1 0
measure mulan-2 "mulan-train, 2 threads" run_mulan 2
measure torch-2 "mulan_torch.train, 2 threads, no workers" run_torch torch-2 2 0
measure torch-1w "mulan_torch.train, 1 thread + 1 DataLoader worker" run_torch torch-1w 1 1
measure ddp-2 "torchrun, 2 gloo processes × 1 thread" run_ddp ddp-2

grep -q WARNING "$work/cpu-torch-trainer.txt" && out=${out%.md}-DISTURBED.md
commit=$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- Sources Package.swift python || echo " plus uncommitted work")
$py - "$work" "$warmup" "$steps" "$stamp" "$commit" > "$out" <<'PY'
import json, os, statistics, sys
import torch
work, warmup, steps, stamp, commit = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]

def time_v(path, field):
    for line in open(path):
        if field in line:
            return float(line.rsplit(":", 1)[1])

cpu = {l.split(" ", 1)[0]: l.split(" ", 1)[1].strip() for l in open(f"{work}/cpu-torch-trainer.txt")}
runs = [("mulan-1", "mulan-train", "mulan-1", "1 thread"), ("torch-1", "mulan_torch.train", "torch-1", "1 thread, data in the main process"),
        ("mulan-2", "mulan-train", "mulan-2", "2 threads"), ("torch-2", "mulan_torch.train", "torch-2", "2 threads, data in the main process"),
        ("torch-1w", "mulan_torch.train", "torch-1w", "1 thread + 1 DataLoader worker"),
        ("ddp-2", "mulan_torch.train (torchrun)", "ddp-2", "2 gloo processes × 1 thread")]
cpu_model = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
print(f"# mulan_torch.train vs mulan-train on CPU — {stamp}\n")
print(f"- machine: {os.cpu_count()} cores, {cpu_model}; mulan at {commit}; torch {torch.__version__}")
print(f"- {os.environ['CPU_BLAS']}")
print(f"- data: {open(f'{work}/dataset.txt').read().strip()}")
print(f"- both: mulan-train's defaults (batch 64, tags + descriptions 1:1 by the default mix, 10-s windows, 128 mel bands, "
      f"SpecAugment, ResNet 32-64-128-256 + 4-layer BERT width 256, decoupled loss, AdamW, clipping 1.0); {warmup} warm-up "
      f"steps excluded, then {steps} timed; examples/s = examples of the timed steps / their summed step times from metrics.jsonl")
print("- commands: `mulan-train --dataset D --run-dir R --threads T --steps N --log-every 1 --quiet …`; "
      "`python -m mulan_torch.train` with the same options plus `--threads T --workers W`; "
      "`python -m torch.distributed.run --standalone --nproc_per_node 2 -m mulan_torch.train … --threads 1 --workers 0`\n")
print("| trainer | setting | examples/s | median step examples/s | s/step mean (min–max) | peak RSS MiB (largest process) | self-reported MiB | others' CPU |")
print("|---|---|---:|---:|---:|---:|---:|---|")
rates = {}
for key, name, d, setting in runs:
    lines = [json.loads(l) for l in open(f"{work}/tt-{d}/metrics.jsonl") if "split" not in l]
    timed = [l for l in lines if warmup < l["step"] <= warmup + steps]
    assert len(timed) == steps, (key, len(timed))
    secs = [l["batch_size"] / l["examples_per_second"] for l in timed]
    rate = sum(l["batch_size"] for l in timed) / sum(secs)
    rates[key] = rate
    median = statistics.median(l["batch_size"] / s for l, s in zip(timed, secs))
    summary = json.load(open(f"{work}/tt-{d}/summary.json"))
    rss = time_v(f"{work}/tt-time-{d}.txt", "Maximum resident set size") / 1024
    others = cpu[key].split("others ")[1].split(";")[0]
    print(f"| {name} | {setting} | {rate:.2f} | {median:.2f} | {sum(secs) / len(secs):.2f} ({min(secs):.2f}–{max(secs):.2f}) | "
          f"{rss:.0f} | {summary['peak_rss_bytes'] / 2**20:.0f} | {others} |")
print()
print("| figure | value |\n|---|---:|")
for a, b, what in (("torch-1", "mulan-1", "1 thread"), ("torch-2", "mulan-2", "2 threads"),
                   ("torch-1w", "mulan-2", "1 thread + 1 worker vs mulan-train at 2 threads"),
                   ("ddp-2", "mulan-2", "2 DDP processes vs mulan-train at 2 threads")):
    print(f"| examples/s mulan_torch.train / mulan-train, {what} | {rates[a] / rates[b]:.2f}× |")
print("\nPeak RSS: `/usr/bin/time -v` reports the largest single process of the run (torchrun's workers and "
      "DataLoader workers are separate processes); self-reported: mulan-train's own, mulan_torch.train's "
      "rank 0 plus its largest child.\n\nCPU accounting:\n")
for l in open(f"{work}/cpu-torch-trainer.txt"):
    print("- " + l.split(" ", 1)[1].strip())
PY
cat "$out"
