"""The shipped Slurm drivers on a real Slurm (issue 21): a private single-node cluster (slurm_cluster.py)
runs manifests/slurm/submit-pipeline.sh over a small generated corpus, as a user submits it: job arrays
of 3 tasks for ingest, text and both filter phases, dedupe, 2 shard tasks and finalize, chained with
afterok. Every job must end COMPLETED and the dataset must equal a single-process run's byte for byte.
Then the same with one ingest task killed mid-run (scancel --signal=KILL) and re-run the way
docs/scale-out.md says; the PyTorch recipe (sbatch + srun torchrun, 2 gloo processes) on the
pipeline's dataset, read by mulan-eval; and the failures a user meets: no Slurm, sbatch refusing a
job, a stage whose dependency failed.

Needs root and Slurm (scripts/setup.sh --python installs it); without them the tests fail, saying why."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, Iterator, List, Sequence

import pytest

from conftest import ROOT, TINY, bert_vocabulary, mulan_bin, run
from slurm_cluster import ClusterUnavailable, SlurmCluster

SLURM = ROOT / "manifests" / "slurm"
ONTOLOGY = ROOT / "manifests" / "audioset-music-ontology.json"
WORKERS, SHARD_WORKERS = 3, 2
INGEST_OPTIONS = "--sample-rate 16000 --clip-seconds 5"
SHARD_OPTIONS = "--samples-per-shard 8 --seed 5"
FAILED_STATES = {"FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "BOOT_FAIL", "DEADLINE",
                 "PREEMPTED"}
TERMINAL_STATES = FAILED_STATES | {"COMPLETED"}
# Worker of each track id among 3 (first 8 bytes of SHA-256 mod 3, docs/scale-out.md): t12 is worker
# 1's, and long, so that the killed task is still ingesting when it is killed; t13 copies t0 (worker 0)
# into worker 2's part, a duplicate across parts for mulan-dedupe.
GENRES = ["jazz", "rock", "ambient", "folk"]
INSTRUMENTS = ["piano", "guitar", "synth"]
ASET = {"jazz": ["Jazz", "Piano"], "rock": ["Rock music", "Electric guitar"], "ambient": ["Ambient music", "Synthesizer"]}
SPLITS = {"t4": "valid", "t10": "valid", "t5": "test", "t11": "test"}


def worker_of(track_id: str, n: int) -> int:
    return int.from_bytes(hashlib.sha256(track_id.encode()).digest()[:8], "big") % n


def mulan_processes(workdir: Path) -> List[int]:
    """The pids of processes whose command line names the work directory."""
    pids = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and str(workdir).encode() in (entry / "cmdline").read_bytes():
                pids.append(int(entry.name))
        except OSError:
            continue
    return pids


# MARK: The corpus and the single-process reference


def make_corpus(folder: Path) -> Dict[str, str]:
    """14 tracks (20 s, t12 180 s; stepped melodies that fingerprint well) in train/valid/test, with
    tags, descriptions and AudioSet labels (generic JSON Lines) and playlists; a filter configuration
    whose [aset] section differs from the shipped one (add_ancestors)."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = ["track_id,path,start_s,end_s,split"]
    texts: List[dict] = []
    for i in range(13):
        seconds = 180 if i == 12 else 20
        path = folder / "audio" / f"t{i}.flac"
        path.parent.mkdir(exist_ok=True)
        melody = f"0.3*sin(2*PI*(220+55*mod(floor(t*3)*{i + 2},7))*t)+0.1*sin(2*PI*{440 + 30 * i}*t)*gt(mod(t,1.3),0.6)"
        run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i", f"aevalsrc=exprs='{melody}':s=44100:d={seconds}",
             "-ac", "1", str(path)])
        genre, instrument = GENRES[i % len(GENRES)], INSTRUMENTS[i % len(INSTRUMENTS)]
        texts.append({"track_id": f"t{i}", "tags": [genre, instrument, f"{genre} {instrument}", "seen live"],
                      "description": f"A {genre} piece where a {instrument} plays a stepped melody, take {i}.",
                      **({"aset": ASET[genre]} if genre in ASET else {})})
    shutil.copy(folder / "audio" / "t0.flac", folder / "audio" / "t13.flac")
    texts.append({"track_id": "t13", "tags": ["jazz", "piano"]})
    for i in range(14):
        rows.append(f"t{i},{folder / 'audio' / f't{i}.flac'},,,{SPLITS.get(f't{i}', 'train')}")
    (folder / "tracks.csv").write_text("\n".join(rows) + "\n")
    (folder / "texts.jsonl").write_text("".join(json.dumps(t) + "\n" for t in texts))
    playlists = [{"playlist_id": "p1", "title": "late night jazz", "track_ids": ["t0", "t4", "t8", "t13"]},
                 {"playlist_id": "p2", "title": "road trip rock anthems", "track_ids": ["t1", "t5", "t9"]},
                 {"playlist_id": "p3", "title": "deep focus ambient", "track_ids": ["t2", "t6", "t10", "t12"]}]
    (folder / "playlists.jsonl").write_text("".join(json.dumps(p) + "\n" for p in playlists))
    # An edited [aset] section: the filter's version differs from the shipped settings' only if the
    # Slurm stage passes --config to the aset filter as well.
    config = (ROOT / "manifests" / "filters.toml").read_text()
    assert "add_ancestors = false" in config
    (folder / "filters.toml").write_text(config.replace("add_ancestors = false", "add_ancestors = true"))
    shutil.copy(ROOT / "manifests" / "relevance-model.json", folder / "relevance-model.json")
    return {"MANIFEST": str(folder / "tracks.csv"),
            "TEXTS": f"generic:{folder / 'texts.jsonl'} playlists:{folder / 'playlists.jsonl'}",
            "LABELS": str(ONTOLOGY), "VOCAB": bert_vocabulary(), "FILTER_CONFIG": str(folder / "filters.toml")}


