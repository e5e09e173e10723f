#!/usr/bin/env bash
# Builds the libFuzzer harnesses of fuzz/ (with AddressSanitizer) and runs each for a set time.
#
#   scripts/fuzz.sh [seconds-per-target] [target...]      (default: 60 s, every target)
#   make fuzz FUZZ_SECONDS=300 FUZZ_TARGETS="tar toml"
#
# Targets: manifest text-formats tar safetensors tokenizer toml (docs/reliability.md says what each
# parses). The corpus of each grows in fuzz/corpus/<target>/ (seeded from fuzz/seeds/<target>/ and,
# for the binary formats, from files made here); crash, timeout and out-of-memory inputs land in
# fuzz/crashes/ and libFuzzer's output in fuzz/logs/<target>.log. Exits 1 when any target found one.
#
# Environment: SWIFT (swift), FUZZ_BUILD_JOBS (2), FUZZ_NO_BUILD=1 (reuse the last build, e.g. for
# a second run in parallel), FUZZ_EXTRA (more libFuzzer flags, e.g. "-seed=1").
# Reproduce one input: fuzz/.build/release/fuzz-<target> fuzz/crashes/<file>
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
FUZZ="$ROOT/fuzz"
SWIFT=${SWIFT:-swift}
ALL_TARGETS=(manifest text-formats tar safetensors tokenizer toml)

