#!/usr/bin/env bash
# Training throughput of every audio tower: the compact ResNet (the default), the paper's ResNet-50
# and AST (issue 23), and musicnn's pretrained musicnn and vgg, frozen and fine-tuned (issue 26), in
# mulan-train and, side by side in the same run, in PyTorch on CPU (`python -m mulan_torch.train`, the same model, options, batch and
# thread count; `--workers 0`, so that both decode in the training process), at 1 and 2 threads, on
# the dataset of bench/train-dataset.sh (16 kHz, 30-s clips; 10-s windows: 3 patches per example).
# Usage: bash bench/train-towers.sh
#   Environment (all optional): WARMUP (1) and STEPS (3): steps excluded, then timed, per run;
#   THREADS ("1 2"); BATCH (64); COPIES (12); MODES (default "resnet resnet50 ast musicnn-frozen
#   musicnn-top:1 musicnn-full vgg-frozen vgg-full"; resnet50 is ResNet-50's 256…2048 widths, ast the
#   default CPU-sized AST: width 128, 4 layers, 4 heads); SIDES ("mulan torch"); PRETRAINED (the folder of converted
#   files, default .venv/mulan-pretrained/musicnn: MSD_musicnn and MSD_vgg are used); BIN (a folder
#   with release binaries of mulan-ingest/-filter/-shard/-train; default: build them into
#   .build-bench); DATASET (a mulan-shard dataset; default: bench/train-dataset.sh makes one, which
#   needs .venv-bench from bench/train-vs-pytorch.sh); TORCH_PYTHON (default .venv/bin/python, the
#   test venv, which has torch for CPU). The rate of a run is the median of its timed steps'
#   examples_per_second (metrics.jsonl, one line per step; both trainers write it the same way).
set -euo pipefail
cd "$(dirname "$0")/.."
warmup=${WARMUP:-1}
steps=${STEPS:-3}
threads=(${THREADS:-1 2})
batch=${BATCH:-64}
copies=${COPIES:-12}
pretrained=${PRETRAINED:-.venv/mulan-pretrained/musicnn}
modes=(${MODES:-resnet resnet50 ast musicnn-frozen musicnn-top:1 musicnn-full vgg-frozen vgg-full})
sides=(${SIDES:-mulan torch})
torch_python=${TORCH_PYTHON:-.venv/bin/python}
work=${TMPDIR:-/tmp}/mulan-bench-towers
mkdir -p "$work" bench/results
for f in MSD_musicnn MSD_vgg; do
  [ -f "$pretrained/$f.safetensors" ] || { echo "no converted weights at $pretrained/$f.safetensors: run scripts/setup.sh --python" >&2; exit 1; }
done

source bench/release-binaries.sh   # sets $bin (BIN, or a release build in .build-bench)
if [ -n "${DATASET:-}" ]; then
  dataset=$DATASET
else
  py=.venv-bench/bin/python
  source bench/train-dataset.sh   # sets $dataset
fi

total=$((warmup + steps))
stamp=$(date -u +%Y%m%dT%H%M%SZ)
out=bench/results/train-towers-$stamp.md
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
  echo "# Training throughput per audio tower, mulan-train vs PyTorch ($stamp)"
  echo
  echo "Machine: $(nproc) cores, load average before the runs: $(cut -d' ' -f1-3 /proc/loadavg)."
  echo "Batch $batch, 10-s windows, $warmup warm-up + $steps timed steps per run; median examples/s of the timed steps."
  echo "PyTorch: $($torch_python -c 'import torch; print("torch", torch.__version__)'), \`python -m mulan_torch.train --workers 0\`."
  echo
  echo "| tower | threads | mulan-train examples/s | PyTorch examples/s | mulan / PyTorch |"
  echo "|---|---|---:|---:|---:|"
} > "$out"
for t in "${threads[@]}"; do
  for mode in "${modes[@]}"; do
    case $mode in
      resnet|resnet50|ast) extra=(--audio-tower "$mode") ;;
      musicnn-*) extra=(--audio-tower musicnn --audio-init "$pretrained/MSD_musicnn.safetensors" --audio-train "${mode#musicnn-}") ;;
      vgg-*) extra=(--audio-tower vgg --audio-init "$pretrained/MSD_vgg.safetensors" --audio-train "${mode#vgg-}") ;;
    esac
    common=(--dataset "$dataset" --threads "$t" --steps "$total" --batch-size "$batch" --log-every 1
            --checkpoint-every 100000 --eval-every 100000 --quiet "${extra[@]}")
    declare -A r=([mulan]="—" [torch]="—")
    for side in "${sides[@]}"; do
      run=$work/run-$side-$mode-$t
      rm -rf "$run"
      if [ "$side" = mulan ]; then
        "$bin/mulan-train" --run-dir "$run" "${common[@]}" > /dev/null
      else
        PYTHONPATH=$PWD/python "$torch_python" -m mulan_torch.train --run-dir "$run" --workers 0 "${common[@]}" > /dev/null
      fi
      r[$side]=$(rate "$run")
    done
    ratio=$(python3 -c "import sys; a, b = sys.argv[1:]; print(f'{float(a) / float(b):.2f}' if '—' not in (a, b) else '—')" "${r[mulan]}" "${r[torch]}")
    echo "| $mode | $t | ${r[mulan]} | ${r[torch]} | $ratio |" >> "$out"
  done
done
echo >> "$out"
echo "Load average after the runs: $(cut -d' ' -f1-3 /proc/loadavg)." >> "$out"
cat "$out"