def single_process_dataset(inputs: Dict[str, str], work: Path) -> Path:
    """The pipeline as one process, with the commands of docs/scale-out.md minus the worker options."""
    common = ["--workdir", str(work), "--quiet"]
    run([mulan_bin("mulan-ingest"), "audio", *common, "--manifest", inputs["MANIFEST"], *INGEST_OPTIONS.split()],
        ok=(0, 3))
    for item in inputs["TEXTS"].split():
        form, path = item.split(":", 1)
        run([mulan_bin("mulan-ingest"), "text", *common, "--format", form, "--labels", inputs["LABELS"], path], ok=(0, 3))
    for source in ("tags", "descriptions", "playlists", "aset"):
        labels = ["--labels", inputs["LABELS"]] if source == "aset" else []
        run([mulan_bin("mulan-filter"), "--source", source, *common, "--vocab", inputs["VOCAB"],
             "--config", inputs["FILTER_CONFIG"], *labels], ok=(0, 3))
    run([mulan_bin("mulan-dedupe"), *common], ok=(0, 3))
    run([mulan_bin("mulan-shard"), *common, *SHARD_OPTIONS.split()])
    return (work / "shards" / "latest").resolve()


def dataset_files(folder: Path) -> Dict[str, str]:
    """Every file of a dataset folder → SHA-256 of its bytes."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


# MARK: Fixtures


@pytest.fixture(scope="module")
def cluster() -> Iterator[SlurmCluster]:
    c = SlurmCluster(cpus=2)
    try:
        c.start()
    except ClusterUnavailable as error:
        pytest.fail(f"the Slurm tests cannot run: {error}", pytrace=False)
    try:
        yield c
    finally:
        c.stop()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Dict[str, str]:
    folder = tmp_path_factory.mktemp("slurm-corpus")
    inputs = make_corpus(folder)
    inputs["reference"] = str(single_process_dataset(inputs, folder / "one-process"))
    return inputs


class Pipeline:
    """One submission of submit-pipeline.sh into its own work directory: the environment it ran with,
    its job ids by stage, and the log folder of its tasks."""

    def __init__(self, cluster: SlurmCluster, corpus: Dict[str, str], folder: Path, **extra: str) -> None:
        self.cluster = cluster
        self.folder = folder
        self.workdir = folder / "work"
        self.logs = folder / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.env = dict(cluster.env, **{k: v for k, v in corpus.items() if k != "reference"},
                        N=str(WORKERS), SHARD_N=str(SHARD_WORKERS), WORKDIR=str(self.workdir),
                        MULAN_BIN=os.path.dirname(mulan_bin("mulan-ingest")), INGEST_OPTIONS=INGEST_OPTIONS,
                        SHARD_OPTIONS=SHARD_OPTIONS, CPUS_PER_TASK="1", MULAN_PROGRESS_INTERVAL="0",
                        SBATCH_OPTIONS=f"--output={self.logs}/%x-%A_%a.log")
        self.env.update(extra)
        self.jobs: Dict[str, str] = {}

    def submit(self) -> subprocess.CompletedProcess:
        r = subprocess.run(["bash", str(SLURM / "submit-pipeline.sh")], env=self.env, cwd=self.folder,
                           capture_output=True, text=True, timeout=120)
        if r.returncode == 0:
            line = r.stdout.strip().splitlines()[-1]
            assert line.startswith("submitted: "), r.stdout
            # "submitted: ingest 1, text 2, filter 3 then 4, dedupe 5, shard 6, finalize 7"
            words = line.replace(",", "").split()[1:]
            self.jobs = {"ingest": words[1], "text": words[3], "filter-local": words[5], "filter-global": words[7],
                         "dedupe": words[9], "shard": words[11], "finalize": words[13]}
        return r

    def ours(self, jobs: Dict[str, Dict[str, str]]) -> Dict[str, Dict[str, str]]:
        ids = set(self.jobs.values())
        return {k: v for k, v in jobs.items() if k.split("_")[0] in ids}

    def log_tails(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-1500:]}" for p in sorted(self.logs.glob("*.log")))

    def wait_for_finalize(self, timeout: float, allowed_failures: Sequence[str] = ()) -> Dict[str, Dict[str, str]]:
        """Waits until the finalize job ends; fails at once, with the logs, when another task fails."""
        deadline = time.monotonic() + timeout
        while True:
            jobs = self.ours(self.cluster.jobs())
            failed = {k: v["JobState"] for k, v in jobs.items() if v["JobState"] in FAILED_STATES and k not in allowed_failures}
            assert not failed, f"tasks failed: {failed}\n{self.log_tails()}"
            final = jobs.get(self.jobs["finalize"])
            if final and final["JobState"] in TERMINAL_STATES:
                return jobs
            if time.monotonic() > deadline:
                states = {k: (v["JobName"], v["JobState"], v["Reason"]) for k, v in sorted(jobs.items())}
                raise AssertionError(f"the pipeline did not finish in {timeout:.0f} s: {states}\n{self.log_tails()}")
            time.sleep(1)

    def expected_tasks(self) -> List[str]:
        keys = []
        for stage, job in self.jobs.items():
            count = {"dedupe": 1, "finalize": 1, "shard": SHARD_WORKERS}.get(stage, WORKERS)
            keys += [job] if stage in ("dedupe", "finalize") else [f"{job}_{i}" for i in range(count)]
        return keys

    def dataset(self) -> Path:
        return (self.workdir / "shards" / "latest").resolve()


@pytest.fixture(scope="module")
def clean_run(cluster: SlurmCluster, corpus: Dict[str, str], tmp_path_factory: pytest.TempPathFactory):
    pipeline = Pipeline(cluster, corpus, tmp_path_factory.mktemp("slurm-clean"))
    started = time.monotonic()
    r = pipeline.submit()
    assert r.returncode == 0, r.stderr
    jobs = pipeline.wait_for_finalize(timeout=600)
    print(f"Slurm pipeline, {WORKERS} workers: {time.monotonic() - started:.1f} s from submission to finalize")
    return pipeline, jobs


# MARK: Tests


def test_pipeline_on_slurm_equals_one_process(clean_run, corpus: Dict[str, str]) -> None:
    pipeline, jobs = clean_run
    # Every stage's every task ran under Slurm and ended COMPLETED.
    expected = pipeline.expected_tasks()
    assert sorted(jobs) == sorted(expected), (sorted(jobs), expected)
    states = {k: jobs[k]["JobState"] for k in expected}
    assert set(states.values()) == {"COMPLETED"}, f"{states}\n{pipeline.log_tails()}"
    # The chain: each stage started after every task of the one before had ended (times in seconds).
    order = ["ingest", "text", "filter-local", "filter-global", "dedupe", "shard", "finalize"]
    for before, after in zip(order, order[1:]):
        ended = max(v["EndTime"] for k, v in jobs.items() if k.split("_")[0] == pipeline.jobs[before])
        started = min(v["StartTime"] for k, v in jobs.items() if k.split("_")[0] == pipeline.jobs[after])
        assert started >= ended, f"{after} started at {started}, before {before} ended at {ended}"
    # The parts are the workers' (one per array task) and the logs say which worker each task was.
    assert sorted(p.name for p in (pipeline.workdir / "parts").iterdir()) == [f"{i}-of-{WORKERS}" for i in range(WORKERS)]
    ingest_logs = sorted(pipeline.logs.glob(f"mulan-ingest-{pipeline.jobs['ingest']}_*.log"))
    assert len(ingest_logs) == WORKERS
    for i, log in enumerate(ingest_logs):
        assert f"worker {i} of {WORKERS}" in log.read_text(), log.read_text()[-2000:]
    # dedupe found the copy of t0 (worker 0) that sits in worker 2's part.
    report = json.loads((pipeline.workdir / "reports" / "dedupe.json").read_text())
    assert "t13" in json.dumps(report), report
    # The dataset: the same id, shards and sidecars as one process's.
    reference = Path(corpus["reference"])
    assert pipeline.dataset().name == reference.name
    slurm_files, reference_files = dataset_files(pipeline.dataset()), dataset_files(reference)
    assert any(name.endswith(".tar") for name in reference_files) and "dataset.json" in reference_files
    assert slurm_files == reference_files


def test_killed_ingest_task_resubmitted_alone(cluster: SlurmCluster, corpus: Dict[str, str], tmp_path: Path) -> None:
    """Ingest task 1 killed mid-run: the stages after it stay pending (nothing runs on partial input);
    the task resubmitted alone (sbatch --array=1) and the next stage pointed at it, as
    docs/scale-out.md says, give the single-process dataset byte for byte."""
    pipeline = Pipeline(cluster, corpus, tmp_path)
    started = time.monotonic()
    r = pipeline.submit()
    assert r.returncode == 0, r.stderr
    ingest, text = pipeline.jobs["ingest"], pipeline.jobs["text"]
    killed = f"{ingest}_1"
    clips = pipeline.workdir / "parts" / f"1-of-{WORKERS}" / "clips"
    deadline = time.monotonic() + 180
    # Mid-run: the task is running and has written clips, but not all (its long track takes seconds).
    while not (clips.is_dir() and any(clips.rglob("*.flac"))):
        assert time.monotonic() < deadline, f"ingest task 1 wrote no clip in 180 s\n{pipeline.log_tails()}"
        time.sleep(0.05)
    # Slurm 22.05 cancels the task: SIGTERM to its processes, SIGKILL after KillWait. mulan-ingest has
    # no SIGTERM handler: it ends at once, mid-write, as if killed. (With --batch, only the task's
    # script gets the SIGKILL and mulan-ingest under it runs on to its end: not a kill.)
    cluster.run(["scancel", "--signal=KILL", killed])
    jobs = cluster.wait_until(lambda j: all(j.get(f"{ingest}_{i}", {}).get("JobState") in TERMINAL_STATES
                                            for i in range(WORKERS)), "the ingest tasks end", timeout=120)
    assert jobs[killed]["JobState"] == "CANCELLED", (
        f"ingest task 1 ended {jobs[killed]['JobState']} ({jobs[killed]['ExitCode']}): did it finish before the kill?")
    assert not mulan_processes(pipeline.workdir), "a mulan process of the cancelled task runs on"
    print(f"ingest task 1 after scancel --signal=KILL: {jobs[killed]['JobState']}, exit {jobs[killed]['ExitCode']}")
    assert not (pipeline.workdir / "reports" / "ingest-1.json").exists()  # it never got to its report
    # The text stage never starts: Slurm holds it (and everything after) on the failed dependency.
    time.sleep(3)
    jobs = pipeline.ours(cluster.jobs())
    assert jobs[text]["JobState"] == "PENDING" and jobs[text]["Reason"] == "DependencyNeverSatisfied", jobs[text]
    assert not [k for k in jobs if k.startswith(f"{text}_")], "a text task ran after a failed ingest task"

    # docs/scale-out.md, "When a task fails": resubmit the task alone with the same settings, then
    # make the waiting stage depend on the new job.
    r = cluster.run(["sbatch", "--parsable", "--export=ALL", "--job-name=mulan-ingest", "--cpus-per-task=1",
                     f"--output={pipeline.logs}/%x-%A_%a.log", "--array=1", str(SLURM / "mulan-pipeline.sbatch"),
                     "ingest"], env=pipeline.env)
    retry = r.stdout.strip().split(";")[0]
    cluster.run(["scontrol", "update", f"JobId={text}", f"Dependency=afterok:{retry}"])
    pipeline.jobs["ingest-retry"] = retry
    jobs = pipeline.wait_for_finalize(timeout=600, allowed_failures=[killed])
    print(f"Slurm pipeline with a killed and resubmitted ingest task: {time.monotonic() - started:.1f} s")
    states = {k: v["JobState"] for k, v in jobs.items()}
    assert states.pop(killed) in FAILED_STATES
    assert states.pop(f"{retry}_1") == "COMPLETED"
    assert set(states.values()) == {"COMPLETED"}, states
    retry_log = next(pipeline.logs.glob(f"mulan-ingest-{retry}_1.log")).read_text()
    assert f"worker 1 of {WORKERS}" in retry_log, retry_log[-2000:]
    reference = Path(corpus["reference"])
    assert pipeline.dataset().name == reference.name
    assert dataset_files(pipeline.dataset()) == dataset_files(reference)


def test_training_recipe_on_slurm_and_mulan_eval(cluster: SlurmCluster, clean_run, vocab: str, tmp_path: Path) -> None:
    """manifests/slurm/mulan-torch-train.sbatch on the cluster (one node, --gpus-per-node=0: 2 gloo
    processes under srun + torchrun) trains a tiny model for 4 steps on the pipeline's dataset;
    mulan-eval reads its checkpoint."""
    pipeline, _ = clean_run
    run_dir = tmp_path / "run"
    options = [*TINY, "--lr", "2e-3", "--warmup-steps", "2", "--log-every", "1", "--seed", "3", "--steps", "4",
               "--checkpoint-every", "2", "--eval-every", "100", "--workers", "0"]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(cluster.env, DATASET=str(pipeline.dataset()), RUN_DIR=str(run_dir), TRAIN_OPTIONS=" ".join(options),
               NPROC_PER_NODE="2", PYTHON=sys.executable, MASTER_PORT=str(port), OMP_NUM_THREADS="1",
               MULAN_PROGRESS_INTERVAL="0", PYTHONPATH=os.pathsep.join([str(ROOT / "python"), os.environ.get("PYTHONPATH", "")]))
    log = tmp_path / "train.log"
    started = time.monotonic()
    r = cluster.run(["sbatch", "--parsable", "--nodes=1", "--gpus-per-node=0", "--cpus-per-task=2", f"--output={log}",
                     str(SLURM / "mulan-torch-train.sbatch")], env=env)
    job = r.stdout.strip().split(";")[0]
    jobs = cluster.wait_until(lambda j: j.get(job, {}).get("JobState") in TERMINAL_STATES, "the training job ends",
                              timeout=600)
    output = log.read_text(errors="replace") if log.exists() else "(no log)"
    assert jobs[job]["JobState"] == "COMPLETED", f"{jobs[job]['JobState']}:\n{output[-4000:]}"
    print(f"Slurm training job, 4 steps on 2 gloo processes: {time.monotonic() - started:.1f} s")
    assert "1 node(s) × 2 process(es)" in output, output[-2000:]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert (summary["world_size"], summary["backend"], summary["last_step"]) == (2, "gloo", 4), summary
    checkpoint = run_dir / "checkpoint-000004.safetensors"
    assert checkpoint.exists(), sorted(p.name for p in run_dir.iterdir())
    report = tmp_path / "eval.json"
    r = run([mulan_bin("mulan-eval"), "--checkpoint", str(checkpoint), "--vocab", vocab, "--shards",
             str(pipeline.dataset()), "--split", "test", "--json", str(report), "--quiet", "--threads", "2"])
    assert "macro ROC-AUC" in r.stdout, r.stdout
    tagging = json.loads(report.read_text())["tagging"]
    assert tagging["tags_scored"] >= 1 and 0 <= tagging["macro_roc_auc"] <= 1, tagging


def test_submit_without_slurm_says_so(corpus: Dict[str, str], tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"  # a PATH with bash and the basic tools, and no Slurm command
    bin_dir.mkdir()
    for tool in ("bash", "dirname", "cat"):
        os.symlink(shutil.which(tool), bin_dir / tool)
    env = dict(os.environ, PATH=str(bin_dir), N="3", WORKDIR=str(tmp_path / "work"))
    r = subprocess.run(["bash", str(SLURM / "submit-pipeline.sh")], env=env, capture_output=True, text=True)
    assert r.returncode == 69, (r.returncode, r.stderr)
    assert "sbatch not found" in r.stderr and "slurm-client" in r.stderr, r.stderr


def test_refused_submission_leaves_nothing_queued(cluster: SlurmCluster, corpus: Dict[str, str], tmp_path: Path) -> None:
    """Requests no node can meet (more CPUs than the node has, which sbatch would queue forever, or
    more memory, which it refuses): submit-pipeline.sh says so and submits nothing. A job refused after
    others were queued (a shard array larger than the cluster's MaxArraySize, 1001 by default):
    submit-pipeline.sh exits 1, names the stage and cancels the 5 jobs it had queued."""
    before = set(cluster.jobs())
    for name, setting in (("cpus", {"CPUS_PER_TASK": "64"}), ("memory", {"MEM_PER_TASK": "64G"})):
        r = Pipeline(cluster, corpus, tmp_path / name, **setting).submit()
        assert r.returncode == 1, (name, r.returncode, r.stdout, r.stderr)
        assert "Slurm could never run the ingest tasks" in r.stderr and "nothing was submitted" in r.stderr, r.stderr
        assert "Requested node configuration is not available" in r.stderr, r.stderr
        assert set(cluster.jobs()) == before

    late = Pipeline(cluster, corpus, tmp_path / "array", SHARD_N="5000")
    late.env["SBATCH_OPTIONS"] += " --begin=now+3600"  # queued jobs start in an hour: none runs before the cancel
    r = late.submit()
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    assert "sbatch refused the shard job" in r.stderr and "cancelled the jobs already queued" in r.stderr, r.stderr
    queued = r.stderr.split("cancelled the jobs already queued (")[1].split(")")[0].split()
    assert len(queued) == 5, r.stderr
    jobs = cluster.wait_until(lambda j: all(j.get(q, {}).get("JobState") == "CANCELLED" for q in queued),
                              "the queued jobs cancelled", timeout=30)
    assert {k.split("_")[0] for k in jobs} - {k.split("_")[0] for k in before} == set(queued)
    assert not (tmp_path / "array" / "work").exists()
