"""The history of nights as `repro history` prints it: the last nights per series, the moves larger
than the error model allows with the commits between them, and runs of one row and seed whose weights
differ (repro/verdicts/history.py holds the store, the series and the comparisons)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from repro.paper.expected import ERROR_RATES
from repro.runs.provenance import PACKAGE_DIR
from repro.verdicts.determinism import DEFECT, UNKNOWN, short
from repro.verdicts.history import Move, WeightComparison, moves, nights, recent, series, weight_comparisons


OLDER = "(older) "  # marks commits the earlier night's code had and the later night's lacks


def commits_between(before: str, after: str, limit: int = 10, repo: Path | None = None) -> list[str]:
    """`git log --oneline before..after` in `repo` (default: this package's repository), at most `limit`.

    When the later night ran at an older commit (before..after empty), the commits after..before
    instead, each prefixed OLDER: the code the later night no longer had.
    """
    a, b = before.removesuffix("+dirty"), after.removesuffix("+dirty")
    if a == b or "unknown" in (a, b):
        return []

    def log(span: str) -> list[str]:
        return subprocess.run(["git", "log", "--oneline", f"-{limit}", span], cwd=repo or PACKAGE_DIR,
                              capture_output=True, text=True, timeout=10, check=True).stdout.splitlines()

    try:
        return log(f"{a}..{b}") or [OLDER + line for line in log(f"{b}..{a}")]
    except (OSError, subprocess.SubprocessError):
        return [f"(commits {a[:10]}..{b[:10]} not in this repository)"]


def _night_line(index: int, night: dict) -> str:
    overrides = ", ".join(f"{k}={v}" for k, v in sorted(night["overrides"].items()))
    produced = sorted(night["produced"] - {night["commit"]})
    return (f"  #{index} {night['date']}  commit {short(night['commit']):<18} budget {', '.join(sorted(night['budgets']))}"
            f"  seeds {' '.join(map(str, sorted(night['seeds'])))}"
            + (f"  numbers also from {', '.join(map(short, produced))} (results reused from earlier runs)" if produced else "")
            + (f"  overrides: {overrides}" if overrides else "")
            + (f"  modes: {', '.join(sorted(night['modes']))}" if night["modes"] else ""))


def _move_lines(flagged: list[Move], index: dict[str, int]) -> list[str]:
    if not flagged:
        return ["no move larger than allowed between consecutive nights"]
    lines = []
    for m in flagged:
        key = m.series
        lines.append(f"MOVED {key.row} {key.metric} (seed {key.seed}, {key.label}): {m.before['value']:.2f} -> "
                     f"{m.after['value']:.2f} ({m.delta:+.2f} points, allowed ±{m.allowed:.2f}) between night "
                     f"#{index[m.before['run']]} (numbers from commit {short(m.before['commit'])}) and "
                     f"#{index[m.after['run']]} (from commit {short(m.after['commit'])})")
        between = commits_between(m.before["commit"], m.after["commit"])
        lines += [f"    {c}" for c in between] or ["    no commits in between (same code: look at the budget overrides, data or device)"]
    return lines


def _weight_lines(comparisons: list[WeightComparison], index: dict[str, int]) -> list[str]:
    """The section on runs of one row and seed: non-determinism flagged, explained differences said."""
    if not comparisons:
        return []
    lines, unknown = ["", "runs of one row and seed (weights compared between consecutive nights):"], 0
    for c in comparisons:
        if c.kind == UNKNOWN:
            unknown += 1
            continue
        nights_text = (f"night #{index[c.before['run']]} ({c.before['run']}, weights {c.before['inputs']['weights_sha256'][:12]}) "
                       f"and #{index[c.after['run']]} ({c.after['run']}, weights {c.after['inputs']['weights_sha256'][:12]})")
        where = f"{c.series.row} (seed {c.series.seed}, {c.series.label})"
        lines.append(f"NON-DETERMINISTIC {where}: {nights_text}: {c.why}" if c.kind == DEFECT
                     else f"  {where}: {nights_text}: {c.why}; expected, not flagged")
    if unknown:
        lines.append(f"  {unknown} pair(s) of nights cannot be compared: entries without the weights, data or hardware "
                     "hashes (results or history written before those hashes were recorded)")
    return lines


def render_history(entries: list[dict], last: int = 5, metrics: tuple[str, ...] = tuple(ERROR_RATES)) -> str:
    """The last `last` nights per row and metric, every flagged move with the commits between, and the
    runs of one row and seed whose weights differ (non-determinism flagged, other inputs said)."""
    shown = nights(entries)[-last:]
    index = {night["run"]: i for i, night in enumerate(shown, 1)}
    lines = [f"{len(shown)} of {len(nights(entries))} nights (newest last):"]
    lines += [_night_line(i, night) for i, night in enumerate(shown, 1)]
    kept = recent(entries, last, metrics)
    table = series(kept)
    width = max([18] + [len(key.label) for key in table])
    header = f"{'budget':<{width}} {'row':<26} {'metric':<18} {'seed':>4} " + " ".join(f"{'#' + str(i):>8}" for i in index.values())
    lines += ["", header, "-" * len(header)]
    flagged = moves(kept)
    flagged_keys = {m.series for m in flagged}
    for key, points in table.items():
        values = {index[p["run"]]: f"{p['value']:8.2f}" for p in points}
        cells = " ".join(values.get(i, f"{'-':>8}") for i in index.values())
        lines.append(f"{key.label:<{width}} {key.row:<26} {key.metric:<18} {key.seed:>4} {cells}"
                     + ("  MOVED" if key in flagged_keys else ""))
    lines += [""] + _move_lines(flagged, index) + _weight_lines(weight_comparisons(kept), index)
    return "\n".join(lines)
