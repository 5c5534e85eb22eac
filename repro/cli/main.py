"""The `repro` command: list, train, evaluate and reproduce the paper's Table 2.

`repro reproduce` with no arguments runs every configuration at the smoke budget on the built-in
data (no download), then prints a Table 2 style summary.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import signal
import sys
import time
from pathlib import Path

from repro.mechanics.acceleration import apply_selfcheck, plan
from repro.paper.budgets import BUDGETS, get_budget
from repro.runs.checkpoint import CheckpointError
from repro.paper.configs import CONFIGURATIONS, UnknownConfigurationError, get_configuration
from repro.paper.datasets import CIFAR10
from repro.runs.data import DataError, check_cifar10_present
from repro.paper.expected import ExpectedResultsError, load_expected
from repro.verdicts.history import append_results, history_path
from repro.runs.pipeline import Pipeline, RunSettings, dependency_order
from repro.runs.progress import TqdmReporter
from repro.runs.provenance import device_description, git_commit, resolve_device
from repro.verdicts.report import write_report, write_seed_report
from repro.runs.seeds import check_seeds, for_each_seed
from repro.runs.timing import estimate_seconds, measure_rates, row_seconds
from repro.runs.training import RunExistsError, TrainingDivergedError, load_trained_model
from repro.paper.variants import CHOICES, describe, parse_variants, register_text

SLOW_RUN_SECONDS = 4 * 3600  # runs estimated longer than this on a CPU need --allow-slow


def parse_overrides(pairs: list[str]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        if "=" not in pair:
            raise ValueError(f"--set expects FIELD=VALUE, got {pair!r}")
        key, value = pair.split("=", 1)
        out[key.strip()] = value.strip()
    return out


def settings_from(args) -> RunSettings:
    budget = get_budget(args.budget, parse_overrides(args.set))
    device = resolve_device(args.device)
    applied = None
    if args.selfcheck:  # bf16/compile only where that selfcheck's rule passed (issue 13)
        budget, applied = apply_selfcheck(budget, read_selfcheck(args.selfcheck), device)
    plan(budget, device)  # bf16/compile run on any device; compile without a compiler is refused now, not mid-run
    return RunSettings(
        budget=budget, seed=args.seed, out=Path(args.out), device=device,
        data_dir=Path(args.data_dir) if args.data_dir else None, download=args.download,
        allow_unverified_data=args.allow_unverified_data, resume=args.resume, restart=args.restart,
        variants=parse_variants(args.variant),
        selfcheck=applied,
    )


def read_selfcheck(path: str) -> dict:
    """A selfcheck.json written by `repro selfcheck`; ValueError saying what to do otherwise."""
    try:
        record = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise ValueError(f"cannot read selfcheck {path} ({error}); run `repro selfcheck --json {path}`") from None
    if not isinstance(record, dict) or not {"device", "passes", "compile_backend"} <= record.keys():
        raise ValueError(f"{path} is not a selfcheck.json; run `repro selfcheck --json {path}`")
    return record


def seeds_of(args) -> list[int]:
    """The seeds a command runs: --seeds S [S ...], else the single --seed."""
    return check_seeds(args.seeds) if args.seeds else [args.seed]


def over_seeds(args, work):
    """Run `work(settings)` once per seed of the command line (--seeds, else --seed); {seed: result}.

    Seed S's runs go to OUT/BUDGET/seedS/ as a single-seed run's do; commands that train or
    evaluate several seeds share this loop.
    """
    return for_each_seed(settings_from(args), seeds_of(args), work)


def check_inputs(settings: RunSettings) -> None:
    """Cheap checks of what a run needs (data present), before anything slow is measured."""
    if settings.budget.dataset == CIFAR10:
        if settings.data_dir is None:
            raise DataError("the budget uses CIFAR-10: pass --data-dir DIR (and --download to fetch it there)")
        if not settings.download:
            check_cifar10_present(settings.data_dir)


def check_affordable(settings: RunSettings, configs, allow_slow: bool, n_seeds: int = 1) -> None:
    """Refuse a run a CPU would take many hours over (all `n_seeds` seeds), unless --allow-slow.

    The estimate is measured now, with the threads the run would use; when other work loads the
    CPU (load average above its cores) the refusal says so: the measurement is then an upper bound.
    """
    if settings.device.type != "cpu" or allow_slow:
        return
    seconds = n_seeds * estimate_seconds(settings.budget, configs, settings.device,
                                         n_train=settings.budget.train_images)
    if seconds > SLOW_RUN_SECONDS:
        load, cores = os.getloadavg()[0], os.cpu_count() or 1
        under_load = (f" (measured while the CPU is loaded: load average {load:.1f} on {cores} cores, "
                      "so an upper bound)") if load > cores else ""
        smaller = [name for name, b in BUDGETS.items()
                   if not b.needs_gpu
                   and estimate_is_smaller(b, settings.budget)]
        suggestion = f"pick a smaller budget ({' or '.join(f'--budget {n}' for n in smaller)}), " if smaller else ""
        raise ValueError(
            f"budget {settings.budget.name} would take about {seconds / 3600:.0f} hours on this CPU{under_load}; "
            f"run it on a GPU (--device cuda), {suggestion}fewer rows (--configs ...), "
            "or pass --allow-slow to go ahead"
        )


def estimate_is_smaller(candidate, budget) -> bool:
    """Whether `candidate` trains fewer images at no larger width than `budget` (no measurement)."""
    def images(b):
        return b.train_images * (b.epochs_clean + b.epochs_adversarial * (1 + b.train_attack_steps))
    return candidate.width <= budget.width and images(candidate) < images(budget)


def cmd_list(args) -> int:
    print(f"{'id':<26} {'paper label':<32} {'starts from':<12} {'objective':<20} {'all':<4} {'BN params':<10} {'BN stats':<18}")
    for c in CONFIGURATIONS.values():
        print(f"{c.id:<26} {c.label:<32} {c.init:<12} {c.objective:<20} {'yes' if c.trains_all else 'no':<4} "
              f"{'yes' if c.trains_bn_params else 'no':<10} {c.bn_stats:<18}")
    print(f"\nbudgets: {', '.join(BUDGETS)}")
    return 0


def cmd_train(args) -> int:
    configs = [get_configuration(c) for c in args.configs]
    settings = settings_from(args)
    check_inputs(settings)
    check_affordable(settings, dependency_order(args.configs), args.allow_slow, len(seeds_of(args)))

    def train_seed(settings):
        pipeline = Pipeline(settings, TqdmReporter(not args.quiet))
        for config in configs:  # trained_model trains NORMAL (of this seed) first where a row needs it
            pipeline.trained_model(config, restart=settings.restart)
            print(f"{config.id}: trained -> {pipeline.folder(config)}")

    over_seeds(args, train_seed)
    return 0


def cmd_evaluate(args) -> int:
    if args.restart:
        raise ValueError("evaluate never trains or deletes a model; to retrain, run "
                         f"`repro train {' '.join(args.configs)} --restart`")

    def evaluate_seed(settings):
        pipeline = Pipeline(settings, TqdmReporter(not args.quiet))
        for config_id in args.configs:
            config = pipeline.configuration(get_configuration(config_id))  # as trained under --variant readings
            load_trained_model(pipeline.folder(config), config, settings.budget, settings.seed)  # clear error if untrained
            record = pipeline.result(config, reuse=False)
            m = record["metrics"]
            print(f"{config.id}: clean error {m['clean_error']:.2f}%, AutoAttack error {m['autoattack_error']:.2f}%, "
                  f"PGD error {m['pgd_error']:.2f}% -> {pipeline.folder(config) / 'result.json'}")

    over_seeds(args, evaluate_seed)
    return 0


def cmd_reproduce(args) -> int:
    settings = settings_from(args)
    seeds = seeds_of(args)
    ids = args.configs or list(CONFIGURATIONS)
    for config_id in ids:
        get_configuration(config_id)
    configs = dependency_order(ids)
    check_inputs(settings)
    check_affordable(settings, configs, args.allow_slow, len(seeds))
    started = time.perf_counter()
    expected = load_expected()  # fail on a malformed file before hours of training

    def reproduce_seed(settings):
        pipeline = Pipeline(settings, TqdmReporter(not args.quiet))
        records = {c.id: pipeline.result(c) for c in configs}
        append_results(history_path(settings.out), records.values())  # the history of nights (repro history)
        return write_report(pipeline.run_folder, expected, settings.budget) + (pipeline.budget_folder, len(records))

    reports = over_seeds(args, reproduce_seed)
    if len(seeds) == 1:
        text, path, _, count = reports[seeds[0]]
    else:  # one report per seed in its folder; the one over seeds beside them
        for seed, (_, seed_path, _, _) in reports.items():
            print(f"seed {seed}: report {seed_path}")
        _, _, budget_folder, count = reports[seeds[0]]
        text, path = write_seed_report(budget_folder, seeds, expected, settings.budget)
    print(text)
    print(f"\n{count} configurations, budget {settings.budget.name}, seed{'s' if len(seeds) > 1 else ''} "
          f"{', '.join(map(str, seeds))}, readings {describe(settings.variants)}, "
          f"{time.perf_counter() - started:.0f} s; report: {path}")
    return 0


def cmd_bench(args) -> int:
    settings = settings_from(args)
    budget, device = settings.budget, settings.device
    print(f"device: {device_description(device)}")
    print(f"budget: {budget.name} (width {budget.width}, bf16 {budget.bf16}, compile {budget.compile})")
    print(f"network runs: {plan(budget, device).describe()}")
    rates = measure_rates(budget, device, repeats=args.repeats)
    for key, rate in rates.items():
        print(f"  {key:<20} {rate:10.1f} images/s")
    n_train = budget.train_images
    total = 0.0
    print(f"estimated wall time per row ({n_train} training images, {budget.n_robust} attacked):")
    for config in CONFIGURATIONS.values():
        seconds = row_seconds(config, budget, rates, n_train)
        total += seconds
        print(f"  {config.label:<32} {seconds / 60:10.1f} min")
    print(f"  {'total':<32} {total / 3600:10.2f} h")
    return 0


def cmd_selfcheck(args) -> int:
    from repro.ops import selfcheck

    device = resolve_device(args.device)
    defaults = selfcheck.default_sizes(device)
    changes = {field: getattr(args, field) for field in ("width", "batch_size", "repeats", "train_steps", "n_images")
               if getattr(args, field) is not None}
    if any(value < 1 for value in changes.values()):
        raise ValueError(f"selfcheck sizes must be >= 1, got {changes}")
    record = selfcheck.selfcheck(device, dataclasses.replace(defaults, **changes), args.compile_backend)
    path = selfcheck.write(record, Path(args.json) if args.json else Path(args.out) / "selfcheck.json")
    print(selfcheck.render(record))
    print(f"\nselfcheck: {path}")
    return 0


def cmd_figures(args) -> int:
    from repro.figures.make import load_figure_models, make_figures

    several = len(seeds_of(args)) > 1

    def figures_seed(settings):
        pipeline = Pipeline(settings)
        out_dir = Path(args.figures_dir) if args.figures_dir else None
        if out_dir is not None and several:  # one subfolder per seed: their files share names
            out_dir = out_dir / f"seed{settings.seed}"
        figure_readings = {c: r for c, r in settings.variants.items() if c in FIGURE_CHOICES}
        if out_dir is None and figure_readings:  # keep the default figures; these go beside them
            out_dir = pipeline.run_folder / ("figures" + "".join(f"+{c}={r}" for c, r in figure_readings.items()))
        paths = make_figures(
            pipeline.run_folder, settings.budget, settings.seed, settings.device, pipeline.data, out_dir,
            models=load_figure_models(pipeline.run_folder, settings.budget, settings.seed, settings.device,
                                      configure=pipeline.configuration),
            figure3_logits=settings.variants.get("figure3_logits", CHOICES["figure3_logits"].default))
        for path in paths:
            print(path)
        if out_dir is None:  # refresh the report so it links the figures
            write_report(pipeline.run_folder, load_expected(), settings.budget)

    over_seeds(args, figures_seed)
    return 0


def cmd_variants(args) -> int:
    print(register_text())
    return 0


def cmd_report(args) -> int:
    settings = settings_from(args)
    if args.variants:
        return _report_variants(settings)
    seeds = seeds_of(args)
    pipeline = Pipeline(settings)
    folder = pipeline.run_folder if len(seeds) == 1 else pipeline.budget_folder
    if not folder.exists():
        raise ValueError(f"no runs in {folder}; run `repro reproduce --budget {settings.budget.name}` first")
    if len(seeds) == 1:
        text, path = write_report(folder, load_expected(), settings.budget)
    else:  # over seeds: a seed without runs shows as missing in the report
        text, path = write_seed_report(folder, seeds, load_expected(), settings.budget)
    print(text)
    print(f"\nreport: {path}")
    return 0


def _report_variants(settings: RunSettings) -> int:
    """`repro report --variants`: every reading run, beside the paper's values (repro/verdicts/compare.py)."""
    from repro.runs.checkpoint import atomic_write_bytes
    from repro.verdicts.compare import COMPARISON_NAME, render_comparison

    text = render_comparison(load_expected(), settings.out, settings.budget, settings.seed)
    path = Path(settings.out) / settings.budget.run_name / COMPARISON_NAME.format(seed=settings.seed)
    atomic_write_bytes(path, text.encode())
    print(text)
    print(f"\ncomparison: {path}")
    return 0


