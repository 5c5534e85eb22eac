"""`repro submit`'s one-line errors: what sbatch refuses, a submit refused part-way, bad options, and
--selfcheck and --variant applied to the jobs. Slurm is the fake of tests/unit/conftest.py; the real
scheduler's answers are tested in tests/slurm."""

import json
import pickle
from pathlib import Path

import pytest

from repro.paper.budgets import get_budget
from repro.paper.configs import CONFIGURATIONS
from tests.unit.cli.test_cli import MICRO_SETS, run

# sbatch's own words (Slurm 22.05: slurm_errno.c, and what a single-node cluster answered), and the
# option the error line must name.
REFUSALS = {
    "gres": ("sbatch: error: Invalid generic resource (gres) specification", "--gpus"),
    "partition": ("sbatch: error: invalid partition specified: gpu\n"
                  "sbatch: error: Batch job submission failed: Invalid partition name specified", "--partition"),
    "memory": ("sbatch: error: Memory specification can not be satisfied\n"
               "sbatch: error: Batch job submission failed: Requested node configuration is not available", "--mem-gb"),
    "account": ("sbatch: error: Batch job submission failed: Invalid account or account/partition combination "
                "specified", "--account"),
    "time": ("sbatch: error: Batch job submission failed: Requested time limit is invalid (missing or exceeds some "
             "limit)", "--time-min"),
    "qos": ("sbatch: error: QOSMaxSubmitJobPerUserLimit\nsbatch: error: Batch job submission failed: Job violates "
            "accounting/QOS policy (job submit limit, user's size and/or time limits)", "--configs/--seeds"),
}


def submit(capsys, tmp_path, *extra):
    """`repro submit` of bn_params (and its NORMAL) to the fake Slurm, whose job folder is tmp_path/submitit."""
    return run(capsys, "submit", "--cluster", "slurm", "--configs", "bn_params", "--out", str(tmp_path / "out"),
               "--logs", str(tmp_path / "submitit"), *extra)


@pytest.mark.parametrize("case", REFUSALS)
def test_refused_submit_ends_in_one_line_naming_the_option(case, capsys, tmp_path, fake_slurm):
    message, option = REFUSALS[case]
    fake_slurm.refuse_from(1, message)
    code, out, err = submit(capsys, tmp_path, "--gpus", "1")
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("repro: error: sbatch refused job 1 of 3"), \
        f"one line with exit status 2, got {code}:\n{err}"
    assert f"change {option}:" in lines[0], f"the line must name {option} for sbatch's {case} refusal: {lines[0]}"


def test_gpu_refusal_under_the_default_says_to_pass_gpus_0(capsys, tmp_path, fake_slurm):
    fake_slurm.refuse_from(1, REFUSALS["gres"][0])
    code, _, err = submit(capsys, tmp_path)
    assert code == 2 and "without --gpus each job asks for 1 GPU" in err and "--gpus 0" in err, \
        f"without --gpus the line must say the default asked for a GPU: {err}"


@pytest.mark.parametrize("partition", [None, "small"])
def test_more_cores_than_a_node_has_are_refused_before_submitting(partition, capsys, tmp_path, fake_slurm):
    # Slurm itself accepts a job asking for more cores than any node has, and leaves it pending forever
    fake_slurm.node("big* 64\nsmall 2")
    flags = ["--cpus", "8"] + (["--partition", partition] if partition else [])
    code, _, err = submit(capsys, tmp_path, *flags)
    refused = code == 2 and "--cpus 8: no node of partition small has more than 2 CPUs" in err
    assert refused == (partition == "small") and fake_slurm.submitted() == (0 if refused else 3), \
        f"8 cores fit the default partition's node, not partition small's: {err}"


def test_submit_refused_part_way_cancels_what_it_queued(capsys, tmp_path, fake_slurm):
    fake_slurm.refuse_from(3, REFUSALS["qos"][0])
    code, _, err = submit(capsys, tmp_path, "--gpus", "0")
    assert code == 2 and "job 3 of 3 (report)" in err, f"the report job was refused: {err}"
    assert fake_slurm.scancelled() == ["101 102"], f"the two queued jobs must be cancelled: {fake_slurm.scancelled()}"
    assert "cancelled the 2 jobs this submit had queued (101 102)" in err, err


def test_jobs_scancel_could_not_cancel_are_named_with_the_command(capsys, tmp_path, fake_slurm):
    fake_slurm.refuse_from(2, REFUSALS["qos"][0])
    fake_slurm.fail_scancel()
    code, _, err = submit(capsys, tmp_path, "--gpus", "0")
    assert code == 2 and "remain (101): cancel them with `scancel 101`" in err, err


@pytest.mark.parametrize("flags, option", [(["--local-parallel", "0"], "--local-parallel"), (["--cpus", "0"], "--cpus"),
                                           (["--mem-gb", "0"], "--mem-gb"), (["--gpus", "-1"], "--gpus"),
                                           (["--time-min", "1", "--signal-s", "60"], "--signal-s")])
