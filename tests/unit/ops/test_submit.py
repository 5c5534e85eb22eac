"""`repro submit` (repro/ops/submit.py): the job graph, the Slurm scripts it asks for, and requeueing.

Nothing is submitted to a real scheduler: Slurm scripts are rendered by submitit against a fake
`sbatch` on PATH; jobs run through submitit's in-process debug executor at a micro budget.
"""

import dataclasses
import re
from pathlib import Path

import pytest
import torch
from submitit.core.utils import DelayedSubmission

import repro.runs.training
from repro.cli.main import main
from repro.ops.jobs import SLURM_RESTARTS_ENV, RowJob
from repro.ops.submit import JobSpec, Resources, plan, run_locally, submit_to_slurm
from repro.paper.configs import CONFIGURATIONS, FROM_NORMAL, NORMAL
from repro.runs.checkpoint import load_checkpoint, state_fingerprint
from repro.runs.pipeline import RunSettings, load_data
from repro.runs.training import train
from repro.verdicts.history import new_run, read_history
from tests.conftest import make_micro_budget

FINE_TUNING = [c.id for c in CONFIGURATIONS.values() if c.init == FROM_NORMAL]


def template(out=Path("runs"), budget=None):
    return RowJob("", budget or make_micro_budget(), 0, Path(out), new_run("test-night"), device="cpu")


def test_one_job_per_row_and_seed_then_the_report():
    keys = [s.key for s in plan(list(CONFIGURATIONS), [0, 1], template(), Resources())]
    expected = [f"{c}/seed{s}" for s in (0, 1) for c in CONFIGURATIONS] + ["report"]
    assert sorted(keys) == sorted(expected) and len(keys) == len(set(keys)), f"jobs: {keys}"


@pytest.mark.parametrize("config_id", FINE_TUNING)
def test_fine_tuning_row_waits_for_its_seeds_normal(config_id):
    specs = {s.key: s for s in plan([config_id], [0, 1], template(), Resources())}
    for seed in (0, 1):
        assert specs[f"{config_id}/seed{seed}"].after_ok == (f"normal/seed{seed}",), \
            f"{config_id} seed {seed} must wait for NORMAL of seed {seed}: {specs[f'{config_id}/seed{seed}']}"
    assert specs["normal/seed1"].after_ok == (), "NORMAL is added, and waits for nothing"


def test_from_scratch_rows_wait_for_nothing_and_the_report_for_everything():
    specs = plan(list(CONFIGURATIONS), [0], template(), Resources())
    scratch = [s.key for s in specs if s.key != "report" and CONFIGURATIONS[s.function.config_id].init != FROM_NORMAL]
    assert all(not s.after_ok and not s.after_any for s in specs if s.key in scratch), "from-scratch rows start at once"
    assert set(specs[-1].after_any) == {s.key for s in specs[:-1]} and not specs[-1].after_ok, \
        "the report waits for every row to end, failed or not"


def test_plan_lists_dependencies_before_their_dependents():
    specs = plan(FINE_TUNING + ["adv"], [3], template(), Resources())
    position = {s.key: i for i, s in enumerate(specs)}
    late = [(s.key, d) for s in specs for d in s.after_ok + s.after_any if position[d] > position[s.key]]
    assert late == [], f"submitted before what they wait for: {late}"


def test_slurm_scripts_ask_for_the_resources(fake_slurm):
    resources = Resources(gpus=2, cpus=6, mem_gb=40, time_min=300, partition="gpu", account="lab")
    jobs = submit_to_slurm(plan(["normal"], [0], template(), resources), fake_slurm.folder)
    lines = fake_slurm.sbatch_lines(jobs["normal/seed0"].job_id)
    asked = {k: lines.get(k) for k in ("gpus-per-node", "cpus-per-task", "mem", "time", "partition", "account")}
    assert asked == {"gpus-per-node": "2", "cpus-per-task": "6", "mem": "40GB", "time": "300", "partition": "gpu",
                     "account": "lab"}, f"sbatch asks for {asked}"
    assert lines.get("signal", "").startswith("USR2@"), "submitit's pre-timeout signal drives the requeue"
    assert fake_slurm.sbatch_lines(jobs["report"].job_id)["time"] == "60", "the report job asks for an hour"


