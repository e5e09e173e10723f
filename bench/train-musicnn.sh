#!/usr/bin/env bash
# Training throughput of mulan-train with the musicnn audio tower (issue 26), frozen and fine-tuned,
# next to the compact ResNet (the default tower), at 1 and 2 threads, on the dataset of
# bench/train-dataset.sh (16 kHz, 30-s clips; 10-s windows: 3 musicnn patches per example).
# Usage: bash bench/train-musicnn.sh
#   Environment (all optional): WARMUP (1) and STEPS (3): steps excluded, then timed, per run;
#   THREADS ("1 2"); BATCH (64); COPIES (12); MUSICNN (the converted MSD_musicnn.safetensors;
#   default .venv/mulan-pretrained/musicnn/MSD_musicnn.safetensors); BIN (a folder with release
#   binaries of mulan-ingest/-filter/-shard/-train; default: build them into .build-bench) and
#   DATASET (a mulan-shard dataset; default: bench/train-dataset.sh makes one, which needs
#   .venv-bench from bench/train-vs-pytorch.sh). The rate of a run is the median of its timed
#   steps' examples_per_second (metrics.jsonl, one line per step).
set -euo pipefail
cd "$(dirname "$0")/.."
warmup=${WARMUP:-1}
steps=${STEPS:-3}
threads=(${THREADS:-1 2})
batch=${BATCH:-64}
copies=${COPIES:-12}
musicnn=${MUSICNN:-.venv/mulan-pretrained/musicnn/MSD_musicnn.safetensors}
work=${TMPDIR:-/tmp}/mulan-bench-musicnn
mkdir -p "$work" bench/results
[ -f "$musicnn" ] || { echo "no converted musicnn weights at $musicnn: run scripts/setup.sh --python" >&2; exit 1; }

source bench/release-binaries.sh   # sets $bin (BIN, or a release build in .build-bench)
if [ -n "${DATASET:-}" ]; then
  dataset=$DATASET
else
  py=.venv-bench/bin/python
  source bench/train-dataset.sh   # sets $dataset
fi

total=$((warmup + steps))
stamp=$(date -u +%Y%m%dT%H%M%SZ)
out=bench/results/train-musicnn-$stamp.md
# rate RUN: the median examples/s of the timed steps.
rate() {
  python3 - "$1/metrics.jsonl" "$warmup" <<'PY'
import json, statistics, sys
lines = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
rates = [l["examples_per_second"] for l in lines if l.get("split") is None and l["step"] > int(sys.argv[2])]
print(f"{statistics.median(rates):.2f}")
PY
}
{
  echo "# mulan-train: musicnn audio tower vs the compact ResNet ($stamp)"
  echo
  echo "Machine: $(nproc) cores, load average before the runs: $(cut -d' ' -f1-3 /proc/loadavg)."
  echo "Batch $batch, 10-s windows, $warmup warm-up + $steps timed steps per run; median examples/s of the timed steps."
  echo
  echo "| tower | threads | examples/s |"
  echo "|---|---|---|"
} > "$out"
for t in "${threads[@]}"; do
  for mode in resnet musicnn-frozen musicnn-top:1 musicnn-full; do
    run=$work/run-$mode-$t
    rm -rf "$run"
    case $mode in
      resnet) extra=() ;;
      musicnn-*) extra=(--audio-tower musicnn --audio-init "$musicnn" --audio-train "${mode#musicnn-}") ;;
    esac
    "$bin/mulan-train" --dataset "$dataset" --run-dir "$run" --threads "$t" --steps "$total" --batch-size "$batch" \
      --log-every 1 --checkpoint-every 100000 --eval-every 100000 --quiet "${extra[@]}" > /dev/null
    echo "| $mode | $t | $(rate "$run") |" >> "$out"
  done
done
echo >> "$out"
echo "Load average after the runs: $(cut -d' ' -f1-3 /proc/loadavg)." >> "$out"
cat "$out"
