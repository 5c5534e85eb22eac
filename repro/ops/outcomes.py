"""How each job of a submit ended, as the report job states it for rows without a result.

submitit leaves `LOGS/JOBID/JOBID_0_result.pkl` holding ("success", value) or ("error", traceback)
when a job's Python code ends; a job the scheduler never started (a fine-tuning row whose NORMAL
failed: Slurm cancels it, `kill-on-invalid-dep`) or killed leaves none.
"""

from __future__ import annotations

from pathlib import Path

from submitit.core.utils import JobPaths, pickle_load

DONE = "done"
# (key, scheduler job id or None where the job was never submitted, keys it needed to succeed first)
JobRecord = tuple[str, "str | None", tuple[str, ...]]


def result_of(logs: Path, job_id: str) -> tuple[str, object] | None:
    """submitit's ("success" | "error", value) of job `job_id` in the folder `logs`, or None."""
    path = JobPaths(Path(logs) / "%j", job_id=job_id, task_id=0).result_pickle
    return pickle_load(path) if path.exists() else None


def last_line(traceback: str) -> str:
    lines = [line.strip() for line in str(traceback).splitlines() if line.strip()]
    return lines[-1] if lines else "no message"


def job_outcomes(jobs: tuple[JobRecord, ...], logs: Path) -> dict[str, str]:
    """key -> DONE, or why the job has no result, for `jobs` in plan order (dependencies first)."""
    outcomes: dict[str, str] = {}
    for key, job_id, after_ok in jobs:
        unmet = [k for k in after_ok if outcomes.get(k) != DONE]
        found = result_of(logs, job_id) if job_id is not None else None
        if found is not None:
            status, value = found
            outcomes[key] = DONE if status == "success" else f"failed: {last_line(value)}"
        elif unmet:
            outcomes[key] = (f"not run: {', '.join(unmet)} did not succeed "
                             "(a row waiting for it is cancelled, not left pending)")
        else:
            log = JobPaths(Path(logs) / "%j", job_id=job_id, task_id=0).stderr if job_id else None
            outcomes[key] = ("no result: killed, cancelled or out of requeues"
                             + (f"; its log: {log}" if log else ""))
    return outcomes


def jobs_section(outcomes: dict[str, str], keys: list[str]) -> list[str]:
    """Markdown lines naming the jobs among `keys` that produced no result, and why ([] if all did)."""
    missing = [(k, outcomes[k]) for k in keys if outcomes.get(k, DONE) != DONE]
    if not missing:
        return []
    return ["", "## Rows without a result in this submit", ""] + [f"- `{k}`: {why}" for k, why in missing]
