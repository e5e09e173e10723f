"""librosa's log-mel spectrogram of raw float32 audio: the reference for mulan's LogMelSpectrogram.

Usage: logmel_reference.py IN.f32 OUT.f32 SR N_FFT HOP WIN N_MELS FMIN FMAX AMIN TOP_DB [SCALE]
FMAX and TOP_DB may be "none". SCALE "log10(10000x+1)" replaces power_to_db by musicnn's
compression np.log10(10000 * S + 1), computed in float64 on librosa's float32 power S. Reads mono little-endian float32 samples from IN.f32 and writes
librosa.power_to_db(librosa.feature.melspectrogram(y, sr=SR, n_fft=N_FFT, hop_length=HOP,
win_length=WIN, window='hann', center=True, pad_mode='constant', power=2.0, n_mels=N_MELS,
fmin=FMIN, fmax=FMAX, htk=False, norm='slaney'), ref=1.0, amin=AMIN, top_db=TOP_DB) to OUT.f32 as
row-major [N_MELS x frames] float32; prints "N_MELS FRAMES".
"""
import sys
import warnings

import numpy as np
import librosa

def main():
    if len(sys.argv) not in (12, 13):
        sys.exit(__doc__)
    src, dst = sys.argv[1], sys.argv[2]
    sr, n_fft, hop, win, n_mels = (int(a) for a in sys.argv[3:8])
    fmin = float(sys.argv[8])
    fmax = None if sys.argv[9] == "none" else float(sys.argv[9])
    amin = float(sys.argv[10])
    top_db = None if sys.argv[11] == "none" else float(sys.argv[11])
    y = np.fromfile(src, dtype="<f4")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Empty filters detected" for narrow bands is expected
        S = librosa.feature.melspectrogram(
            y=y, sr=sr, n_fft=n_fft, hop_length=hop, win_length=win, window="hann", center=True,
            pad_mode="constant", power=2.0, n_mels=n_mels, fmin=fmin, fmax=fmax, htk=False, norm="slaney")
    if len(sys.argv) == 13 and sys.argv[12] == "log10(10000x+1)":
        D = np.log10(10000 * S.astype(np.float64) + 1)
    elif len(sys.argv) == 13 and sys.argv[12] != "dB":
        sys.exit("unknown SCALE " + sys.argv[12])
    else:
        D = librosa.power_to_db(S, ref=1.0, amin=amin, top_db=top_db)
    np.ascontiguousarray(D, dtype="<f4").tofile(dst)
    print(D.shape[0], D.shape[1])

main()
