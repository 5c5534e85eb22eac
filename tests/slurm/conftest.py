"""The `slurm` tier: `repro submit` against a real Slurm (tests/slurm; `pytest -m slurm`).

Every test module here is marked `slurm` (excluded from the default run, as `slow` is). Needs a
reachable Slurm whose node runs CPU jobs, e.g. the single-node cluster of `sudo .ci/slurm-up` (.ci/run
brings it up for CI); without one every test skips and says so. Jobs ask for no GPU, one
core and 2 GB, at the smoke budget shrunk by --set (SETS) so the tier takes minutes. Slurm holds a
requeued job back for two minutes (Reason=BeginTime); `Queue.wait` releases such holds at once,
which changes when the job starts again, not what it does.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from repro.paper.budgets import get_budget
from repro.runs.checkpoint import load_checkpoint, state_fingerprint

SETS = {"n_train": "1024", "n_test": "128", "n_robust": "32", "eval_pgd_steps": "2", "autoattack_iterations": "2",
        "curve_images": "0"}  # the smoke budget's rows in seconds on one core; its schedules and attacks kept
JOB_FLAGS = ["--cluster", "slurm", "--gpus", "0", "--cpus", "1", "--mem-gb", "2"]
THREADS = {"OMP_NUM_THREADS": "1"}  # a local reference run on the one core each job is given (--cpus 1)
DEADLINE_S = 600  # no job of this tier should take longer on 2 shared cores
POLL_S = 1.0
SINFO_S = 10


def unreachable() -> str | None:
    """Why no Slurm can run the tier here, or None."""
    if not shutil.which("sbatch") or not shutil.which("sinfo"):
        return "no Slurm here (sbatch/sinfo not on PATH); bring one up with `sudo .ci/slurm-up`"
    try:
        answer = subprocess.run(["sinfo", "--noheader", "--format", "%T"], capture_output=True, text=True,
                                timeout=SINFO_S)
    except subprocess.TimeoutExpired:
        return f"sinfo did not answer within {SINFO_S} s (no controller?); try `sudo .ci/slurm-up`"
    states = answer.stdout.split()
    if answer.returncode != 0 or not any(s.rstrip("*~#") in ("idle", "mixed", "allocated") for s in states):
        return (f"Slurm does not answer or has no usable node ({answer.stderr.strip() or states}); "
                "try `sudo .ci/slurm-up`")
    return None


REQUIRE_ENV = "REPRO_REQUIRE_SLURM"  # "1": fail instead of skipping without Slurm (CI, where .ci/run brings it up)


@pytest.fixture(scope="session", autouse=True)
def slurm_reachable():
    """Skip the tier, saying why, where no Slurm answers (asked once, only when a slurm test runs)."""
    reason = unreachable()
    if reason and os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{REQUIRE_ENV}=1 and {reason}")
    if reason:
        pytest.skip(reason)


def set_args(sets: dict) -> list[str]:
    return [arg for field, value in sets.items() for arg in ("--set", f"{field}={value}")]


def repro(*args: str, env: dict | None = None, **kwargs) -> subprocess.CompletedProcess:
    """`python -m repro ARGS` in a fresh process, as a user would run it."""
    return subprocess.run([sys.executable, "-m", "repro", *args], capture_output=True, text=True, timeout=DEADLINE_S,
                          env={**os.environ, **(env or {})}, **kwargs)


def submit(out: Path, *args: str, sets: dict = SETS, quiet: bool = True) -> dict[str, str]:
    """`repro submit` to Slurm (logs in OUT/submitit); returns {job key: Slurm job id} as it printed them.

    quiet=False: a line per trained epoch in the job's log."""
    done = repro("submit", *JOB_FLAGS, "--out", str(out), *(["--quiet"] if quiet else []), *set_args(sets), *args)
    assert done.returncode == 0, f"repro submit failed:\n{done.stdout}{done.stderr}"
    return {key: job_id for job_id, key in re.findall(r"^\s*(\d+)\s+(\S+/seed\d+|report)\s", done.stdout, flags=re.M)}


