#!/bin/bash
# Runs the mulan data pipeline on Kubernetes: one Indexed Job per stage (N pods, pod I = worker I),
# each started when the one before has completed, then the finalize Job.
#
#   WORKERS=64 MULAN_IMAGE=registry.example/mulan:1.0 MANIFEST=/data/tracks.csv \
#   TEXTS="generic:/data/texts.jsonl playlists:/data/playlists.jsonl" LABELS=/data/ontology.json \
#   VOCAB=/data/vocab.txt FILTER_CONFIG=/data/filters.toml \
#   SHARD_OPTIONS="--split train=0.98,valid=0.01,test=0.01 --samples-per-shard 1000" \
#   manifests/k8s/run-pipeline.sh
#
# Needs: PersistentVolumeClaims mulan-work (ReadWriteMany, shared by every pod) and mulan-data
# (the inputs), an image with the mulan executables on PATH (and FFmpeg 5.1, SQLite, ICU), kubectl
# and envsubst. WORKERS is fixed for ingest, text and filter; SHARD_WORKERS may differ.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
export WORKERS=${WORKERS:?set WORKERS} MULAN_IMAGE=${MULAN_IMAGE:?set MULAN_IMAGE}
export PARALLELISM=${PARALLELISM:-$WORKERS} CPUS=${CPUS:-8}
export MANIFEST=${MANIFEST:-} TEXTS=${TEXTS:-} LABELS=${LABELS:-} VOCAB=${VOCAB:-} FILTER_CONFIG=${FILTER_CONFIG:-}
export SOURCES=${SOURCES:-tags descriptions playlists aset} SHARD_OPTIONS=${SHARD_OPTIONS:-}
export DEDUPE_OPTIONS=${DEDUPE_OPTIONS:-}
timeout=${TIMEOUT_SECONDS:-86400}
vars='${STAGE} ${WORKERS} ${PARALLELISM} ${MULAN_IMAGE} ${MANIFEST} ${TEXTS} ${LABELS} ${VOCAB} ${FILTER_CONFIG} ${SOURCES} ${SHARD_OPTIONS} ${DEDUPE_OPTIONS} ${CPUS}'

kubectl create configmap mulan-scripts --from-file="$here/../slurm/mulan-pipeline.sbatch" \
  --dry-run=client -o yaml | kubectl apply -f -

run() {  # run TEMPLATE STAGE: apply the Job, wait until it completes (or fails)
  export STAGE=$2
  kubectl delete job "mulan-$STAGE" --ignore-not-found --wait
  envsubst "$vars" <"$here/$1" | kubectl apply -f -
  # Wait for Complete or Failed (kubectl wait follows one condition only).
  local deadline=$((SECONDS + timeout))
  while true; do
    local state
    state=$(kubectl get "job/mulan-$STAGE" -o jsonpath='{range .status.conditions[?(@.status=="True")]}{.type} {end}')
    case " $state " in
      *" Complete "*) echo "stage $STAGE complete"; return 0 ;;
      *" Failed "*) echo "stage $STAGE failed: kubectl describe job/mulan-$STAGE; kubectl logs -l stage=$STAGE" >&2; exit 1 ;;
    esac
    if [ "$SECONDS" -ge "$deadline" ]; then echo "stage $STAGE timed out" >&2; exit 1; fi
    sleep 20
  done
}

for stage in ingest text filter-local filter-global; do run mulan-stage-job.yaml "$stage"; done
# Duplicate detection: one pod over every part (DEDUPE=0 leaves it out).
if [ "${DEDUPE:-1}" != 0 ]; then run mulan-finalize-job.yaml dedupe; fi
# The shards do not depend on the number of shard workers: it may differ from WORKERS.
export WORKERS=${SHARD_WORKERS:-$WORKERS} PARALLELISM=${SHARD_WORKERS:-$PARALLELISM}
run mulan-stage-job.yaml shard
run mulan-finalize-job.yaml finalize
echo "done: the dataset is in the mulan-work volume, mulan-work/shards/latest"
