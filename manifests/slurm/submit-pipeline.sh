#!/bin/bash
# Submits the mulan data pipeline as Slurm job arrays of N tasks, each stage starting when every
# task of the one before has succeeded (--dependency=afterok), then one finalize task.
#
#   N=64 WORKDIR=/shared/mulan-work MANIFEST=/data/tracks.csv \
#   TEXTS="generic:/data/texts.jsonl playlists:/data/playlists.jsonl" LABELS=/data/ontology.json \
#   VOCAB=/models/vocab.txt FILTER_CONFIG=/shared/filters.toml \
#   SHARD_OPTIONS="--split train=0.98,valid=0.01,test=0.01 --seed 0 --samples-per-shard 1000" \
#   manifests/slurm/submit-pipeline.sh
#
# N is fixed for ingest, text and filter (the work directory is split into N parts); the shard
# arrays may use another count (SHARD_N, default N): the shards do not depend on it.
# Each array task asks for CPUS_PER_TASK CPUs (default 8) and, when set, MEM_PER_TASK of memory
# (e.g. 16G; unset: the cluster's default); finalize asks for 2 CPUs.
# Extra sbatch options for every job (partition, account, …): SBATCH_OPTIONS. DEDUPE=0 leaves out
# the duplicate detection task (mulan-dedupe, one task between the filter and the shards).
# If sbatch refuses one of the jobs, the jobs already queued are cancelled and nothing is left behind.
# A failed task, and the stages waiting on it: docs/scale-out.md, "When a task fails".
set -euo pipefail
for command in sbatch scancel; do
  if ! command -v "$command" >/dev/null 2>&1; then
    echo "submit-pipeline.sh: $command not found: Slurm's client commands must be on PATH (run this on a" \
      "Slurm login node; on Debian they come with the slurm-client package)" >&2
    exit 69
  fi
done
n=${N:?set N, the number of workers}
shard_n=${SHARD_N:-$n}
export N=$n SHARD_N=$shard_n     # the stage script passes them on to mulan as MULAN_WORKERS
script=$(cd "$(dirname "$0")" && pwd)/mulan-pipeline.sbatch
read -r -a extra <<<"${SBATCH_OPTIONS:-}"
memory=()
if [ -n "${MEM_PER_TASK:-}" ]; then memory=(--mem="$MEM_PER_TASK"); fi
resources() {  # the CPU and memory requests of a stage's tasks
  case "$1" in
    finalize) echo --cpus-per-task=2 "${memory[@]}" ;;
    *) echo --cpus-per-task="${CPUS_PER_TASK:-8}" "${memory[@]}" ;;
  esac
}

# A request no node of the partition can meet is not always refused: with more CPUs than a node has,
# sbatch queues the job and it waits forever (reason PartitionConfig). Ask first (--test-only).
for stage in ingest finalize; do
  # shellcheck disable=SC2046
  if ! answer=$(sbatch --test-only --export=NONE $(resources "$stage") "${extra[@]}" "$script" "$stage" 2>&1); then
    echo "submit-pipeline.sh: Slurm could never run the $stage tasks as requested ($(resources "$stage")" \
      "${SBATCH_OPTIONS:+ $SBATCH_OPTIONS}): ${answer#sbatch: error: }" >&2
    echo "submit-pipeline.sh: nothing was submitted; set CPUS_PER_TASK and MEM_PER_TASK to what one node" \
      "offers (sinfo -o '%P %c %m' lists CPUs and MB per node)" >&2
    exit 1
  fi
done

queued=()
submit() {  # submit OPTIONS… STAGE: appends the job id to queued[]; if sbatch refuses, cancels what is queued and exits
  local stage=${*: -1} id
  # shellcheck disable=SC2046
  if ! id=$(sbatch --parsable --export=ALL --job-name="mulan-$stage" $(resources "$stage") "${extra[@]}" \
      "${@:1:$#-1}" "$script" "$stage"); then
    echo "submit-pipeline.sh: sbatch refused the $stage job (its message is above)." >&2
    if ((${#queued[@]})); then
      scancel "${queued[@]}" || true
      echo "submit-pipeline.sh: cancelled the jobs already queued (${queued[*]}); fix the cause and run" \
        "submit-pipeline.sh again." >&2
    fi
    exit 1
  fi
  id=${id%%;*}      # --parsable prints "id" or "id;cluster"
  queued+=("$id")
}

submit --array=0-$((n - 1)) ingest; ingest=${queued[-1]}
submit --array=0-$((n - 1)) --dependency=afterok:"$ingest" text; text=${queued[-1]}
submit --array=0-$((n - 1)) --dependency=afterok:"$text" filter-local; local_phase=${queued[-1]}
submit --array=0-$((n - 1)) --dependency=afterok:"$local_phase" filter-global; global_phase=${queued[-1]}
before_shard=$global_phase dedupe=none
if [ "${DEDUPE:-1}" != 0 ]; then
  submit --dependency=afterok:"$global_phase" dedupe; dedupe=${queued[-1]}
  before_shard=$dedupe
fi
submit --array=0-$((shard_n - 1)) --dependency=afterok:"$before_shard" shard; shard=${queued[-1]}
submit --dependency=afterok:"$shard" finalize; finalize=${queued[-1]}
echo "submitted: ingest $ingest, text $text, filter $local_phase then $global_phase, dedupe $dedupe, shard $shard, finalize $finalize"
