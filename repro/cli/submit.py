"""`repro submit`: every row and seed as scheduler jobs (Slurm, or local processes), then the report."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from repro.cli.options import (AUTO_SELFCHECK, auto_selfcheck_path, check_affordable, parse_overrides, read_selfcheck,
                               seeds_of, settings_from)
from repro.mechanics.acceleration import apply_selfcheck
from repro.paper.budgets import get_budget
from repro.paper.configs import CONFIGURATIONS, get_configuration
from repro.paper.variants import describe, folder_suffix, parse_variants
from repro.runs.pipeline import RunSettings, dependency_order


def add_commands(sub, common) -> None:
    """Register submit on the subparsers `sub`."""
    p = sub.add_parser("submit", parents=[common], help="every row as Slurm jobs through submitit (local processes without Slurm)")
    add_submit_arguments(p)
    p.set_defaults(func=cmd_submit)


def cmd_submit(args) -> int:
    import submitit

    from repro.ops.jobs import RowJob
    from repro.ops.submit import check_parallel, plan
    from repro.runs.pipeline import load_data
    from repro.verdicts.history import new_run

    ids = args.configs or list(CONFIGURATIONS)
    for config_id in ids:
        get_configuration(config_id)
    seeds = seeds_of(args)
    resources = resources_of(args)
    check_parallel(args.local_parallel)
    cluster = submitit.AutoExecutor.which() if args.cluster == "auto" else args.cluster
    local = cluster != "slurm"
    budget, selfcheck = job_budget(args, local, resources.gpus)
    if local:  # here the device is this machine's, as for reproduce
        check_affordable(settings_from(args), dependency_order(ids), args.allow_slow, len(seeds))
    data_dir = Path(args.data_dir) if args.data_dir else None
    if args.download:  # once, here: parallel jobs must not download into one folder at once
        load_data(RunSettings(budget=budget, data_dir=data_dir, download=True,
                              allow_unverified_data=args.allow_unverified_data))
    template = RowJob("", budget, 0, Path(args.out), new_run(), variants=parse_variants(args.variant),
                      device=args.device, data_dir=data_dir, allow_unverified_data=args.allow_unverified_data,
                      restart=args.restart, quiet=args.quiet, selfcheck=selfcheck)
    specs = plan(ids, seeds, template, resources)
    folder = Path(args.logs) if args.logs else Path(args.out) / "submitit"
    if local:
        return run_here(specs, folder, cluster, args.local_parallel, template, seeds)
    return submit_there(specs, folder, cluster, args.gpus is not None, template, seeds)


def resources_of(args):
    """The per-job Resources of the command line (the defaults where a flag is absent)."""
    from repro.ops.submit import Resources

    d = Resources()
    return Resources(gpus=d.gpus if args.gpus is None else args.gpus, cpus=args.cpus, mem_gb=args.mem_gb,
                     time_min=args.time_min, partition=args.partition, account=args.account,
                     max_requeues=args.max_requeues, signal_s=args.signal_s)


def job_budget(args, local: bool, gpus: int):
    """The budget every job trains under, and what --selfcheck switched on in it (None without one).

    The selfcheck must come from the device type the jobs run on: this machine's for local jobs;
    on Slurm --device where given, else CUDA when the jobs ask for GPUs and a CPU otherwise.
    """
    if local:
        settings = settings_from(args)  # as reproduce: bf16/compile where the selfcheck passed, refused otherwise
        return settings.budget, settings.selfcheck
    budget = get_budget(args.budget, parse_overrides(args.set))
    if not args.selfcheck:
        return budget, None
    device = torch.device(args.device) if args.device != "auto" else torch.device("cuda" if gpus else "cpu")
    if args.selfcheck != AUTO_SELFCHECK:
        return apply_selfcheck(budget, read_selfcheck(args.selfcheck), device)
    # auto: the jobs' device type, measured where they run; this machine (a login node) is not that place
    path = auto_selfcheck_path(args.out, device, budget)
    if not path.exists():
        raise ValueError(f"--selfcheck auto: no selfcheck of the jobs' {device.type} at budget {budget.name} yet "
                         f"({path}); run `repro selfcheck --budget {budget.name} --json {path}` on a node like "
                         "the jobs' (e.g. through srun), or pass --selfcheck PATH")
    return apply_selfcheck(budget, read_selfcheck(str(path)), device)


def submit_there(specs, folder: Path, cluster: str, gpus_given: bool, template, seeds) -> int:
    """Submit the plan to Slurm and print each job's id and dependencies."""
    from repro.ops.submit import slurm_dependency, submit_to_slurm

    jobs = submit_to_slurm(specs, folder, cluster, gpus_given=gpus_given)
    ids_of = {key: job.job_id for key, job in jobs.items()}
    for spec in specs:
        print(f"{ids_of[spec.key]:>12}  {spec.key:<36} {slurm_dependency(spec, ids_of) or ''}")
    budget_folder = Path(template.out) / (template.budget.run_name + folder_suffix(template.variants))
    print(f"\n{len(jobs)} Slurm jobs submitted (logs: {folder}), readings {describe(template.variants)}; "
          f"follow them with `squeue -u $USER`. Job {ids_of['report']} writes {budget_folder}/seedS/report.md"
          + (f" and the report over seeds, {budget_folder}/report.md" if len(seeds) > 1 else "")
          + f"; then `repro history --out {template.out}`.")
    return 0