def test_slurm_dependencies_name_the_submitted_job_ids(fake_slurm):
    jobs = submit_to_slurm(plan(["bn_params", "adv"], [0, 1], template(), Resources()), fake_slurm.folder)
    ids = {key: job.job_id for key, job in jobs.items()}
    for seed in (0, 1):
        lines = fake_slurm.sbatch_lines(ids[f"bn_params/seed{seed}"])
        assert lines.get("dependency") == f"afterok:{ids[f'normal/seed{seed}']}", lines
        assert lines.get("kill-on-invalid-dep") == "yes", "a row whose NORMAL failed must not pend forever"
        assert "dependency" not in fake_slurm.sbatch_lines(ids[f"adv/seed{seed}"]), "ADV waits for nothing"
    report = fake_slurm.sbatch_lines(ids["report"])["dependency"]
    assert report.startswith("afterany:") and set(report[9:].split(":")) == {i for k, i in ids.items() if k != "report"}, \
        f"the report waits for every row: {report}"


@dataclasses.dataclass(frozen=True)
class Step:
    """A job that records that it ran, and fails when told to."""

    name: str
    log: list
    fail: bool = False

    def __call__(self):
        self.log.append(self.name)
        if self.fail:
            raise RuntimeError(f"{self.name} failed on purpose")
        return self.name


def test_local_run_skips_dependents_of_a_failed_job_and_still_reports(tmp_path):
    log = []
    specs = [JobSpec("normal", "n", Step("normal", log, fail=True), Resources()),
             JobSpec("adv", "a", Step("adv", log), Resources()),
             JobSpec("bn_params", "b", Step("bn_params", log), Resources(), after_ok=("normal",)),
             JobSpec("report", "r", Step("report", log), Resources(), after_any=("normal", "adv", "bn_params"))]
    outcomes = run_locally(specs, tmp_path, cluster="debug")
    status = {key: value[0] for key, value in outcomes.items()}
    assert status == {"normal": "failed", "adv": "done", "bn_params": "skipped", "report": "done"}, status
    assert log == ["normal", "adv", "report"], f"ran {log}"


def test_local_run_waits_for_dependencies_listed_after_it(tmp_path):
    log = []
    specs = [JobSpec("report", "r", Step("report", log), Resources(), after_any=("b",)),
             JobSpec("b", "b", Step("b", log), Resources(), after_ok=("a",)),
             JobSpec("a", "a", Step("a", log), Resources())]
    run_locally(specs, tmp_path, cluster="debug")
    assert log == ["a", "b", "report"], f"ran in order {log}"


class Preempted(Exception):
    """Stands in for the signal submitit turns into a requeue."""


TINY = dict(n_train=64, batch_size=32, n_test=16, n_robust=8, eval_pgd_steps=1, autoattack_iterations=1, eval_batch_size=32)  # seconds, not minutes


def preempted_in_epoch_two(tmp_path, monkeypatch):
    """A NORMAL row job submitted with --restart, stopped in its second epoch (the first attempt).

    Returns (job, the budget, the list that later train_step calls append to, steps per epoch, run folder).
    """
    budget = make_micro_budget(epochs_clean=2, **TINY)
    steps_per_epoch = budget.n_train // budget.batch_size
    job = dataclasses.replace(template(tmp_path, budget), config_id="normal", restart=True)
    real_step, calls = repro.runs.training.train_step, []

    def stopped(*args, **kwargs):
        if len(calls) == 2 * steps_per_epoch - 1:
            raise Preempted
        calls.append(1)
        return real_step(*args, **kwargs)

    monkeypatch.setattr(repro.runs.training, "train_step", stopped)
    with pytest.raises(Preempted):
        job()
    folder = tmp_path / budget.run_name / "seed0" / "normal"
    assert load_checkpoint(folder / "checkpoint.pt")["epoch"] == 1, "the first attempt left epoch 1's checkpoint"
    calls.clear()
    monkeypatch.setattr(repro.runs.training, "train_step", lambda *a, **k: (calls.append(1), real_step(*a, **k))[1])
    return job, budget, calls, steps_per_epoch, folder


