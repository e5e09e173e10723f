"""python -m mulan_torch.train with musicnn's pretrained tower (--audio-tower musicnn|vgg --audio-init
FILE --audio-train full|frozen|top:K): the frozen tower keeps its weights and batch-norm statistics,
only the projection trains, and the checkpoint names and config are those of docs/pretrained-audio.md.

The converted file is musicnn's MSD_musicnn when the musicnn package is installed (scripts/setup.sh
--python), else a bundle of musicnn's shapes with random values written by tfbundle_writer."""
from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Dict, List

import numpy as np
import pytest
import torch

from mulan_torch import checkpoint as ckpt
from mulan_torch import musicnn
from mulan_torch.model import MulanModel, training_config

from test_train import OPTIONS, launch, single
from tfbundle_writer import write_bundle


def _options() -> List[str]:
    out, skip = [], False
    for o in OPTIONS:  # musicnn's front end is fixed: no --mel-bands
        if skip:
            skip = False
        elif o == "--mel-bands":
            skip = True
        elif o != "--quiet":
            out.append(o)
    return out


@pytest.fixture(scope="module")
def converted(tmp_path_factory) -> Dict[str, str]:
    folder = tmp_path_factory.mktemp("pretrained")
    out = {}
    spec = importlib.util.find_spec("musicnn")
    for architecture, model in (("musicnn", "MSD_musicnn"), ("vgg", "MSD_vgg")):
        source = Path(list(spec.submodule_search_locations)[0]) / model if spec else None
        if source is None or not (source / ".index").exists():
            rng = np.random.default_rng(5)
            shapes = {n: tuple(t.shape) for n, t in musicnn.build_tower(architecture).state_dict().items()}
            tf = {}
            for ours, (tf_name, rule) in musicnn.name_map(architecture).items():
                s = shapes[ours]
                shape = s if rule == "id" else (s[2], s[1], 1, s[0]) if rule == "conv1d" else s[::-1]
                value = rng.standard_normal(shape).astype(np.float32) * 0.05
                tf[tf_name] = np.abs(value) + 0.5 if "moving_variance" in tf_name else value
            source = folder / model
            source.mkdir()
            write_bundle(str(source) + "/", tf)
        out[architecture] = str(folder / f"{model}.safetensors")
        musicnn.convert(str(source), out[architecture])
    return out


