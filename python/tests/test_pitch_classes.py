"""The pitch-class branch (``--pitch-profiles K``, docs/training.md "Pitch-class branch") in PyTorch:

- (a) ``audio.pitch_class_profile`` against a straightforward loop written here (a direct DFT of
  each frame), a pure tone and a transposed chord;
- (b) ``PitchClassBranch``: the same output for every transposition of its input, and its start
  (Krumhansl and Kessler's profiles: f is the best Pearson correlation with a rotated key profile;
  a fresh batch norm; a zero projection);
- (c) gradients reach the profiles, the batch norm and the projection (against the gradient written
  out here), and the optimizer's groups follow mulan's decay rule, also beside a frozen tower;
- (d) checkpoints hold the ``pitch.*`` tensors and refuse another branch;
- the data path: ``MulanShards``, the evaluation and ``python -m mulan_torch.train`` give each window
  its own profile;
- (e) parity with mulan's tools: a ``mulan-train --pitch-profiles 3`` checkpoint embeds in PyTorch
  as ``mulan-embed`` embeds it, and a checkpoint trained by ``python -m mulan_torch.train
  --pitch-profiles 3`` embeds in ``mulan-embed`` as in PyTorch (within 1e-4, the interop tests'
  tolerance). The profiles of mulan-embed's windows are computed here from the same samples.
"""
from __future__ import annotations

import io
import math
import os
import tarfile
from pathlib import Path
from typing import Any, Dict, List

import numpy as np
import pytest
import torch

from conftest import TINY, generate, mulan_bin, run
from mulan_torch import audio
from mulan_torch import checkpoint as ckpt
from mulan_torch.dataset import MulanShards
from mulan_torch.evaluation import EvaluationClips
from mulan_torch.model import (KRUMHANSL_KESSLER_MAJOR, KRUMHANSL_KESSLER_MINOR, MulanModel, PitchClassBranch,
                               token_batch, training_config)
from mulan_torch.shards import ShardSet

from test_model import label, mulan_embed, tiny_config
from test_train import OPTIONS, launch, single

RATE = 16000


# MARK: (a) the profile


