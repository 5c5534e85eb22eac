"""A row job interrupted the ways Slurm interrupts jobs: the preemption signal (USR2 to its steps),
`scontrol requeue` (Slurm kills and reruns it, no signal), and its time limit (USR2 `--signal-s`
seconds before). Each time it is requeued, resumes from its checkpoint, and finishes; preempted, it
ends with the weights of an uninterrupted run.

Cost on 2 shared cores: about a minute per interruption and two for the time limit (NORMAL for 8 short
epochs, and for as many as 2.5 one-minute runs train, on one core), plus one uninterrupted NORMAL.
"""

import math
import subprocess

import pytest

from repro.runs.checkpoint import load_checkpoint
from tests.slurm.conftest import (SETS, THREADS, Queue, epochs_logged, fingerprint, job_state, repro, run_folder,
                                  set_args, submit, wait_for_epoch)

pytestmark = pytest.mark.slurm
LONG = {**SETS, "epochs_clean": "8"}  # NORMAL still training when the test interrupts it after epoch 1
TIME_MIN, SIGNAL_S = 1, 30  # Slurm's shortest time limit; USR2 about 30 s into each run
RUNS_OF_TRAINING = 2.5  # the time-limit test trains this many runs' worth (measured here), so it is cut at least once


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """NORMAL trained locally without interruption, on one thread as the jobs: (its weights' fingerprint,
    seconds per epoch)."""
    out = tmp_path_factory.mktemp("uninterrupted")
    done = repro("train", "normal", "--out", str(out), "--quiet", "--allow-slow", *set_args(LONG), env=THREADS)
    assert done.returncode == 0, done.stderr
    checkpoint = run_folder(out, LONG) / "normal" / "checkpoint.pt"
    return fingerprint(checkpoint), load_checkpoint(checkpoint)["train_seconds"] / int(LONG["epochs_clean"])


def interrupted_normal(tmp_path, cancel_leftovers, interrupt, *flags, sets=LONG):
    """Submit NORMAL, `interrupt(job_id)` once its first epoch is checkpointed, wait for the end.

    Returns the job's stderr (a line per trained epoch) and stdout (what submitit did, once per
    event), and its final `scontrol show job` fields.
    """
    ids = submit(tmp_path, "--configs", "normal", *flags, sets=sets, quiet=False)
    cancel_leftovers.extend(ids.values())
    job_id = ids["normal/seed0"]
    queue = Queue([job_id])
    checkpoint = run_folder(tmp_path, sets) / "normal" / "checkpoint.pt"
    if interrupt is not None:
        epoch = wait_for_epoch(checkpoint, 1, queue)
        assert epoch < int(sets["epochs_clean"]), "training finished before the interruption: train longer"
        interrupt(job_id)
    queue.wait()
    Queue([ids["report"]]).wait()
    print(f"job {job_id}; squeue showed:\n" + "\n".join(queue.seen))
    err, out = ((tmp_path / "submitit" / job_id / f"{job_id}_0_log.{kind}").read_text() for kind in ("err", "out"))
    return err, out, job_state(job_id)


def test_preempted_by_usr2_requeues_and_ends_as_uninterrupted(tmp_path, cancel_leftovers, uninterrupted):
    weights, _ = uninterrupted

    def preempt(job_id):  # what Slurm sends a job's steps at preemption (PreemptParameters=send_user_signal)
        subprocess.run(["scancel", "--signal=USR2", job_id], check=True, timeout=30)

    err, out, state = interrupted_normal(tmp_path, cancel_leftovers, preempt, "--time-min", "30")
    assert state["JobState"] == "COMPLETED" and "this job is preempted" in out and "attempt 2" in out, \
        f"the signalled job must requeue itself and finish ({state['JobState']}):\n{out}"
    assert sorted(epochs_logged(err, "normal")) == list(range(1, 9)), \
        f"each epoch trained once across the attempts (resumed, not restarted): {epochs_logged(err, 'normal')}"
    assert fingerprint(run_folder(tmp_path, LONG) / "normal" / "checkpoint.pt") == weights, \
        "preempted and resumed must end with the weights of an uninterrupted run"


def test_requeued_by_scontrol_resumes_even_when_submitted_with_restart(tmp_path, cancel_leftovers, uninterrupted):
    weights, _ = uninterrupted

    def requeue(job_id):  # Slurm kills the job (SIGTERM, then SIGKILL) and reruns it as submitted
        subprocess.run(["scontrol", "requeue", job_id], check=True, timeout=30)

    err, out, state = interrupted_normal(tmp_path, cancel_leftovers, requeue, "--time-min", "30", "--restart")
    assert state["JobState"] == "COMPLETED" and state["Restarts"] == "1" and "attempt 2" in out, \
        f"the requeued job must rerun once and finish ({state}):\n{out}"
    assert sorted(epochs_logged(err, "normal")) == list(range(1, 9)), \
        f"the rerun resumes (each epoch once) although submitted with --restart: {epochs_logged(err, 'normal')}"
    assert fingerprint(run_folder(tmp_path, LONG) / "normal" / "checkpoint.pt") == weights, \
        "requeued and resumed must end with the weights of an uninterrupted run"


def test_a_row_longer_than_its_time_limit_requeues_until_done(tmp_path, cancel_leftovers, uninterrupted):
    _, seconds_per_epoch = uninterrupted
    run_s = TIME_MIN * 60 - SIGNAL_S  # training time before each warning signal
    epochs = max(int(LONG["epochs_clean"]), math.ceil(RUNS_OF_TRAINING * run_s / seconds_per_epoch))
    timed = {**SETS, "epochs_clean": str(epochs)}
    err, out, state = interrupted_normal(tmp_path, cancel_leftovers, None, "--time-min", str(TIME_MIN), "--signal-s",
                                         str(SIGNAL_S), "--max-requeues", "12", sets=timed)
    timeouts = out.count("this job is timed-out")
    assert state["JobState"] == "COMPLETED" and timeouts >= 1 and int(state["Restarts"]) == timeouts, \
        f"the job must get the warning signal, requeue and finish ({state}, {timeouts} time-outs):\n{out}"
    assert sorted(epochs_logged(err, "normal")) == list(range(1, epochs + 1)), \
        f"each epoch trained once across {timeouts + 1} runs: {epochs_logged(err, 'normal')}"
    print(f"{epochs} epochs at {seconds_per_epoch:.1f} s: {timeouts} time-outs, {state['Restarts']} restarts")