FIGURE_CHOICES = tuple(c.id for c in CHOICES.values() if c.figures)


def cmd_submit(args) -> int:
    import submitit

    from repro.verdicts.history import new_run
    from repro.runs.pipeline import load_data
    from repro.ops.submit import OVER_SEEDS, Resources, RowJob, plan, run_locally, slurm_dependency, submit_to_slurm

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
            detail = f"clean {m['clean_error']:.2f}%, AutoAttack {m['autoattack_error']:.2f}% (attempt {value['attempt']})"
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


def cmd_history(args) -> int:
    from repro.figures.history_plot import plot_history
    from repro.verdicts.history import ERROR_METRICS, HistoryError, history_path, moves, read_history, recent, render_history

    path = Path(args.history) if args.history else history_path(args.out)
    entries = [e for e in read_history(path) if args.budget in (None, e["budget"])]
    if not entries:
        raise HistoryError(f"{path} holds no nights of budget {args.budget}; drop --budget to see all")
    metrics = tuple(args.metrics or ERROR_METRICS)
    print(render_history(entries, args.last, metrics))
    if args.plot is not None:
        print(f"plot: {plot_history(entries, Path(args.plot) if args.plot else path.with_suffix('.png'), metrics)}")
    return 1 if args.check and moves(recent(entries, args.last, metrics)) else 0


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--budget", default="smoke", choices=list(BUDGETS),
                        help="compute budget (default: smoke, built-in data on a CPU)")
    common.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="override a budget field, e.g. --set epochs_clean=10 --set epsilon=8/255")
    common.add_argument("--data-dir", help="folder containing (or to receive) cifar-10-batches-py/")
    common.add_argument("--download", action="store_true", help="download CIFAR-10 into --data-dir if missing")
    common.add_argument("--allow-unverified-data", action="store_true",
                        help="accept CIFAR-10 files whose checksums differ from the official ones (recorded in results)")
    common.add_argument("--out", default="runs", help="run folder (default: runs/)")
    common.add_argument("--device", default="auto", help="auto (CUDA if available), cpu, cuda, cuda:1, ...")
    seeds = common.add_mutually_exclusive_group()
    seeds.add_argument("--seed", type=int, default=0, help="training seed (default 0); runs in OUT/BUDGET/seedSEED/")
    seeds.add_argument("--seeds", type=int, nargs="+", metavar="S",
                       help="several seeds, one run folder each (OUT/BUDGET/seedS/); reproduce and report "
                            "also write the report over seeds (mean ± SD per row) to OUT/BUDGET/report.md")
    common.add_argument("--resume", action="store_true", help="continue interrupted runs from their checkpoints")
    common.add_argument("--restart", action="store_true", help="discard existing checkpoints of the named runs")
    common.add_argument("--allow-slow", action="store_true", help="run even if a CPU would take many hours")
    common.add_argument("--quiet", action="store_true", help="no progress bars")
    common.add_argument("--variant", action="append", default=[], metavar="CHOICE=READING",
                        help="a non-default reading of an open choice of the paper (repeatable; list: repro variants)")
    common.add_argument("--selfcheck", metavar="JSON",
                        help="switch on bf16/compile where this selfcheck.json (same device type) passed its rule")

    parser = argparse.ArgumentParser(prog="repro", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="the configurations, their paper labels and Table 1 flags").set_defaults(func=cmd_list)
    p = sub.add_parser("train", parents=[common], help="train configurations (NORMAL first where needed)")
    p.add_argument("configs", nargs="+", metavar="ID")
    p.set_defaults(func=cmd_train)
    p = sub.add_parser("evaluate", parents=[common], help="evaluate trained configurations")
    p.add_argument("configs", nargs="+", metavar="ID")
    p.set_defaults(func=cmd_evaluate)
    p = sub.add_parser("reproduce", parents=[common], help="train and evaluate everything; print Table 2")
    p.add_argument("--configs", nargs="+", metavar="ID", help="a subset of configurations (default: all)")
    p.set_defaults(func=cmd_reproduce)
    p = sub.add_parser("bench", parents=[common], help="measure throughput; estimate each row's wall time")
    p.add_argument("--repeats", type=int, default=3, help="timed steps per measurement (after one warm-up)")
    p.set_defaults(func=cmd_bench)
    p = sub.add_parser("selfcheck", help="environment, throughput, bf16/compile attack strength, determinism, "
                                         "projected paper-budget time; writes selfcheck.json")
    p.add_argument("--device", default="auto", help="auto (CUDA if available), cpu, cuda, cuda:1, ...")
    p.add_argument("--out", default="runs", help="folder for selfcheck.json (default: runs/)")
    p.add_argument("--json", help="write the JSON here instead of OUT/selfcheck.json")
    p.add_argument("--width", type=int, help="network width (default: 64 on CUDA, 4 on a CPU)")
    p.add_argument("--batch-size", type=int, help="images per step (default: 128 on CUDA, 16 on a CPU)")
    p.add_argument("--repeats", type=int, help="timed steps per measurement after one warm-up")
    p.add_argument("--train-steps", type=int, help="ADV steps of the model the attacks are compared on")
    p.add_argument("--images", dest="n_images", type=int, help="images attacked in fp32, bf16 and compiled")
    p.add_argument("--compile-backend", help="torch.compile backend (default: inductor on CUDA, eager on a CPU)")
    p.set_defaults(func=cmd_selfcheck)
    p = sub.add_parser("figures", parents=[common], help="Figures 1-3 from trained NORMAL, ADV and BN PARAMS (PNG + JSON)")
    p.add_argument("--figures-dir", help="where to write them (default: RUN_FOLDER/figures, linked from report.md)")
    p.set_defaults(func=cmd_figures)
    p = sub.add_parser("report", parents=[common], help="Table 2 and the claims from finished runs (also report.md)")
    p.add_argument("--variants", action="store_true",
                   help="instead: every reading of the open choices that has been run, beside the paper's values")
    p.set_defaults(func=cmd_report)
    sub.add_parser("variants", help="the paper's open choices: sentences, readings, evidence, rows").set_defaults(
        func=cmd_variants)
    p = sub.add_parser("submit", parents=[common], help="every row as Slurm jobs through submitit (local processes without Slurm)")
    add_submit_arguments(p)
    p.set_defaults(func=cmd_submit)
    p = sub.add_parser("history", help="the last nights' numbers per row and metric; flags moves larger than allowed")
    add_history_arguments(p)
    p.set_defaults(func=cmd_history)
    return parser


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


