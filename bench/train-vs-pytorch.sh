#!/usr/bin/env bash
# Training throughput of `mulan-train` in its default configuration against the same model, batch
# size and thread count written in PyTorch (CPU, eager; bench/train_torch.py), side by side in one
# run, on the same shards, at 1 and 2 threads; plus mulan's time shares, both sides' peak RSS and a
# flat perf profile of mulan-train.
# Usage: bash bench/train-vs-pytorch.sh
#   Environment (all optional): WARMUP (3) and STEPS (10): steps excluded, then timed, per run;
#   THREADS ("1 2"); COPIES (12): copies of the synthetic corpus; PROFILE (1): perf-profile mulan-train;
#   QUIET_WAIT (600): seconds to wait for the machine to go quiet before each timed run; RETRIES (2):
#   repeats of a run during which other processes used more than 5 % of the CPU;
#   TORCH_WHEEL: the torch wheel for .venv-bench (default: the CPU wheel in /opt/wheels).
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/cpu-accounting.sh
warmup=${WARMUP:-3}
steps=${STEPS:-10}
threads=(${THREADS:-1 2})
copies=${COPIES:-12}
work=${TMPDIR:-/tmp}/mulan-bench-train
mkdir -p "$work" bench/results

scripts/setup.sh --python                       # FFmpeg/ICU/SQLite dev packages; .venv with the vocabulary
for p in time linux-perf; do
  dpkg -s "$p" >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y --no-install-recommends "$p"; }
done

# PyTorch and the data tools in their own venv (torch is large; the test venv stays small).
wheel=${TORCH_WHEEL:-/opt/wheels/torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl}
venv=.venv-bench
if [ ! -x $venv/bin/python ] || ! $venv/bin/python -c 'import torch, numpy, soundfile, webdataset, librosa' >/dev/null 2>&1; then
  echo "setup: preparing $venv (torch, numpy, soundfile, webdataset, librosa)"
  py=python3.11; command -v $py >/dev/null 2>&1 || py=python3
  $py -m venv $venv
  torch_spec=torch; [ -f "$wheel" ] && torch_spec=$wheel
  $venv/bin/pip install --quiet --disable-pip-version-check "$torch_spec" numpy soundfile webdataset librosa
fi
py=$venv/bin/python

source bench/release-binaries.sh   # sets $bin (BIN, or a release build in .build-bench)
export CPU_BLAS="$(cpu_blas_line "$bin/mulan-train")"   # printed in the result (bench/cpu-accounting.sh)

# The dataset (bench/train-dataset.sh): sets $dataset and writes $work/dataset.txt.
source bench/train-dataset.sh

stamp=$(date -u +%Y%m%dT%H%M%SZ)
out=bench/results/train-vs-pytorch-$stamp.md
total=$((warmup + steps))
: > "$work/cpu.txt"
# measure NAME LABEL COMMAND…: waits for a quiet machine, runs COMMAND under the CPU accounting and,
# while other processes were busy meanwhile, runs it again (RETRIES more times at most; the files
# of the last attempt stay). Runs in this shell: `times` must see COMMAND's children.
measure() { measure_into "$work/cpu.txt" "$@"; }   # bench/cpu-accounting.sh
# mulan-train: the defaults except the step count, the thread count and a metrics line per step.
run_mulan() {
  rm -rf "$work/run-mulan-$1"
  /usr/bin/time -v -o "$work/time-mulan-$1.txt" "$bin/mulan-train" --dataset "$dataset" --run-dir "$work/run-mulan-$1" \
    --threads "$1" --steps "$total" --log-every 1 --quiet > "$work/mulan-$1.stdout"
}
run_torch() {
  /usr/bin/time -v -o "$work/time-torch-$1.txt" $py bench/train_torch.py --dataset "$dataset" --threads "$1" \
    --warmup "$warmup" --steps "$steps" --out "$work/torch-$1.json" 2> "$work/torch-$1.log" > /dev/null
}
for t in "${threads[@]}"; do
  measure "mulan-$t" "mulan-train, $t thread(s)" run_mulan "$t"
  measure "torch-$t" "PyTorch, $t thread(s)" run_torch "$t"
done

