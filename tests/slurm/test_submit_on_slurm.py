"""`repro submit` on a real Slurm: the job graph as the scheduler runs it, a failing NORMAL, and what
sbatch refuses (the fake-sbatch tests in tests/unit build the scripts; here Slurm decides).

Cost on 2 shared cores: about two minutes for the graph (NORMAL, two fine-tuning rows, the report,
and the same rows run locally beside it), half a minute for the failure, seconds for the refusals.
"""

import json
import os
import subprocess
import sys
import time

import pytest

from tests.slurm.conftest import (DEADLINE_S, JOB_FLAGS, SETS, THREADS, Queue, job_state, repro, run_folder, set_args,
                                  submit)

pytestmark = pytest.mark.slurm
FINE_TUNING = ["bn_params", "bn_stats_reset"]  # two rows waiting for NORMAL


def metrics(folder, rows):
    return {row: json.loads((folder / row / "result.json").read_text())["metrics"] for row in rows}


@pytest.fixture(scope="module")
def graph(tmp_path_factory):
    """NORMAL and two fine-tuning rows submitted to Slurm, and the same rows run locally beside them on
    one thread (as each job is given one core; --no-gate, since these tiny rows are compared for their
    numbers, not judged). Returns (Slurm's out folder, local out folder, {key: job
    id}, the keys squeue showed pending on Dependency while NORMAL ran, every squeue line seen)."""
    tmp_path = tmp_path_factory.mktemp("graph")
    local = subprocess.Popen([sys.executable, "-m", "repro", "reproduce", "--configs", *FINE_TUNING, "--out",
                              str(tmp_path / "local"), "--quiet", "--allow-slow", "--no-gate", *set_args(SETS)],
                             env={**os.environ, **THREADS}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    started = time.monotonic()
    ids = {}
    try:
        ids = submit(tmp_path / "slurm", "--configs", *FINE_TUNING)
        queue = Queue(ids.values())
        name = {f"repro-{key.replace('/', '-')}": key for key in ids}
        waited = set()

        def normal_ended(rows):
            running = {name[n] for _, n, state, _ in rows if state == "RUNNING"}
            if "normal/seed0" in running:
                waited.update(name[n] for _, n, state, reason in rows if state == "PENDING" and reason == "Dependency")
            return "normal/seed0" not in {name[n] for _, n, _, _ in rows}

        queue.wait(normal_ended)
        queue.wait()
        print(f"Slurm jobs ended after {time.monotonic() - started:.0f} s; squeue showed:\n" + "\n".join(queue.seen))
        output, _ = local.communicate(timeout=DEADLINE_S)
        assert local.returncode == 0, f"the local run failed:\n{output}"
        yield tmp_path / "slurm", tmp_path / "local", ids, waited, queue.seen
    finally:
        if ids:
            subprocess.run(["scancel", *ids.values()], capture_output=True, timeout=30)
        if local.poll() is None:
            local.kill()
            local.wait()


def test_fine_tuning_rows_pend_on_dependency_while_normal_runs(graph):
    _, _, _, waited, seen = graph
    assert {f"{row}/seed0" for row in FINE_TUNING} <= waited, \
        "while NORMAL ran, squeue must show both fine-tuning rows pending on Dependency:\n" + "\n".join(seen)


def test_every_job_completes_and_the_report_is_written(graph):
    out, _, ids, _, _ = graph
    states = {key: job_state(job_id)["JobState"] for key, job_id in ids.items()}
    assert set(states.values()) == {"COMPLETED"} and (run_folder(out) / "report.md").exists(), \
        f"every job completes and the report job writes the report: {states}"


def test_slurm_jobs_end_with_a_local_runs_numbers(graph):
    out, local, _, _, _ = graph
    rows = ["normal", *FINE_TUNING]
    assert metrics(run_folder(out), rows) == metrics(run_folder(local), rows), \
        "the Slurm jobs' numbers must equal a local run's on as many threads"


def test_a_job_trains_on_the_cores_slurm_gave_it(graph):
    out, _, _, _, _ = graph
    device = json.loads((run_folder(out) / "normal" / "result.json").read_text())["provenance"]["device"]
    assert device.endswith(", 1 threads"), f"a job given one core (--cpus 1) must run torch on one thread: {device}"


def test_a_failing_normal_cancels_its_dependents_and_the_report_says_why(tmp_path, cancel_leftovers):
    diverges = {**SETS, "lr": "1e9"}  # NORMAL's loss becomes NaN in epoch 1 (the fine-tuning rows use lr_finetune)
    ids = submit(tmp_path, "--configs", "bn_params", sets=diverges)
    cancel_leftovers.extend(ids.values())
    queue = Queue(ids.values())
    queue.wait(lambda rows: ids["normal/seed0"] not in {job_id for job_id, *_ in rows})
    Queue([ids["bn_params/seed0"]]).wait(deadline_s=60)  # cancelled, not left pending on a dependency never met
    queue.wait()
    print("squeue showed:\n" + "\n".join(queue.seen))
    normal, bn_params, report = (job_state(ids[k]) for k in ("normal/seed0", "bn_params/seed0", "report"))
    assert normal["JobState"] == "FAILED" and report["JobState"] == "COMPLETED", (normal, report)
    assert bn_params["JobState"] == "CANCELLED" and bn_params["Reason"] == "DependencyNeverSatisfied", \
        f"Slurm must cancel the row waiting for the failed NORMAL, not leave it pending: {bn_params}"
    text = (run_folder(tmp_path, diverges) / "report.md").read_text()
    assert "`normal/seed0`: failed: repro.runs.training.TrainingDivergedError: normal: training loss became" in text \
        and "`bn_params/seed0`: not run: normal/seed0 did not succeed" in text, \
        f"the report names the rows without a result and why:\n{text[text.find('## Rows without'):]}"


REFUSED = {  # what this single-node cluster (no GPU GRES) refuses, and what the one line must say
    "a GPU, by default": (["--cpus", "1"], "change --gpus: ask for GPUs the cluster defines"),
    "memory over the node's": (["--gpus", "0", "--cpus", "1", "--mem-gb", "100000"], "change --mem-gb:"),
    "an unknown partition": (["--gpus", "0", "--cpus", "1", "--partition", "nowhere"], "change --partition:"),
    # sbatch accepts this one and Slurm would leave the jobs pending forever: refused before sbatch
    "more cores than the node's": (["--gpus", "0", "--cpus", "4096"], "--cpus 4096: no node of the default"),
}


@pytest.mark.parametrize("case", REFUSED)
def test_what_slurm_cannot_run_ends_in_one_line(case, tmp_path):
    flags, says = REFUSED[case]
    done = repro("submit", "--cluster", "slurm", "--configs", "normal", "--out", str(tmp_path), *flags)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1 and says in lines[0], \
        f"{case}: one line saying {says!r}, exit 2; got {done.returncode}:\n{done.stderr}"


def test_a_submit_refused_part_way_leaves_nothing_queued(tmp_path):
    # sbatch refuses the third job (the report) as a QOS limit would; the first two were queued for real
    shim = tmp_path / "bin"
    shim.mkdir()
    (shim / "sbatch").write_text(f"""#!/bin/sh
n=$(( $(cat {shim}/n 2>/dev/null || echo 0) + 1 )); echo $n > {shim}/n
if [ $n -ge 3 ]; then echo "sbatch: error: QOSMaxSubmitJobPerUserLimit" >&2; exit 1; fi
exec {subprocess.run(['which', 'sbatch'], capture_output=True, text=True).stdout.strip()} "$@"
""")
    (shim / "sbatch").chmod(0o755)
    done = repro("submit", *JOB_FLAGS, "--configs", "bn_params", "--out", str(tmp_path / "out"), *set_args(SETS),
                 env={"PATH": f"{shim}{os.pathsep}{os.environ['PATH']}"})
    assert done.returncode == 2 and "cancelled the 2 jobs this submit had queued" in done.stderr, done.stderr
    queued = done.stderr.split("had queued (")[1].split(")")[0].split()
    states = {job_id: job_state(job_id)["JobState"] for job_id in queued}
    assert set(states.values()) == {"CANCELLED"}, f"the jobs queued before the refusal must be cancelled: {states}"