def run_here(specs, folder: Path, cluster: str, parallel: int, template, seeds) -> int:
    """Run the plan as local processes (or in this process), printing each job as it ends."""
    from repro.ops.jobs import OVER_SEEDS
    from repro.ops.submit import run_locally
    from repro.verdicts.table2 import robust_attack

    started = time.perf_counter()

    def on_end(key, outcome):
        status, value = outcome
        if status == "done" and key != "report":
            m = value["metrics"]
            attack = robust_attack({"metrics": m, "budget": {"autoattack_iterations": template.budget.autoattack_iterations}})
            detail = f"clean {m['clean_error']:.2f}%, {attack} {m['autoattack_error']:.2f}% (attempt {value['attempt']})"
        else:
            detail = "" if status == "done" else str(value).strip().splitlines()[-1]
        print(f"[{time.perf_counter() - started:6.0f} s] {status:<7} {key:<36} {detail}", flush=True)

    outcomes = run_locally(specs, folder, cluster, parallel=parallel, on_end=on_end)
    status, reports = outcomes["report"]
    for seed, report in (reports.items() if status == "done" else []):
        print(f"\n{report['text']}\nreport ({seed if seed == OVER_SEEDS else f'seed {seed}'}): {report['report']}")
    failed = sorted(key for key, (status, _) in outcomes.items() if status != "done")
    print(f"\n{len(specs)} jobs through submitit ({cluster}), budget {template.budget.name}, "
          f"readings {describe(template.variants)}, seeds {' '.join(map(str, seeds))}, "
          f"{time.perf_counter() - started:.0f} s" + (f"; not done: {', '.join(failed)}" if failed else "")
          + f"; history: repro history --out {template.out}")
    return 1 if failed else 0


def add_submit_arguments(p: argparse.ArgumentParser) -> None:
    from repro.ops.submit import CLUSTERS, Resources

    d = Resources()
    p.add_argument("--configs", nargs="+", metavar="ID", help="a subset of configurations (default: all)")
    p.add_argument("--cluster", choices=CLUSTERS, default="auto",
                   help="auto: Slurm where `srun` exists, else local processes; debug: in this process")
    p.add_argument("--gpus", type=int, default=None,
                   help=f"GPUs per job (default {d.gpus}; --gpus 0 on a cluster without GPU GRES)")
    p.add_argument("--cpus", type=int, default=d.cpus, help=f"CPU cores per job (default {d.cpus})")
    p.add_argument("--mem-gb", type=float, default=d.mem_gb, help=f"memory per job in GB (default {d.mem_gb:g})")
    p.add_argument("--time-min", type=int, default=d.time_min,
                   help=f"time limit per job in minutes (default {d.time_min}); a job timed out requeues and resumes")
    p.add_argument("--signal-s", type=int, default=d.signal_s,
                   help=f"Slurm signals a job this many seconds before its time limit, to requeue it "
                        f"(default {d.signal_s})")
    p.add_argument("--partition", help="Slurm partition")
    p.add_argument("--account", help="Slurm account")
    p.add_argument("--max-requeues", type=int, default=d.max_requeues,
                   help=f"time-outs after which a job is not requeued again (default {d.max_requeues})")
    p.add_argument("--logs", help="submitit's job folder (default: OUT/submitit)")
    p.add_argument("--local-parallel", type=int, default=1, help="without Slurm: jobs run at once (default 1)")
