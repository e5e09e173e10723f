"""``python -m mulan_torch.train``: DDP on CPU (2 gloo processes under torchrun), its checkpoints read by
mulan's tools, an exact resume after SIGKILL, SyncBatchNorm against one process, and the evaluation
against mulan-train's own figures."""
from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from conftest import TINY, mulan_bin, run
from mulan_torch import checkpoint as ckpt
from mulan_torch.evaluation import EvaluationClips, evaluate, evaluation_line
from mulan_torch.model import MulanModel
from mulan_torch.shards import ShardSet
from mulan_torch.train import learning_rate

# mulan-train's TINY options, which python -m mulan_torch.train takes as they are (minus --quiet's place).
OPTIONS = [*TINY, "--lr", "2e-3", "--warmup-steps", "2", "--log-every", "1", "--seed", "3"]


def train_env() -> Dict[str, str]:
    env = dict(os.environ, MULAN_PROGRESS_INTERVAL="0", OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    env.pop("WORLD_SIZE", None)
    return env


def torchrun(nproc: int, args: Sequence[str]) -> List[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc),
            "-m", "mulan_torch.train", *args]


def single(args: Sequence[str]) -> List[str]:
    return [sys.executable, "-m", "mulan_torch.train", *args]


def launch(command: List[str], ok: Sequence[int] = (0,)) -> subprocess.CompletedProcess:
    r = subprocess.run(command, env=train_env(), capture_output=True, text=True, timeout=900)
    if r.returncode not in ok:
        raise AssertionError(f"{' '.join(command)} exited {r.returncode}:\n{r.stderr[-6000:]}\n{r.stdout[-2000:]}")
    return r


