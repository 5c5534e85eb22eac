"""`repro submit` without Slurm: a row job in a local process, preempted mid-training, is requeued
by submitit and resumes from its checkpoint (the reproduction tier: two process starts, ~1 min).

The signal is the one Slurm sends before a time limit (submitit asks for it with --signal=USR2@);
submitit calls the job's `checkpoint` method and the local executor starts the job again.
"""

import os
import re
import signal
import time
from pathlib import Path

import pytest

from repro.ops.jobs import RowJob
from repro.ops.submit import Resources, executor_for, plan
from repro.runs.checkpoint import load_checkpoint
from repro.verdicts.history import new_run
from tests.conftest import make_micro_budget

pytestmark = pytest.mark.slow
EPOCHS = 12  # enough epochs that the job is still training when the signal arrives
DEADLINE_SECONDS = 600


def task_pids(controller_pid: int) -> list[int]:
    """The processes submitit's local controller started (the job itself)."""
    return [int(p) for p in Path(f"/proc/{controller_pid}/task/{controller_pid}/children").read_text().split()]


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="finds the job's process through /proc (Linux only)")
def test_preempted_local_job_requeues_and_resumes_from_its_checkpoint(tmp_path):
    budget = make_micro_budget(epochs_clean=EPOCHS)
    job = RowJob("normal", budget, 0, tmp_path / "out", new_run("requeue-test"), device="cpu")
    spec = plan(["normal"], [0], job, Resources(gpus=0, cpus=1, time_min=30))[0]
    submitted = executor_for(spec, tmp_path / "submitit", "local").submit(spec.function)
    checkpoint = tmp_path / "out" / budget.run_name / "seed0" / "normal" / "checkpoint.pt"
    deadline = time.monotonic() + DEADLINE_SECONDS
    while not (checkpoint.exists() and load_checkpoint(checkpoint)["epoch"] >= 1):
        assert not submitted.done(), f"the job ended before its first checkpoint:\n{submitted.stderr()}"
        assert time.monotonic() < deadline, "no checkpoint within the deadline"
        time.sleep(0.1)
    epoch_at_signal = load_checkpoint(checkpoint)["epoch"]
    assert epoch_at_signal < EPOCHS, "training finished before the signal: raise EPOCHS"
    (task,) = task_pids(submitted._process.pid)
    os.kill(task, signal.SIGUSR2)

    outcome = submitted.result()
    log = submitted.stderr()
    assert outcome["attempt"] == 2, f"the job must have been requeued once:\n{log}"
    finished = [int(e) for e in re.findall(r"train normal: epoch (\d+)/", log)]
    assert sorted(finished) == list(range(1, EPOCHS + 1)), \
        f"each epoch trained exactly once across the two attempts (resumed, not restarted): {finished}"
    assert load_checkpoint(checkpoint)["epoch"] == EPOCHS, "the requeued job finished the run"
