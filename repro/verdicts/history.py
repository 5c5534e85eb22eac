"""The history of nights: every reproduction run appends its numbers; `repro history` compares them.

A night is one reproduction run (`repro reproduce`, the reproduction tier, or one `repro submit`),
identified by a run id shared by all of its rows. Each result record becomes one entry per metric:
date, run, commit, budget (name, run folder name, overrides), readings, seed, row, metric, value,
n (the number of examples an error rate is measured on), device and wall time.

The store is JSON lines (`OUT/history.jsonl`), not SQLite: the nightly runs on clusters whose
shared filesystems are NFS, where SQLite's own documentation warns that its locking is unreliable;
an append-only text file guarded by the same file locks as the run folders (filelock) works there,
is readable with `cat`, and uploads as a CI artifact as it is. Appends hold the lock for the whole
batch, so two runs appending at once never tear or interleave each other's lines.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import time
import uuid
from collections import defaultdict
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path

from filelock import FileLock

from repro.paper.budgets import BUDGETS
from repro.paper.configs import CONFIGURATIONS
from repro.paper.expected import load_expected
from repro.runs.provenance import PACKAGE_DIR, git_commit
from repro.verdicts.error_model import binomial_se

HISTORY_NAME = "history.jsonl"
RUN_ID_ENV = "REPRO_RUN_ID"  # one night across processes (pytest-xdist workers share PYTEST_XDIST_TESTRUNUID)
ERROR_METRICS = {"clean_error": "n_clean", "pgd_error": "n_robust", "autoattack_error": "n_robust"}  # metric -> its n


class HistoryError(ValueError):
    """A history file that cannot be read; the message names the file and line."""


def history_path(out: Path) -> Path:
    """The history store of an output folder (`repro ... --out OUT`)."""
    return Path(out) / HISTORY_NAME


def new_run(run_id: str | None = None) -> dict:
    """A night's identity: run id, UTC date, git commit of the code that runs it."""
    date = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return {"run": run_id or f"{date}-{uuid.uuid4().hex[:8]}", "date": date, "commit": git_commit()}


@lru_cache(maxsize=None)
def process_run() -> dict:
    """The night this process belongs to: REPRO_RUN_ID or the xdist session if set, else its own."""
    return new_run(os.environ.get(RUN_ID_ENV) or os.environ.get("PYTEST_XDIST_TESTRUNUID"))


def overrides_of(budget: dict) -> dict:
    """The budget fields a record's budget changed from the registered budget of its name."""
    registered = BUDGETS.get(budget["name"])
    if registered is None:
        return {}
    return {k: v for k, v in budget.items() if asdict(registered).get(k) != v}


def entries_of(record: dict, run: dict, readings: tuple[str, ...] = ()) -> list[dict]:
    """One history entry per numeric metric of a result record (pipeline.Pipeline.result)."""
    metrics, budget = record["metrics"], record["budget"]
    wall = record.get("wall_seconds", {})
    common = {
        **run, "budget": budget["name"], "overrides": overrides_of(budget), "readings": list(readings),
        "seed": record["seed"], "row": record["config"]["id"], "device": record["provenance"]["device"],
        "wall_seconds": wall.get("train", 0.0) + wall.get("eval_total", 0.0),
    }
    return [{**common, "metric": name, "value": float(value),
             "n": metrics.get(ERROR_METRICS[name]) if name in ERROR_METRICS else None}
            for name, value in metrics.items()
            if isinstance(value, (int, float)) and not isinstance(value, bool) and not name.startswith("n_")]


def append_results(path: Path, records, run: dict | None = None, readings: tuple[str, ...] = ()) -> None:
    """Append the entries of result `records` to the store at `path` as one locked batch."""
    run = run or process_run()
    entries = [entry for record in records for entry in entries_of(record, run, readings)]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # The buffered writes of a long batch reach the file in several pieces; the lock keeps
    # another run's pieces from landing in between (and is what holds on NFS, where appends are
    # not atomic at all).
    with FileLock(str(path) + ".lock"), open(path, "a") as f:
        f.writelines(json.dumps(entry) + "\n" for entry in entries)
        f.flush()
        os.fsync(f.fileno())


