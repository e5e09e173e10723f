"""Reads a mulan dataset with the Python `webdataset` library (and `soundfile`) and checks it.

Usage: webdataset_check.py DATASET_DIR → prints one JSON line: {"splits": {name: {"samples": n,
"keys": [...first 3...], "seconds": total audio seconds, "bad": count of samples that failed}}}
"""
import glob
import io
import json
import sys

import soundfile
import webdataset

root = sys.argv[1]
manifest = json.load(open(f"{root}/dataset.json"))
out = {"splits": {}}
for split, info in manifest["splits"].items():
    urls = [f"{root}/{split}/{s}" for s in info["shards"]]
    samples, seconds, bad, keys = 0, 0.0, 0, []
    for sample in webdataset.WebDataset(urls, shardshuffle=False):
        meta = json.loads(sample["json"])
        audio, rate = soundfile.read(io.BytesIO(sample["flac"]))
        if rate != meta["sample_rate"] or meta["key"] != sample["__key__"] or abs(len(audio) / rate - meta["duration_s"]) > 0.01:
            bad += 1
        samples += 1
        seconds += len(audio) / rate
        if len(keys) < 3:
            keys.append(sample["__key__"])
    out["splits"][split] = {"samples": samples, "seconds": round(seconds, 3), "bad": bad, "keys": keys}
print(json.dumps(out, sort_keys=True))
