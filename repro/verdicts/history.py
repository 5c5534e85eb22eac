"""The history of nights: every reproduction run appends its numbers; `repro history` compares them.

A night is one reproduction run (`repro reproduce`, the reproduction tier, or one `repro submit`),
identified by a run id shared by all of its rows. Each result record becomes one entry per metric:
date, run, the commit that produced the number (the record's, which a reused result keeps) and the
one the night ran at, budget (name, overrides), readings, acceleration modes and whether a selfcheck
approved them, seed, row, metric, value, n (the number of examples an error rate is measured on),
device, wall time, and what decides the weights (verdicts.determinism.run_inputs).

A series is everything that makes two nights' numbers comparable: budget, overrides, readings, the
acceleration modes no selfcheck approved (an approved mode is the protocol run faster: the default's
series), seed, row and metric.

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
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

from filelock import FileLock

from repro.paper.budgets import modes_of, overrides_of
from repro.paper.configs import CONFIGURATIONS
from repro.paper.expected import ERROR_RATES, load_expected
from repro.runs.provenance import git_commit
from repro.verdicts.determinism import DEFECT, SAME, compare_runs, run_inputs
from repro.verdicts.error_model import binomial_se

HISTORY_NAME = "history.jsonl"
RUN_ID_ENV = "REPRO_RUN_ID"  # one night across processes (pytest-xdist workers share PYTEST_XDIST_TESTRUNUID)


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


def entries_of(record: dict, run: dict) -> list[dict]:
    """One history entry per numeric metric of a result record (pipeline.Pipeline.result), of the night `run`.

    The commit is the record's (the code that computed the numbers: a reused result keeps it), the
    night's own is run_commit; the readings are the record's (its "variants").
    """
    metrics, budget, provenance = record["metrics"], record["budget"], record["provenance"]
    wall = record.get("wall_seconds", {})
    common = {
        **run, "commit": provenance.get("git_commit", run["commit"]), "run_commit": run["commit"],
        "budget": budget["name"], "overrides": overrides_of(budget),
        "readings": [f"{c}={r}" for c, r in (record.get("variants") or {}).items()],
        "modes": modes_of(budget), "selfcheck": bool(provenance.get("selfcheck")),
        "seed": record["seed"], "row": record["config"]["id"], "device": provenance["device"],
        "wall_seconds": wall.get("train", 0.0) + wall.get("eval_total", 0.0), "inputs": run_inputs(record),
    }
    return [{**common, "metric": name, "value": float(value),
             "n": metrics.get(ERROR_RATES[name]) if name in ERROR_RATES else None}
            for name, value in metrics.items()
            if isinstance(value, (int, float)) and not isinstance(value, bool) and not name.startswith("n_")]


def append_results(path: Path, records, run: dict | None = None) -> None:
    """Append the entries of result `records` to the store at `path` as one locked batch."""
    run = run or process_run()
    entries = [entry for record in records for entry in entries_of(record, run)]
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

    The error model of repro/verdicts/error_model.py, applied to a difference of two nights
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
    if metric not in ERROR_RATES or not n_before or not n_after:
        return None
    model = model or load_expected()
    em = model["error_model"]
    kind = model["table2"][row]["seed_sd_kind"] if row in model["table2"] else None
    table2_metric = "clean_error" if metric == "clean_error" else "robust_error"  # PGD and AutoAttack are robust errors
    sd = em["seed_sd_priors"][kind][table2_metric]["value"] if kind else 0.0
    p = (before["value"] + after["value"]) / 2
    return em["z"]["value"] * math.sqrt(binomial_se(p, n_before) ** 2 + binomial_se(p, n_after) ** 2 + 2 * sd ** 2)


class Series(NamedTuple):
    """What makes two nights' numbers comparable (series_key)."""

    budget: str
    overrides: tuple  # ((field, value as JSON), ...): the budget as run (Budget.overrides)
    readings: tuple  # ("choice=reading", ...)
    modes: tuple  # acceleration modes no selfcheck approved; an approved one is the default's series
    seed: int
    row: str
    metric: str

    @property
    def label(self) -> str:
        """The series' budget as run, in one cell: "smoke", "smoke --set epochs_finetune=3 [attack_bn=eval]"."""
        out = self.budget + "".join(f" --set {k}={v}" for k, v in self.overrides)
        out += f" [{' '.join(self.readings)}]" if self.readings else ""
        return out + (f" +{'+'.join(self.modes)} (no selfcheck)" if self.modes else "")


