# Shared by the bench scripts (source it): CPU accounting, to tell whether anything else ran while
# a benchmark measured, and waiting for the machine to go quiet. Needs bash; `times` in own_cpu
# reports the sourcing shell's children, so this file must be sourced, not run.
# --- CPU accounting: was anything else running while we measured? --------------------------------
# The machine has few cores and may be shared (builds, tests); busy CPU time that is not ours
# means the wall times are disturbed. Busy = user+nice+system+irq+softirq from /proc/stat;
# ours = the user+system time of this shell's waited-for children (bash `times`).
CLK_TCK=$(getconf CLK_TCK)
machine_cpu() { # prints "busy_seconds steal_seconds"
    awk -v hz="$CLK_TCK" '/^cpu / {printf "%.2f %.2f\n", ($2 + $3 + $4 + $7 + $8) / hz, $9 / hz}' /proc/stat
}
TIMES_FILE=$(mktemp)
trap 'rm -f "$TIMES_FILE" "$TIMES_FILE.own"' EXIT
own_cpu() { # prints the user+system seconds of this shell's finished children
    # `times` must run in this shell itself (a subshell starts with no children's times).
    times > "$TIMES_FILE"
    tail -1 "$TIMES_FILE" | awk '{
        s = 0
        for (i = 1; i <= 2; i++) { split($i, p, /[ms]/); s += p[1] * 60 + p[2] }
        printf "%.2f\n", s }'
}
cpu_mark() { # sets CPU_MARK to "wall busy steal own"
    own_cpu > "$TIMES_FILE.own"
    CPU_MARK="$(date +%s.%N) $(machine_cpu) $(cat "$TIMES_FILE.own")"
}
cpu_report() { # LABEL: prints how much CPU time others used since cpu_mark
    local now
    own_cpu > "$TIMES_FILE.own"
    now="$(date +%s.%N) $(machine_cpu) $(cat "$TIMES_FILE.own")"
    awk -v label="$1" -v a="$CPU_MARK" -v b="$now" -v cores="$(nproc)" 'BEGIN {
        split(a, x, " "); split(b, y, " ")
        wall = y[1] - x[1]; busy = y[2] - x[2]; steal = y[3] - x[3]; own = y[4] - x[4]
        other = busy - own
        share = 100 * other / (wall * cores)
        printf "%s: %.1f s wall; CPU busy %.1f s, of which this benchmark %.1f s, others %.1f s (%.1f%% of %d cores); steal %.1f s%s\n",
            label, wall, busy, own, other, share, cores, steal,
            (share > 5 ? " — WARNING: other processes were busy, these figures are disturbed" : "") }'
}
# Waits until other processes leave the machine nearly idle (< 10 % CPU over 5 s), at most
# QUIET_WAIT seconds (default 600), so that a concurrent build does not skew the timings.
wait_for_quiet() {
    local waited=0 a b busy
    while :; do
        a=$(machine_cpu); sleep 5; b=$(machine_cpu)
        busy=$(awk -v a="$a" -v b="$b" -v cores="$(nproc)" \
            'BEGIN {split(a, x, " "); split(b, y, " "); printf "%.0f", 100 * (y[1] - x[1]) / (5 * cores)}')
        if ((busy < 10)); then
            echo "machine quiet: ${busy}% CPU busy over 5 s"
            return
        fi
        if ((waited >= ${QUIET_WAIT:-600})); then
            echo "warning: the machine is still ${busy}% busy after ${waited} s of waiting; measuring anyway" >&2
            return
        fi
        echo "machine ${busy}% busy with other processes; waiting for it to go quiet" >&2
        sleep 10
        waited=$((waited + 15))
    done
}

# --- Which CPU and which BLAS kernels a figure came from ------------------------------------------
# cpu_blas_line [MULAN_TRAIN]: one line for a result file: the CPU's model name (lscpu), whether it
# has AVX-512 and AVX2, and the OpenBLAS core that MULAN_TRAIN (a mulan-train binary; `mulan-train
# blas --json`) runs in this environment and why. Without MULAN_TRAIN, the benchmark multiplies
# nothing with OpenBLAS and the line says so.
cpu_blas_line() {
    local model flags avx512 avx2 blas
    model=$(lscpu | awk -F: '/^Model name/ {sub(/^[ \t]+/, "", $2); print $2; exit}')
    flags=$(grep -m1 '^flags' /proc/cpuinfo)
    avx512=no; [[ " $flags " == *" avx512f "* ]] && avx512=yes
    avx2=no; [[ " $flags " == *" avx2 "* ]] && avx2=yes
    if [ -n "${1:-}" ]; then
        blas=$("$1" blas --json 2>/dev/null | python3 -c '
import json, sys
b = json.load(sys.stdin)["blas"]
how = b["choice"] + (", OPENBLAS_CORETYPE=" + b["requested"] if b.get("requested") else "")
print("OpenBLAS core %s (%s, %s); %s" % (b["core"], b["core_level"], how, b["config"]))' \
            || echo "OpenBLAS core unknown (mulan-train blas failed)")
    else
        blas="no OpenBLAS products in this benchmark"
    fi
    echo "CPU: $model (lscpu), AVX-512: $avx512, AVX2: $avx2; $blas"
}
# measure_into FILE NAME LABEL COMMAND…: waits for a quiet machine, runs COMMAND under the CPU
# accounting and, while other processes were busy meanwhile, runs it again (RETRIES more times at
# most, default 2; the files of the last attempt stay); appends "NAME <accounting line>" to FILE.
# Runs in this shell: `times` must see COMMAND's children.
measure_into() {
  local file=$1 name=$2 label=$3 attempt=1 line
  shift 3
  line=$(mktemp)
  while :; do
    wait_for_quiet
    cpu_mark
    "$@"
    cpu_report "$label" > "$line"
    cat "$line"
    if ! grep -q WARNING "$line" || ((attempt > ${RETRIES:-2})); then break; fi
    attempt=$((attempt + 1))
    echo "repeating: $label was disturbed" >&2
  done
  echo "$name $(cat "$line")$( ((attempt > 1)) && echo " (attempt $attempt)")" >> "$file"
  rm -f "$line"
}
