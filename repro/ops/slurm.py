"""What `repro submit` needs from Slurm besides submitit: a check that a node has the cores the jobs
ask for (Slurm accepts a job asking for more than any node has and leaves it pending forever), sbatch's
refusals as one line naming the option to change, and cancelling what a submit queued when a later
job of it is refused.

The phrases are sbatch's own (Slurm 22.05), e.g. `sbatch: error: Invalid generic resource (gres)
specification` for GPUs on a cluster without GPU GRES; tests/slurm runs them against a real Slurm.
"""

from __future__ import annotations

import subprocess

# (a phrase of sbatch's error, lower case; the `repro submit` option that decides it, and what to do)
SBATCH_REFUSALS = (
    ("generic resource", "--gpus", "ask for GPUs the cluster defines (`sinfo -o '%n %G'`), or none with --gpus 0"),
    ("invalid partition", "--partition", "name a partition `sinfo` lists, or leave --partition out for the default"),
    # before account: QOS refusals say "Job violates accounting/QOS policy"
    ("qos", "--configs/--seeds", "submit fewer jobs at once, or smaller ones (--time-min, --cpus, --gpus), within "
                                 "your QOS limits (`sacctmgr show qos`)"),
    ("account", "--account", "name an account you may charge (`sacctmgr show assoc user=$USER`)"),
    ("memory specification", "--mem-gb", "ask for less memory per job than a node has (`sinfo -o '%n %m'`, MB)"),
    ("time limit", "--time-min", "ask for a time limit within the partition's (`sinfo -o '%P %l'`); rows requeue "
                                  "and resume, so a shorter limit only costs requeues"),
)
GPU_DEFAULT_NOTE = "without --gpus each job asks for {gpus} GPU"
SCANCEL_SECONDS = 60
SINFO_SECONDS = 30


class SubmitError(ValueError):
    """sbatch refused a job of the submit: one line saying which option to change (exit status 2)."""


def most_cpus(partition: str | None) -> int | None:
    """The most CPUs a node of `partition` (the default partition where None) has, as `sinfo` reports
    them; None where sinfo cannot tell (then sbatch decides alone)."""
    try:
        done = subprocess.run(["sinfo", "--noheader", "--Node", "--format", "%P %c"], capture_output=True, text=True,
                              timeout=SINFO_SECONDS)
    except (OSError, subprocess.TimeoutExpired):
        return None
    nodes = [line.split()[:2] for line in done.stdout.splitlines() if len(line.split()) >= 2]
    counts = [int(cpus) for name, cpus in nodes
              if cpus.isdigit() and (name.rstrip("*") == partition or (partition is None and name.endswith("*")))]
    return max(counts) if done.returncode == 0 and counts else None  # an unknown partition: sbatch refuses it


def check_cpus(cpus: int, partition: str | None) -> None:
    """Raise SubmitError where no node of the partition has `cpus` CPUs: Slurm would accept the jobs and
    leave them pending forever (Reason=PartitionConfig) instead of refusing them as it does memory or GPUs."""
    most = most_cpus(partition)
    if most is not None and cpus > most:
        where = f"partition {partition}" if partition else "the default partition"
        raise SubmitError(f"--cpus {cpus}: no node of {where} has more than {most} CPUs, so Slurm would leave the "
                          f"jobs pending forever; ask for at most --cpus {most}")


def sbatch_error_line(stderr: str) -> str:
    """sbatch's first `error:` line without its prefix (or the first line of what it printed)."""
    lines = [line.strip() for line in str(stderr).splitlines() if line.strip()]
    errors = [line.split("error:", 1)[1].strip() for line in lines if "error:" in line]
    return errors[0] if errors else (lines[0] if lines else "no message")


def refusal(stderr: str, gpus: int, gpus_given: bool) -> str:
    """What to change, for sbatch's refusal `stderr`: "OPTION: what to do" (or a generic hint)."""
    text = str(stderr).lower()
    for phrase, option, advice in SBATCH_REFUSALS:
        if phrase in text:
            note = f" ({GPU_DEFAULT_NOTE.format(gpus=gpus)})" if option == "--gpus" and not gpus_given else ""
            return f"change {option}: {advice}{note}"
    return "change the resources asked for (--gpus, --cpus, --mem-gb, --time-min, --partition, --account)"


def cancel(job_ids: list[str]) -> str:
    """Cancel `job_ids` with scancel; a clause saying what became of them, for the error line."""
    if not job_ids:
        return "nothing of this submit was queued"
    listed = " ".join(job_ids)
    try:
        done = subprocess.run(["scancel", *job_ids], capture_output=True, text=True, timeout=SCANCEL_SECONDS)
        failed = done.returncode != 0
    except (OSError, subprocess.TimeoutExpired):
        failed = True
    if failed:
        return f"the {len(job_ids)} jobs this submit queued remain ({listed}): cancel them with `scancel {listed}`"
    return f"cancelled the {len(job_ids)} jobs this submit had queued ({listed})"


def refused_message(key: str, number: int, total: int, stderr: str, queued: list[str], gpus: int,
                    gpus_given: bool) -> str:
    """The one line `repro submit` ends with when sbatch refuses job `number` of `total` (`key`)."""
    return (f"sbatch refused job {number} of {total} ({key}): {sbatch_error_line(stderr)}; "
            f"{refusal(stderr, gpus, gpus_given)}; {cancel(queued)}")