def read_history(path: Path) -> list[dict]:
    """Every entry of the store at `path`, in the order appended."""
    path = Path(path)
    if not path.exists():
        raise HistoryError(f"no history at {path}; run `repro reproduce` (or submit) with --out {path.parent} first")
    with FileLock(str(path) + ".lock"):
        text = path.read_text()
    entries = []
    for number, line in enumerate(text.splitlines(), 1):
        try:
            entries.append(json.loads(line))
        except json.JSONDecodeError:
            raise HistoryError(f"{path}:{number} is not a JSON line; delete that line and run again") from None
    return entries


def allowed_move(metric: str, row: str, before: dict, after: dict, model: dict | None = None) -> float | None:
    """How far (percentage points) an error rate may move between two nights before it is flagged.

    The error model of repro/verdicts/error_model.py (issue 11), applied to a difference of two nights
    instead of to ours-against-the-paper's: each night's binomial standard error at the rate
    both nights estimate if nothing changed (their mean) and at its own n, plus the row kind's
    seed-to-seed prior once per night (a GPU rerun is not bitwise repeatable, and a harmless
    code change redraws a run as a new seed would), times the file's z:

        allowed = z * sqrt(se(p, n_before)^2 + se(p, n_after)^2 + 2 * sd_prior^2)

    No systematic allowance: both nights run the same budget and readings, so nothing the paper
    leaves unsaid separates them. Metrics that are not error rates (cross-entropy, mean
    normalised weight), and entries without an n, have no band and are never flagged (None).
    """
    n_before, n_after = before.get("n"), after.get("n")
    if metric not in ERROR_METRICS or not n_before or not n_after:
        return None
    model = model or load_expected()
    em = model["error_model"]
    kind = model["table2"][row]["seed_sd_kind"] if row in model["table2"] else None
    table2_metric = "clean_error" if metric == "clean_error" else "robust_error"  # PGD and AutoAttack are robust errors
    sd = em["seed_sd_priors"][kind][table2_metric]["value"] if kind else 0.0
    p = (before["value"] + after["value"]) / 2
    return em["z"]["value"] * math.sqrt(binomial_se(p, n_before) ** 2 + binomial_se(p, n_after) ** 2 + 2 * sd ** 2)


@dataclass(frozen=True)
class Move:
    """A move between consecutive nights of one series larger than allowed_move permits."""

    series: tuple  # (budget, readings, seed, row, metric)
    before: dict  # the entries of the two nights
    after: dict
    allowed: float

    @property
    def delta(self) -> float:
        return self.after["value"] - self.before["value"]


def short(commit: str) -> str:
    """A commit as people read it: 12 hex digits, keeping the +dirty mark."""
    return commit[:12] + ("+dirty" if commit.endswith("+dirty") else "")


def series_key(entry: dict) -> tuple:
    return (entry["budget"], tuple(entry.get("readings", ())), entry["seed"], entry["row"], entry["metric"])


def nights(entries: list[dict]) -> list[dict]:
    """The nights in date order: run, date, commit, budgets, seeds, overrides."""
    found: dict[str, dict] = {}
    for e in entries:
        night = found.setdefault(e["run"], {"run": e["run"], "date": e["date"], "commit": e["commit"],
                                            "budgets": set(), "seeds": set(), "overrides": {}})
        night["budgets"].add(e["budget"])
        night["seeds"].add(e["seed"])
        night["overrides"].update(e.get("overrides", {}))
    return sorted(found.values(), key=lambda n: (n["date"], n["run"]))


def series(entries: list[dict]) -> dict[tuple, list[dict]]:
    """Per series key, its latest entry of each night, in night order."""
    order = {night["run"]: i for i, night in enumerate(nights(entries))}
    latest: dict[tuple, dict[str, dict]] = defaultdict(dict)
    for e in entries:
        latest[series_key(e)][e["run"]] = e  # a row evaluated twice in one night: the later counts
    rows = {config_id: i for i, config_id in enumerate(CONFIGURATIONS)}  # Table 2 order, then the metric, then the seed
    metrics = {name: i for i, name in enumerate(ERROR_METRICS)}
    keys = sorted(latest, key=lambda k: (k[0], k[1], rows.get(k[3], len(rows)), k[3], metrics.get(k[4], len(metrics)), k[4], k[2]))
    return {key: sorted(latest[key].values(), key=lambda e: order[e["run"]]) for key in keys}


