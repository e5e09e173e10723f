#!/usr/bin/env bash
# Wall time, CPU time, minor page faults and peak RSS of the demo's heaviest model stages, two builds
# side by side: the frozen-musicnn training of `make demo` (DEMO_MUSICNN_FLAGS, 200 steps), mulan-eval
# of that model on the demo's test split (the whole tower over every window), and the first steps of the
# compact-ResNet training (DEMO_TRAIN_FLAGS, RESNET_STEPS steps). The two builds alternate, RUNS times each; both run
# the same commands on the same demo-work, and the script checks whether they trained the same weights.
# One build with two sets of flags compares options instead: BEFORE=AFTER and the extra flags below.
#
# Usage: BEFORE=DIR AFTER=DIR bash bench/demo-stage-times.sh
#   BEFORE, AFTER  folders holding release mulan-train and mulan-eval (e.g. a clone's .build/release)
#   MUSICNN_AFTER, RESNET_AFTER  extra mulan-train flags of the "after" side (default none), e.g.
#                  RESNET_AFTER="--decoded-cache 256" MUSICNN_AFTER="--text-train top:1"
# Environment: DEMO (a finished `make demo` folder, default demo-work: its work/, text-model/, corpus/),
#   PRETRAINED (MTT_musicnn.safetensors, default .venv/mulan-pretrained/musicnn/MTT_musicnn.safetensors),
#   RUNS (2), THREADS (2), RESNET_STEPS (100).
# Results: printed and written to bench/results/demo-stage-times-<UTC time>.md.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
: "${BEFORE:?set BEFORE to a folder with release mulan-train and mulan-eval}"
: "${AFTER:?set AFTER to a folder with release mulan-train and mulan-eval}"
DEMO=$(cd "${DEMO:-$ROOT/demo-work}" && pwd)
PRETRAINED=${PRETRAINED:-$ROOT/.venv/mulan-pretrained/musicnn/MTT_musicnn.safetensors}
RUNS=${RUNS:-2}
RESNET_STEPS=${RESNET_STEPS:-100}
read -r -a musicnn_after <<< "${MUSICNN_AFTER:-}"
read -r -a resnet_after <<< "${RESNET_AFTER:-}"
THREADS=${THREADS:-2}
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
OUT=$ROOT/bench/results/demo-stage-times-$STAMP.md
WORK=${TMPDIR:-/tmp}/mulan-bench-demo-stages
rm -rf "$WORK" && mkdir -p "$WORK" "$ROOT/bench/results"
for f in "$DEMO/work/shards/latest" "$DEMO/text-model/vocab.txt" "$DEMO/corpus/eval/test-tags.csv" "$PRETRAINED"; do
    [ -e "$f" ] || { echo "demo-stage-times: $f is missing (run make demo first)" >&2; exit 1; }
done

musicnn_flags=(--steps 200 --batch-size 32 --lr 2e-3 --warmup-steps 40 --eval-every 200 --eval-samples 16
    --checkpoint-every 200 --log-every 50 --window-seconds 10 --audio-tower musicnn --audio-init "$PRETRAINED"
    --audio-train frozen --audio-cache 256 --no-spec-augment --text-init "$DEMO/text-model" --text-train frozen
    --text-pooling mean --seed 7)
resnet_flags=(--steps "$RESNET_STEPS" --batch-size 32 --lr 2e-3 --warmup-steps 40 --eval-every 200 --checkpoint-every 200
    --log-every 50 --audio-widths 16,32,64 --mel-bands 64 --window-seconds 10 --text-init "$DEMO/text-model"
    --text-train frozen --text-pooling mean --seed 7)

