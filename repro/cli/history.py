"""`repro history`: the last nights' numbers per row and metric, the moves larger than allowed, and runs
of one row and seed whose weights differ."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_commands(sub, common) -> None:
    """Register history on the subparsers `sub` (it reads a history file, not runs: no common flags)."""
    p = sub.add_parser("history", help="the last nights' numbers per row and metric; flags moves larger than allowed")
    add_history_arguments(p)
    p.set_defaults(func=cmd_history)


def cmd_history(args) -> int:
    from repro.figures.history_plot import plot_history
    from repro.paper.expected import ERROR_RATES
    from repro.verdicts.history import HistoryError, history_path, moves, nondeterministic, read_history, recent
    from repro.verdicts.history_text import render_history

    path = Path(args.history) if args.history else history_path(args.out)
    entries = [e for e in read_history(path) if args.budget in (None, e["budget"])]
    if not entries:
        raise HistoryError(f"{path} holds no nights of budget {args.budget}; drop --budget to see all")
    metrics = tuple(args.metrics or ERROR_RATES)
    print(render_history(entries, args.last, metrics))
    if args.plot is not None:
        print(f"plot: {plot_history(entries, Path(args.plot) if args.plot else path.with_suffix('.png'), metrics)}")
    kept = recent(entries, args.last, metrics)
    return 1 if args.check and (moves(kept) or nondeterministic(kept)) else 0


def add_history_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default="runs", help="the --out folder whose history.jsonl to read (default: runs/)")
    p.add_argument("--history", help="a history file to read instead (e.g. REPRO_CACHE/history.jsonl of the tier)")
    p.add_argument("--budget", help="only nights of this budget (default: all)")
    p.add_argument("--last", type=int, default=5, help="how many nights to show (default 5)")
    p.add_argument("--metrics", nargs="+", help="metrics to show (default: the error rates)")
    p.add_argument("--plot", nargs="?", const="", help="draw each metric over the nights (default: beside the history file)")
    p.add_argument("--check", action="store_true",
                   help="exit 1 when a move larger than allowed, or non-determinism (same inputs, other weights), is flagged")
