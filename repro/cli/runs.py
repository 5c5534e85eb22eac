"""`repro list`, `repro train`, `repro evaluate` and `repro reproduce`: the configurations and their runs.

`repro reproduce` with no arguments runs every configuration at the smoke budget on the built-in
data (no download), then prints the report: a summary of what was judged at this budget, Table 2
beside the paper's numbers, and the paper's claims.
"""

from __future__ import annotations

import argparse
import time

from repro.cli.options import add_gate_option, add_paired_option, check_affordable, check_inputs, over_seeds, seeds_of, settings_from
from repro.paper.budgets import BUDGETS
from repro.paper.configs import CONFIGURATIONS, get_configuration
from repro.paper.expected import load_expected
from repro.paper.variants import describe
from repro.runs.pipeline import Pipeline, dependency_order
from repro.runs.progress import TqdmReporter
from repro.runs.run_state import load_trained_model
from repro.verdicts.history import append_results, history_path
from repro.verdicts.outcome import EXIT_CODES_TEXT, VERDICTS_NAME, gated
from repro.verdicts.report import write_report, write_seed_report
from repro.verdicts.table2 import robust_attack


def add_commands(sub, common) -> None:
    """Register list, train, evaluate and reproduce on the subparsers `sub` (`common`: the shared flags)."""
    sub.add_parser("list", help="the configurations, their paper labels and Table 1 flags").set_defaults(func=cmd_list)
    p = sub.add_parser("train", parents=[common], help="train configurations (NORMAL first where needed)")
    p.add_argument("configs", nargs="+", metavar="ID")
    add_paired_option(p)
    p.set_defaults(func=cmd_train)
    p = sub.add_parser("evaluate", parents=[common], help="evaluate trained configurations")
    p.add_argument("configs", nargs="+", metavar="ID")
    add_paired_option(p)
    p.set_defaults(func=cmd_evaluate)
    p = sub.add_parser("reproduce", parents=[common], help="train and evaluate everything; print Table 2",
                       epilog=EXIT_CODES_TEXT, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--configs", nargs="+", metavar="ID", help="a subset of configurations (default: all)")
    add_gate_option(p)
    add_paired_option(p)
    p.set_defaults(func=cmd_reproduce)


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
            print(f"{config.id}: clean error {m['clean_error']:.2f}%, {robust_attack(record)} error {m['autoattack_error']:.2f}%, "
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
        return write_report(pipeline.run_folder, expected, settings.budget), pipeline.budget_folder

    reports = over_seeds(args, reproduce_seed)
    if len(seeds) == 1:
        written, _ = reports[seeds[0]]
    else:  # one report per seed in its folder; the one over seeds beside them
        for seed, (seed_written, _) in reports.items():
            print(f"seed {seed}: report {seed_written.path}")
        written = write_seed_report(reports[seeds[0]][1], seeds, expected, settings.budget)
    print(written.text)
    print(f"\n{len(configs)} configurations, budget {settings.budget.name}, seed{'s' if len(seeds) > 1 else ''} "
          f"{', '.join(map(str, seeds))}, readings {describe(settings.variants)}, "
          f"{time.perf_counter() - started:.0f} s; report: {written.path} (verdicts: {written.path.with_name(VERDICTS_NAME)})")
    return gated(written.code, args.no_gate)