def add_history_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default="runs", help="the --out folder whose history.jsonl to read (default: runs/)")
    p.add_argument("--history", help="a history file to read instead (e.g. REPRO_CACHE/history.jsonl of the tier)")
    p.add_argument("--budget", help="only nights of this budget (default: all)")
    p.add_argument("--last", type=int, default=5, help="how many nights to show (default 5)")
    p.add_argument("--metrics", nargs="+", help="metrics to show (default: the error rates)")
    p.add_argument("--plot", nargs="?", const="", help="draw each metric over the nights (default: beside the history file)")
    p.add_argument("--check", action="store_true", help="exit 1 when a move larger than allowed is flagged")


USER_ERRORS = (ExpectedResultsError, UnknownConfigurationError, DataError, CheckpointError, RunExistsError, TrainingDivergedError, ValueError)
# ValueError is how bad input is reported throughout (budgets, attacks, data); REPRO_DEBUG=1 shows
# the traceback instead, for the rare ValueError that is a bug rather than bad input.
DEBUG_ENV = "REPRO_DEBUG"


def _terminate(signum, frame):
    raise KeyboardInterrupt  # a kill ends like Ctrl-C: the last epoch's checkpoint is already on disk


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    git_commit()  # the code this process loaded, before a long run gives anyone time to commit
    try:
        return args.func(args)
    except USER_ERRORS as error:
        if os.environ.get(DEBUG_ENV) == "1":
            raise
        print(f"repro: error: {error} (traceback: {DEBUG_ENV}=1)", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\nrepro: interrupted; training is checkpointed every epoch and every few minutes, "
              "continue with --resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
