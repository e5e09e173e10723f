"""The PyTorch port of musicnn's four pretrained models against musicnn's own TensorFlow graph, on real
music (the Ogg soundtrack of Debian's wesnoth-1.16-music package), and mulan's musicnn front end
against librosa's.

Needs what ``scripts/setup.sh --python`` installs into the venv: musicnn 0.1.0 (``--no-deps``; its
checkpoints are converted here from the installed package), tensorflow-cpu and tf-keras (musicnn's
``models.py`` needs ``tf.compat.v1.layers``). TensorFlow runs in a subprocess
(musicnn_tf_reference.py). Missing any of them, or the music, the tests are skipped and say why.
"""
from __future__ import annotations

import glob
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from mulan_torch import musicnn

HERE = Path(__file__).resolve().parent
MUSIC = "/usr/share/games/wesnoth/1.16/data/core/music"
MODELS = ["MSD_musicnn", "MTT_musicnn", "MSD_vgg", "MTT_vgg"]
CLIPS = 6
TOLERANCE = 1e-4


def _missing() -> str:
    for module in ("musicnn", "tensorflow", "tf_keras", "librosa"):
        if importlib.util.find_spec(module) is None:
            return f"{module} is not installed in this venv (scripts/setup.sh --python installs it)"
    if not glob.glob(MUSIC + "/*.ogg"):
        return f"no Ogg music in {MUSIC} (Debian's wesnoth-1.16-music package)"
    return ""


pytestmark = pytest.mark.skipif(bool(_missing()), reason=_missing() or "ready")


def musicnn_package() -> Path:
    spec = importlib.util.find_spec("musicnn")
    assert spec is not None and spec.submodule_search_locations
    return Path(list(spec.submodule_search_locations)[0])


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> list:
    """12 s from 5 s into the first six tracks of at least 20 s that libsndfile decodes, at 16 kHz
    (librosa.load, as musicnn loads audio), written as float WAV so that every side reads the same
    samples."""
    import librosa
    import soundfile as sf

    folder = tmp_path_factory.mktemp("clips")
    out = []
    for path in sorted(glob.glob(MUSIC + "/*.ogg")):
        try:
            if sf.info(path).duration < 20:
                continue
        except RuntimeError:
            continue
        y, _ = librosa.load(path, sr=musicnn.SAMPLE_RATE, offset=5.0, duration=12.0)
        target = folder / f"{len(out)}-{Path(path).stem}.wav"
        sf.write(str(target), y, musicnn.SAMPLE_RATE, subtype="FLOAT")
        out.append(target)
        if len(out) == CLIPS:
            break
    assert len(out) == CLIPS
    return out


@pytest.fixture(scope="module")
def reference(clips, tmp_path_factory) -> dict:
    """{model: (converted tower, musicnn's TensorFlow outputs)}."""
    folder = tmp_path_factory.mktemp("musicnn")
    env = dict(os.environ, TF_USE_LEGACY_KERAS="1", TF_CPP_MIN_LOG_LEVEL="2")
    out = {}
    for model in MODELS:
        converted = folder / f"{model}.safetensors"
        musicnn.convert(str(musicnn_package() / model), str(converted))
        npz = folder / f"{model}.npz"
        r = subprocess.run([sys.executable, str(HERE / "musicnn_tf_reference.py"), str(npz), model]
                           + [str(c) for c in clips], capture_output=True, text=True, env=env)
        assert r.returncode == 0, r.stderr[-3000:]
        tower, _ = musicnn.load_pretrained(str(converted))
        out[model] = (tower, dict(np.load(npz)))
    return out


def _run(tower, batch: np.ndarray) -> tuple:
    """(taggram, penultimate feature) of patches [n, 187, 96] (musicnn's layout)."""
    x = torch.as_tensor(np.asarray(batch, dtype=np.float32)).transpose(1, 2)
    with torch.no_grad():
        return torch.sigmoid(tower(x)).numpy(), tower.features(x).numpy()


