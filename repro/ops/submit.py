"""`repro submit`: the reproduction as scheduler jobs through submitit (Slurm, or local processes).

One job per (row, seed, reading set) and one report job. A fine-tuning row (Table 1 "Fine-tune")
waits for its NORMAL of the same seed to succeed (Slurm `afterok`); the report waits for every
row to end, failed or not (`afterany`), so a night always ends in a report that shows what is
missing. All jobs write into one output folder (`OUT/BUDGET/seedSEED/CONFIG`) under the run
locks of repro/runs/checkpoint.py, so even a job started early (or by hand) never trains a row twice.

Preemption and time-outs: submitit signals the job before Slurm kills it and calls the job's
`checkpoint` method, which requeues the same row; training resumes from the row's last
checkpoint (written every epoch and every few minutes, repro/runs/training.py).

Without Slurm, submitit's AutoExecutor runs the jobs as local processes. Its local executor
does not implement Slurm dependencies, so `run_locally` submits each job only once the jobs it
depends on have ended, a few at a time.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path

import submitit
from submitit.core.utils import DelayedSubmission, UncompletedJobError

from repro.paper.budgets import Budget
from repro.paper.configs import FROM_NORMAL, NORMAL, Configuration, get_configuration
from repro.paper.expected import load_expected
from repro.runs.checkpoint import CheckpointError
from repro.runs.pipeline import Pipeline, RunSettings, dependency_order
from repro.runs.progress import TqdmReporter  # a line per epoch in the job's log (no terminal there)
from repro.runs.provenance import resolve_device
from repro.verdicts.history import append_results, history_path
from repro.verdicts.report import write_report, write_seed_report

CLUSTERS = ("auto", "slurm", "local", "debug")  # auto: Slurm where `srun` exists, else local processes
OVER_SEEDS = "over seeds"  # the report job's key for OUT/BUDGET/report.md beside the per-seed ones
REPORT_TIME_MIN = 60  # figures and report only: no training
POLL_SECONDS = 2.0  # how often the local scheduler looks at its running jobs


@dataclass(frozen=True)
class Resources:
    """What each job asks the scheduler for (defaults: one paper-budget row on one GPU)."""

    gpus: int = 1
    cpus: int = 8  # data augmentation and AutoAttack's host work
    mem_gb: float = 32.0  # CIFAR-10 in memory (~0.2 GB) plus the training process, with room
    time_min: int = 12 * 60  # a from-scratch PGD-10 row at width 64 may need longer: it requeues and resumes
    partition: str | None = None
    account: str | None = None
    max_requeues: int = 3  # time-outs a job may be requeued after (preemptions do not count)

    def parameters(self, name: str, dependency: str | None = None) -> dict:
        """submitit AutoExecutor parameters of one job (generic ones translate to sbatch's)."""
        params = {"name": name, "timeout_min": self.time_min, "gpus_per_node": self.gpus,
                  "cpus_per_task": self.cpus, "mem_gb": self.mem_gb, "nodes": 1, "tasks_per_node": 1,
                  # a fine-tuning row whose NORMAL failed is cancelled instead of pending forever
                  "slurm_additional_parameters": {"kill-on-invalid-dep": "yes"}}
        for key in ("partition", "account"):
            if getattr(self, key):
                params[f"slurm_{key}"] = getattr(self, key)
        if dependency:
            params["slurm_dependency"] = dependency
        return params


def apply_readings(config: Configuration, readings: tuple[str, ...]) -> Configuration:
    """The configuration under a set of readings of the paper's open choices.

    Extension point for issue 10 (repro/paper/variants.py, `--variant`): map each reading onto the
    configuration here, and give each reading set its own run folder. Until then only the
    registered reading (the empty set) exists.
    """
    if readings:
        raise ValueError(f"readings {', '.join(readings)} are not available yet (named variants: issue 10); "
                         "submit without them")
    return config


@dataclass(frozen=True)
class RowJob:
    """Train (or resume) and evaluate one row for one seed; a submitit checkpointable callable."""

    config_id: str
    budget: Budget
    seed: int
    out: Path
    run: dict  # the night's identity (repro.verdicts.history.new_run), shared by every job of one submit
    readings: tuple[str, ...] = ()
    device: str = "auto"  # resolved on the node that runs the job
    data_dir: Path | None = None
    allow_unverified_data: bool = False
    restart: bool = False
    quiet: bool = False
    attempt: int = 1

    def run_settings(self) -> RunSettings:
        return RunSettings(budget=self.budget, seed=self.seed, out=Path(self.out), device=resolve_device(self.device),
                           data_dir=self.data_dir, allow_unverified_data=self.allow_unverified_data,
                           resume=True, restart=self.restart)  # resume: a requeued job continues

    def __call__(self) -> dict:
        config = apply_readings(get_configuration(self.config_id), self.readings)
        print(f"{row_key(self.config_id, self.seed, self.readings)}: attempt {self.attempt}", flush=True)
        pipeline = Pipeline(self.run_settings(), TqdmReporter(not self.quiet))
        record = pipeline.result(config)
        append_results(history_path(self.out), [record], run=self.run)  # readings: the record's own
        return {"row": self.config_id, "seed": self.seed, "readings": list(self.readings), "attempt": self.attempt,
                "trained": pipeline.trained_here, "metrics": record["metrics"],
                "result": str(pipeline.folder(config) / "result.json")}

    def checkpoint(self, *args, **kwargs) -> DelayedSubmission:
        """submitit's requeue hook: the same row again, resuming from its checkpoint (never restarting)."""
        return DelayedSubmission(dataclasses.replace(self, restart=False, attempt=self.attempt + 1))


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

    def __call__(self) -> dict:
        from repro.figures.make import make_figures

        expected, outcome = load_expected(), {}
        for seed in self.seeds:
            pipeline = Pipeline(RunSettings(budget=self.budget, seed=seed, out=Path(self.out),
                                            device=resolve_device(self.device), data_dir=self.data_dir,
                                            allow_unverified_data=self.allow_unverified_data))
            try:
                figures = [str(p) for p in make_figures(pipeline.run_folder, self.budget, seed,
                                                        pipeline.settings.device, pipeline.data)]
            except CheckpointError as error:  # a figure row failed: the report says which rows are missing
                figures = [f"no figures: {str(error).splitlines()[0]}"]
            text, path = write_report(pipeline.run_folder, expected, self.budget)
            outcome[seed] = {"report": str(path), "text": text, "figures": figures}
        if len(self.seeds) > 1:  # as `repro reproduce --seeds`: mean ± SD per row, judged on seed means
            text, path = write_seed_report(pipeline.budget_folder, list(self.seeds), expected, self.budget)
            outcome[OVER_SEEDS] = {"report": str(path), "text": text, "figures": []}
        return outcome

    def checkpoint(self, *args, **kwargs) -> DelayedSubmission:
        return DelayedSubmission(self)


@dataclass(frozen=True)
class JobSpec:
    """One job of the plan: what runs, what it waits for, what it asks for."""

    key: str  # "normal/seed0", "bn_params/seed1/READING+READING", "report"
    name: str  # the scheduler's job name
    function: RowJob | ReportJob
    resources: Resources
    after_ok: tuple[str, ...] = ()  # keys that must succeed first
    after_any: tuple[str, ...] = ()  # keys that must end first, however they ended


def row_key(config_id: str, seed: int, readings: tuple[str, ...] = ()) -> str:
    return f"{config_id}/seed{seed}" + (f"/{'+'.join(readings)}" if readings else "")


def plan(config_ids: list[str], seeds: list[int], template: RowJob, resources: Resources,
         reading_sets: list[tuple[str, ...]] = ((),)) -> list[JobSpec]:
    """The jobs of one submit, dependencies first: rows x seeds x reading sets, then the report.

    `template` carries what every row job shares (budget, out, device, data, run); NORMAL is
    added where a fine-tuning row needs it (pipeline.dependency_order).
    """
    if not seeds:
        raise ValueError("--seeds needs at least one seed")
    specs = []
    for readings in reading_sets:
        for seed in seeds:
            for config in dependency_order(config_ids):
                key = row_key(config.id, seed, readings)
                job = dataclasses.replace(template, config_id=config.id, seed=seed, readings=tuple(readings))
                after = (row_key(NORMAL.id, seed, readings),) if config.init == FROM_NORMAL else ()
                specs.append(JobSpec(key, f"repro-{key.replace('/', '-')}", job, resources, after_ok=after))
    report = ReportJob(template.budget, tuple(seeds), template.out, template.device, template.data_dir,
                       template.allow_unverified_data)
    report_resources = dataclasses.replace(resources, time_min=min(resources.time_min, REPORT_TIME_MIN))
    specs.append(JobSpec("report", "repro-report", report, report_resources, after_any=tuple(s.key for s in specs)))
    return specs


def slurm_dependency(spec: JobSpec, job_ids: dict[str, str]) -> str | None:
    """sbatch's --dependency for `spec` given the ids of the jobs already submitted."""
    parts = [f"{kind}:{':'.join(job_ids[k] for k in keys)}"
             for kind, keys in (("afterok", spec.after_ok), ("afterany", spec.after_any)) if keys]
    return ",".join(parts) or None  # ",": every listed condition must hold


def executor_for(spec: JobSpec, folder: Path, cluster: str, dependency: str | None = None) -> submitit.AutoExecutor:
    """A submitit executor configured for one job (a fresh one each: parameters never leak between jobs)."""
    executor = submitit.AutoExecutor(folder=Path(folder) / "%j", cluster=None if cluster == "auto" else cluster,
                                     slurm_max_num_timeout=spec.resources.max_requeues,
                                     local_max_num_timeout=spec.resources.max_requeues)
    params = spec.resources.parameters(spec.name, dependency)
    if executor.cluster == "debug":  # in-process: no resources to ask for
        params = {"name": spec.name}
    executor.update_parameters(**params)
    return executor


def submit_to_slurm(specs: list[JobSpec], folder: Path, cluster: str = "slurm") -> dict[str, submitit.Job]:
    """Submit every job at once, each with its dependencies on the ones submitted before it."""
    jobs: dict[str, submitit.Job] = {}
    for spec in specs:
        dependency = slurm_dependency(spec, {key: job.job_id for key, job in jobs.items()})
        jobs[spec.key] = executor_for(spec, folder, cluster, dependency).submit(spec.function)
    return jobs


def run_locally(specs: list[JobSpec], folder: Path, cluster: str = "local", parallel: int = 1,
                on_end=None, poll_seconds: float = POLL_SECONDS) -> dict[str, tuple[str, object]]:
    """Run the jobs as local submitit jobs, each once its dependencies ended, at most `parallel` at once.

    Returns key -> ("done", result) | ("failed", error) | ("skipped", reason); a job whose
    `after_ok` dependency did not succeed is skipped, as Slurm cancels it. `on_end(key, outcome)`
    is called as each job ends.
    """
    outcomes: dict[str, tuple[str, object]] = {}
    pending, running = list(specs), {}

    def end(key, outcome):
        outcomes[key] = outcome
        if on_end is not None:
            on_end(key, outcome)

    try:
        while pending or running:
            progressed = False
            for spec in list(pending):
                if not all(k in outcomes for k in spec.after_ok + spec.after_any):
                    continue
                failed = [k for k in spec.after_ok if outcomes[k][0] != "done"]
                if not failed and len(running) >= parallel:
                    break
                pending.remove(spec)
                progressed = True
                if failed:
                    end(spec.key, ("skipped", f"{', '.join(failed)} did not succeed"))
                else:
                    running[spec.key] = executor_for(spec, folder, cluster).submit(spec.function)
            if not running and not progressed:
                raise RuntimeError(f"jobs wait for jobs not in the plan: {', '.join(s.key for s in pending)}")
            # a DebugJob runs when asked, in this process; exception() runs it without pdb on failure
            ended = [k for k, job in running.items() if isinstance(job, submitit.DebugJob) or job.done()]
            for key in ended:
                job = running.pop(key)
                try:
                    error = job.exception()
                except UncompletedJobError as killed:  # no result at all: killed, or out of requeues
                    error = killed
                end(key, ("failed", error) if error is not None else ("done", job.result()))
            if running and not ended:
                time.sleep(poll_seconds)
    except BaseException:  # Ctrl-C or a crash here: local jobs would outlive this process
        for job in running.values():
            job.cancel()
        raise
    return outcomes
