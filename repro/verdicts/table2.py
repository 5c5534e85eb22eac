"""Table 2 judged: the paper's value beside ours (mean over seeds), the error model's tolerance and verdict.

Verdicts apply at the budgets in expected_results.json "table2_budgets" only; elsewhere the numbers
are shown, not judged. A row lacking a seed asked for is "missing", never judged on fewer seeds.
"""

from __future__ import annotations

from dataclasses import dataclass

from repro.paper.expected import ERROR_RATES, RESULT_KEY, TABLE2_METRICS
from repro.runs.seeds import SeedValues, seed_values
from repro.verdicts.error_model import (
    MISSING,
    Judgement,
    family_wise_false_alarm,
    measured_separation,
    metric_error,
    paper_separation,
    separated_pairs,
)

METRIC_NAME = {"clean_error": "clean", "robust_error": "robust"}  # Table 2's metrics as reports name them
PAPER_ATTACK = "AutoAttack (standard)"  # what the paper's robust errors come from (Section 3.2)


def robust_attack(record: dict) -> str:
    """The attack a result's robust error (metrics "autoattack_error") comes from: PAPER_ATTACK where the
    standard ensemble ran, "APGD-CE (N it.)" where the custom version ran APGD-CE alone (N: the budget's
    autoattack_iterations; repro/runs/evaluate.py)."""
    budget = record.get("budget", {})
    version = record.get("metrics", {}).get("autoattack_version") or budget.get("autoattack_version")
    if version == "standard":
        return PAPER_ATTACK
    if version == "custom":
        iterations = budget.get("autoattack_iterations")
        return f"APGD-CE ({iterations} it.)" if iterations else "APGD-CE"
    return "attack not recorded"


def attack_of(records) -> str:
    """The attacks behind the robust errors of `records`, as one name ("A / B" if they differ)."""
    return " / ".join(sorted({robust_attack(r) for r in records})) or "no result"


def metric_label(metric: str, attack: str) -> str:
    """A Table 2 metric's name in a report: "clean", or "robust: ATTACK" naming the attack run."""
    return f"{METRIC_NAME[metric]}: {attack}" if metric == "robust_error" else METRIC_NAME[metric]


def images_of(record: dict, metric: str) -> int:
    """How many images a record's Table 2 `metric` was measured on."""
    return record["metrics"][ERROR_RATES[RESULT_KEY.get(metric, metric)]]


@dataclass(frozen=True)
class Row:
    """One Table 2 metric: the paper's value, ours over the seeds run, and the error model's verdict."""

    config_id: str
    label: str
    metric: str
    paper: float
    seeds: SeedValues  # the measured value per seed
    judgement: Judgement | None  # None where a seed's result is missing
    verdict: str  # consistent, inconsistent, not judged (budget or data not the paper's), missing, degenerate (...)

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
                seeds: list[int] | None = None, degenerate: dict | None = None) -> list[Row]:
    """Table 2's metrics judged on seed means ({seed: {config_id: record}}; seeds default: those present).

    A row lacking a result for any seed asked for is "missing" (with the seeds it lacks), never
    judged on fewer seeds; a degenerate row (`degenerate`: {config_id: Degeneracy},
    repro/verdicts/degenerate.py) is shown as such and never judged. Verdicts apply at the budgets in
    expected["table2_budgets"] only.
    """
    degenerate = degenerate or {}
    seeds = sorted(per_seed) if seeds is None else seeds
    applies = budget_name in expected["table2_budgets"]
    rows = []
    for config_id, entry in expected["table2"].items():
        for metric in TABLE2_METRICS:
            values = seed_values(per_seed, seeds, config_id, RESULT_KEY.get(metric, metric))
            judgement = None
            if values.complete:
                some_record = per_seed[seeds[0]][config_id]
                error = metric_error(expected["error_model"], entry, metric, images_of(some_record, metric),
                                     list(values.values.values()))
                judgement = Judgement(entry[metric]["value"], values.mean, error, judged=applies)
            verdict = MISSING if judgement is None else judgement.verdict
            if judgement is not None and config_id in degenerate:
                verdict = degenerate[config_id].label
            rows.append(Row(config_id, entry["label"], metric, entry[metric]["value"], values, judgement, verdict))
    return rows


def interval_text(judgement: Judgement) -> str:
    low, high = judgement.interval
    return f"[{low:.2f}, {high:.2f}]"


def separation_notes(expected: dict, rows: list[Row], budget_name: str) -> list[str]:
    """Where a claim says two rows differ on a Table 2 metric but the data cannot tell them apart at the
    file's z: the paper's own values on its own sample sizes (its binomial SEs only), and, for claims
    judged at `budget_name`, our measured values with their binomial SEs and seed spread. Nothing is
    said where the data separates the rows, whatever the tolerance intervals do."""
    z = expected["error_model"]["z"]["value"]
    judged_here = {c["id"] for c in expected["claims"] if budget_name in c["budgets"]}
    found = {(r.config_id, r.metric): r for r in rows if r.judgement is not None}
    notes = []
    for claim_id, metric, left, right in separated_pairs(expected["claims"], expected["table2"]):
        labels = expected["table2"][left]["label"], expected["table2"][right]["label"]
        paper = paper_separation(expected["error_model"], expected["table2"], metric, left, right)
        if not paper.separated(z):
            n = expected["error_model"]["paper_evaluation_sets"][metric]["n"]
            notes.append(f"{claim_id}: the paper's values of {labels[0]} and {labels[1]} ({METRIC_NAME[metric]}) differ "
                         f"by {paper.difference:+.2f} points, z = {paper.z_score:+.2f} on its own sample sizes ({n} "
                         f"images each, binomial SEs only): the paper's own data cannot separate them at z = {z:g}.")
        a, b = found.get((left, metric)), found.get((right, metric))
        if claim_id not in judged_here or a is None or b is None:
            continue
        ours = measured_separation(a.judgement, b.judgement)
        if not ours.separated(z):
            ea, eb = a.judgement.error, b.judgement.error
            notes.append(f"{claim_id}: our {labels[0]} and {labels[1]} ({METRIC_NAME[metric]}) differ by "
                         f"{ours.difference:+.2f} points, σ = {ours.sigma:.2f} (binomial at the measured rates on "
                         f"{ea.ours_n} and {eb.ours_n} images; seed SD {ea.spread.sd:.2f} ({ea.spread.source}) and "
                         f"{eb.spread.sd:.2f} ({eb.spread.source}), over k = {ea.spread.n_seeds}), "
                         f"z = {ours.z_score:+.2f}: our measurement cannot separate them at this precision (z = {z:g}).")
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