@pytest.mark.parametrize("model", MODELS)
def test_taggram_equals_musicnn_tensorflow(reference, model):
    tower, ref = reference[model]
    worst_tag = worst_feature = 0.0
    for k in range(CLIPS):
        taggram, feature = _run(tower, ref[f"batch32_{k}"])
        expected = ref[f"feature32_{k}"]
        if model.endswith("vgg"):  # pool5 [n, 2 frames, 1 band, 128] → the tower's feature, its mean
            expected = expected.mean(axis=(1, 2))
        assert taggram.shape == ref[f"taggram32_{k}"].shape == (4, 50)
        worst_tag = max(worst_tag, float(np.abs(taggram - ref[f"taggram32_{k}"]).max()))
        worst_feature = max(worst_feature, float(np.abs(feature - expected).max()))
    print(f"{model}: max |Δ taggram| {worst_tag:.2e}, max |Δ penultimate| {worst_feature:.2e} over {CLIPS} clips")
    assert worst_tag <= TOLERANCE and worst_feature <= TOLERANCE


@pytest.mark.parametrize("model", ["MSD_musicnn", "MTT_vgg"])
def test_taggram_on_musicnns_own_float16_input(reference, model):
    """musicnn's batch_data (its float16 log) fed to the port: equal on every patch whose input is
    finite; some patches of this loud music overflow there (inf inputs; musicnn's taggram is then NaN
    or meaningless, not compared)."""
    tower, ref = reference[model]
    finite = overflowed = 0
    for k in range(CLIPS):
        taggram, _ = _run(tower, ref[f"batch_{k}"].astype(np.float32))
        ok = np.isfinite(ref[f"batch_{k}"]).all(axis=(1, 2))
        assert np.isfinite(ref[f"taggram_{k}"][ok]).all()
        finite += int(ok.sum())
        overflowed += int((~ok).sum())
        if ok.any():
            assert np.abs(taggram[ok] - ref[f"taggram_{k}"][ok]).max() <= TOLERANCE
    print(f"{model}: {finite} finite patches equal; {overflowed} of {4 * CLIPS} patches overflow in musicnn's float16 log")
    assert finite >= 5 and overflowed >= 1  # docs/pretrained-audio.md reports the overflow


def test_front_end_equals_librosa(reference, clips):
    """mulan's musicnn front end (float32 log10(10000x+1) of the power mel) against librosa's
    melspectrogram with musicnn's settings, the log taken in float64; and the whole path (front end,
    patches, tower) against musicnn's graph on librosa's input."""
    import soundfile as sf

    tower, ref = reference["MSD_musicnn"]
    worst_mel = worst_tag = 0.0
    for k, clip in enumerate(clips):
        samples, rate = sf.read(str(clip), dtype="float32")
        assert rate == musicnn.SAMPLE_RATE
        ours = musicnn.log_mel(samples)
        theirs = np.log10(10000.0 * ref[f"mel_{k}"].T.astype(np.float64) + 1.0)
        assert ours.shape == theirs.shape == (96, 1 + samples.shape[0] // 256)
        worst_mel = max(worst_mel, float(np.abs(ours - theirs).max()))
        x = torch.as_tensor(musicnn.patches(ours))
        assert x.shape == (4, 96, 187)
        with torch.no_grad():
            taggram = torch.sigmoid(tower(x)).numpy()
        worst_tag = max(worst_tag, float(np.abs(taggram - ref[f"taggram32_{k}"]).max()))
    print(f"front end: max |Δ log-mel| {worst_mel:.2e}; front end + tower: max |Δ taggram| {worst_tag:.2e}")
    assert worst_mel <= TOLERANCE and worst_tag <= TOLERANCE


def test_patches():
    spectrogram = np.arange(96 * 400, dtype=np.float32).reshape(96, 400)
    p = musicnn.patches(spectrogram)
    assert p.shape == (2, 96, 187)
    np.testing.assert_array_equal(p[1], spectrogram[:, 187:374])
    with pytest.raises(ValueError, match="186 frames; musicnn needs at least 187"):
        musicnn.patches(spectrogram[:, :186])