def descendants(pid: int) -> List[int]:
    """The process ids below ``pid`` (torchrun's workers run in their own sessions: killing torchrun's
    process group leaves them running)."""
    out: List[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tasks:
        try:
            children = Path(f"/proc/{pid}/task/{tid}/children").read_text().split()
        except OSError:
            continue
        for child in map(int, children):
            out.append(child)
            out.extend(descendants(child))
    return out


def metrics(run_dir: Path) -> List[Dict[str, Any]]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def without_timing(lines: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    return [{k: v for k, v in line.items() if k != "examples_per_second"} for line in lines]


@pytest.fixture(scope="module")
def ddp_run(timbre_dataset: Dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """24 steps of a 2-process gloo DDP run under torchrun, checkpoints every 8, valid every 12."""
    run_dir = tmp_path_factory.mktemp("ddp") / "run"
    launch(torchrun(2, ["--dataset", timbre_dataset["dataset"], "--run-dir", str(run_dir), *OPTIONS, "--steps", "24",
                        "--checkpoint-every", "8", "--eval-every", "12", "--workers", "1"]))
    return run_dir


def test_two_gloo_processes_train_and_mulan_eval_reads_the_checkpoint(
        ddp_run: Path, timbre_dataset: Dict[str, str], vocab: str, tmp_path: Path) -> None:
    summary = json.loads((ddp_run / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["backend"] == "gloo" and summary["device"] == "cpu", summary
    assert summary["last_step"] == 24 and summary["examples"] == 24 * 12, summary
    lines = metrics(ddp_run)
    steps = [line for line in lines if "split" not in line]
    assert [line["step"] for line in steps] == list(range(1, 25))
    # The global batch: 12 examples per step over both ranks, of the one source the dataset has.
    assert all(line["batch_size"] == 12 and line["sources"] == {"tags": 12} for line in steps)
    losses = [line["loss"] for line in steps]
    print("2-process gloo losses:", [round(x, 3) for x in losses])
    assert all(math.isfinite(x) for x in losses)
    assert np.mean(losses[-6:]) < np.mean(losses[:6]) - 0.1, losses  # the loss falls
    # The schedule is mulan-train's: warm-up 2 steps, cosine to 0 at step 24.
    for line in steps:
        assert line["learning_rate"] == pytest.approx(learning_rate(line["step"] - 1, 2e-3, 2, 24), rel=1e-6)
    evals = [(line["step"], line["split"]) for line in lines if "split" in line]
    assert evals == [(12, "valid"), (24, "valid"), (24, "test")], evals
    for line in lines:
        if "split" in line:
            assert line["clips"] == 12 and 1 <= line["t2a_median_rank"] <= 12 and "tagging_roc_auc" in line, line
    # Checkpoints: kept (3), mulan's format, the sampler state mulan-train resumes from.
    names = sorted(p.name for p in ddp_run.glob("checkpoint-*.safetensors"))
    assert names == ["checkpoint-000008.safetensors", "checkpoint-000016.safetensors", "checkpoint-000024.safetensors"]
    loaded = ckpt.read(str(ddp_run / names[-1]))
    assert loaded.step == 24 and loaded.optimizer_step == 24 and set(loaded.sampler["streams"]) == {"tags"}, loaded.sampler
    assert not list(ddp_run.glob("*.tmp"))
    config = json.loads((ddp_run / "config.json").read_text())
    assert config["pytorch"]["world_size"] == 2 and config["batchSize"] == 12

    # mulan-eval reads it: zero-shot tagging on the test split.
    report = tmp_path / "eval.json"
    r = run([mulan_bin("mulan-eval"), "--checkpoint", str(ddp_run / names[-1]), "--vocab", vocab, "--shards",
             timbre_dataset["dataset"], "--split", "test", "--json", str(report), "--quiet", "--threads", "2"])
    assert "macro ROC-AUC" in r.stdout, r.stdout
    tagging = json.loads(report.read_text())["tagging"]
    assert tagging["tags_scored"] == 6 and 0 <= tagging["macro_roc_auc"] <= 1, tagging
    print("mulan-eval on the DDP checkpoint:", tagging["macro_roc_auc"])


def test_resume_after_sigkill_continues_exactly(ddp_run: Path, timbre_dataset: Dict[str, str], tmp_path: Path) -> None:
    """The same 2-process run killed (SIGKILL to torchrun and its workers) after its step-8
    checkpoint, then resumed with --resume: the same weights, AdamW state, temperature, loader state
    and metrics lines as the uninterrupted run."""
    run_dir = tmp_path / "run"
    args = ["--dataset", timbre_dataset["dataset"], "--run-dir", str(run_dir), *OPTIONS, "--steps", "24",
            "--checkpoint-every", "8", "--eval-every", "12", "--workers", "1"]
    process = subprocess.Popen(torchrun(2, args), env=train_env(), stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.monotonic() + 600
    first = run_dir / "checkpoint-000008.safetensors"
    while not first.exists():
        if process.poll() is not None:
            raise AssertionError(f"the run ended before its first checkpoint:\n{process.stderr.read().decode()[-4000:]}")
        assert time.monotonic() < deadline, "no checkpoint-000008 after 600 s"
        time.sleep(0.05)
    for pid in [*descendants(process.pid), process.pid]:  # as a power cut would: no handler runs
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    process.wait()
    assert not (run_dir / "checkpoint-000024.safetensors").exists(), "the run finished before it was killed"
    killed_at = max(line["step"] for line in metrics(run_dir)) if (run_dir / "metrics.jsonl").exists() else 0
    r = launch(torchrun(2, args + ["--resume"]))
    assert "resuming from" in r.stderr, r.stderr[-3000:]
    summary = json.loads((run_dir / "summary.json").read_text())
    print(f"killed at step {killed_at}; resumed from step {summary['first_step']}")
    assert summary["first_step"] in (8, 16) and summary["last_step"] == 24, summary

    want = load_file(str(ddp_run / "checkpoint-000024.safetensors"))
    got = load_file(str(run_dir / "checkpoint-000024.safetensors"))
    assert set(got) == set(want)
    for name in want:  # model tensors, AdamW moments, the temperature: bit for bit
        assert torch.equal(got[name], want[name]), name
    a, b = ckpt.read(str(ddp_run / "checkpoint-000024.safetensors")), ckpt.read(str(run_dir / "checkpoint-000024.safetensors"))
    assert (a.sampler, a.optimizer_step, a.config) == (b.sampler, b.optimizer_step, b.config)
    assert without_timing(metrics(run_dir)) == without_timing(metrics(ddp_run))


def test_sync_batchnorm_two_ranks_follow_one_process(timbre_dataset: Dict[str, str], tmp_path: Path) -> None:
    """With --sync-batchnorm, the loss over the gathered global batch and batch norm over all ranks
    make 2 gloo ranks train the model one process trains: the same losses and weights to float rounding
    (without it, each rank's batch norm sees half the batch)."""
    args = [*OPTIONS, "--steps", "4", "--checkpoint-every", "4", "--eval-every", "100", "--workers", "0",
            "--dataset", timbre_dataset["dataset"]]
    launch(single(args + ["--run-dir", str(tmp_path / "one")]))
    launch(torchrun(2, args + ["--run-dir", str(tmp_path / "two"), "--sync-batchnorm"]))
    launch(torchrun(2, args + ["--run-dir", str(tmp_path / "local")]))
    one = [line["loss"] for line in metrics(tmp_path / "one") if "split" not in line]
    two = [line["loss"] for line in metrics(tmp_path / "two") if "split" not in line]
    local = [line["loss"] for line in metrics(tmp_path / "local") if "split" not in line]
    print("losses: 1 process", one, "2 ranks + SyncBatchNorm", two, "2 ranks, local batch norm", local)
    assert np.allclose(one, two, rtol=1e-5, atol=1e-6), (one, two)
    assert not np.allclose(one, local, rtol=1e-4, atol=1e-5), "batch norm per rank should change the losses"
    a = load_file(str(tmp_path / "one" / ckpt.file_name(4)))
    b = load_file(str(tmp_path / "two" / ckpt.file_name(4)))
    c = load_file(str(tmp_path / "local" / ckpt.file_name(4)))

    def gap(x: Dict[str, torch.Tensor]) -> float:
        """The largest difference from the 1-process tensors, each scaled by max(1, its largest magnitude)
        (batch norm's running variances are in the thousands)."""
        return max(float((a[n] - x[n]).abs().max()) / max(1.0, float(a[n].abs().max()))
                   for n in a if not n.startswith(ckpt.OPTIMIZER_PREFIX))

    print("weights after 4 steps, largest scaled gap to 1 process: 2 ranks + SyncBatchNorm", gap(b),
          "; 2 ranks, local batch norm", gap(c))
    assert gap(b) < 1e-5, gap(b)
    assert gap(c) > 1e-3, gap(c)


def test_evaluation_equals_mulan_train(timbre_dataset: Dict[str, str], tmp_path: Path) -> None:
    """mulan_torch.evaluation on a mulan-train checkpoint gives mulan-train's own evaluation lines
    (Recall@K, median ranks, tagging ROC-AUC and mAP, loss), and learning_rate its schedule."""
    run_dir = tmp_path / "run"
    run([mulan_bin("mulan-train"), "--dataset", timbre_dataset["dataset"], "--run-dir", str(run_dir), *TINY,
         "--steps", "10", "--lr", "2e-3", "--warmup-steps", "3", "--eval-every", "10", "--checkpoint-every", "10",
         "--log-every", "1", "--threads", "2", "--seed", "5"])
    lines = metrics(run_dir)
    for line in lines:
        if "split" not in line:
            assert line["learning_rate"] == pytest.approx(learning_rate(line["step"] - 1, 2e-3, 3, 10), rel=1e-7)
    model = MulanModel.from_checkpoint(str(run_dir / ckpt.file_name(10)))
    for split in ("valid", "test"):
        want = next(line for line in lines if line.get("split") == split)
        clips = EvaluationClips.load(ShardSet.open(timbre_dataset["dataset"], split), model.config, split)
        got = evaluation_line(evaluate(model, clips, model.config), 10, model.loss.temperature, 12)
        print(split, "mulan-train:", want, "\nPyTorch:", got)
        assert set(got) == set(want)
        for key, value in want.items():
            if key == "examples_per_second":
                continue
            if isinstance(value, float):
                assert got[key] == pytest.approx(value, rel=1e-4, abs=1e-5), key
            else:
                assert got[key] == value, key


def test_usage_errors_exit_64(timbre_dataset: Dict[str, str], ddp_run: Path, tmp_path: Path) -> None:
    base = ["--dataset", timbre_dataset["dataset"], *OPTIONS, "--steps", "2"]
    r = launch(single(base + ["--run-dir", str(ddp_run)]), ok=(64,))
    assert "already holds checkpoints" in r.stderr and "--resume" in r.stderr, r.stderr
    r = launch(single(base + ["--run-dir", str(tmp_path / "a"), "--mix", "tags=2,moods=1"]), ok=(64,))
    assert "--mix" in r.stderr and "moods" in r.stderr, r.stderr
    r = launch(single(base + ["--run-dir", str(tmp_path / "b"), "--precision", "fp16", "--device", "cpu"]), ok=(64,))
    assert "fp16 needs a CUDA device" in r.stderr, r.stderr
    r = launch(single(base + ["--run-dir", str(tmp_path / "d"), "--loss", "bogus"]), ok=(64,))  # argparse's own errors
    assert "invalid choice" in r.stderr, r.stderr
    r = launch([sys.executable, "-m", "mulan_torch", "train", "--version"])  # the mulan-torch CLI's train
    assert "mulan-torch" in r.stdout, r.stdout
    r = launch(single(["--dataset", str(tmp_path), "--run-dir", str(tmp_path / "c")]), ok=(1,))
    assert "dataset.json" in r.stderr, r.stderr


def test_bf16_autocast_on_cpu(timbre_dataset: Dict[str, str], tmp_path: Path) -> None:
    """Mixed precision's code path (autocast, float32 loss) runs on CPU with bfloat16."""
    run_dir = tmp_path / "run"
    launch(single(["--dataset", timbre_dataset["dataset"], "--run-dir", str(run_dir), *OPTIONS, "--steps", "3",
                   "--precision", "bf16", "--eval-every", "100", "--workers", "0"]))
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["precision"] == "bf16" and math.isfinite(summary["final_loss"]), summary
    model = MulanModel.from_checkpoint(str(run_dir))
    assert all(t.dtype == torch.float32 for t in model.state_dict().values())


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


ROOT = Path(__file__).resolve().parents[2]


def test_slurm_recipe_runs_torchrun_and_resumes(timbre_dataset: Dict[str, str], tmp_path: Path) -> None:
    """manifests/slurm/mulan-torch-train.sbatch as one node of a job runs it: srun and scontrol are
    stand-ins (srun runs its command once, as on a 1-node allocation); the script's own torchrun
    line, rendezvous and --resume are what runs. A second submission with more steps continues."""
    shims = tmp_path / "bin"
    shims.mkdir()
    (shims / "srun").write_text('#!/bin/bash\nwhile [[ "$1" == -* ]]; do shift; done\nexec "$@"\n')
    (shims / "scontrol").write_text('#!/bin/bash\n[ "$1 $2" = "show hostnames" ] && echo localhost\n')
    for f in shims.iterdir():
        f.chmod(0o755)
    run_dir = tmp_path / "run"
    env = dict(train_env(), PATH=f"{shims}:{os.environ['PATH']}", SLURM_JOB_NODELIST="localhost",
               SLURM_JOB_NUM_NODES="1", SLURM_JOB_ID="4242", NPROC_PER_NODE="2", PYTHON=sys.executable,
               MASTER_PORT=str(free_port()), DATASET=timbre_dataset["dataset"], RUN_DIR=str(run_dir))
    options = " ".join([*OPTIONS, "--checkpoint-every", "2", "--eval-every", "100", "--workers", "0"])
    script = str(ROOT / "manifests" / "slurm" / "mulan-torch-train.sbatch")
    for steps, first in ((4, 0), (6, 4)):
        env["TRAIN_OPTIONS"] = f"{options} --steps {steps}"
        r = subprocess.run(["bash", script], env=env, capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, r.stderr[-4000:]
        summary = json.loads((run_dir / "summary.json").read_text())
        assert (summary["world_size"], summary["first_step"], summary["last_step"]) == (2, first, steps), summary
    assert ckpt.read(str(run_dir / ckpt.file_name(6))).step == 6


def test_kubeflow_pytorchjob_recipe(timbre_dataset: Dict[str, str], tmp_path: Path) -> None:
    """manifests/k8s/mulan-torch-pytorchjob.yaml is a PyTorchJob whose pods run one command; that
    command runs here with the environment the training operator gives a 1-node job's master."""
    import yaml

    job = yaml.safe_load((ROOT / "manifests" / "k8s" / "mulan-torch-pytorchjob.yaml").read_text())
    assert (job["apiVersion"], job["kind"]) == ("kubeflow.org/v1", "PyTorchJob")
    specs = job["spec"]["pytorchReplicaSpecs"]
    assert specs["Master"]["replicas"] == 1 and specs["Worker"]["template"] == specs["Master"]["template"]
    container = specs["Master"]["template"]["spec"]["containers"][0]
    assert container["name"] == "pytorch"  # the name the operator injects its environment into
    env = {e["name"]: e["value"] for e in container["env"]}
    assert container["resources"]["limits"]["nvidia.com/gpu"] == int(env["NPROC_PER_NODE"])
    run_dir = tmp_path / "run"
    env.update(DATASET=timbre_dataset["dataset"], RUN_DIR=str(run_dir), NPROC_PER_NODE="2",
               TRAIN_OPTIONS=" ".join([*OPTIONS, "--steps", "3", "--eval-every", "100", "--workers", "0"]))
    operator = {"PET_NNODES": "1", "PET_NODE_RANK": "0", "PET_MASTER_ADDR": "127.0.0.1",
                "PET_MASTER_PORT": str(free_port())}
    path = f"{Path(sys.executable).parent}:{os.environ['PATH']}"  # python3 is the test venv's
    r = subprocess.run(container["command"], env={**train_env(), **env, **operator, "PATH": path},
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-4000:]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["last_step"] == 3, summary


def test_warm_started_frozen_text_tower(timbre_dataset: Dict[str, str], bert_folder: str, tmp_path: Path) -> None:
    """--text-init with --text-train frozen: the encoder keeps the Hugging Face weights, the projection trains."""
    from mulan_torch.model import load_pretrained_text

    run_dir = tmp_path / "run"
    options = [o for o in OPTIONS if o != "--quiet"]
    launch(single(["--dataset", timbre_dataset["dataset"], "--run-dir", str(run_dir), *options, "--steps", "2",
                   "--text-init", bert_folder, "--text-train", "frozen", "--eval-every", "100", "--workers", "0",
                   "--quiet"]))
    model = MulanModel.from_checkpoint(str(run_dir))
    assert model.config["textInit"] == bert_folder and model.config["textTraining"] == "frozen"
    assert model.config["text"]["pooling"] == "mean"
    reference = load_pretrained_text(bert_folder, max_length=16, embedding_dim=128)
    for name, t in reference.state_dict().items():
        if name.startswith("projection."):
            assert not torch.equal(model.text.state_dict()[name], t), name   # random start, then trained
        else:
            assert torch.equal(model.text.state_dict()[name], t), name
    assert ckpt.read(str(run_dir / ckpt.file_name(2))).optimizer_step == 2
