#!/usr/bin/env bash
# Issue 16's loader benchmark: samples/s of mulan_torch.MulanShards (decode + mulan-train's window +
# log-mel + SpecAugment) against a plain webdataset + soundfile + librosa mel pipeline on the same
# shards (the training benchmark's dataset: 30-s 16-kHz clips), at 0, 1 and 2 DataLoader workers,
# side by side, alternating. Both log-mels: 128 Slaney bands, n_fft 512, hop 160, window 400.
# MulanShards runs once per log-mel path of LOGMEL: "exact" (MULAN_TORCH_EXACT_LOG_MEL=1: MulanDSP's
# arithmetic with libavutil's FFT, the default where libavutil loads) and "numpy" (=0).
# Usage: bash bench/loader-vs-webdataset.sh   Environment: WORKERS ("0 1 2"), BATCHES (4, of 64
#   samples, after one untimed batch), ROUNDS (2), COPIES (12), LOGMEL ("exact numpy"), QUIET_WAIT;
#   PY and BIN: an existing Python with mulan_torch's dependencies, webdataset and librosa (then
#   ./python is used from the tree through PYTHONPATH, nothing installed) and a folder of release
#   binaries (mulan-ingest, -filter, -shard; nothing built), instead of .venv and .build-bench.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/cpu-accounting.sh
workers=(${WORKERS:-0 1 2})
batches=${BATCHES:-4}
rounds=${ROUNDS:-2}
copies=${COPIES:-12}
modes=(${LOGMEL:-exact numpy})
work=${TMPDIR:-/tmp}/mulan-bench-train   # shares the dataset with train-vs-pytorch.sh
mkdir -p "$work" bench/results
if [ -n "${PY:-}" ]; then
  py=$PY
  export PYTHONPATH="$PWD/python${PYTHONPATH:+:$PYTHONPATH}"
else
  scripts/setup.sh --python
  py=.venv/bin/python
  .venv/bin/pip install --quiet --disable-pip-version-check --no-deps --force-reinstall ./python
fi
source bench/release-binaries.sh   # sets $bin (BIN, or a release build in .build-bench)
source bench/train-dataset.sh
export CPU_BLAS="$(cpu_blas_line)"
: > "$work/loader.jsonl"
wait_for_quiet
cpu_mark
for r in $(seq "$rounds"); do
  for w in "${workers[@]}"; do
    for kind in "${modes[@]}" reference; do
      loader=mulan; exact=1
      case $kind in reference) loader=reference ;; numpy) exact=0 ;; exact) ;; *) echo "LOGMEL: exact or numpy, not $kind" >&2; exit 2 ;; esac
      OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 NUMBA_NUM_THREADS=1 MULAN_TORCH_EXACT_LOG_MEL=$exact \
        $py bench/loader_bench.py "$loader" "$dataset" "$w" "$batches" 2>/dev/null \
        | $py -c 'import json, sys; [print(json.dumps(dict(json.loads(l), logmel=sys.argv[1]))) for l in sys.stdin]' "$kind" \
        >> "$work/loader.jsonl"
    done
  done
done
cpu_report "timed section" > "$work/cpu-loader.txt"
accounting=$(cat "$work/cpu-loader.txt")
stamp=$(date -u +%Y%m%dT%H%M%SZ)
out=bench/results/loader-vs-webdataset-$stamp.md
grep -q WARNING "$work/cpu-loader.txt" && out=bench/results/loader-vs-webdataset-$stamp-DISTURBED.md
$py - "$work/loader.jsonl" "$stamp" "$accounting" "$(cat "$work/dataset.txt")" "$batches" > "$out" <<'PY'
import json, os, statistics, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
stamp, accounting, data, batches = sys.argv[2:6]
print(f"# Loader: MulanShards vs webdataset + soundfile + librosa — {stamp}\n")
print(f"- machine: {os.cpu_count()} cores; {os.environ['CPU_BLAS']}")
print(f"- data: {data}")
print(f"- {batches} timed batches of 64 after one untimed batch, per process; OMP/MKL/OPENBLAS threads 1; best of the rounds")
print(f"- {accounting}\n")
modes = [m for m in ("exact", "numpy") if any(l["logmel"] == m for l in lines)]
names = {"exact": "MulanShards, exact log-mel (default)", "numpy": "MulanShards, NumPy log-mel"}
print("| DataLoader workers | " + " | ".join(f"{names[m]} samples/s | ratio" for m in modes)
      + " | webdataset + soundfile + librosa samples/s |")
print("|---:|" + "---:|---:|" * len(modes) + "---:|")
for w in sorted({l["workers"] for l in lines}):
    r = max(l["samples_per_second"] for l in lines if l["loader"] == "reference" and l["workers"] == w)
    cells = []
    for mode in modes:
        m = max(l["samples_per_second"] for l in lines if l["logmel"] == mode and l["workers"] == w)
        cells.append(f"{m:.1f} | {m / r:.2f}×")
    print(f"| {w} | " + " | ".join(cells) + f" | {r:.1f} |")
PY
cat "$out"
