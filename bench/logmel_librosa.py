"""Times librosa's log-mel (melspectrogram + power_to_db) on the synthetic audio of mulan's
LogMelBenchmark, with LogMelConfig's default parameters, and prints one line of JSON with the
same keys as `mulan-train logmel-bench`.

Usage: logmel_librosa.py --seconds N [--sample-rate R] [--repeats K]
Run it with OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 for one core. CPU seconds
are process CPU time (all threads), so they stay honest if a library starts threads anyway.
"""
import argparse
import json
import statistics
import time

import numpy as np
import librosa

def synthetic_audio(seconds, rate, seed=1):
    """LogMelBenchmark.syntheticAudio: a linear chirp from 40 Hz to 0.45 * rate (amplitude 0.5)
    plus uniform noise of amplitude 0.02 from SplitMix64(seed), in double, rounded to float once."""
    count = int(round(seconds * rate))  # Python rounds half to even, as the Swift side does
    i = np.arange(count, dtype=np.uint64)
    with np.errstate(over="ignore"):
        z = np.uint64(seed) + (i + np.uint64(1)) * np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z ^= z >> np.uint64(31)
    noise = ((z >> np.uint64(11)).astype(np.float64) * 2.0**-53 * 2 - 1) * 0.02
    duration = count / rate
    f0, f1 = 40.0, 0.45 * rate
    t = np.arange(count, dtype=np.float64) / rate
    phase = 2 * np.pi * (f0 * t + (f1 - f0) * t * t / (2 * duration))
    return (0.5 * np.sin(phase) + noise).astype(np.float32)

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, required=True)
    ap.add_argument("--sample-rate", type=int, default=16000)
    ap.add_argument("--repeats", type=int, default=5)
    a = ap.parse_args()
    sr = a.sample_rate
    win, hop = round(0.025 * sr), round(0.010 * sr)
    n_fft = 1
    while n_fft < win:
        n_fft *= 2
    y = synthetic_audio(a.seconds, sr)

    def logmel():
        S = librosa.feature.melspectrogram(
            y=y, sr=sr, n_fft=n_fft, hop_length=hop, win_length=win, window="hann", center=True,
            pad_mode="constant", power=2.0, n_mels=128, fmin=0.0, fmax=sr / 2, htk=False, norm="slaney")
        return librosa.power_to_db(S, ref=1.0, amin=1e-10, top_db=80.0)

    out = logmel()  # warm-up: imports, caches, first-call compilation
    wall, cpu = [], []
    for _ in range(a.repeats):
        w0, c0 = time.perf_counter(), time.process_time()
        out = logmel()
        c1, w1 = time.process_time(), time.perf_counter()
        wall.append(w1 - w0)
        cpu.append(c1 - c0)
    audio_seconds = len(y) / sr
    median_cpu = statistics.median(cpu)
    print(json.dumps({
        "audioSeconds": audio_seconds, "sampleRate": sr, "windowLength": win, "hopLength": hop,
        "fftSize": n_fft, "melBands": 128, "frames": int(out.shape[1]),
        "wallSeconds": wall, "cpuSeconds": cpu,
        "medianWallSeconds": statistics.median(wall), "medianCPUSeconds": median_cpu,
        "realtimeFactor": audio_seconds / median_cpu if median_cpu > 0 else 0,
        "meanDB": float(np.mean(out, dtype=np.float64)),
        "librosa": librosa.__version__, "numpy": np.__version__,
    }, sort_keys=True))

main()
