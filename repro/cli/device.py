"""`repro bench` and `repro selfcheck`: what this device does, measured, before a long run."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from repro.cli.options import settings_from
from repro.mechanics.acceleration import plan
from repro.paper.budgets import BUDGETS, get_budget
from repro.paper.configs import CONFIGURATIONS
from repro.runs.provenance import device_description, resolve_device
from repro.runs.timing import measure_rates, row_seconds


def add_commands(sub, common) -> None:
    """Register bench and selfcheck on the subparsers `sub`."""
    p = sub.add_parser("bench", parents=[common], help="measure throughput; estimate each row's wall time")
    p.add_argument("--repeats", type=int, default=3, help="timed steps per measurement (after one warm-up)")
    p.set_defaults(func=cmd_bench)
    p = sub.add_parser("selfcheck", help="environment, throughput, bf16/compile attack strength, determinism, "
                                         "projected paper-budget time; writes selfcheck.json")
    p.add_argument("--device", default="auto", help="auto (CUDA if available), cpu, cuda, cuda:1, ...")
    p.add_argument("--out", default="runs", help="folder for selfcheck.json (default: runs/)")
    p.add_argument("--json", help="write the JSON here instead of OUT/selfcheck.json")
    p.add_argument("--budget", choices=list(BUDGETS),
                   help="size the check at this budget's width, batch and evaluation attacks, on a model trained "
                        "until its checks can fail (e.g. --budget cifar_cpu: 37 minutes measured on a 2-core CPU beside other work)")
    p.add_argument("--width", type=int, help="network width (default: 64 on CUDA, 2 on a CPU)")
    p.add_argument("--batch-size", type=int, help="images per step (default: 128 on CUDA, 8 on a CPU)")
    p.add_argument("--repeats", type=int, help="timed steps per measurement after one warm-up")
    p.add_argument("--train-steps", type=int, help="ADV steps of the model the attacks are compared on")
    p.add_argument("--images", dest="n_images", type=int, help="images attacked in fp32, bf16 and compiled")
    p.add_argument("--compile-backend", help="torch.compile backend (default: inductor on CUDA, eager on a CPU)")
    p.set_defaults(func=cmd_selfcheck)


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
    from repro.ops.modes import default_sizes, sizes_for

    device = resolve_device(args.device)
    defaults = sizes_for(get_budget(args.budget)) if args.budget else default_sizes(device)
    changes = {field: getattr(args, field) for field in ("width", "batch_size", "repeats", "train_steps", "n_images")
               if getattr(args, field) is not None}
    if any(value < 1 for value in changes.values()):
        raise ValueError(f"selfcheck sizes must be >= 1, got {changes}")
    record = selfcheck.selfcheck(device, dataclasses.replace(defaults, **changes), args.compile_backend)
    path = selfcheck.write(record, Path(args.json) if args.json else Path(args.out) / "selfcheck.json")
    print(selfcheck.render(record))
    print(f"\nselfcheck: {path}")
    return 0
