"""Table 2 judged: the paper's value beside ours (mean over seeds), the error model's tolerance and verdict.

Verdicts apply at the budgets in expected_results.json "table2_budgets" only; elsewhere the numbers
are shown, not judged. A row lacking a seed asked for is "missing", never judged on fewer seeds.
"""

from __future__ import annotations

from dataclasses import dataclass

from repro.paper.expected import RESULT_KEY
from repro.runs.seeds import SeedValues, seed_values
from repro.verdicts.error_model import (
    MISSING,
    NOT_JUDGED,
    TABLE2_METRICS,
    Judgement,
    family_wise_false_alarm,
    intervals_overlap,
    metric_error,
    separated_pairs,
)

N_KEY = {"clean_error": "n_clean", "robust_error": "n_robust"}  # images each metric is measured on


METRIC_NAME = {"clean_error": "clean", "robust_error": "robust (AutoAttack)"}


@dataclass(frozen=True)
class Row:
    """One Table 2 metric: the paper's value, ours over the seeds run, and the error model's verdict."""

    config_id: str
    label: str
    metric: str
    paper: float
    seeds: SeedValues  # the measured value per seed
    judgement: Judgement | None  # None where a seed's result is missing
    verdict: str  # consistent, inconsistent, not judged (budget or data not the paper's), missing

    @property
    def measured(self) -> float | None:
        """The mean over seeds (the value itself for one seed); None when a seed is missing."""
        return self.seeds.mean


def by_seed(results: dict[str, dict]) -> dict[int, dict[str, dict]]:
    """One run folder's records ({config_id: record}) grouped by their seed."""
    out: dict[int, dict[str, dict]] = {}
    for config_id, record in results.items():
        out.setdefault(record["seed"], {})[config_id] = record
    return out


def table2_rows(expected: dict, per_seed: dict[int, dict[str, dict]], budget_name: str,
                seeds: list[int] | None = None) -> list[Row]:
    """Table 2's metrics judged on seed means ({seed: {config_id: record}}; seeds default: those present).

    A row lacking a result for any seed asked for is "missing" (with the seeds it lacks), never
    judged on fewer seeds. Verdicts apply at the budgets in expected["table2_budgets"] only.
    """
    seeds = sorted(per_seed) if seeds is None else seeds
    applies = budget_name in expected["table2_budgets"]
    rows = []
    for config_id, entry in expected["table2"].items():
        for metric in TABLE2_METRICS:
            values = seed_values(per_seed, seeds, config_id, RESULT_KEY.get(metric, metric))
            judgement = None
            if values.complete:
                some_record = per_seed[seeds[0]][config_id]
                error = metric_error(expected["error_model"], entry, metric, some_record["metrics"][N_KEY[metric]],
                                     list(values.values.values()))
                judgement = Judgement(entry[metric]["value"], values.mean, error, judged=applies)
            verdict = MISSING if judgement is None else judgement.verdict
            rows.append(Row(config_id, entry["label"], metric, entry[metric]["value"], values, judgement, verdict))
    return rows


def interval_text(judgement: Judgement) -> str:
    low, high = judgement.interval
    return f"[{low:.2f}, {high:.2f}]"


def separation_notes(expected: dict, rows: list[Row]) -> list[str]:
    """Where a claim separates two rows whose intervals overlap: the paper's data cannot separate them here."""
    found = {(r.config_id, r.metric): r for r in rows if r.judgement is not None and r.verdict != NOT_JUDGED}
    notes = []
    for claim_id, metric, left, right in separated_pairs(expected["claims"], expected["table2"]):
        a, b = found.get((left, metric)), found.get((right, metric))
        if a and b and intervals_overlap(a.judgement.interval, b.judgement.interval):
            notes.append(
                f"{claim_id}: {a.label} and {b.label} ({METRIC_NAME[metric]}) have overlapping intervals "
                f"{interval_text(a.judgement)} and {interval_text(b.judgement)}: the paper's own data cannot separate "
                "them at that precision.")
    return notes


def error_model_lines(expected: dict, rows: list[Row]) -> list[str]:
    """The error model's terms per metric (Markdown), so every tolerance can be recomputed by hand."""
    model = expected["error_model"]
    z, judged = model["z"]["value"], 2 * len(expected["table2"])
    sets = model["paper_evaluation_sets"]
    out = [f"tolerance = z·σ + allowance, σ² = paper SE² + our SE² + seed SD²·(1 + 1/k) (k seeds averaged); "
           f"z = {z:g}: at most {family_wise_false_alarm(z, judged):.1%} chance of any false alarm over the "
           f"{judged} judged metrics (Bonferroni). Paper's evaluation sets: clean {sets['clean_error']['n']} images "
           f"({sets['clean_error']['status']}), robust {sets['robust_error']['n']} ({sets['robust_error']['status']}); "
           "reasons in expected_results.json.", "",
           "| Model | metric | paper SE (n) | our SE (n) | seed SD | allowance | σ | tolerance |",
           "|---|---|---:|---:|---:|---:|---:|---:|"]
    for row in rows:
        if row.judgement is None:
            continue
        e = row.judgement.error
        out.append(f"| {row.label} | {METRIC_NAME[row.metric]} | {e.paper_se:.2f} ({e.paper_n}) | {e.ours_se:.2f} ({e.ours_n}) "
                   f"| {e.spread.sd:.2f} ({e.spread.source}) | {e.allowance:g} | {e.sigma:.2f} | {e.tolerance:.2f} |")
    return out