def test_bad_resources_are_refused_before_anything_is_submitted(flags, option, capsys, tmp_path, fake_slurm):
    code, _, err = submit(capsys, tmp_path, *flags)
    assert code == 2 and option in err and len(err.strip().splitlines()) == 1, f"{flags}: {err}"
    assert fake_slurm.submitted() == 0, f"{flags}: nothing may be submitted"


def test_no_gpu_line_with_gpus_0_and_the_signal_lead_asked_for(capsys, tmp_path, fake_slurm):
    code, _, _ = submit(capsys, tmp_path, "--gpus", "0", "--time-min", "5", "--signal-s", "40")
    lines = fake_slurm.sbatch_lines("101")
    assert code == 0 and not any("gpu" in k or "gres" in k for k in lines), f"--gpus 0 asks for no GPU: {lines}"
    assert lines.get("signal") == "USR2@40", f"--signal-s 40 is sbatch's --signal lead: {lines}"


def submitted_job(fake_slurm, job_id):
    """The callable submitit pickled for job `job_id` (what the node runs)."""
    with open(fake_slurm.folder / job_id / f"{job_id}_submitted.pkl", "rb") as f:
        return pickle.load(f).function


def selfcheck_file(tmp_path, device):
    path = tmp_path / "selfcheck.json"
    path.write_text(json.dumps({"device": device, "passes": {"bf16": True, "compile": False}, "compile_backend": "x",
                                "sizes": {"width": 64}, "environment": {"device_name": "a GPU"}}))
    return str(path)


def test_selfcheck_switches_on_bf16_in_gpu_jobs(capsys, tmp_path, fake_slurm):
    code, _, err = submit(capsys, tmp_path, "--selfcheck", selfcheck_file(tmp_path, "cuda"))
    job = submitted_job(fake_slurm, "101")
    assert code == 0 and job.budget.bf16 and job.selfcheck["bf16"], \
        f"a CUDA selfcheck that passed bf16 must switch it on in GPU jobs (and record it): {err}"


@pytest.mark.parametrize("device, flags", [("cuda", ["--gpus", "0"]), (None, [])])
def test_a_selfcheck_that_cannot_apply_is_refused(device, flags, capsys, tmp_path, fake_slurm):
    path = selfcheck_file(tmp_path, device) if device else str(tmp_path / "missing.json")
    code, _, err = submit(capsys, tmp_path, "--selfcheck", path, *flags)
    assert code == 2 and "repro selfcheck" in err and fake_slurm.submitted() == 0, \
        f"a missing selfcheck, or a CUDA one for CPU jobs, must be refused before submitting: {err}"


def test_selfcheck_auto_reads_the_jobs_device_types_selfcheck_under_out(capsys, tmp_path, fake_slurm):
    out = tmp_path / "out"  # submit()'s --out
    out.mkdir()
    (out / f"selfcheck-cuda-{get_budget('smoke').name}.json").write_text(Path(selfcheck_file(tmp_path, "cuda")).read_text())
    code, _, err = submit(capsys, tmp_path, "--selfcheck", "auto")
    assert code == 0 and submitted_job(fake_slurm, "101").budget.bf16, \
        f"--selfcheck auto must apply OUT's selfcheck of the jobs' device type (cuda: they ask for a GPU): {err}"


def test_selfcheck_auto_without_one_is_refused_not_measured_here(capsys, tmp_path, fake_slurm):
    code, _, err = submit(capsys, tmp_path, "--selfcheck", "auto")
    assert code == 2 and "--selfcheck auto: no selfcheck of the jobs' cuda" in err and fake_slurm.submitted() == 0, \
        f"the login node is not where the jobs run: auto without the jobs' selfcheck must be refused: {err}"


ONE_STEP = {**MICRO_SETS, "n_train": "64", "n_robust": "8", "n_test": "16", "curve_images": "0"}  # a second or two


def test_submit_runs_readings_in_their_own_run_folder(capsys, tmp_path):
    variant = "autoaugment_order=crop_flip_then_autoaugment"
    sets = [arg for field, value in ONE_STEP.items() for arg in ("--set", f"{field}={value}")]
    code, out, err = run(capsys, "submit", "--cluster", "debug", "--configs", "normal", "--out", str(tmp_path),
                         "--device", "cpu", "--variant", variant, "--allow-slow", "--quiet", *sets)
    folder = tmp_path / f"{get_budget('smoke', ONE_STEP).run_name}+{variant}" / "seed0"
    record = json.loads((folder / "normal" / "result.json").read_text())
    assert code == 0 and record["config"]["autoaugment_order"] != CONFIGURATIONS["normal"].autoaugment_order, \
        f"the row must train under the reading: {record['config']}\n{out}{err}"
    assert (folder / "report.md").exists(), f"the report job reports the readings' run folder: {out}"