def moves(entries: list[dict]) -> list[Move]:
    """Every move between consecutive nights of a series larger than allowed_move allows."""
    found, model = [], load_expected()
    for key, points in series(entries).items():
        for before, after in zip(points, points[1:]):
            allowed = allowed_move(key[-1], key[3], before, after, model)
            if allowed is not None and abs(after["value"] - before["value"]) > allowed:
                found.append(Move(key, before, after, allowed))
    return found


def commits_between(before: str, after: str, limit: int = 10, repo: Path | None = None) -> list[str]:
    """`git log --oneline before..after` in `repo` (default: this package's repository), at most `limit`."""
    a, b = before.removesuffix("+dirty"), after.removesuffix("+dirty")
    if a == b or "unknown" in (a, b):
        return []
    try:
        out = subprocess.run(["git", "log", "--oneline", f"-{limit}", f"{a}..{b}"], cwd=repo or PACKAGE_DIR,
                             capture_output=True, text=True, timeout=10, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return [f"(commits {a[:10]}..{b[:10]} not in this repository)"]
    return out.splitlines()


def _night_line(index: int, night: dict) -> str:
    overrides = ", ".join(f"{k}={v}" for k, v in sorted(night["overrides"].items()))
    return (f"  #{index} {night['date']}  commit {short(night['commit']):<18} budget {', '.join(sorted(night['budgets']))}"
            f"  seeds {' '.join(map(str, sorted(night['seeds'])))}" + (f"  overrides: {overrides}" if overrides else ""))


def recent(entries: list[dict], last: int = 5, metrics: tuple[str, ...] = tuple(ERROR_METRICS)) -> list[dict]:
    """The entries of the last `last` nights, of the metrics asked for."""
    runs = {night["run"] for night in nights(entries)[-last:]}
    return [e for e in entries if e["run"] in runs and e["metric"] in metrics]


def render_history(entries: list[dict], last: int = 5, metrics: tuple[str, ...] = tuple(ERROR_METRICS)) -> str:
    """The last `last` nights per row and metric, then every flagged move with the commits between."""
    shown = nights(entries)[-last:]
    index = {night["run"]: i for i, night in enumerate(shown, 1)}
    lines = [f"{len(shown)} of {len(nights(entries))} nights (newest last):"]
    lines += [_night_line(i, night) for i, night in enumerate(shown, 1)]
    header = f"{'budget':<18} {'row':<26} {'metric':<18} {'seed':>4} " + " ".join(f"{'#' + str(i):>8}" for i in index.values())
    lines += ["", header, "-" * len(header)]
    kept = recent(entries, last, metrics)
    flagged = moves(kept)
    flagged_keys = {m.series for m in flagged}
    for key, points in series(kept).items():
        budget, readings, seed, row, metric = key
        values = {index[p["run"]]: f"{p['value']:8.2f}" for p in points}
        cells = " ".join(values.get(i, f"{'-':>8}") for i in index.values())
        label = budget + (f" [{' '.join(readings)}]" if readings else "")
        lines.append(f"{label:<18} {row:<26} {metric:<18} {seed:>4} {cells}" + ("  MOVED" if key in flagged_keys else ""))
    lines.append("")
    if not flagged:
        lines.append("no move larger than allowed between consecutive nights")
    for m in flagged:
        budget, _, seed, row, metric = m.series
        lines.append(f"MOVED {row} {metric} (seed {seed}, {budget}): {m.before['value']:.2f} -> {m.after['value']:.2f} "
                     f"({m.delta:+.2f} points, allowed ±{m.allowed:.2f}) between night #{index[m.before['run']]} "
                     f"(commit {short(m.before['commit'])}) and #{index[m.after['run']]} (commit {short(m.after['commit'])})")
        between = commits_between(m.before["commit"], m.after["commit"])
        lines += [f"    {c}" for c in between] or ["    no commits in between (same code: look at the budget overrides, data or device)"]
    return "\n".join(lines)
