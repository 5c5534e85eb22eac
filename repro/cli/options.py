"""What every run command shares: the common flags, the run settings they make, seeds, and the cheap
checks that refuse a run before anything slow starts (missing data, a CPU run of many hours)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from repro.mechanics.acceleration import apply_selfcheck, plan
from repro.paper.budgets import BUDGETS, get_budget
from repro.paper.datasets import CIFAR10
from repro.paper.variants import parse_variants
from repro.runs.data import DataError, check_cifar10_present
from repro.runs.pipeline import RunSettings
from repro.runs.provenance import resolve_device
from repro.runs.seeds import check_seeds, for_each_seed
from repro.runs.timing import estimate_seconds


def common_options() -> argparse.ArgumentParser:
    """The flags of every command that trains, evaluates or reports runs (a parent parser)."""
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
                        help="switch on the fastest acceleration mode this selfcheck.json (same device type) approved; "
                             f"'{AUTO_SELFCHECK}': OUT/selfcheck-DEVICE-BUDGET.json, run first if it does not exist")
    return common


def add_paired_option(parser: argparse.ArgumentParser) -> None:
    """--paired-normal on a command that trains: fine-tune in a mode from the fp32 NORMAL."""
    parser.add_argument("--paired-normal", action="store_true",
                        help="with an acceleration mode (--selfcheck, --set bf16=true): fine-tuning rows start from "
                             "the NORMAL trained without it (OUT/BUDGET/seedS/normal, trained there if missing), so "
                             "they pair with fp32 rows from the same weights")


def add_gate_option(parser: argparse.ArgumentParser) -> None:
    """--no-gate on a command that judges: print and record the verdicts, exit 0 whatever they say."""
    parser.add_argument("--no-gate", action="store_true",
                        help="explore: exit 0 whatever the verdicts say (default: exit 1 when a judged verdict "
                             "fails, 3 when nothing could be judged)")


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
    if args.selfcheck:  # only the modes that selfcheck approved
        budget, applied = apply_selfcheck(budget, selfcheck_record(args.selfcheck, budget, device, args.out), device)
    plan(budget, device)  # bf16/compile run on any device; compile without a compiler is refused now, not mid-run
    return RunSettings(
        budget=budget, seed=args.seed, out=Path(args.out), device=device,
        data_dir=Path(args.data_dir) if args.data_dir else None, download=args.download,
        allow_unverified_data=args.allow_unverified_data, resume=args.resume, restart=args.restart,
        variants=parse_variants(args.variant),
        selfcheck=applied,
        paired_normal=getattr(args, "paired_normal", False),
    )


AUTO_SELFCHECK = "auto"  # --selfcheck auto: this device's and budget's selfcheck under OUT, made if missing


def selfcheck_record(spec: str, budget, device, out) -> dict:
    """The selfcheck record `--selfcheck SPEC` names: a selfcheck.json, or for "auto" this device's and
    budget's OUT/selfcheck-DEVICE-BUDGET.json, made first by running the selfcheck sized at the budget
    (a 2-core CPU took 37 minutes at cifar_cpu, beside other work) when it does not exist yet."""
    if spec != AUTO_SELFCHECK:
        return read_selfcheck(spec)
    path = auto_selfcheck_path(out, device, budget)
    if path.exists():
        return read_selfcheck(str(path))
    from repro.ops import selfcheck
    from repro.ops.modes import default_sizes, sizes_for

    print(f"repro: no selfcheck of this {device.type} at budget {budget.name} yet; running it first -> {path}",
          file=sys.stderr, flush=True)
    record = selfcheck.selfcheck(device, default_sizes(device) if device.type == "cuda" else sizes_for(budget))
    selfcheck.write(record, path)
    print(selfcheck.render(record), file=sys.stderr, flush=True)
    return record


def auto_selfcheck_path(out, device, budget) -> Path:
    """Where `--selfcheck auto` keeps the selfcheck of a device type at a budget: OUT/selfcheck-DEVICE-BUDGET.json."""
    return Path(out) / f"selfcheck-{device.type}-{budget.name}.json"


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
