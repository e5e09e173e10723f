"""Samples/s of a training loader over a mulan dataset (bench/loader-vs-webdataset.sh).

mulan: mulan_torch.MulanShards (decode the FLAC, mulan-train's random 10-s window, log-mel, and
SpecAugment when the defaults have it) through MulanLoader. reference: a plain webdataset pipeline
(shards split by worker, soundfile decode, a random 10-s window, librosa's mel spectrogram with the
same parameters and power_to_db), through a DataLoader with batch size 64. Prints one JSON line.
Usage: loader_bench.py mulan|reference DATASET_DIR WORKERS BATCHES
"""
import io
import json
import os
import sys
import time

import numpy as np


def mulan(dataset: str, workers: int, batches: int):
    from mulan_torch import MulanLoader, MulanShards

    ds = MulanShards(dataset, batch_size=64, window_seconds=10.0, steps=batches + 1)
    return MulanLoader(ds, num_workers=workers), lambda b: b["audio"].shape[0]


def reference(dataset: str, workers: int, batches: int):
    import librosa
    import soundfile
    import torch
    import webdataset as wds

    manifest = json.load(open(os.path.join(dataset, "dataset.json")))
    urls = [os.path.join(dataset, "train", s) for s in manifest["splits"]["train"]["shards"]]
    rng = np.random.default_rng(0)

    def features(sample):
        samples, rate = soundfile.read(io.BytesIO(sample["flac"]), dtype="float32")
        w = 10 * rate
        start = int(rng.integers(0, max(1, len(samples) - w + 1)))
        window = samples[start:start + w]
        mel = librosa.feature.melspectrogram(y=window, sr=rate, n_fft=512, hop_length=160, win_length=400,
                                             window="hann", center=True, pad_mode="constant", power=2.0,
                                             n_mels=128, fmin=0, fmax=rate / 2, htk=False, norm="slaney")
        return {"mel": torch.from_numpy(librosa.power_to_db(mel, ref=1.0, amin=1e-10, top_db=80))}

    pipeline = (wds.WebDataset(urls, shardshuffle=False, nodesplitter=None, workersplitter=wds.split_by_worker,
                               empty_check=False).repeat().map(features).batched(64))
    loader = torch.utils.data.DataLoader(pipeline, batch_size=None, num_workers=workers)
    return loader, lambda b: len(b["mel"])


def main() -> None:
    kind, dataset, workers, batches = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    loader, count = (mulan if kind == "mulan" else reference)(dataset, workers, batches)
    it = iter(loader)
    next(it)  # start-up and the first batch are not timed
    cpu0, t0, n = time.process_time(), time.perf_counter(), 0
    for _ in range(batches):
        n += count(next(it))
    seconds = time.perf_counter() - t0
    print(json.dumps({"loader": kind, "workers": workers, "samples": n, "seconds": seconds,
                      "samples_per_second": n / seconds, "main_process_cpu_s": time.process_time() - cpu0}))


if __name__ == "__main__":
    main()
