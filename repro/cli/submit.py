"""`repro submit`: every row and seed as scheduler jobs (Slurm, or local processes), then the report."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from repro.cli.options import check_affordable, parse_overrides, seeds_of, settings_from
from repro.paper.budgets import get_budget
from repro.paper.configs import CONFIGURATIONS, get_configuration
from repro.runs.pipeline import RunSettings, dependency_order


def add_commands(sub, common) -> None:
    """Register submit on the subparsers `sub`."""
    p = sub.add_parser("submit", parents=[common], help="every row as Slurm jobs through submitit (local processes without Slurm)")
    add_submit_arguments(p)
    p.set_defaults(func=cmd_submit)


def cmd_submit(args) -> int:
    import submitit

    from repro.ops.submit import OVER_SEEDS, Resources, RowJob, plan, run_locally, slurm_dependency, submit_to_slurm
    from repro.runs.pipeline import load_data
    from repro.verdicts.history import new_run
    from repro.verdicts.table2 import robust_attack

    budget = get_budget(args.budget, parse_overrides(args.set))
    ids = args.configs or list(CONFIGURATIONS)
    for config_id in ids:
        get_configuration(config_id)
    seeds = seeds_of(args)
    if args.variant:  # RowJob carries no readings yet: refuse rather than run the defaults under another name
        raise ValueError("repro submit does not run --variant readings yet; run them with "
                         "`repro reproduce --variant CHOICE=READING` (or REPRO_VARIANT in the reproduction tier)")
    cluster = submitit.AutoExecutor.which() if args.cluster == "auto" else args.cluster
    local = cluster != "slurm"
    if local:  # here the device is this machine's, as for reproduce
        check_affordable(settings_from(args), dependency_order(ids), args.allow_slow, len(seeds))
    data_dir = Path(args.data_dir) if args.data_dir else None
    if args.download:  # once, here: parallel jobs must not download into one folder at once
        load_data(RunSettings(budget=budget, data_dir=data_dir, download=True,
                              allow_unverified_data=args.allow_unverified_data))
    out, started = Path(args.out), time.perf_counter()
    template = RowJob("", budget, 0, out, new_run(), device=args.device, data_dir=data_dir,
                      allow_unverified_data=args.allow_unverified_data, restart=args.restart, quiet=args.quiet)
    resources = Resources(gpus=args.gpus, cpus=args.cpus, mem_gb=args.mem_gb, time_min=args.time_min,
                          partition=args.partition, account=args.account, max_requeues=args.max_requeues)
    specs = plan(ids, seeds, template, resources)
    folder = Path(args.logs) if args.logs else out / "submitit"
    if not local:
        jobs = submit_to_slurm(specs, folder, cluster)
        ids_of = {key: job.job_id for key, job in jobs.items()}
        for spec in specs:
            print(f"{ids_of[spec.key]:>12}  {spec.key:<36} {slurm_dependency(spec, ids_of) or ''}")
        print(f"\n{len(jobs)} Slurm jobs submitted (logs: {folder}); follow them with `squeue -u $USER`. "
              f"Job {ids_of['report']} writes {out / budget.run_name}/seedS/report.md"
              + (f" and the report over seeds, {out / budget.run_name}/report.md" if len(seeds) > 1 else "")
              + f"; then `repro history --out {out}`.")
        return 0

    def on_end(key, outcome):
        status, value = outcome
        if status == "done" and key != "report":
            m = value["metrics"]
            attack = robust_attack({"metrics": m, "budget": {"autoattack_iterations": budget.autoattack_iterations}})
            detail = f"clean {m['clean_error']:.2f}%, {attack} {m['autoattack_error']:.2f}% (attempt {value['attempt']})"
        else:
            detail = "" if status == "done" else str(value).strip().splitlines()[-1]
        print(f"[{time.perf_counter() - started:6.0f} s] {status:<7} {key:<36} {detail}", flush=True)

    outcomes = run_locally(specs, folder, cluster, parallel=args.local_parallel, on_end=on_end)
    status, reports = outcomes["report"]
    for seed, report in (reports.items() if status == "done" else []):
        print(f"\n{report['text']}\nreport ({seed if seed == OVER_SEEDS else f'seed {seed}'}): {report['report']}")
    failed = sorted(key for key, (status, _) in outcomes.items() if status != "done")
    print(f"\n{len(specs)} jobs through submitit ({cluster}), budget {budget.name}, seeds {' '.join(map(str, seeds))}, "
          f"{time.perf_counter() - started:.0f} s" + (f"; not done: {', '.join(failed)}" if failed else "")
          + f"; history: repro history --out {out}")
    return 1 if failed else 0


def add_submit_arguments(p: argparse.ArgumentParser) -> None:
    from repro.ops.submit import CLUSTERS, Resources

    d = Resources()
    p.add_argument("--configs", nargs="+", metavar="ID", help="a subset of configurations (default: all)")
    p.add_argument("--cluster", choices=CLUSTERS, default="auto",
                   help="auto: Slurm where `srun` exists, else local processes; debug: in this process")
    p.add_argument("--gpus", type=int, default=d.gpus, help=f"GPUs per job (default {d.gpus})")
    p.add_argument("--cpus", type=int, default=d.cpus, help=f"CPU cores per job (default {d.cpus})")
    p.add_argument("--mem-gb", type=float, default=d.mem_gb, help=f"memory per job in GB (default {d.mem_gb:g})")
    p.add_argument("--time-min", type=int, default=d.time_min,
                   help=f"time limit per job in minutes (default {d.time_min}); a job timed out requeues and resumes")
    p.add_argument("--partition", help="Slurm partition")
    p.add_argument("--account", help="Slurm account")
    p.add_argument("--max-requeues", type=int, default=d.max_requeues,
                   help=f"time-outs after which a job is not requeued again (default {d.max_requeues})")
    p.add_argument("--logs", help="submitit's job folder (default: OUT/submitit)")
    p.add_argument("--local-parallel", type=int, default=1, help="without Slurm: jobs run at once (default 1)")
