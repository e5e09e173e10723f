# Sourced by the training benchmarks: sets $bin to the folder of release mulan-ingest, -filter, -shard
# and -train: $BIN when given (binaries built elsewhere), else built here into .build-bench.
if [ -n "${BIN:-}" ]; then
  bin=$BIN
else
  for product in mulan-ingest mulan-filter mulan-shard mulan-train; do
    swift build -c release --product "$product" --scratch-path .build-bench >/dev/null
  done
  bin=.build-bench/release
fi