# A flat profile of mulan-train at 1 thread (where the CPU time goes, by library and by function);
# the run includes start-up, the model's initialization and the final checkpoint.
: > "$work/profile.txt"
if [ "${PROFILE:-1}" = 1 ]; then
  rm -rf "$work/run-profile"
  wait_for_quiet
  perf record -F 499 -o "$work/perf.data" -- "$bin/mulan-train" --dataset "$dataset" --run-dir "$work/run-profile" \
    --threads 1 --steps "${PROFILE_STEPS:-6}" --quiet > /dev/null 2> "$work/perf-record.log"
  { perf report -i "$work/perf.data" --no-children --sort dso --stdio 2>/dev/null | awk '/^ +[0-9.]+%/ && n < 8 {print; n++}'
    echo
    perf report -i "$work/perf.data" --no-children --sort dso,symbol --stdio 2>/dev/null \
      | awk '/^ +[0-9.]+%/ && n < 30 {print; n++}' | swift demangle --simplified | sed -E 's/[ -]+$//'
  } > "$work/profile.txt"
fi

grep -q WARNING "$work/cpu.txt" && out=bench/results/train-vs-pytorch-$stamp-DISTURBED.md
commit=$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- Sources Package.swift || echo " plus uncommitted work")
$py - "$work" "$warmup" "$steps" "$stamp" "$commit" "${threads[*]}" "${PROFILE_STEPS:-6}" > "$out" <<'PY'
import json, os, platform, re, statistics, sys
work, warmup, steps, stamp, commit, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5], sys.argv[6].split()

def time_v(path, field):
    for line in open(path):
        if field in line:
            return float(line.rsplit(":", 1)[1])

def rss_mib(path):
    return time_v(path, "Maximum resident set size") / 1024
cpu_model = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
mem = next(int(l.split()[1]) for l in open("/proc/meminfo") if l.startswith("MemTotal")) / 2**20
cpu = {l.split(" ", 1)[0]: l.split(" ", 1)[1].strip() for l in open(f"{work}/cpu.txt")}
import torch
rows, shares, perstep, cputime, ratio, ratio_median = [], [], [], [], {}, {}
for t in threads:
    lines = [json.loads(l) for l in open(f"{work}/run-mulan-{t}/metrics.jsonl")]
    train = [l for l in lines if "split" not in l]
    timed = [l for l in train if warmup < l["step"] <= warmup + steps]
    assert len(timed) == steps, f"mulan {t}: {len(timed)} timed steps in metrics.jsonl"
    secs = [l["batch_size"] / l["examples_per_second"] for l in timed]
    m_rate = sum(l["batch_size"] for l in timed) / sum(secs)
    summary = json.load(open(f"{work}/run-mulan-{t}/summary.json"))
    tj = json.load(open(f"{work}/torch-{t}.json"))
    t_rate = tj["examples_per_second"]
    t_secs = [s["seconds"] for s in tj["steps"][warmup:]]
    ratio[t] = m_rate / t_rate
    m_median = statistics.median(l["batch_size"] / s for l, s in zip(timed, secs))
    t_median = statistics.median(tj["batch_size"] / s for s in t_secs)
    ratio_median[t] = m_median / t_median
    share = summary["time_share"]
    other = 1 - sum(share.get(k, 0) for k in ("gemm", "logmel", "data"))
    rows.append(f"| mulan-train | {t} | {m_rate:.2f} | {m_median:.2f} | {sum(secs) / len(secs):.2f} ({min(secs):.2f}–{max(secs):.2f}) | "
                f"{rss_mib(f'{work}/time-mulan-{t}.txt'):.0f} | {summary['peak_rss_bytes'] / 2**20:.0f} | {cpu[f'mulan-{t}'].split('others ')[1].split(';')[0]} |")
    rows.append(f"| PyTorch {tj['torch']} | {t} | {t_rate:.2f} | {t_median:.2f} | {sum(t_secs) / len(t_secs):.2f} ({min(t_secs):.2f}–{max(t_secs):.2f}) | "
                f"{rss_mib(f'{work}/time-torch-{t}.txt'):.0f} | {tj['peak_rss_bytes'] / 2**20:.0f} | {cpu[f'torch-{t}'].split('others ')[1].split(';')[0]} |")
    shares.append(f"| mulan-train | {t} | {share.get('gemm', 0):.1%} | {share.get('logmel', 0):.1%} | {share.get('data', 0):.1%} | "
                  f"{other:.1%} | all {summary['last_step']} steps and the final checkpoint, {summary['seconds']:.1f} s × {summary['threads']} threads |")
    ts = tj["time_share"]
    shares.append(f"| PyTorch | {t} | (in model) | {ts['logmel']:.1%} | {ts['data']:.1%} | model {ts['model']:.1%} | "
                  f"the {steps} timed steps, wall time; mean padded text length {tj['mean_text_length']:.1f} |")
    for name, path, n in (("mulan-train", f"{work}/time-mulan-{t}.txt", summary["last_step"]),
                          ("PyTorch", f"{work}/time-torch-{t}.txt", len(tj["steps"]))):
        user, system = time_v(path, "User time"), time_v(path, "System time")
        cputime.append(f"| {name} | {t} | {user:.1f} | {system:.1f} ({system / (user + system):.0%}) | "
                       f"{time_v(path, 'Minor (reclaiming a frame) page faults') / n / 1e3:.0f}k |")
    perstep.append(f"| mulan, {t} thread(s) | " + " ".join(f"{l['examples_per_second']:.2f}" for l in train) + " |")
    perstep.append(f"| PyTorch, {t} thread(s) | " + " ".join(f"{64 / s['seconds']:.2f}" for s in tj["steps"]) + " |")