@dataclass(frozen=True)
class Move:
    """A move between consecutive nights of one series larger than allowed_move permits."""

    series: Series
    before: dict  # the entries of the two nights
    after: dict
    allowed: float

    @property
    def delta(self) -> float:
        return self.after["value"] - self.before["value"]


def series_key(entry: dict) -> Series:
    overrides = tuple(sorted((k, json.dumps(v)) for k, v in entry.get("overrides", {}).items()))
    modes = () if entry.get("selfcheck") else tuple(entry.get("modes", ()))
    return Series(entry["budget"], overrides, tuple(entry.get("readings", ())), modes, entry["seed"], entry["row"],
                  entry["metric"])


def nights(entries: list[dict]) -> list[dict]:
    """The nights in date order: run, date, the commit it ran at, the commits that produced its numbers,
    budgets, seeds, overrides, acceleration modes."""
    found: dict[str, dict] = {}
    for e in entries:
        night = found.setdefault(e["run"], {"run": e["run"], "date": e["date"], "commit": e.get("run_commit", e["commit"]),
                                            "produced": set(), "budgets": set(), "seeds": set(), "overrides": {},
                                            "modes": set()})
        night["produced"].add(e["commit"])
        night["budgets"].add(e["budget"])
        night["seeds"].add(e["seed"])
        night["overrides"].update(e.get("overrides", {}))
        approval = "approved by a selfcheck" if e.get("selfcheck") else "no selfcheck"
        night["modes"].update(f"{mode} ({approval})" for mode in e.get("modes", ()))
    return sorted(found.values(), key=lambda n: (n["date"], n["run"]))


def series(entries: list[dict]) -> dict[Series, list[dict]]:
    """Per series, its latest entry of each night, in night order."""
    order = {night["run"]: i for i, night in enumerate(nights(entries))}
    latest: dict[Series, dict[str, dict]] = defaultdict(dict)
    for e in entries:
        latest[series_key(e)][e["run"]] = e  # a row evaluated twice in one night: the later counts
    rows = {config_id: i for i, config_id in enumerate(CONFIGURATIONS)}  # Table 2 order, then the metric, then the seed
    metrics = {name: i for i, name in enumerate(ERROR_RATES)}
    keys = sorted(latest, key=lambda k: (k.budget, k.overrides, k.readings, k.modes, rows.get(k.row, len(rows)), k.row,
                                         metrics.get(k.metric, len(metrics)), k.metric, k.seed))
    return {key: sorted(latest[key].values(), key=lambda e: order[e["run"]]) for key in keys}


def moves(entries: list[dict]) -> list[Move]:
    """Every move between consecutive nights of a series larger than allowed_move allows."""
    found, model = [], load_expected()
    for key, points in series(entries).items():
        for before, after in zip(points, points[1:]):
            allowed = allowed_move(key.metric, key.row, before, after, model)
            if allowed is not None and abs(after["value"] - before["value"]) > allowed:
                found.append(Move(key, before, after, allowed))
    return found


@dataclass(frozen=True)
class WeightComparison:
    """Two consecutive nights of one series whose weights differ, or cannot be compared (determinism)."""

    series: Series  # the metric left empty: every metric of a record shares its weights
    before: dict
    after: dict
    kind: str  # determinism.DEFECT, EXPLAINED or UNKNOWN
    why: str


def weight_comparisons(entries: list[dict]) -> list[WeightComparison]:
    """Consecutive nights of each series (row and seed under one budget and readings) whose weights
    differ or cannot be compared (repro/verdicts/determinism.py): non-determinism where nothing recorded explains it."""
    runs: dict[Series, list[dict]] = {}
    for key, points in series(entries).items():
        runs.setdefault(key._replace(metric=""), points)  # one metric's entries stand for the record
    found = []
    for key, points in runs.items():
        for before, after in zip(points, points[1:]):
            kind, why = compare_runs(before.get("inputs", {}), after.get("inputs", {}))
            if kind != SAME:
                found.append(WeightComparison(key, before, after, kind, why))
    return found


def nondeterministic(entries: list[dict]) -> list[WeightComparison]:
    """The comparisons flagged as non-determinism (a defect)."""
    return [c for c in weight_comparisons(entries) if c.kind == DEFECT]


def recent(entries: list[dict], last: int = 5, metrics: tuple[str, ...] = tuple(ERROR_RATES)) -> list[dict]:
    """The entries of the last `last` nights, of the metrics asked for."""
    runs = {night["run"] for night in nights(entries)[-last:]}
    return [e for e in entries if e["run"] in runs and e["metric"] in metrics]