def test_frozen_tower_trains_only_the_projection(timbre_dataset, converted, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    launch(single(["--dataset", timbre_dataset["dataset"], "--run-dir", str(run_dir), *_options(), "--steps", "3",
                   "--audio-tower", "musicnn", "--audio-init", converted["musicnn"], "--audio-train", "frozen",
                   "--eval-every", "100", "--workers", "0", "--quiet"]))
    model = MulanModel.from_checkpoint(str(run_dir))
    c = model.config
    assert c["audio"]["kind"] == "musicnn" and c["audio"]["melBands"] == 96
    assert c["audioTraining"] == "frozen" and c["audioInit"] == converted["musicnn"]
    assert c["logMel"] == {"sampleRate": 16000, "windowSeconds": 0.032, "hopSeconds": 0.016, "fftSize": 512,
                           "melBands": 96, "fMin": 0.0, "fMax": None, "amin": 1e-10, "topDB": 80.0,
                           "scale": "log10(10000x+1)"}
    reference, _ = musicnn.load_pretrained(converted["musicnn"])
    state = model.state_dict()
    for name, t in reference.state_dict().items():  # weights and running statistics: unchanged
        assert torch.equal(state["audio." + name], t), name
    loaded = ckpt.read(str(run_dir / ckpt.file_name(3)))
    moments = sorted(n[len("optimizer.m."):] for n in loaded.tensors if n.startswith("optimizer.m.audio."))
    assert moments == ["audio.proj.bias", "audio.proj.weight"]
    assert float(loaded.tensors["optimizer.m.audio.proj.weight"].abs().sum()) > 0
    assert loaded.optimizer_step == 3
    # the checkpoint embeds audio as a model of its config
    e = model.embed_audio(torch.randn(2, 96, 251))
    assert e.shape == (2, 128) and torch.allclose(e.norm(dim=1), torch.ones(2))


def test_audio_training_modes_and_batch_norm() -> None:
    c = training_config(16000, windowSeconds=4.0)
    c["logMel"] = musicnn.front_end_config().to_dict()
    c["audio"].update({"kind": "musicnn", "melBands": 96})
    for mode, trained in (("full", 3), ("frozen", 0), ("top:1", 1), ("top:2", 2)):
        c["audioTraining"] = mode
        model = MulanModel(c).train()
        names = {n for n, _ in model.optimized_parameters() if n.startswith("audio.")}
        assert "audio.proj.weight" in names and "audio.backend.logits.weight" not in names
        assert ("audio.backend.dense.weight" in names) == (trained >= 1)
        assert ("audio.midend.2.conv.weight" in names) == (trained >= 2)
        assert ("audio.timbral.0.conv.weight" in names) == (trained >= 3)
        assert ("audio.input_bn.weight" in names) == (trained >= 3)
        assert model.audio.backend.dense_bn.training == (trained >= 1)
        assert model.audio.midend[0].bn.training == (trained >= 2)
        assert model.audio.input_bn.training == (trained >= 3)
    c["audioTraining"] = "top:4"
    with pytest.raises(ValueError, match="top:4, but the musicnn tower has 3 blocks"):
        MulanModel(c)
    c["audioTraining"] = "full"
    c["logMel"]["hopSeconds"] = 0.01
    with pytest.raises(ValueError, match=r"logMel.hopLength is 160, not 256"):
        MulanModel(c)
    c["logMel"] = musicnn.front_end_config().to_dict()
    c["windowSeconds"] = 2.0
    with pytest.raises(ValueError, match="fewer than the musicnn tower's 187-frame patch"):
        MulanModel(c)


def test_usage_errors(timbre_dataset, converted, tmp_path: Path) -> None:
    base = ["--dataset", timbre_dataset["dataset"], "--run-dir", str(tmp_path / "r"), *_options(), "--steps", "1",
            "--workers", "0", "--audio-tower", "musicnn"]
    r = launch(single([*base, "--audio-train", "frozen"]), ok=(64,))
    assert "--audio-train frozen needs --audio-init" in r.stderr
    r = launch(single([*base, "--mel-bands", "32"]), ok=(64,))
    assert "--mel-bands 32: the musicnn tower's front end is fixed" in r.stderr
    r = launch(single([*base, "--audio-init", converted["vgg"]]), ok=(64,))
    assert f"{converted['vgg']} holds a vgg tower, not musicnn" in r.stderr
    r = launch(single([*base, "--audio-tower", "resnet", "--audio-init", converted["vgg"]]), ok=(64,))
    assert "--audio-init and --audio-train go with --audio-tower musicnn or vgg" in r.stderr


@pytest.mark.parametrize("architecture", ["musicnn", "vgg"])
def test_pytorch_checkpoint_embeds_as_mulan_embed(architecture: str, timbre_dataset, converted, vocab: str,
                                                  tmp_path: Path) -> None:
    """A pretrained tower fine-tuned in PyTorch (top:1: the top block's weights and batch-norm statistics
    move) is read by mulan-embed, whose audio embeddings equal the PyTorch model's on the same tower
    inputs within 1e-4 — the Swift tower is the same architecture with the same parameter names."""
    from test_towers import compare_audio_with_mulan_embed

    run_dir = tmp_path / "run"
    launch(single(["--dataset", timbre_dataset["dataset"], "--run-dir", str(run_dir), *_options(), "--steps", "2",
                   "--audio-tower", architecture, "--audio-init", converted[architecture], "--audio-train", "top:1",
                   "--eval-every", "100", "--workers", "0", "--quiet"]))
    assert MulanModel.from_checkpoint(str(run_dir)).config["audio"]["kind"] == architecture
    worst = compare_audio_with_mulan_embed(run_dir, 2, timbre_dataset["dataset"], vocab, tmp_path)
    print(f"{architecture}: max |PyTorch − mulan-embed| = {worst:.2e}")
    assert worst <= 1e-4, worst