def reference_profile(samples: np.ndarray, rate: int) -> np.ndarray:
    """The profile as docs/training.md words it, one frame and one bin at a time (a direct DFT)."""
    n = 1
    while n < 0.2 * rate:
        n *= 2
    hop = n // 2
    f_min, f_max = 440 * 2 ** ((36 - 69) / 12), 440 * 2 ** ((96 - 69) / 12)
    bins = [k for k in range(1, n // 2) if f_min <= k * rate / n < f_max]
    pitch_class = [round(69 + 12 * math.log2(k * rate / n / 440)) % 12 for k in bins]
    time = np.arange(n)
    dft = np.exp(-2j * np.pi * np.outer(bins, time) / n)  # row i: bin bins[i]
    hann = np.array([0.5 - 0.5 * math.cos(2 * math.pi * i / n) for i in range(n)])
    x = np.asarray(samples, dtype=np.float64)
    starts = [0] if len(x) < n else list(range(0, len(x) - n + 1, hop))
    counted: List[np.ndarray] = []
    for start in starts:
        frame = np.zeros(n)
        piece = x[start: start + n]
        frame[: len(piece)] = piece
        power = np.abs(dft @ (frame * hann)) ** 2
        sums = np.zeros(12)
        for p, c in zip(power, pitch_class):
            sums[c] += p
        if sums.sum() > 1e-10:
            counted.append(sums / sums.sum())
    return np.mean(counted, axis=0) if counted else np.zeros(12)


def tones(frequencies: List[float], seconds: float, rate: int = RATE, amplitude: float = 0.2) -> np.ndarray:
    t = np.arange(round(seconds * rate)) / rate
    return sum(amplitude * np.sin(2 * np.pi * f * t + i) for i, f in enumerate(frequencies)).astype(np.float32)


def test_profile_equals_the_documented_loop() -> None:
    rng = np.random.default_rng(0)
    noise = (0.1 * rng.standard_normal(3 * RATE + 123)).astype(np.float32)
    late = np.concatenate([np.zeros(2 * 4096, np.float32), tones([196.0, 1500.0], 1.0)])  # silent frames first
    cases = {
        "noise": (noise, RATE), "chord": (tones([261.63, 329.63, 392.0, 70.0, 2000.0], 2.0), RATE),
        "late start": (late, RATE), "short (one padded frame)": (noise[:1000], RATE),
        "exactly one frame": (noise[:4096], RATE), "a hop short of two frames": (noise[:4096 + 2047], RATE),
        "8 kHz (N 2048)": ((0.1 * rng.standard_normal(8000 + 77)).astype(np.float32), 8000),
    }
    for name, (x, rate) in cases.items():
        ours = audio.pitch_class_profile(x, rate)
        assert ours.dtype == np.float32 and ours.shape == (12,), name
        want = reference_profile(x, rate)
        assert np.abs(ours - want).max() <= 1e-6, (name, ours, want)
        assert abs(float(ours.sum()) - 1) <= 1e-5, name
    assert audio.pitch_fft_size(16000) == 4096 and audio.pitch_fft_size(22050) == 8192
    assert audio.pitch_fft_size(48000) == 16384 and audio.pitch_fft_size(8000) == 2048
    # Silence: no frame counts, all zeros; frames of silence between sound are left out, not averaged in.
    assert not audio.pitch_class_profile(np.zeros(3 * RATE, np.float32), RATE).any()
    tone = tones([440.0], 1.0)
    gapped = np.concatenate([tone, np.zeros(2 * RATE, np.float32), tone])
    profile = audio.pitch_class_profile(gapped, RATE)  # 30 frames, 11 of them silent
    assert abs(float(profile.sum()) - 1) <= 1e-5 and profile[9] > 0.95, profile
    # The batch helper: the same profiles.
    windows = [noise[:RATE], tone, np.zeros(RATE, np.float32)]
    batch = audio.pitch_class_profiles(windows, RATE)
    assert batch.shape == (3, 12) and batch.dtype == np.float32
    for w, row in zip(windows, batch):
        assert np.array_equal(row, audio.pitch_class_profile(w, RATE))
    with pytest.raises(ValueError, match="mono"):
        audio.pitch_class_profile(np.zeros((2, RATE), np.float32), RATE)


def test_pure_tone_and_transposed_chord() -> None:
    a4 = audio.pitch_class_profile(tones([440.0], 2.0), RATE)
    assert int(np.argmax(a4)) == 9 and a4[9] > 0.99, a4
    # Out of range (below C2, above C7): next to nothing counts (Hann side lobes only).
    outside = audio.pitch_class_frames(tones([40.0, 3000.0], 2.0), RATE).sum()
    assert outside < 1e-4 * audio.pitch_class_frames(tones([440.0], 2.0), RATE).sum()
    # A C major triad with a few partials, and the same chord 2 and 7 semitones up: the profile rotates.
    partials = [1.0, 2.0, 3.0]

    def chord(root: float) -> np.ndarray:
        notes = [root, root * 2 ** (4 / 12), root * 2 ** (7 / 12)]
        return tones([f * p for f in notes for p in partials], 2.0, amplitude=0.05)

    c = audio.pitch_class_profile(chord(523.25 / 2), RATE)  # C4
    assert set(np.argsort(c)[-3:]) == {0, 4, 7}, c
    for shift in (2, 7):
        moved = audio.pitch_class_profile(chord(523.25 / 2 * 2 ** (shift / 12)), RATE)
        assert np.abs(moved - np.roll(c, shift)).max() < 0.03, (shift, moved, np.roll(c, shift))
        assert set(np.argsort(moved)[-3:]) == {(0 + shift) % 12, (4 + shift) % 12, (7 + shift) % 12}


# MARK: (b) the branch


def random_profiles(rng: np.random.Generator, rows: int) -> np.ndarray:
    return rng.dirichlet(np.ones(12) * 0.5, size=rows).astype(np.float32)


def randomized_branch(k: int, seed: int = 0) -> PitchClassBranch:
    """A branch with random values in every tensor (running statistics included), in eval mode."""
    torch.manual_seed(seed)
    branch = PitchClassBranch(k, 16)
    with torch.no_grad():
        for t in (branch.profiles, branch.norm.weight, branch.norm.bias, branch.norm.running_mean,
                  branch.proj.weight, branch.proj.bias):
            t.normal_()
        branch.norm.running_var.uniform_(0.01, 0.1)
    return branch.eval()


def test_branch_is_transposition_invariant() -> None:
    rng = np.random.default_rng(1)
    c = random_profiles(rng, 8)
    branch = randomized_branch(4)
    a = torch.nn.functional.normalize(torch.randn(8, 16), dim=1)
    with torch.no_grad():
        f = branch.features(torch.from_numpy(c))
        u = branch.offsets(torch.from_numpy(c))
        e = branch(a, torch.from_numpy(c))
        assert float(u.abs().max()) > 0.1
        for shift in range(1, 12):
            rolled = torch.from_numpy(np.roll(c, shift, axis=1))
            assert torch.allclose(branch.features(rolled), f, atol=1e-6), shift
            assert torch.allclose(branch.offsets(rolled), u, atol=1e-5), shift
            assert torch.allclose(branch(a, rolled), e, atol=1e-6), shift
        # u = proj(norm(f)) on the running statistics; e = normalize(a + u), unit rows.
        n = branch.norm
        normalized = (f - n.running_mean) / torch.sqrt(n.running_var + 1e-5) * n.weight + n.bias
        assert torch.allclose(u, normalized @ branch.proj.weight.T + branch.proj.bias, atol=1e-4)
        assert torch.allclose(e, torch.nn.functional.normalize(a + u, dim=1), atol=1e-6)
        assert torch.allclose(e.norm(dim=1), torch.ones(8), atol=1e-6)
        # In training mode the batch's statistics: a batch transposed as a whole gives the same too.
        branch.train()
        trained = branch(a, torch.from_numpy(c))
        assert torch.allclose(branch(a, torch.from_numpy(np.roll(c, 5, axis=1))), trained, atol=1e-6)
        # A flat (or silent) profile standardizes to zeros: f = 0.
        flat = branch.features(torch.stack([torch.full((12,), 1 / 12), torch.zeros(12)]))
        assert torch.equal(flat, torch.zeros(2, 4))


def test_branch_starts_as_key_correlations_and_a_no_op() -> None:
    torch.manual_seed(0)
    branch = PitchClassBranch(3, 16)
    p = branch.profiles.detach().numpy()
    for row, key in enumerate((KRUMHANSL_KESSLER_MAJOR, KRUMHANSL_KESSLER_MINOR)):
        k = np.asarray(key)
        assert np.abs(p[row] - (k - k.mean()) / k.std()).max() < 1e-6, row
        assert abs(p[row].mean()) < 1e-6 and abs(p[row].std() - 1) < 1e-6
    assert np.isfinite(p[2]).all() and p[2].std() > 0  # N(0, 1)
    assert not branch.proj.weight.detach().any() and not branch.proj.bias.detach().any()
    n = branch.norm  # PyTorch's fresh batch norm
    assert torch.equal(n.weight.detach(), torch.ones(3)) and torch.equal(n.bias.detach(), torch.zeros(3))
    assert torch.equal(n.running_mean, torch.zeros(3)) and torch.equal(n.running_var, torch.ones(3))
    assert (n.eps, n.momentum) == (1e-5, 0.1)
    rng = np.random.default_rng(2)
    c = np.concatenate([random_profiles(rng, 6), audio.pitch_class_profiles([tones([261.63, 311.13, 392.0], 1.0)],
                                                                            RATE)])
    with torch.no_grad():
        f = branch.features(torch.from_numpy(c)).numpy()
    for b in range(c.shape[0]):
        for row, key in enumerate((KRUMHANSL_KESSLER_MAJOR, KRUMHANSL_KESSLER_MINOR)):
            best = max(np.corrcoef(key, np.roll(c[b], -r))[0, 1] for r in range(12))
            assert abs(f[b, row] - best) <= 1e-5, (b, row, f[b, row], best)
    # The C minor triad correlates better with a minor key than with a major one.
    assert f[-1, 1] > f[-1, 0]
    # A model with a fresh branch embeds as its tower alone.
    model = MulanModel(tiny_config(pitchProfiles=2))
    log_mel = torch.randn(3, 32, 401)
    with torch.no_grad():
        tower = model.eval().audio(log_mel)
    assert torch.allclose(model.embed_audio(log_mel, torch.from_numpy(c[:3])), tower, atol=1e-6)


# MARK: (c) gradients and the optimizer


def test_gradients_reach_profiles_and_projection() -> None:
    rng = np.random.default_rng(3)
    c = random_profiles(rng, 5)
    branch = randomized_branch(3, seed=4)
    g = torch.randn(5, 16)
    u = branch.offsets(torch.from_numpy(c))  # eval mode: the norm is an affine map of f
    (u * g).sum().backward()
    # The gradient written out: with the norm's scale γ / √(running var + ε) = a and shift b,
    # u = W (a f + b) + bias, so dn = g · W, df = a dn, and dP[k, j] = Σ_b df[b, k] / 12 · z[b, (j + r*) mod 12].
    p = branch.profiles.detach().numpy().astype(np.float64)
    w = branch.proj.weight.detach().numpy().astype(np.float64)
    n = branch.norm
    scale = (n.weight / torch.sqrt(n.running_var + 1e-5)).detach().numpy().astype(np.float64)
    shift = n.bias.detach().numpy() - n.running_mean.numpy() * scale
    z = (c - c.mean(axis=1, keepdims=True)) / c.std(axis=1, keepdims=True)
    dn = g.numpy().astype(np.float64) @ w
    df = dn * scale
    want = np.zeros_like(p)
    f = np.zeros((5, 3))
    for b in range(5):
        for k in range(3):
            s = [sum(p[k, j] * z[b, (j + r) % 12] for j in range(12)) / 12 for r in range(12)]
            r = int(np.argmax(s))
            f[b, k] = s[r]
            want[k] += df[b, k] / 12 * np.roll(z[b], -r)
    assert np.abs(branch.profiles.grad.numpy() - want).max() <= 1e-4 * max(1.0, np.abs(want).max())
    normalized = f * scale + shift
    assert np.abs(branch.proj.weight.grad.numpy() - g.numpy().T @ normalized).max() <= 1e-3
    assert np.abs(branch.proj.bias.grad.numpy() - g.numpy().sum(axis=0)).max() <= 1e-5
    assert np.abs(n.bias.grad.numpy() - dn.sum(axis=0)).max() <= 1e-4
    assert np.abs(n.weight.grad.numpy() - (dn * (f - n.running_mean.numpy()) / np.sqrt(n.running_var.numpy() + 1e-5))
                  .sum(axis=0)).max() <= 1e-3

    # In the model: a training step's loss reaches the branch. At the start proj is zero, so only proj
    # gets a gradient; once it has moved, the profiles and the norm do too.
    model = MulanModel(tiny_config(pitchProfiles=3)).train()
    ids, lengths = token_batch([[1000 + i, 2000 + i] for i in range(4)], 16)
    pitch = torch.from_numpy(random_profiles(rng, 4))
    optimizer = torch.optim.AdamW(model.parameter_groups(), lr=1e-2)
    for step in range(2):
        optimizer.zero_grad()
        model.loss(*model(torch.randn(4, 32, 401), ids, lengths, pitch)).backward()
        grads = {n: p.grad for n, p in model.named_parameters() if n.startswith("pitch.")}
        assert float(grads["pitch.proj.weight"].abs().sum()) > 0 and float(grads["pitch.proj.bias"].abs().sum()) > 0
        for name in ("pitch.profiles", "pitch.norm.weight", "pitch.norm.bias"):
            assert (float(grads[name].abs().sum()) > 0) == (step > 0), (step, name)
        optimizer.step()
    assert float((model.pitch.norm.running_mean).abs().sum()) > 0  # batch statistics in training


def test_decay_and_training_follow_mulans_rule() -> None:
    model = MulanModel(tiny_config(pitchProfiles=2))
    assert model.pitch_profiles == 2 and model.decays("pitch.proj.weight")
    assert not model.decays("pitch.profiles") and not model.decays("pitch.proj.bias")
    assert not model.decays("pitch.norm.weight") and not model.decays("pitch.norm.bias")
    groups = model.parameter_groups()
    names = {id(p): n for n, p in model.named_parameters()}
    assert [names[id(p)] for p in groups[0]["params"] if names[id(p)].startswith("pitch.")] == ["pitch.proj.weight"]
    assert sorted(names[id(p)] for p in groups[1]["params"] if names[id(p)].startswith("pitch.")) == \
        ["pitch.norm.bias", "pitch.norm.weight", "pitch.profiles", "pitch.proj.bias"]
    # Beside a frozen (musicnn) tower the branch still trains.
    from mulan_torch import musicnn

    c = training_config(16000, windowSeconds=4.0, pitchProfiles=3, audioTraining="frozen")
    c["logMel"] = musicnn.front_end_config().to_dict()
    c["audio"].update({"kind": "musicnn", "melBands": 96})
    frozen = MulanModel(c)
    trained = {n for n, _ in frozen.optimized_parameters()}
    assert {"pitch.profiles", "pitch.norm.weight", "pitch.norm.bias", "pitch.proj.weight", "pitch.proj.bias",
            "audio.proj.weight"} <= trained
    assert "audio.backend.dense.weight" not in trained
    frozen.parameter_groups()
    assert all(p.requires_grad for n, p in frozen.named_parameters() if n.startswith("pitch."))
    assert frozen.train().pitch.norm.training and not frozen.audio.backend.dense_bn.training
    # Without the key (or 0): no branch, no pitch.* tensors, as before.
    for config in (tiny_config(), {k: v for k, v in tiny_config().items() if k != "pitchProfiles"}):
        plain = MulanModel(config)
        assert plain.pitch is None and plain.pitch_profiles == 0
        assert not [n for n in plain.state_dict() if n.startswith("pitch")]
    for bad in (-1, 65, 1.5, "3"):
        with pytest.raises(ValueError, match="pitchProfiles"):
            MulanModel(tiny_config(pitchProfiles=bad))


def test_profiles_required_exactly_when_the_model_has_the_branch() -> None:
    log_mel = torch.randn(2, 32, 401)
    ids, lengths = token_batch([[1000], [1001]], 16)
    pitch = torch.full((2, 12), 1 / 12)
    branched, plain = MulanModel(tiny_config(pitchProfiles=2)), MulanModel(tiny_config())
    for call in (lambda: branched.embed_audio(log_mel), lambda: branched(log_mel, ids, lengths),
                 lambda: plain.embed_audio(log_mel, pitch), lambda: plain(log_mel, ids, lengths, pitch)):
        with pytest.raises(ValueError, match="pitchProfiles"):
            call()
    with pytest.raises(ValueError, match=r"\[batch, 12\]"):
        branched.embed_audio(log_mel, torch.zeros(2, 11))
    assert branched.embed_audio(log_mel, pitch).shape == plain.embed_audio(log_mel).shape == (2, 128)


# MARK: (d) checkpoints


def test_checkpoint_round_trip_with_pitch_tensors(tmp_path: Path) -> None:
    torch.manual_seed(5)
    model = MulanModel(tiny_config(pitchProfiles=3))
    with torch.no_grad():
        model.pitch.proj.weight.normal_()
        model.pitch.proj.bias.normal_()
    optimizer = torch.optim.AdamW(model.parameter_groups(), lr=1e-3)
    ids, lengths = token_batch([[1000 + i] for i in range(3)], 16)
    pitch = torch.from_numpy(random_profiles(np.random.default_rng(6), 3))
    model.train()
    model.loss(*model(torch.randn(3, 32, 401), ids, lengths, pitch)).backward()
    optimizer.step()
    path = tmp_path / ckpt.file_name(1)
    model.save_checkpoint(str(path), step=1, optimizer=optimizer, sampler={"streams": {}})
    loaded = ckpt.read(str(path))
    assert loaded.config["pitchProfiles"] == 3
    shapes = {n: tuple(t.shape) for n, t in loaded.tensors.items() if "pitch." in n}
    parameters = {"profiles": (3, 12), "norm.weight": (3,), "norm.bias": (3,), "proj.weight": (128, 3),
                  "proj.bias": (128,)}
    assert shapes == {**{f"pitch.{n}": s for n, s in parameters.items()},
                      "pitch.norm.running_mean": (3,), "pitch.norm.running_var": (3,),
                      **{f"optimizer.{m}.pitch.{n}": s for m in "mv" for n, s in parameters.items()}}
    assert float(loaded.tensors["optimizer.m.pitch.profiles"].abs().sum()) > 0
    again = MulanModel.from_checkpoint(str(path))
    assert again.pitch_profiles == 3
    for name, t in model.mulan_state_dict().items():
        assert torch.equal(t, again.mulan_state_dict()[name]), name
    log_mel = torch.randn(2, 32, 401)
    assert torch.equal(model.embed_audio(log_mel, pitch[:2]), again.embed_audio(log_mel, pitch[:2]))
    # AdamW's state comes back into torch's AdamW for the branch too.
    resumed = torch.optim.AdamW(again.parameter_groups(), lr=1e-3)
    again.load_optimizer_state(resumed, loaded)
    assert torch.equal(resumed.state[again.pitch.profiles]["exp_avg"], optimizer.state[model.pitch.profiles]["exp_avg"])
    # Another branch (or none) is refused, naming the tensor.
    with pytest.raises(ckpt.CheckpointError, match="pitch.profiles"):
        MulanModel(tiny_config()).load_mulan_tensors(loaded.tensors, str(path))
    with pytest.raises(ckpt.CheckpointError, match="pitch.profiles"):
        MulanModel(tiny_config(pitchProfiles=2)).load_mulan_tensors(loaded.tensors, str(path))
    plain = tmp_path / "plain.safetensors"
    MulanModel(tiny_config()).save_checkpoint(str(plain), step=0)
    with pytest.raises(ckpt.CheckpointError, match="pitch.profiles"):
        MulanModel(tiny_config(pitchProfiles=3)).load_mulan_tensors(ckpt.read(str(plain), weights_only=True).tensors)


# MARK: the data path


def test_training_batches_and_evaluation_carry_each_windows_profile(sampler_corpus: Path) -> None:
    config = tiny_config(pitchProfiles=3, batchSize=6, specAugment=None)
    config["mix"] = {"weights": ["tags", 1.0]}
    features = MulanShards(str(sampler_corpus), config=config, steps=2)
    samples = MulanShards(str(sampler_corpus), config=config, steps=2, features="samples")
    for a, b in zip(features, samples):
        assert a["keys"] == b["keys"] and torch.equal(a["window_offsets"], b["window_offsets"])
        assert a["pitch_classes"].shape == (6, 12) and a["pitch_classes"].dtype == torch.float32
        assert torch.equal(a["pitch_classes"], b["pitch_classes"])
        want = audio.pitch_class_profiles(list(b["audio"].numpy()), RATE)  # the very window the log-mel saw
        assert np.array_equal(a["pitch_classes"].numpy(), want)
    without = MulanShards(str(sampler_corpus), config=dict(config, pitchProfiles=0), steps=1)
    assert "pitch_classes" not in next(iter(without))
    # Evaluation: each of a clip's three windows gets the profile of its own (zero-padded) samples.
    clips = EvaluationClips.load(ShardSet.open(str(sampler_corpus), "train"), config, "train")
    log_mel, profiles = clips.windows(0, 2, config)
    assert profiles is not None and profiles.shape == (6, 12) and log_mel.shape[0] == 6
    assert np.array_equal(log_mel, clips.log_mel(0, 2, config))
    assert clips.windows(0, 2, tiny_config())[1] is None
    window = round(config["windowSeconds"] * RATE)
    for i, clip in enumerate(clips.clips[:2]):
        decoded = audio.decode_flac(clips.shards.read_flac(clip), RATE, clip.key)
        for j, offset in enumerate(audio.evaluation_window_offsets(decoded.shape[0], window)):
            want = audio.pitch_class_profile(audio.crop_window(decoded, offset, window), RATE)
            assert np.array_equal(profiles[3 * i + j], want)


def test_train_option_mirrors_mulan_train(tmp_path: Path) -> None:
    from mulan_torch.train import _parser, _validate, make_config

    def config(*extra: str) -> Dict[str, Any]:
        o = _parser().parse_args(["--dataset", str(tmp_path), "--run-dir", str(tmp_path / "run"), *extra])
        _validate(o)
        return make_config(o, RATE)

    assert config()["pitchProfiles"] == 0 and config("--pitch-profiles", "3")["pitchProfiles"] == 3
    assert MulanModel(config("--pitch-profiles", "3")).pitch_profiles == 3
    for bad in ("-1", "65"):
        r = launch(single(["--dataset", str(tmp_path), "--run-dir", str(tmp_path / "run"), "--pitch-profiles", bad]),
                   ok=(64,))
        assert "--pitch-profiles must be between 0 (off) and 64" in r.stderr, r.stderr
    # --pitch-lr-scale: the config key mulan-train writes (1 when left out); refused out of range or
    # without a branch.
    assert config()["pitchLearningRateScale"] == 1.0
    scaled = config("--pitch-profiles", "3", "--pitch-lr-scale", "10")
    assert scaled["pitchLearningRateScale"] == 10.0
    for extra, message in ((["--pitch-profiles", "3", "--pitch-lr-scale", "0"], "above 0 and at most 1000"),
                           (["--pitch-profiles", "3", "--pitch-lr-scale", "1001"], "above 0 and at most 1000"),
                           (["--pitch-lr-scale", "10"], "add --pitch-profiles K")):
        r = launch(single(["--dataset", str(tmp_path), "--run-dir", str(tmp_path / "run"), *extra]), ok=(64,))
        assert message in r.stderr, r.stderr
    # The branch's parameters form their own groups at that factor; the rest keep 1.
    model = MulanModel(scaled)
    names = {id(p): n for n, p in model.named_parameters()}
    groups = model.parameter_groups()
    assert [g["lr_scale"] for g in groups] == [1.0, 1.0, 10.0, 10.0]
    assert sorted(names[id(p)] for g in groups[2:] for p in g["params"]) == \
        sorted(n for n, _ in model.optimized_parameters() if n.startswith("pitch."))
    assert not [p for g in groups[:2] for p in g["params"] if names[id(p)].startswith("pitch.")]
    assert len(MulanModel(config("--pitch-profiles", "3")).parameter_groups()) == 2


def test_pitch_lr_scale_multiplies_the_branchs_first_step(timbre_dataset, tmp_path: Path) -> None:
    """The first step's gradients do not depend on the rate, and the branch's projection starts at
    zero: after one step at --pitch-lr-scale 10 it is ten times what it is at 1, and every weight
    outside the branch is the same in both runs (as mulan-train's end-to-end test checks for mulan-train)."""
    after: Dict[str, Dict[str, torch.Tensor]] = {}
    for scale in ("1", "10"):
        run_dir = tmp_path / f"run-{scale}"
        launch(single(["--dataset", timbre_dataset["dataset"], "--run-dir", str(run_dir), *TINY, "--seed", "3",
                       "--lr", "1e-2", "--warmup-steps", "1", "--pitch-profiles", "2", "--pitch-lr-scale", scale,
                       "--steps", "3", "--stop-at", "1", "--eval-every", "100", "--workers", "0"]))
        loaded = ckpt.read(str(run_dir / ckpt.file_name(1)))
        assert float(loaded.config["pitchLearningRateScale"]) == float(scale)
        after[scale] = loaded.model_tensors
    plain, scaled = after["1"], after["10"]
    for name in ("pitch.proj.weight", "pitch.proj.bias"):
        assert float(plain[name].abs().max()) > 1e-3, name
        assert torch.allclose(scaled[name], 10 * plain[name], rtol=1e-5, atol=1e-8), name
    others = [n for n in plain if not n.startswith("pitch.")]
    worst = max(float((plain[n] - scaled[n]).abs().max()) for n in others)
    assert others and worst <= 1e-6, worst


# MARK: (e) parity with mulan's tools


def window_samples(row: Dict[str, Any], dataset: str) -> np.ndarray:
    """The decoded samples of one item of mulan-embed's index (a 16-kHz file, or a clip of the shards)."""
    if row.get("path"):
        import soundfile

        samples, rate = soundfile.read(row["path"], dtype="float32")
        assert rate == RATE and samples.ndim == 1, row["path"]
        return samples
    shard = row["shard"] if os.path.isabs(row["shard"]) else os.path.join(dataset, row["shard"])
    with tarfile.open(shard) as tar:
        data = tar.extractfile(f"{row['key']}.flac").read()
    return audio.decode_flac(data, RATE, label(row))


def compare_pitch_model_with_mulan_embed(run_dir: Path, step: int, dataset: str, vocab: str,
                                         tmp_path: Path) -> Dict[str, float]:
    """Embeds two generated files and the shards' test split with mulan-embed from the run's checkpoint
    of ``step``, and the same windows here (mulan-embed's dumped log-mel, and the pitch-class profile of
    each window's samples). Returns the largest difference from mulan-embed's embeddings, with the
    branch and (to show the branch matters) without it."""
    model = MulanModel.from_checkpoint(str(run_dir))
    assert model.step == step and model.pitch_profiles == 3
    files = [generate(tmp_path / "files" / "tone.flac", 1, 330, 9), generate(tmp_path / "files" / "noise.wav", 3, 0, 5)]
    embedded = mulan_embed(str(run_dir / ckpt.file_name(step)), tmp_path / "index", vocab, dataset,
                           [str(f) for f in files], ["a tone"])
    by_item: Dict[str, List[int]] = {}
    for i, line in enumerate(embedded["lines"]):
        by_item.setdefault(label(line), []).append(i)
    rows = [r for r in embedded["rows"] if r["kind"] == "audio"]
    assert len(rows) >= 4
    worst = {"with branch": 0.0, "tower alone": 0.0}
    for row in rows:
        idx = by_item[label(row)]
        samples = window_samples(row, dataset)
        offsets = [embedded["lines"][i]["offset"] for i in idx]
        assert offsets == model.window_offsets(samples.shape[0]), label(row)
        profiles = audio.pitch_class_profiles([model.window(samples, o) for o in offsets], model.sample_rate)
        log_mel = torch.from_numpy(embedded["windows"][idx])
        want = embedded["matrix"][row["row"]]
        for name, e in (("with branch", model.embed_audio(log_mel, torch.from_numpy(profiles))),
                        ("tower alone", model._inference(lambda: model.audio(log_mel)))):
            mean = torch.nn.functional.normalize(e.sum(dim=0), dim=0, eps=1e-12).numpy()
            worst[name] = max(worst[name], float(np.abs(mean - want).max()))
    return worst


def test_mulan_train_pitch_checkpoint_embeds_in_pytorch(timbre_dataset, vocab: str, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    run([mulan_bin("mulan-train"), "--dataset", timbre_dataset["dataset"], "--run-dir", str(run_dir), *TINY,
         "--pitch-profiles", "3", "--steps", "3", "--lr", "2e-3", "--warmup-steps", "1", "--eval-every", "1000",
         "--checkpoint-every", "1000", "--threads", "2", "--seed", "1"])
    loaded = ckpt.read(str(run_dir / ckpt.file_name(3)))
    assert loaded.config["pitchProfiles"] == 3
    # The names and shapes of a model built here from the same options, optimizer state included.
    ours = MulanModel(tiny_config(pitchProfiles=3))
    assert {n: tuple(t.shape) for n, t in ours.mulan_state_dict().items()} == \
        {n: tuple(t.shape) for n, t in loaded.model_tensors.items()}
    moments = {n[len("optimizer.m."):] for n in loaded.tensors if n.startswith("optimizer.m.")}
    assert moments == {n for n, _ in ours.optimized_parameters()}
    assert float(loaded.tensors["pitch.proj.weight"].abs().sum()) > 0  # the branch trained
    worst = compare_pitch_model_with_mulan_embed(run_dir, 3, timbre_dataset["dataset"], vocab, tmp_path)
    print(f"pitch branch, trained by mulan-train: max |PyTorch − mulan-embed| = {worst}")
    assert worst["with branch"] <= 1e-4, worst
    assert worst["tower alone"] > 1e-3, worst


def test_pytorch_pitch_checkpoint_embeds_in_mulan_embed(timbre_dataset, vocab: str, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    launch(single(["--dataset", timbre_dataset["dataset"], "--run-dir", str(run_dir), *OPTIONS,
                   "--pitch-profiles", "3", "--steps", "3", "--eval-every", "100", "--workers", "0", "--quiet"]))
    loaded = ckpt.read(str(run_dir / ckpt.file_name(3)))
    assert loaded.config["pitchProfiles"] == 3
    assert {"optimizer.m.pitch.profiles", "optimizer.v.pitch.proj.weight"} <= set(loaded.tensors)
    assert float(loaded.tensors["pitch.proj.weight"].abs().sum()) > 0
    worst = compare_pitch_model_with_mulan_embed(run_dir, 3, timbre_dataset["dataset"], vocab, tmp_path)
    print(f"pitch branch, trained by mulan_torch.train: max |PyTorch − mulan-embed| = {worst}")
    assert worst["with branch"] <= 1e-4, worst
    assert worst["tower alone"] > 1e-3, worst