timed() { # LABEL SIDE COMMAND...: one line "label side wall user sys minflt maxrss_kb" into $WORK/times
    local label=$1 side=$2; shift 2
    /usr/bin/time -f "$label $side %e %U %S %R %M" -a -o "$WORK/times" "$@" > /dev/null 2> "$WORK/last.err" \
        || { cat "$WORK/last.err" >&2; exit 1; }
}

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
for r in $(seq "$RUNS"); do
    for side in before after; do
        bin=$BEFORE; extra_m=(); extra_r=()
        [ "$side" = after ] && { bin=$AFTER; extra_m=("${musicnn_after[@]}"); extra_r=("${resnet_after[@]}"); }
        echo "run $r, $side: musicnn training, mulan-eval, ResNet training" >&2
        rm -rf "$WORK/musicnn-$side" "$WORK/resnet-$side"
        timed "musicnn-train" "$side" "$bin/mulan-train" --workdir "$DEMO/work" --run-dir "$WORK/musicnn-$side" \
            --threads "$THREADS" --quiet "${musicnn_flags[@]}" ${extra_m[@]+"${extra_m[@]}"}
        timed "musicnn-eval" "$side" "$bin/mulan-eval" --run-dir "$WORK/musicnn-$side" --vocab "$DEMO/text-model/vocab.txt" \
            --csv "$DEMO/corpus/eval/test-tags.csv" --audio-root "$DEMO/corpus" --threads "$THREADS" \
            --json "$WORK/eval-$side.json" --quiet
        timed "resnet-train" "$side" "$bin/mulan-train" --workdir "$DEMO/work" --run-dir "$WORK/resnet-$side" \
            --threads "$THREADS" --quiet "${resnet_flags[@]}" ${extra_r[@]+"${extra_r[@]}"}
    done
done
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

python3 - "$WORK" "$OUT" "$BEFORE" "$AFTER" "$load_before" "$load_after" "$RUNS" "$RESNET_STEPS" \
    "${MUSICNN_AFTER:-}" "${RESNET_AFTER:-}" <<'EOF'
import json, statistics, struct, sys
work, out, before, after, load0, load1, runs, resnet_steps, musicnn_after, resnet_after = sys.argv[1:]

def tensors(path):
    data = open(path, "rb").read()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    return {k: data[8 + n + v["data_offsets"][0]:8 + n + v["data_offsets"][1]] for k, v in header.items() if k != "__metadata__"}

same = {}
for model, step in (("musicnn", 200), ("resnet", int(resnet_steps))):
    a = tensors(f"{work}/{model}-before/checkpoint-{step:06d}.safetensors")
    b = tensors(f"{work}/{model}-after/checkpoint-{step:06d}.safetensors")
    same[model] = a == b
evals = [json.load(open(f"{work}/eval-{s}.json"))["tagging"]["macro_roc_auc"] for s in ("before", "after")]
rows = {}
for line in open(f"{work}/times"):
    label, side, *v = line.split()
    rows.setdefault((label, side), []).append([float(x) for x in v])
lines = [f"# Demo model stages, two builds — {runs} runs each, alternating",
         "", f"- before: {before}", f"- after: {after}",
         f"- extra flags of the after side: musicnn training `{musicnn_after or 'none'}`, ResNet training `{resnet_after or 'none'}`",
         f"- load average before {load0}, after {load1}",
         f"- same weights trained by both builds: musicnn {same['musicnn']}, ResNet {same['resnet']}; "
         f"mulan-eval macro ROC-AUC before {evals[0]:.6f}, after {evals[1]:.6f}", "",
         "| stage | build | wall s (median) | user s | sys s | minor faults | peak RSS MB |",
         "|---|---|---:|---:|---:|---:|---:|"]
for label in ("musicnn-train", "musicnn-eval", "resnet-train"):
    for side in ("before", "after"):
        v = rows[(label, side)]
        med = lambda i: statistics.median(r[i] for r in v)
        lines.append(f"| {label} | {side} | {med(0):.2f} | {med(1):.2f} | {med(2):.2f} | {med(3):,.0f} | {med(4) / 1024:,.0f} |")
open(out, "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
print(f"written: {out}")
EOF
