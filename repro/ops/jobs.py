"""The jobs of `repro submit` (repro/ops/submit.py): a row for one seed, and the report; each a
submitit checkpointable callable that runs on the node the scheduler picks.

A row job trains (or resumes) and evaluates one row under the submit's budget and readings, on
the cores Slurm gave it, and appends its numbers to the history; requeued, it resumes from the
row's checkpoint whether it was requeued through submitit (`checkpoint`) or by Slurm alone. The
report job writes Figures 1-3 and the report of every seed, and names the rows without a result
and why (repro/ops/outcomes.py).
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
from submitit.core.utils import DelayedSubmission

from repro.ops.outcomes import JobRecord, job_outcomes, jobs_section
from repro.paper.budgets import Budget
from repro.paper.configs import get_configuration
from repro.paper.expected import load_expected
from repro.runs.checkpoint import CheckpointError, atomic_write_bytes
from repro.runs.pipeline import Pipeline, RunSettings
from repro.runs.progress import TqdmReporter  # a line per epoch in the job's log (no terminal there)
from repro.runs.provenance import resolve_device
from repro.verdicts.history import append_results, history_path
from repro.verdicts.report import write_report, write_seed_report

OVER_SEEDS = "over seeds"  # the report job's key for OUT/BUDGET/report.md beside the per-seed ones
# Set by Slurm in a job's environment: the cores it was given, and how often it was requeued.
SLURM_CPUS_ENV, SLURM_RESTARTS_ENV = "SLURM_CPUS_PER_TASK", "SLURM_RESTART_COUNT"


def row_key(config_id: str, seed: int) -> str:
    """A row job's key in the plan (and its job name's stem): "bn_params/seed1"."""
    return f"{config_id}/seed{seed}"


def slurm_restarts() -> int:
    """How often Slurm requeued the job this process runs in (0 outside Slurm)."""
    return int(os.environ.get(SLURM_RESTARTS_ENV) or 0)


def use_allotted_cores() -> None:
    """Run torch on the cores Slurm gave the job, not on every core of a shared node."""
    if os.environ.get(SLURM_CPUS_ENV):
        torch.set_num_threads(int(os.environ[SLURM_CPUS_ENV]))


@dataclass(frozen=True)
class RowJob:
    """Train (or resume) and evaluate one row for one seed; a submitit checkpointable callable."""

    config_id: str
    budget: Budget
    seed: int
    out: Path
    run: dict  # the night's identity (repro.verdicts.history.new_run), shared by every job of one submit
    variants: dict = field(default_factory=dict)  # non-default readings {choice: reading}, as RunSettings
    device: str = "auto"  # resolved on the node that runs the job
    data_dir: Path | None = None
    allow_unverified_data: bool = False
    restart: bool = False  # the first attempt only: a requeued job always resumes
    quiet: bool = False
    selfcheck: dict | None = None  # what a passing selfcheck switched on in `budget` (for provenance)
    attempt: int = 1

    @property
    def current_attempt(self) -> int:
        """This attempt's number: requeues through `checkpoint`, or Slurm's count where it requeued
        the job without the signal (then the job reruns as first submitted)."""
        return max(self.attempt, slurm_restarts() + 1)

    def run_settings(self) -> RunSettings:
        return RunSettings(budget=self.budget, seed=self.seed, out=Path(self.out), device=resolve_device(self.device),
                           data_dir=self.data_dir, allow_unverified_data=self.allow_unverified_data,
                           resume=True, restart=self.restart and self.current_attempt == 1,  # a requeued job continues
                           variants=dict(self.variants), selfcheck=self.selfcheck)

    def __call__(self) -> dict:
        use_allotted_cores()
        attempt = self.current_attempt
        print(f"{row_key(self.config_id, self.seed)}: attempt {attempt}", flush=True)
        pipeline = Pipeline(self.run_settings(), TqdmReporter(not self.quiet))
        config = pipeline.configuration(get_configuration(self.config_id))  # as it trains under the readings
        record = pipeline.result(config)
        append_results(history_path(self.out), [record], run=self.run)  # readings: the record's own
        return {"row": self.config_id, "seed": self.seed, "variants": dict(self.variants), "attempt": attempt,
                "trained": pipeline.trained_here, "metrics": record["metrics"],
                "result": str(pipeline.folder(config) / "result.json")}

    def checkpoint(self, *args, **kwargs) -> DelayedSubmission:
        """submitit's requeue hook: the same row again, resuming from its checkpoint (never restarting)."""
        return DelayedSubmission(dataclasses.replace(self, restart=False, attempt=self.current_attempt + 1))


@dataclass(frozen=True)
class ReportJob:
    """Figures 1-3 and the report of every seed's run folder, and with several seeds the report over
    seeds (OUT/BUDGET/report.md); idempotent, so requeueing reruns it."""

    budget: Budget
    seeds: tuple[int, ...]
    out: Path
    device: str = "auto"
    data_dir: Path | None = None
    allow_unverified_data: bool = False
    variants: dict = field(default_factory=dict)
    jobs: tuple[JobRecord, ...] = ()  # the row jobs of this submit, filled in once they have ids
    logs: Path | None = None  # submitit's folder of those jobs (their results and logs)

    def __call__(self) -> dict:
        from repro.figures.make import make_figures

        use_allotted_cores()
        expected, outcome = load_expected(), {}
        ended = job_outcomes(self.jobs, self.logs) if self.logs is not None else {}
        for seed in self.seeds:
            pipeline = Pipeline(RunSettings(budget=self.budget, seed=seed, out=Path(self.out),
                                            device=resolve_device(self.device), data_dir=self.data_dir,
                                            allow_unverified_data=self.allow_unverified_data,
                                            variants=dict(self.variants)))
            try:
                figures = [str(p) for p in make_figures(pipeline.run_folder, self.budget, seed,
                                                        pipeline.settings.device, pipeline.data)]
            except CheckpointError as error:  # a figure row failed: the report says which rows are missing
                figures = [f"no figures: {str(error).splitlines()[0]}"]
            text, path, _ = write_report(pipeline.run_folder, expected, self.budget)
            text = note_missing(path, text, ended, [k for k, _, _ in self.jobs if k.endswith(f"/seed{seed}")])
            outcome[seed] = {"report": str(path), "text": text, "figures": figures}
        if len(self.seeds) > 1:  # as `repro reproduce --seeds`: mean ± SD per row, judged on seed means
            text, path, _ = write_seed_report(pipeline.budget_folder, list(self.seeds), expected, self.budget)
            text = note_missing(path, text, ended, [k for k, _, _ in self.jobs])
            outcome[OVER_SEEDS] = {"report": str(path), "text": text, "figures": []}
        return outcome

    def given(self, jobs: tuple[JobRecord, ...], logs: Path) -> ReportJob:
        """This report job told the row jobs of its submit: (key, id or None if never submitted, after_ok)."""
        return dataclasses.replace(self, jobs=tuple(jobs), logs=Path(logs))

    def checkpoint(self, *args, **kwargs) -> DelayedSubmission:
        return DelayedSubmission(self)


def note_missing(path: Path, text: str, outcomes: dict[str, str], keys: list[str]) -> str:
    """Append to the report at `path` (and its terminal `text`) which rows of `keys` have no result and why."""
    lines = jobs_section(outcomes, keys)
    if lines:
        atomic_write_bytes(path, (path.read_text().rstrip("\n") + "\n" + "\n".join(lines) + "\n").encode())
        text += "\n" + "\n".join(line.replace("`", "") for line in lines)
    return text