print(f"# mulan-train vs PyTorch: training throughput — {stamp}\n")
print(f"- machine: {os.cpu_count()} cores, {cpu_model}, {mem:.1f} GiB; mulan at {commit}; torch {torch.__version__} "
      f"(eager, {torch.__config__.parallel_info().splitlines()[-1].strip()})")
print(f"- {os.environ['CPU_BLAS']}")
print(f"- data: {open(f'{work}/dataset.txt').read().strip()}")
print(f"- both: batch 64 (tags 32 + descriptions 32), 10-s random window → 128-band log-mel [64, 128, 1001], SpecAugment, "
      f"ResNet audio tower + 4-layer BERT text tower, decoupled contrastive loss, AdamW, clipping 1.0; "
      f"{warmup} warm-up steps excluded, then {steps} timed steps per run")
print("- mulan: `mulan-train --dataset D --run-dir R --threads T --steps N --log-every 1 --quiet` (everything else default); "
      "examples/s over the timed steps from metrics.jsonl (each line times its own step)")
print("- PyTorch: `bench/train_torch.py --threads T` (torch.set_num_threads(T), OMP/MKL_NUM_THREADS=T, FLAC decoding on T "
      "Python threads, data loading in the main process); peak RSS from `/usr/bin/time -v` for both\n")
print("| trainer | threads | examples/s | median step, examples/s | s/step mean (min–max) | peak RSS MiB (time -v) | peak RSS MiB (self-reported) | others' CPU while it ran |")
print("|---|---:|---:|---:|---:|---:|---:|---|")
print("\n".join(rows))
print()
print("examples/s = 64 × timed steps / their total time; the median step is less sensitive to other processes.\n")
print("| figure | value |\n|---|---:|")
for t in threads:
    print(f"| examples/s mulan / PyTorch, {t} thread(s) (all timed steps; median steps) | {ratio[t]:.2f}×; {ratio_median[t]:.2f}× |")
print("\nTime shares (mulan: thread-time in GEMM, log-mel incl. SpecAugment, data loading incl. FLAC decoding, from summary.json; "
      "PyTorch: wall time of each phase):\n")
print("| trainer | threads | GEMM | log-mel | data | rest | over |\n|---|---:|---:|---:|---:|---:|---|")
print("\n".join(shares))
print("\nCPU time of each whole process (`/usr/bin/time -v`; start-up, warm-up and, for mulan, the final checkpoint included):\n")
print("| trainer | threads | user s | system s (share) | minor page faults per step |\n|---|---:|---:|---:|---:|")
print("\n".join(cputime))
print("\nExamples/s of every step (warm-up first):\n")
print("| run | per step |\n|---|---|")
print("\n".join(perstep))
profile = open(f"{work}/profile.txt").read().rstrip()
if profile:
    print(f"\nFlat profile of mulan-train, 1 thread, {sys.argv[7]} steps with start-up and the final checkpoint "
          "(`perf record -F 499`; `perf report --no-children --sort dso`, then `--sort dso,symbol`):\n")
    print("```\n" + profile.strip("\n") + "\n```")
print("\nCPU accounting:\n")
for l in open(f"{work}/cpu.txt"):
    print("- " + l.split(" ", 1)[1].strip())
PY
cat "$out"
