"""A private single-node Slurm cluster for the tests (GUIDE §8's configuration): munged with its own
key and socket, slurmctld and slurmd on their own ports, state, spool, pid and log files in one
temporary folder. ``SlurmCluster.start`` raises ``ClusterUnavailable`` with the reason when it cannot
run (not root, Slurm or munge missing, a daemon that does not come up); ``stop`` ends the daemons by
their pid files and removes the folder. ``env`` is the environment for the clients (SLURM_CONF)."""
from __future__ import annotations

import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

DAEMONS = ("munged", "slurmctld", "slurmd")
CLIENTS = ("sbatch", "scontrol", "scancel", "squeue", "sinfo", "srun")


class ClusterUnavailable(Exception):
    """The cluster cannot be started here; the message says why and what to do."""


def free_ports(count: int) -> List[int]:
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def missing_programs() -> List[str]:
    return [p for p in DAEMONS + CLIENTS if shutil.which(p) is None and not os.access(f"/usr/sbin/{p}", os.X_OK)]


class SlurmCluster:
    def __init__(self, cpus: int = 2, memory_mb: int = 8000) -> None:
        self.cpus = cpus
        self.memory_mb = memory_mb
        self.root: Optional[Path] = None
        self.env: Dict[str, str] = {}
        self.node = socket.gethostname().split(".")[0]

    # Paths in the private folder.
    def path(self, *parts: str) -> Path:
        assert self.root is not None
        return self.root.joinpath(*parts)

    def start(self) -> "SlurmCluster":
        if os.geteuid() != 0:
            raise ClusterUnavailable("the Slurm test starts slurmctld, slurmd and munged and needs root "
                                     f"(running as uid {os.geteuid()}); run make test as root")
        missing = missing_programs()
        if missing:
            raise ClusterUnavailable(f"Slurm is not installed here ({', '.join(missing)} missing); "
                                     "scripts/setup.sh --python installs slurmctld, slurmd, slurm-client and munge")
        try:
            munge_user = pwd.getpwnam("munge")
        except KeyError:
            raise ClusterUnavailable("there is no munge user (the munge package makes it): "
                                     "scripts/setup.sh --python installs munge") from None
        # The folder must be reachable by munged (user munge): 0755 on the folder, its own subfolder.
        self.root = Path(tempfile.mkdtemp(prefix="mulan-slurm-"))
        self.root.chmod(0o755)
        for name in ("munge", "state", "spool", "log", "jobs"):
            self.path(name).mkdir()
        self.path("jobs").chmod(0o1777)
        munge = self.path("munge")
        key = munge / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o400)
        for p in (munge, key):
            os.chown(p, munge_user.pw_uid, munge_user.pw_gid)
        munge.chmod(0o700)
        ctld_port, node_port = free_ports(2)
        conf = self.path("slurm.conf")
        conf.write_text("\n".join([
            "ClusterName=mulantest",
            f"SlurmctldHost={self.node}(127.0.0.1)",
            "SlurmUser=root",
            "SlurmdUser=root",
            f"SlurmctldPort={ctld_port}",
            f"SlurmdPort={node_port}",
            "AuthType=auth/munge",
            "CredType=cred/munge",
            f"AuthInfo=socket={munge}/munge.socket",
            f"StateSaveLocation={self.path('state')}",
            f"SlurmdSpoolDir={self.path('spool')}",
            f"SlurmctldPidFile={self.path('slurmctld.pid')}",
            f"SlurmdPidFile={self.path('slurmd.pid')}",
            f"SlurmctldLogFile={self.path('log', 'slurmctld.log')}",
            f"SlurmdLogFile={self.path('log', 'slurmd.log')}",
            "SlurmctldDebug=info",
            "SlurmdDebug=info",
            "ProctrackType=proctrack/linuxproc",
            "TaskPlugin=task/none",
            "SelectType=select/cons_tres",
            "SelectTypeParameters=CR_Core",
            "JobAcctGatherType=jobacct_gather/none",
            "AccountingStorageType=accounting_storage/none",
            "JobCompType=jobcomp/filetxt",
            f"JobCompLoc={self.path('log', 'jobcomp.txt')}",
            "MpiDefault=none",
            "ReturnToService=2",
            "SchedulerType=sched/backfill",
            "MinJobAge=3600",            # finished jobs stay in scontrol show job for the checks
            "KillWait=5",
            "InactiveLimit=0",
            f"NodeName={self.node} NodeAddr=127.0.0.1 CPUs={self.cpus} RealMemory={self.memory_mb} State=UNKNOWN",
            f"PartitionName=test Nodes={self.node} Default=YES MaxTime=INFINITE State=UP",
            "",
        ]))
        self.env = dict(os.environ, SLURM_CONF=str(conf))
        for variable in list(self.env):  # a Slurm job's variables must not leak into our clients
            if variable.startswith("SLURM_") and variable != "SLURM_CONF":
                del self.env[variable]
        try:
            self._run_daemon(["munged", f"--socket={munge}/munge.socket", f"--key-file={key}",
                              f"--pid-file={munge}/munged.pid", f"--log-file={munge}/munged.log",
                              f"--seed-file={munge}/munged.seed", "--force"], user=munge_user)
            self._wait_for(lambda: (munge / "munge.socket").exists(), "munged's socket", munge / "munged.log")
            self._run_daemon(["slurmctld", "-f", str(conf)])
            self._run_daemon(["slurmd", "-f", str(conf), "-N", self.node])
            self._wait_for(self._node_idle, f"node {self.node} idle in sinfo", self.path("log", "slurmctld.log"),
                           timeout=60)
        except Exception:
            self.stop()
            raise
        return self

    def _run_daemon(self, args: Sequence[str], user: Optional[pwd.struct_passwd] = None) -> None:
        program = shutil.which(args[0]) or f"/usr/sbin/{args[0]}"
        preexec = None
        if user is not None:
            def preexec() -> None:  # noqa: E306 (runs in the child before exec)
                os.setgid(user.pw_gid)
                os.setgroups([])
                os.setuid(user.pw_uid)
        r = subprocess.run([program, *args[1:]], env=self.env, capture_output=True, text=True, preexec_fn=preexec,
                           timeout=60)
        if r.returncode != 0:
            raise ClusterUnavailable(f"{args[0]} did not start (exit {r.returncode}): {r.stderr.strip()}")

    def _wait_for(self, ready, what: str, log: Path, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if ready():
                return
            time.sleep(0.3)
        tail = log.read_text(errors="replace")[-3000:] if log.exists() else "(no log)"
        raise ClusterUnavailable(f"{what}: not ready after {timeout:.0f} s; {log}:\n{tail}")

    def _node_idle(self) -> bool:
        r = subprocess.run(["sinfo", "-h", "-N", "-o", "%t"], env=self.env, capture_output=True, text=True)
        return r.returncode == 0 and r.stdout.strip() == "idle"

    def stop(self) -> None:
        """Ends slurmd, slurmctld and munged (SIGTERM, then SIGKILL after 10 s) and removes the folder;
        the jobs' processes are children of slurmd's slurmstepd, which ends them first."""
        if self.root is None:
            return
        if self.env:
            subprocess.run(["scancel", "--full", "--quiet", "--user=root"], env=self.env, capture_output=True,
                           timeout=30)
        for pid_file in (self.path("slurmd.pid"), self.path("slurmctld.pid"), self.path("munge", "munged.pid")):
            try:
                pid = int(pid_file.read_text().strip())
            except (OSError, ValueError):
                continue
            _terminate(pid)
        shutil.rmtree(self.root, ignore_errors=True)
        self.root = None

    # Clients.
    def run(self, args: Sequence[str], env: Optional[Dict[str, str]] = None, check: bool = True,
            timeout: float = 60) -> subprocess.CompletedProcess:
        r = subprocess.run(list(args), env=env or self.env, capture_output=True, text=True, timeout=timeout)
        if check and r.returncode != 0:
            raise AssertionError(f"{' '.join(args)} exited {r.returncode}:\n{r.stderr}\n{r.stdout}")
        return r

    def jobs(self) -> Dict[str, Dict[str, str]]:
        """Every job and array task the controller knows ("123" or "123_4") → its scontrol fields."""
        r = self.run(["scontrol", "show", "job", "-o"], check=False)
        jobs: Dict[str, Dict[str, str]] = {}
        for line in r.stdout.splitlines():
            fields = dict(re.findall(r"(\w+)=(\S*)", line))
            if "JobId" not in fields:
                continue
            key = fields["JobId"]
            if fields.get("ArrayJobId") and fields.get("ArrayTaskId", "").isdigit():
                key = f"{fields['ArrayJobId']}_{fields['ArrayTaskId']}"
            jobs[key] = fields
        return jobs

    def wait_until(self, done, what: str, timeout: float) -> Dict[str, Dict[str, str]]:
        deadline = time.monotonic() + timeout
        while True:
            jobs = self.jobs()
            if done(jobs):
                return jobs
            if time.monotonic() > deadline:
                states = {k: (v.get("JobName"), v.get("JobState"), v.get("Reason")) for k, v in jobs.items()}
                raise AssertionError(f"{what}: not after {timeout:.0f} s; jobs: {states}\n"
                                     + self.path("log", "slurmctld.log").read_text(errors="replace")[-3000:])
            time.sleep(1)


def _terminate(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if not _alive(pid):
            return
        time.sleep(0.1)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _alive(pid: int) -> bool:
    """Whether the process exists and is not a zombie (the daemons' parent may never reap them)."""
    try:
        status = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return status.rsplit(")", 1)[1].split()[0] != "Z"
