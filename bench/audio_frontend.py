"""Times mulan_torch.audio's front end (decode_flac + crop_window + log_mel) on every clip of a
mulan dataset split, against soundfile + librosa doing the same (decode to float32, crop,
librosa.power_to_db(librosa.feature.melspectrogram(...)) with the same settings), in one process,
and prints one line of JSON: clips per second for each, their ratio, and how far apart the two
log-mels are.

mulan_torch is timed twice: decoding the whole clip (decode_flac, as mulan-train does) and decoding
only the window (decode_flac_window, the same samples).

Usage: OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 \\
           PYTHONPATH=python python bench/audio_frontend.py DATASET [--split train] \\
           [--window-seconds 10] [--repeats 3]

The thread variables keep each side on one core (numpy's FFT is single-threaded; its matmul and
librosa's are not). Times are wall-clock over all clips, best of --repeats passes (the FLAC bytes
are read from the shards once, before timing). Windows are the middle window of each clip.
"""
from __future__ import annotations

import argparse
import json
import tarfile
import time
import warnings
from pathlib import Path
from typing import Callable, List

import numpy as np
import soundfile

from mulan_torch.audio import FrontEndConfig, LogMelConfig, crop_window, decode_flac, decode_flac_window, log_mel


def read_members(dataset: Path, split: str) -> List[bytes]:
    manifest = json.loads((dataset / "dataset.json").read_text())
    out: List[bytes] = []
    for shard in manifest["splits"][split]["shards"]:
        with tarfile.open(dataset / split / shard) as tar:
            for info in tar:
                if info.name.endswith(".flac"):
                    f = tar.extractfile(info)
                    assert f is not None
                    out.append(f.read())
    return out


def best_of(repeats: int, body: Callable[[], None]) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        body()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("dataset", type=Path)
    ap.add_argument("--split", default="train")
    ap.add_argument("--window-seconds", type=float, default=10.0)
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()

    import librosa

    rate = json.loads((a.dataset / "dataset.json").read_text())["sample_rate"]
    front = FrontEndConfig(LogMelConfig(rate), None, a.window_seconds)
    cfg, w = front.log_mel, front.window_samples
    members = read_members(a.dataset, a.split)
    ours_out: List[np.ndarray] = []
    theirs_out: List[np.ndarray] = []

    def ours() -> None:
        ours_out.clear()
        for data in members:
            x = decode_flac(data, rate, "clip")
            ours_out.append(log_mel(crop_window(x, max(0, x.shape[0] - w) // 2, w), cfg))

    def ours_window() -> None:  # decode_flac_window: seek to the window, decode only it
        ours_out.clear()
        for data in members:
            _, y = decode_flac_window(data, rate, "clip", w, lambda n: max(0, n - w) // 2)
            ours_out.append(log_mel(y, cfg))

    def theirs() -> None:
        theirs_out.clear()
        for data in members:
            import io

            x, _ = soundfile.read(io.BytesIO(data), dtype="float32")
            start = max(0, x.shape[0] - w) // 2
            y = x[start : start + w]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                s = librosa.feature.melspectrogram(
                    y=y, sr=rate, n_fft=cfg.n_fft, hop_length=cfg.hop_length, win_length=cfg.window_length,
                    window="hann", center=True, pad_mode="constant", power=2.0, n_mels=cfg.mel_bands,
                    fmin=cfg.f_min, fmax=cfg.f_max, htk=False, norm="slaney")
            theirs_out.append(librosa.power_to_db(s, ref=1.0, amin=cfg.amin, top_db=cfg.top_db))

    ours()  # warm-up: tables, caches, page-in
    ours_window()
    theirs()
    t_ours = t_window = t_theirs = float("inf")
    for _ in range(a.repeats):  # alternated, so that load on a shared machine hits all three alike
        t_ours = min(t_ours, best_of(1, ours))
        t_window = min(t_window, best_of(1, ours_window))
        t_theirs = min(t_theirs, best_of(1, theirs))
    worst = max(float(np.max(np.abs(o.astype(np.float64) - t)) / np.max(np.abs(t)))
                for o, t in zip(ours_out, theirs_out))
    print(json.dumps({
        "clips": len(members), "sampleRate": rate, "windowSeconds": a.window_seconds,
        "melBands": cfg.mel_bands, "fftSize": cfg.n_fft, "frames": int(ours_out[0].shape[1]),
        "mulanTorchClipsPerSecond": round(len(members) / t_ours, 1),
        "mulanTorchWindowDecodeClipsPerSecond": round(len(members) / t_window, 1),
        "librosaClipsPerSecond": round(len(members) / t_theirs, 1),
        "ratio": round(t_theirs / t_ours, 2),
        "ratioWindowDecode": round(t_theirs / t_window, 2),
        "maxRelativeDifference": worst,
    }, sort_keys=True))


if __name__ == "__main__":
    main()