def job_state(job_id: str) -> dict[str, str]:
    """`scontrol show job` as {field: value} (JobState, Reason, Restarts, ...); finished jobs included."""
    text = subprocess.run(["scontrol", "show", "job", "--oneliner", job_id], capture_output=True, text=True,
                          timeout=30).stdout
    return dict(re.findall(r"(\w+)=(\S*)", text))


class Queue:
    """What `squeue` showed of a submit's jobs while the test waited, line by line as seen."""

    def __init__(self, job_ids):
        self.ids = set(job_ids)
        self.seen: list[str] = []

    def lines(self) -> list[tuple[str, str, str, str]]:
        """(id, name, state, reason) of this submit's jobs still queued or running."""
        text = subprocess.run(["squeue", "--noheader", "--format", "%i %j %T %r"], capture_output=True, text=True,
                              timeout=30).stdout
        rows = [tuple(line.split(maxsplit=3)) for line in text.splitlines() if line.strip()]
        rows = [r for r in rows if r[0] in self.ids]
        for row in rows:
            line = " ".join(row)
            if not self.seen or line not in self.seen[-len(rows):]:
                self.seen.append(line)
        return rows

    def release_requeued(self, rows) -> None:
        """Let a requeued job start now instead of after Slurm's two-minute hold."""
        for job_id, _, state, reason in rows:
            if state == "PENDING" and reason == "BeginTime":
                subprocess.run(["scontrol", "update", f"JobId={job_id}", "StartTime=now"], check=True, timeout=30)

    def wait(self, until=None, deadline_s: float = DEADLINE_S) -> None:
        """Poll until `until(rows)` holds (default: none of the jobs is queued or running any more)."""
        until = until or (lambda rows: not rows)
        deadline = time.monotonic() + deadline_s
        while True:
            rows = self.lines()
            if until(rows):
                return
            assert time.monotonic() < deadline, f"jobs still queued after {deadline_s} s:\n" + "\n".join(self.seen)
            self.release_requeued(rows)
            time.sleep(POLL_S)


@pytest.fixture
def cancel_leftovers():
    """Job ids a test submitted (and local processes it started): what is still queued or running at
    its end is cancelled (killed)."""
    leftovers: list = []
    yield leftovers
    ids = [x for x in leftovers if isinstance(x, str)]
    if ids:
        subprocess.run(["scancel", *ids], capture_output=True, timeout=30)
    for process in leftovers:
        if isinstance(process, subprocess.Popen) and process.poll() is None:
            process.kill()
            process.wait()


def run_folder(out: Path, sets: dict = SETS, seed: int = 0) -> Path:
    return out / get_budget("smoke", sets).run_name / f"seed{seed}"


def fingerprint(checkpoint: Path) -> str:
    return state_fingerprint(torch.load(checkpoint, weights_only=True)["model"])


def wait_for_epoch(checkpoint: Path, epoch: int, queue: Queue) -> int:
    """Block until `checkpoint` holds at least `epoch` epochs; returns its epoch (the job still training)."""
    deadline = time.monotonic() + DEADLINE_S
    while not (checkpoint.exists() and load_checkpoint(checkpoint)["epoch"] >= epoch):
        assert queue.lines(), f"the job ended before its checkpoint reached epoch {epoch}:\n" + "\n".join(queue.seen)
        assert time.monotonic() < deadline, f"no checkpoint of epoch {epoch} within {DEADLINE_S} s"
        time.sleep(0.2)
    return load_checkpoint(checkpoint)["epoch"]


def epochs_logged(log: str, row: str) -> list[int]:
    """The epochs the job's log says were trained (one line per finished epoch, repro/runs/progress.py)."""
    return [int(e) for e in re.findall(rf"train {row}: epoch (\d+)/", log)]
