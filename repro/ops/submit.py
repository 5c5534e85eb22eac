"""`repro submit`: the reproduction as scheduler jobs through submitit (Slurm, or local processes).

One job per (row, seed) and one report job (repro/ops/jobs.py); `--variant` readings apply to every
job and give the runs their own folders, as for `repro reproduce`. A fine-tuning row (Table 1 "Fine-tune")
waits for its NORMAL of the same seed to succeed (Slurm `afterok`); the report waits for every
row to end, failed or not (`afterany`), so a night always ends in a report that shows what is
missing. All jobs write into one output folder (`OUT/BUDGET/seedSEED/CONFIG`) under the run
locks of repro/runs/checkpoint.py, so even a job started early (or by hand) never trains a row twice.

Preemption and time-outs: Slurm signals the job (USR2, `Resources.signal_s` before its time limit,
or at preemption) and submitit calls the job's `checkpoint` method, which requeues the same row;
training resumes from the row's last checkpoint (written every epoch and every few minutes,
repro/runs/training.py). A job Slurm requeues without the signal (`scontrol requeue`, preemption
without `send_user_signal`) reruns as submitted and resumes the same way, never restarting.

Without Slurm, submitit's AutoExecutor runs the jobs as local processes. Its local executor
does not implement Slurm dependencies, so `run_locally` submits each job only once the jobs it
depends on have ended, a few at a time.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import time
from dataclasses import dataclass
from pathlib import Path

import submitit
from submitit.core.utils import FailedJobError, UncompletedJobError

from repro.ops.jobs import ReportJob, RowJob, row_key
from repro.ops.slurm import SubmitError, check_cpus, refused_message
from repro.paper.configs import FROM_NORMAL, NORMAL
from repro.runs.pipeline import dependency_order

CLUSTERS = ("auto", "slurm", "local", "debug")  # auto: Slurm where `srun` exists, else local processes
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
    signal_s: int = 90  # USR2 this long before the time limit: time to requeue (submitit's default)

    def __post_init__(self):
        # (option, value, smallest allowed): a bad value ends in one line here, not in sbatch's refusal
        for option, value, least in (("--gpus", self.gpus, 0), ("--cpus", self.cpus, 1),
                                     ("--time-min", self.time_min, 1), ("--max-requeues", self.max_requeues, 0),
                                     ("--signal-s", self.signal_s, 0)):
            if value < least:
                raise ValueError(f"{option} must be >= {least}, got {value}")
        if not self.mem_gb > 0:
            raise ValueError(f"--mem-gb must be > 0, got {self.mem_gb:g}")
        if self.signal_s >= self.time_min * 60:  # Slurm would signal at once: requeue after requeue, no training
            raise ValueError(f"--signal-s {self.signal_s} must be shorter than the time limit (--time-min "
                             f"{self.time_min} = {self.time_min * 60} s)")

    def parameters(self, name: str, dependency: str | None = None) -> dict:
        """submitit AutoExecutor parameters of one job (generic ones translate to sbatch's)."""
        params = {"name": name, "timeout_min": self.time_min, "cpus_per_task": self.cpus, "mem_gb": self.mem_gb,
                  "nodes": 1, "tasks_per_node": 1, "slurm_signal_delay_s": self.signal_s,
                  # a fine-tuning row whose NORMAL failed is cancelled instead of pending forever
                  "slurm_additional_parameters": {"kill-on-invalid-dep": "yes"}}
        if self.gpus:  # none: no GPU line at all, which any cluster accepts
            params["gpus_per_node"] = self.gpus
        for key in ("partition", "account"):
            if getattr(self, key):
                params[f"slurm_{key}"] = getattr(self, key)
        if dependency:
            params["slurm_dependency"] = dependency
        return params

@dataclass(frozen=True)
class JobSpec:
    """One job of the plan: what runs, what it waits for, what it asks for."""

    key: str  # "normal/seed0", "bn_params/seed1", "report"
    name: str  # the scheduler's job name
    function: RowJob | ReportJob
    resources: Resources
    after_ok: tuple[str, ...] = ()  # keys that must succeed first
    after_any: tuple[str, ...] = ()  # keys that must end first, however they ended


def plan(config_ids: list[str], seeds: list[int], template: RowJob, resources: Resources) -> list[JobSpec]:
    """The jobs of one submit, dependencies first: rows x seeds, then the report.

    `template` carries what every row job shares (budget, out, device, data, run, readings); NORMAL
    is added where a fine-tuning row needs it (pipeline.dependency_order).
    """
    if not seeds:
        raise ValueError("--seeds needs at least one seed")
    specs = []
    for seed in seeds:
        for config in dependency_order(config_ids):
            key = row_key(config.id, seed)
            job = dataclasses.replace(template, config_id=config.id, seed=seed)
            after = (row_key(NORMAL.id, seed),) if config.init == FROM_NORMAL else ()
            specs.append(JobSpec(key, f"repro-{key.replace('/', '-')}", job, resources, after_ok=after))
    report = ReportJob(template.budget, tuple(seeds), template.out, template.device, template.data_dir,
                       template.allow_unverified_data, variants=dict(template.variants))
    report_resources = dataclasses.replace(resources, time_min=min(resources.time_min, REPORT_TIME_MIN),
                                           signal_s=min(resources.signal_s, Resources.signal_s))
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


def function_of(spec: JobSpec, specs: list[JobSpec], job_ids: dict[str, str], folder: Path):
    """What `spec`'s job runs: the report job is told the row jobs' ids, to say why a row has no result."""
    if isinstance(spec.function, ReportJob):
        rows = [s for s in specs if not isinstance(s.function, ReportJob)]
        return spec.function.given(tuple((s.key, job_ids.get(s.key), s.after_ok) for s in rows), folder)
    return spec.function


def submit_to_slurm(specs: list[JobSpec], folder: Path, cluster: str = "slurm",
                    gpus_given: bool = True) -> dict[str, submitit.Job]:
    """Submit every job at once, each with its dependencies on the ones submitted before it.

    First checks that a node of the partition has the cores asked for (SubmitError otherwise); where sbatch
    refuses a job, cancels the jobs this call queued and raises SubmitError: one line with sbatch's
    reason and the option to change (`gpus_given`: whether --gpus was on the command line).
    """
    for resources in {spec.resources for spec in specs}:
        check_cpus(resources.cpus, resources.partition)
    jobs: dict[str, submitit.Job] = {}
    for number, spec in enumerate(specs, 1):
        job_ids = {key: job.job_id for key, job in jobs.items()}
        executor = executor_for(spec, folder, cluster, slurm_dependency(spec, job_ids))
        try:
            with contextlib.redirect_stderr(io.StringIO()):  # submitit echoes sbatch's stderr; the error says it once
                jobs[spec.key] = executor.submit(function_of(spec, specs, job_ids, folder))
        except FailedJobError as refused:
            raise SubmitError(refused_message(spec.key, number, len(specs), str(refused), list(job_ids.values()),
                                              spec.resources.gpus, gpus_given)) from None
    return jobs


def check_parallel(parallel: int) -> None:
    """Refuse a local scheduler that could never start a job (ValueError, one line)."""
    if parallel < 1:
        raise ValueError(f"--local-parallel must be >= 1 (jobs run at once without Slurm), got {parallel}")


def run_locally(specs: list[JobSpec], folder: Path, cluster: str = "local", parallel: int = 1,
                on_end=None, poll_seconds: float = POLL_SECONDS) -> dict[str, tuple[str, object]]:
    """Run the jobs as local submitit jobs, each once its dependencies ended, at most `parallel` at once.

    Returns key -> ("done", result) | ("failed", error) | ("skipped", reason); a job whose
    `after_ok` dependency did not succeed is skipped, as Slurm cancels it. `on_end(key, outcome)`
    is called as each job ends.
    """
    check_parallel(parallel)
    outcomes: dict[str, tuple[str, object]] = {}
    pending, running, job_ids = list(specs), {}, {}

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
                    job = executor_for(spec, folder, cluster).submit(function_of(spec, specs, job_ids, folder))
                    running[spec.key], job_ids[spec.key] = job, job.job_id
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