def test_requeued_row_resumes_from_its_checkpoint(tmp_path, monkeypatch):
    job, budget, calls, steps_per_epoch, folder = preempted_in_epoch_two(tmp_path, monkeypatch)
    requeued = DelayedSubmission(job)._checkpoint_function()  # what submitit calls on preemption or time-out
    outcome = requeued.result()
    assert len(calls) == steps_per_epoch, f"the requeued job trains the remaining epoch only, not {len(calls)} steps"
    assert outcome["attempt"] == 2 and outcome["trained"] == ["normal"], outcome

    reference = train(NORMAL, budget, load_data(RunSettings(budget)), tmp_path / "reference", seed=0)
    resumed = torch.load(folder / "checkpoint.pt", weights_only=True)["model"]
    assert state_fingerprint(resumed) == state_fingerprint(reference.state_dict()), \
        "preempted and resumed ends with the weights of an uninterrupted run"


def test_row_requeued_by_slurm_alone_resumes_even_when_submitted_with_restart(tmp_path, monkeypatch):
    # `scontrol requeue`, or a preemption without the user signal: Slurm reruns the job as submitted
    # (restart=True, attempt 1), and only its environment says it is a rerun.
    job, _, calls, steps_per_epoch, _ = preempted_in_epoch_two(tmp_path, monkeypatch)
    monkeypatch.setenv(SLURM_RESTARTS_ENV, "1")
    outcome = job()
    assert len(calls) == steps_per_epoch, \
        f"a rerun must resume from the first attempt's checkpoint, not restart: trained {len(calls)} steps"
    assert outcome["attempt"] == 2, f"the rerun is the second attempt: {outcome['attempt']}"


def test_cli_submit_runs_rows_in_order_then_the_report_and_records_the_night(tmp_path, capsys):
    micro = {"n_train": "32", "n_test": "16", "batch_size": "32", "epochs_clean": "1", "epochs_adversarial": "1",
             "epochs_finetune": "1", "train_attack_steps": "1", "eval_pgd_steps": "1", "n_robust": "8",
             "autoattack_iterations": "1", "eval_batch_size": "32"}
    sets = [a for k, v in micro.items() for a in ("--set", f"{k}={v}")]
    code = main(["submit", "--cluster", "debug", "--configs", "bn_params", "--seeds", "0", "1", "--out", str(tmp_path),
                 "--device", "cpu", "--quiet", *sets])
    out = capsys.readouterr().out
    ended = re.findall(r"^\[\s*\d+ s\] (\w+)\s+(\S+)", out, flags=re.M)
    assert code == 0 and [k for _, k in ended] == ["normal/seed0", "bn_params/seed0", "normal/seed1", "bn_params/seed1",
                                                   "report"], out
    assert {s for s, _ in ended} == {"done"}, out
    reports = sorted(tmp_path.glob("*/seed*/report.md"))
    assert [p.parent.name for p in reports] == ["seed0", "seed1"], f"one report per seed: {reports}"
    over_seeds = list(tmp_path.glob("*/report.md"))
    assert len(over_seeds) == 1 and "mean ± SD over seeds 0, 1" in over_seeds[0].read_text(), \
        f"the report job also writes the report over seeds beside the seed folders: {over_seeds}"
    assert "report (over seeds)" in out, "and prints it"
    entries = read_history(tmp_path / "history.jsonl")
    assert {(e["row"], e["seed"]) for e in entries} == {(r, s) for r in ("normal", "bn_params") for s in (0, 1)}, \
        "every row job appends to the history"
    assert len({e["run"] for e in entries}) == 1, "one submit is one night"
