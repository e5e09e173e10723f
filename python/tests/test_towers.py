"""The paper's two audio towers in PyTorch (issue 23): ``resnet50`` (ResNet-50's bottleneck stages) and
``ast`` (an Audio Spectrogram Transformer) have mulan's parameter names, and a checkpoint moves both
ways between mulan-train and mulan_torch: mulan-embed's audio embeddings equal the PyTorch model's on
the same tower inputs within 1e-4, whichever side trained it."""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List

import numpy as np
import pytest
import torch

from conftest import TINY, generate, mulan_bin, run
from mulan_torch import MulanModel, training_config
from mulan_torch import checkpoint as ckpt
from mulan_torch.model import ASTTower, AudioTower, AudioTowerConfig

from test_model import label, mulan_embed
from test_train import OPTIONS, launch, single

TOWERS = {
    "resnet50": ["--audio-tower", "resnet50", "--audio-widths", "8,8,16,16"],
    "ast": ["--audio-tower", "ast", "--ast-width", "16", "--ast-layers", "2", "--ast-heads", "2", "--ast-feed-forward", "32"],
}


def _without_widths(options: List[str]) -> List[str]:
    out, skip = [], False
    for o in options:
        if skip:
            skip = False
        elif o == "--audio-widths":
            skip = True
        else:
            out.append(o)
    return out


def test_resnet50_layout_and_size() -> None:
    tower = AudioTower(AudioTowerConfig(kind="resnet50", widths=(256, 512, 1024, 2048)))
    assert [len(s) for s in tower.stages()] == [3, 4, 6, 3]
    shapes = {n: tuple(t.shape) for n, t in tower.state_dict().items()}
    assert shapes["layer1.0.conv3.weight"] == (256, 64, 1, 1) and shapes["layer4.2.bn3.running_var"] == (2048,)
    # torchvision's resnet50 (25,557,032) less its RGB 7×7 stem and 1000-way fc, plus a 3×3 stem and 2048 → 128 fc
    assert sum(p.numel() for p in tower.parameters()) == 25_557_032 - 9_408 - 2_049_000 + 576 + 262_272


def test_ast_layout() -> None:
    config = training_config(16000, windowSeconds=10.0)
    config["logMel"]["melBands"] = 64
    config["audio"].update({"kind": "ast", "melBands": 64, "ast": {"width": 16, "layers": 2, "heads": 2, "feedForward": 32}})
    model = MulanModel(config)
    assert isinstance(model.audio, ASTTower) and model.window_frames == 1001 and model.audio.grid == (5, 99)
    shapes = {n: tuple(t.shape) for n, t in model.audio.state_dict().items()}
    assert shapes["pos_embed"] == (1 + 5 * 99, 16) and shapes["cls_token"] == (16,)
    assert shapes["patch_embed.weight"] == (16, 1, 16, 16) and shapes["encoder.layer.1.output.dense.weight"] == (16, 32)
    assert not model.decays("audio.cls_token") and not model.decays("audio.pos_embed") and model.decays("audio.patch_embed.weight")
    e = model.embed_audio(torch.randn(2, 64, 1001))
    assert e.shape == (2, 128) and torch.allclose(e.norm(dim=1), torch.ones(2))


def compare_audio_with_mulan_embed(run_dir: Path, step: int, dataset: str, vocab: str, tmp_path: Path) -> float:
    """Embeds two generated files with mulan-embed from the run's checkpoint of ``step`` and returns the largest
    difference from the PyTorch model's embeddings of the same tower inputs (mulan-embed's dumped log-mel)."""
    model = MulanModel.from_checkpoint(str(run_dir))
    assert model.step == step
    files = [generate(tmp_path / "files" / "tone.flac", 1, 330, 9), generate(tmp_path / "files" / "noise.wav", 3, 0, 5)]
    embedded = mulan_embed(str(run_dir / ckpt.file_name(step)), tmp_path / "index", vocab, dataset,
                           [str(f) for f in files], ["a tone"])
    by_item: Dict[str, List[int]] = {}
    for i, line in enumerate(embedded["lines"]):
        by_item.setdefault(label(line), []).append(i)
    worst, rows = 0.0, [r for r in embedded["rows"] if r["kind"] == "audio"]
    assert len(rows) >= 2
    for row in rows:
        e = model.embed_audio(torch.from_numpy(embedded["windows"][by_item[label(row)]]))
        mean = torch.nn.functional.normalize(e.sum(dim=0), dim=0, eps=1e-12).detach().numpy()
        worst = max(worst, float(np.abs(mean - embedded["matrix"][row["row"]]).max()))
    return worst


@pytest.mark.parametrize("tower", sorted(TOWERS))
def test_mulan_train_checkpoint_embeds_in_pytorch(tower: str, timbre_dataset, vocab: str, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    run([mulan_bin("mulan-train"), "--dataset", timbre_dataset["dataset"], "--run-dir", str(run_dir),
         *_without_widths(TINY), *TOWERS[tower], "--steps", "3", "--lr", "2e-3", "--warmup-steps", "1",
         "--eval-every", "1000", "--checkpoint-every", "1000", "--threads", "2", "--seed", "1"])
    worst = compare_audio_with_mulan_embed(run_dir, 3, timbre_dataset["dataset"], vocab, tmp_path)
    print(f"{tower}, trained by mulan-train: max |PyTorch − mulan-embed| = {worst:.2e}")
    assert worst <= 1e-4, worst


@pytest.mark.parametrize("tower", sorted(TOWERS))
def test_pytorch_checkpoint_embeds_in_mulan_embed(tower: str, timbre_dataset, vocab: str, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    launch(single(["--dataset", timbre_dataset["dataset"], "--run-dir", str(run_dir), *_without_widths(OPTIONS),
                   *TOWERS[tower], "--steps", "3", "--eval-every", "100", "--workers", "0", "--quiet"]))
    worst = compare_audio_with_mulan_embed(run_dir, 3, timbre_dataset["dataset"], vocab, tmp_path)
    print(f"{tower}, trained by mulan_torch.train: max |PyTorch − mulan-embed| = {worst:.2e}")
    assert worst <= 1e-4, worst