SECONDS_PER_TARGET=60
if [[ $# -gt 0 && $1 =~ ^[0-9]+$ ]]; then SECONDS_PER_TARGET=$1; shift; fi
TARGETS=("$@")
[[ ${#TARGETS[@]} -eq 0 ]] && TARGETS=("${ALL_TARGETS[@]}")
for t in "${TARGETS[@]}"; do
    [[ " ${ALL_TARGETS[*]} " == *" $t "* ]] || { echo "fuzz.sh: unknown target $t (known: ${ALL_TARGETS[*]})" >&2; exit 64; }
done

max_len() {
    case $1 in
        tar) echo 8192 ;;
        manifest|text-formats) echo 4096 ;;
        safetensors|toml) echo 2048 ;;
        tokenizer) echo 1024 ;;
    esac
}

if [[ ${FUZZ_NO_BUILD:-0} != 1 ]]; then
    echo "== building the harnesses (release, -sanitize=fuzzer,address)"
    # SwiftPM keeps the source lists of a path dependency in its build description: drop it, so that
    # files added to the main package since the last build are compiled.
    rm -f "$FUZZ/.build/release/description.json"
    "$SWIFT" build -c release --package-path "$FUZZ" --scratch-path "$FUZZ/.build" -j "${FUZZ_BUILD_JOBS:-2}" \
        -Xswiftc -sanitize=fuzzer,address 2>&1 | grep -v "Cannot export local symbol '__asan_extra_spill_area'" || true
    [[ ${PIPESTATUS[0]} -eq 0 ]] || { echo "fuzz.sh: the build failed" >&2; exit 1; }
fi
BIN=$("$SWIFT" build -c release --package-path "$FUZZ" --scratch-path "$FUZZ/.build" --show-bin-path)

# Seeds for the binary formats: small archives and tensor files, each behind its selector byte.
binary_seeds() {
    local target=$1 dir=$2
    command -v python3 > /dev/null || return 0
    python3 - "$target" "$dir" <<'EOF'
import io, json, os, struct, sys, tarfile
target, out = sys.argv[1], sys.argv[2]
def save(name, selector, payload):
    with open(os.path.join(out, name), "wb") as f:
        f.write(bytes([selector]) + payload)
if target == "tar":
    def archive(members, fmt=tarfile.USTAR_FORMAT):
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w", format=fmt) as t:
            for name, data in members:
                info = tarfile.TarInfo(name)
                info.size = len(data)
                t.addfile(info, io.BytesIO(data))
        return buf.getvalue()
    sample = [("000001.flac", b"fLaC" + bytes(40)), ("000001.json", b'{"key": "000001", "texts": ["rock"]}'),
              ("000001.txt", b"rock")]
    long_name = "d" * 120 + "/" + "f" * 90 + ".json"
    for selector in (0, 2):
        save(f"shard-{selector}.bin", selector, archive(sample)[:3 * 1024 + 1024])
        save(f"long-{selector}.bin", selector, archive([(long_name, b"{}"), ("empty", b"")])[:2048 + 1024])
        save(f"truncated-{selector}.bin", selector, archive(sample)[:700])
    save("gnu.bin", 2, archive([("x" * 150, b"data")], tarfile.GNU_FORMAT)[:4096])
elif target == "safetensors":
    def st(header, data):
        h = json.dumps(header).encode()
        h += b" " * ((8 - len(h) % 8) % 8)
        return struct.pack("<Q", len(h)) + h + data
    f32 = struct.pack("<6f", 1, 2, 3, 4, 5, 6)
    save("f32.bin", 0, st({"w": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]},
                           "__metadata__": {"step": "1"}}, f32))
    save("mixed.bin", 0, st({"a": {"dtype": "F16", "shape": [2], "data_offsets": [0, 4]},
                             "b": {"dtype": "BF16", "shape": [2], "data_offsets": [4, 8]},
                             "position_ids": {"dtype": "I64", "shape": [1, 2], "data_offsets": [8, 24]},
                             "empty": {"dtype": "F32", "shape": [0], "data_offsets": [24, 24]}}, bytes(24)))
    save("overlap.bin", 0, st({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                               "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}, bytes(12)))
EOF
}

mkdir -p "$FUZZ/crashes" "$FUZZ/logs"
export SWIFT_BACKTRACE=enable=no   # libFuzzer and ASan report crashes; the Swift backtracer would get in the way
export ASAN_OPTIONS=${ASAN_OPTIONS:-handle_sigill=1:symbolize=1:detect_leaks=0}
SYMBOLIZER=$(dirname "$(command -v "$SWIFT")")/llvm-symbolizer
[[ -x $SYMBOLIZER ]] && export ASAN_SYMBOLIZER_PATH=$SYMBOLIZER

SUMMARY=()
FOUND=0
for t in "${TARGETS[@]}"; do
    corpus="$FUZZ/corpus/$t"
    mkdir -p "$corpus"
    [[ -d $FUZZ/seeds/$t ]] && cp -n "$FUZZ/seeds/$t"/* "$corpus"/ 2> /dev/null || true
    binary_seeds "$t" "$corpus"
    before=$(ls "$FUZZ/crashes" | grep -c "^$t-" || true)
    log="$FUZZ/logs/$t.log"
    echo "== fuzz-$t: ${SECONDS_PER_TARGET}s, -max_len=$(max_len "$t"), corpus $(ls "$corpus" | wc -l) files"
    set +e
    # shellcheck disable=SC2086
    "$BIN/fuzz-$t" "$corpus" -max_total_time="$SECONDS_PER_TARGET" -max_len="$(max_len "$t")" -timeout=10 \
        -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$FUZZ/crashes/$t-" ${FUZZ_EXTRA:-} > "$log" 2>&1
    status=$?
    set -e
    after=$(ls "$FUZZ/crashes" | grep -c "^$t-" || true)
    found=$((after - before))
    [[ $status -ne 0 && $found -eq 0 ]] && found="exit $status"
    [[ $found != 0 ]] && FOUND=1
    done_line=$(grep -E '^#[0-9]+' "$log" | tail -1)
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
    cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<< "$done_line")
    ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<< "$done_line")
    echo "   $done_line"
    grep -E '^stat::' "$log" | sed 's/^/   /'
    if [[ $found != 0 ]]; then
        echo "   FOUND: $found (see $log and $FUZZ/crashes/$t-*)"
        grep -E 'SUMMARY|ERROR|Fatal error|precondition|#[0-9]+ 0x.* in .*Mulan' "$log" | head -8 | sed 's/^/   /'
    fi
    SUMMARY+=("$(printf '%-13s %6s %12s %8s %6s %7s  %s' "$t" "$SECONDS_PER_TARGET" "${execs:-?}" "${rate:-?}" \
        "${cov:-?}" "${ft:-?}" "$found")")
done

echo
printf '%-13s %6s %12s %8s %6s %7s  %s\n' target seconds executions exec/s cov ft found
printf '%s\n' "${SUMMARY[@]}"
exit $FOUND
