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
# Extra sbatch options for every job (partition, account, …): SBATCH_OPTIONS. DEDUPE=0 leaves out
# the duplicate detection task (mulan-dedupe, one task between the filter and the shards).
set -euo pipefail
n=${N:?set N, the number of workers}
shard_n=${SHARD_N:-$n}
script=$(cd "$(dirname "$0")" && pwd)/mulan-pipeline.sbatch
read -r -a extra <<<"${SBATCH_OPTIONS:-}"

submit() {  # submit OPTIONS… STAGE → prints the job id
  local stage=${*: -1}
  sbatch --parsable --export=ALL --job-name="mulan-$stage" "${extra[@]}" "${@:1:$#-1}" "$script" "$stage"
}

ingest=$(submit --array=0-$((n - 1)) ingest)
text=$(submit --array=0-$((n - 1)) --dependency=afterok:"$ingest" text)
local_phase=$(submit --array=0-$((n - 1)) --dependency=afterok:"$text" filter-local)
global_phase=$(submit --array=0-$((n - 1)) --dependency=afterok:"$local_phase" filter-global)
before_shard=$global_phase dedupe=none
if [ "${DEDUPE:-1}" != 0 ]; then
  dedupe=$(submit --dependency=afterok:"$global_phase" dedupe)
  before_shard=$dedupe
fi
shard=$(submit --array=0-$((shard_n - 1)) --dependency=afterok:"$before_shard" shard)
finalize=$(submit --cpus-per-task=2 --dependency=afterok:"$shard" finalize)
echo "submitted: ingest $ingest, text $text, filter $local_phase then $global_phase, dedupe $dedupe, shard $shard, finalize $finalize"
