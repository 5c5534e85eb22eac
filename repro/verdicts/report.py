"""The reproduction report: Table 2 side by side with the paper, and the paper's claims.

Headed by provenance (budget, seeds, device, versions, data checksum status), rendered as a
terminal table and as Markdown: `report.md` in a seed's run folder (OUT/BUDGET/seedS), and over
several seeds in OUT/BUDGET (write_seed_report: mean ± SD per row, judged on the seed means).
Table 2's verdicts come from the error model (repro/verdicts/error_model.py).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from repro.paper.budgets import Budget
from repro.runs.checkpoint import atomic_write_bytes
from repro.paper.configs import CONFIGURATIONS
from repro.verdicts.error_model import (MISSING, NOT_JUDGED, TABLE2_METRICS, Judgement, family_wise_false_alarm,
                                intervals_overlap, metric_error, separated_pairs)
from repro.paper.expected import RESULT_KEY
from repro.verdicts.claims import check_claim, claim_configurations, missing_inputs
from repro.runs.seeds import SeedValues, mean_records, missing_seeds, seed_values
from repro.paper.variants import describe

REPORT_NAME = "report.md"
N_KEY = {"clean_error": "n_clean", "robust_error": "n_robust"}  # images each metric is measured on
_METRIC_NAME = {"clean_error": "clean", "robust_error": "robust (AutoAttack)"}


def collect_results(run_folder: Path, budget: Budget | None = None) -> dict[str, dict]:
    """Result records in `run_folder` (OUT/BUDGET/seedS), keyed by configuration id, Table 2 order.

    With `budget`, records evaluated under other settings (an evaluation-only override shares the
    folder) are left out, so one report never mixes evaluation protocols.
    """
    results = {}
    for config_id in CONFIGURATIONS:
        path = Path(run_folder) / config_id / "result.json"
        if path.exists():
            record = json.loads(path.read_text())
            if budget is None or record.get("budget") == asdict(budget):
                results[config_id] = record
    return results


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


def separation_notes(expected: dict, rows: list[Row]) -> list[str]:
    """Where a claim separates two rows whose intervals overlap: the paper's data cannot separate them here."""
    found = {(r.config_id, r.metric): r for r in rows if r.judgement is not None and r.verdict != NOT_JUDGED}
    notes = []
    for claim_id, metric, left, right in separated_pairs(expected["claims"], expected["table2"]):
        a, b = found.get((left, metric)), found.get((right, metric))
        if a and b and intervals_overlap(a.judgement.interval, b.judgement.interval):
            notes.append(
                f"{claim_id}: {a.label} and {b.label} ({_METRIC_NAME[metric]}) have overlapping intervals "
                f"{_interval(a.judgement)} and {_interval(b.judgement)}: the paper's own data cannot separate "
                "them at that precision.")
    return notes


def claim_rows(expected: dict, results: dict[str, dict], budget_name: str,
               incomplete: dict[str, list[int]] | None = None) -> list[tuple[dict, str, str]]:
    """(claim, verdict, relation) per claim: pass/FAIL where checkable, else n/a or missing.

    The measured relation is shown wherever the results hold its inputs, also for a claim not
    judged at this budget (n/a, with the budgets it is judged at); "missing" names the inputs
    absent (a row not run, or a result recorded before that metric or series existed).
    `results` may be seed means (repro.runs.seeds.mean_records); `incomplete` names the seeds each row
    lacks, so a claim on such a row says which seed is missing instead of being judged on fewer.
    """
    incomplete = incomplete or {}
    rows = []
    for claim in expected["claims"]:
        lacking = sorted(claim_configurations(claim) & set(incomplete))
        missing = missing_inputs(claim, results)
        absent_rows = sorted({ref.split(".")[0] for ref in missing} - set(results) - set(lacking))
        unrecorded = [ref for ref in missing if ref.split(".")[0] in results]
        why_missing = "; ".join(part for part in (
            *(f"{c} lacks seed {', '.join(map(str, incomplete[c]))}" for c in lacking),
            f"no result for {', '.join(absent_rows)}" if absent_rows else "",
            f"not recorded: {', '.join(unrecorded)} (results from older code; `repro evaluate` records them)"
            if unrecorded else "") if part)
        outcome = None if missing or lacking else check_claim(claim, results)
        if budget_name not in claim["budgets"]:
            shown = f"{outcome.relation}: {'holds' if outcome.passed else 'does not hold'}" if outcome else why_missing
            expectation = claim.get("scale_expectations", {}).get(budget_name)
            why_not = (f"not expected to hold at {budget_name}: {expectation['reason']}" if expectation
                       else f"judged at budgets {', '.join(claim['budgets'])}")
            rows.append((claim, "n/a", f"{shown} ({why_not})"))
        elif outcome is None:
            rows.append((claim, "missing", why_missing))
        else:
            rows.append((claim, "pass" if outcome.passed else "FAIL", outcome.relation))
    return rows


def provenance_lines(results: dict[str, dict] | list[dict]) -> list[str]:
    """Budget, seeds, device, code, versions and data of result records (a dict by id, or a list)."""
    records = list(results.values()) if isinstance(results, dict) else list(results)
    if not records:
        return ["no results found"]
    first = records[0]
    prov = first["provenance"]
    commits = sorted({r["provenance"]["git_commit"] for r in records})
    versions = ", ".join(f"{k} {v}" for k, v in prov["versions"].items())
    data = prov["data"]
    return [
        f"budget: {first['budget']['name']} (width {first['budget']['width']}, dataset {first['budget']['dataset']})",
        f"seeds: {', '.join(str(s) for s in sorted({r['seed'] for r in records}))}",
        f"device: {', '.join(sorted({r['provenance']['device'] for r in records}))}",
        f"code: {', '.join(commits)}",
        f"versions: {versions}",
        f"data: {data['dataset']}, checksums {data['checksum_status']}, {data['n_train']} train images",
        # The open choices' readings (repro/paper/variants.py); one run folder holds one set of readings.
        f"readings: {'; '.join(sorted({describe(r.get('variants')) for r in records}))}",
    ]


def _fmt(value: float | None, digits: int = 2) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _interval(judgement: Judgement) -> str:
    low, high = judgement.interval
    return f"[{low:.2f}, {high:.2f}]"


def _measured(row: Row) -> str:
    """The value (one seed), mean ± SD over seeds, or which seeds are missing."""
    if row.seeds.missing:
        return f"— (no seed {', '.join(map(str, row.seeds.missing))})" if row.seeds.values else "—"
    if len(row.seeds.values) == 1:
        return _fmt(row.measured)
    return f"{row.measured:.2f} ± {row.seeds.sd:.2f} ({len(row.seeds.values)} seeds)"


def _cells(row: Row) -> dict[str, str]:
    """The verdict columns of one Table 2 metric as text."""
    j = row.judgement
    return {
        "measured": _measured(row),
        "delta": "—" if j is None else f"{j.measured - j.paper:+.2f}",
        "sigma": "—" if j is None else f"{j.error.sigma:.2f}",
        "tolerance": "—" if j is None else f"±{j.error.tolerance:.2f}",
        "z": "—" if j is None or not j.judged else f"{j.z_score:+.2f}",
        "interval": "—" if j is None else _interval(j),
    }


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
        out.append(f"| {row.label} | {_METRIC_NAME[row.metric]} | {e.paper_se:.2f} ({e.paper_n}) | {e.ours_se:.2f} ({e.ours_n}) "
                   f"| {e.spread.sd:.2f} ({e.spread.source}) | {e.allowance:g} | {e.sigma:.2f} | {e.tolerance:.2f} |")
    return out


def _inputs(per_seed, seeds) -> tuple[list[dict], dict[str, dict], dict[str, list[int]]]:
    """(every record, the records claims read: the seed's or seed means, rows lacking some seeds but not all)."""
    records = [r for s in seeds for r in per_seed.get(s, {}).values()]
    results = per_seed.get(seeds[0], {}) if len(seeds) == 1 else mean_records(per_seed, seeds)
    partial = {c: absent for c, absent in missing_seeds(per_seed, seeds).items() if len(absent) < len(seeds)}
    return records, results, partial


def _render_markdown(expected, per_seed, seeds, budget_name, table2_name, figures=()) -> str:
    records, results, incomplete = _inputs(per_seed, seeds)
    out = ["# Reproduction report: On Fragile Features and Batch Normalization in Adversarial Training", ""]
    out += [f"- {line}" for line in provenance_lines(records)]
    out += [f"- {config_id}: no result for seed {', '.join(map(str, absent))}"
            for config_id, absent in incomplete.items()]
    applies = table2_name in expected["table2_budgets"]
    rows = table2_rows(expected, per_seed, table2_name, seeds)
    heading = "" if len(seeds) == 1 else f", mean ± SD over seeds {', '.join(map(str, seeds))}"
    out += ["", f"## Table 2 (errors in %{heading})", ""]
    if not applies:
        out += [f"Verdicts apply at budgets {', '.join(expected['table2_budgets'])} only; "
                f"at budget {table2_name} the numbers are shown, not judged.", ""]
    out += ["| Model | metric | paper | measured | Δ | σ | tolerance | z | interval | verdict |",
            "|---|---|---:|---:|---:|---:|---:|---:|---|---|"]
    for row in rows:
        c = _cells(row)
        out.append(f"| {row.label} | {_METRIC_NAME[row.metric]} | {row.paper:.2f} | {c['measured']} | {c['delta']} "
                   f"| {c['sigma']} | {c['tolerance']} | {c['z']} | {c['interval']} | {row.verdict} |")
    out += ["", "### Error model", ""] + error_model_lines(expected, rows)
    notes = separation_notes(expected, rows)
    if notes:
        out += ["", "### What the paper's data cannot separate", ""] + [f"- {note}" for note in notes]
    claims_on = "" if len(seeds) == 1 else " (on seed means)"
    out += ["", f"## Claims{claims_on}", "", "| claim | verdict | relation (measured) | paper's sentence |", "|---|---|---|---|"]
    for claim, verdict, relation in claim_rows(expected, results, budget_name, incomplete):
        relation = relation.replace("|", "\\|")  # |diff| relations inside a Markdown table cell
        out.append(f"| {claim['id']} | {verdict} | {relation} | {claim['sentence']} ({claim['source']}) |")
    if figures:
        out += ["", "## Figures", ""] + [f"![{Path(f).stem}]({f})" for f in figures]
    return "\n".join(out) + "\n"


def _render_terminal(expected, per_seed, seeds, budget_name, table2_name) -> str:
    records, results, incomplete = _inputs(per_seed, seeds)
    lines = provenance_lines(records) + [""]
    lines.append(f"{'Model':<30} {'metric':<7} {'paper':>6} {'measured':>22} {'Δ':>6} {'tol':>7} {'z':>6} "
                 f"{'interval':<16} verdict")
    for row in table2_rows(expected, per_seed, table2_name, seeds):
        c = _cells(row)
        metric = "clean" if row.metric == "clean_error" else "robust"
        lines.append(f"{row.label:<30} {metric:<7} {row.paper:>6.2f} {c['measured']:>22} {c['delta']:>6} "
                     f"{c['tolerance']:>7} {c['z']:>6} {c['interval']:<16} {row.verdict}")
    lines.append("")
    for claim, verdict, relation in claim_rows(expected, results, budget_name, incomplete):
        lines.append(f"{verdict:<7} {claim['id']}: {relation}")
    return "\n".join(lines)


def render_markdown(expected: dict, results: dict[str, dict], budget_name: str, figures: list[str] = (),
                    table2_name: str | None = None) -> str:
    """One run folder's report as Markdown; Table 2 is judged under `table2_name` (default `budget_name`)."""
    per_seed = by_seed(results)
    return _render_markdown(expected, per_seed, sorted(per_seed) or [0], budget_name, table2_name or budget_name, figures)


def render_terminal(expected: dict, results: dict[str, dict], budget_name: str, table2_name: str | None = None) -> str:
    """Table 2 and the claims as a fixed-width terminal table; Table 2 judged as in render_markdown."""
    per_seed = by_seed(results)
    return _render_terminal(expected, per_seed, sorted(per_seed) or [0], budget_name, table2_name or budget_name)


def _judged_name(budget: Budget, records: list[dict]) -> str:
    """The name Table 2 is judged under: the budget's, unless overrides or unverified data rule it out."""
    statuses = {r["provenance"]["data"]["checksum_status"] for r in records}
    suffix = " (data without verified checksums)" if statuses - {"verified"} else ""
    return budget.table2_name + suffix


def write_report(run_folder: Path, expected: dict, budget: Budget) -> tuple[str, Path]:
    """Render the report of `run_folder` under `budget`; writes report.md there, returns (terminal text, path).

    Only records evaluated under `budget` count. Table 2's tolerances apply when the budget is a
    registered one without overrides (Budget.table2_name) and every record's data has verified
    checksums; claims apply under overrides and on unverified data too.
    """
    results = collect_results(run_folder, budget)
    table2_name = _judged_name(budget, list(results.values()))
    figures = sorted(str(p.relative_to(run_folder)) for p in Path(run_folder).glob("figures/*.png"))
    path = Path(run_folder) / REPORT_NAME
    markdown = render_markdown(expected, results, budget.name, figures, table2_name=table2_name)
    atomic_write_bytes(path, markdown.encode())
    return render_terminal(expected, results, budget.name, table2_name), path


def write_seed_report(budget_folder: Path, seeds: list[int], expected: dict, budget: Budget) -> tuple[str, Path]:
    """The report over `seeds` (runs in BUDGET_FOLDER/seedS): Table 2 as mean ± SD per row, judged
    on seed means with the measured spread, claims on seed means; writes BUDGET_FOLDER/report.md.

    Returns (terminal text, path). A row lacking a seed is reported missing, never averaged over fewer.
    """
    per_seed = {seed: collect_results(Path(budget_folder) / f"seed{seed}", budget) for seed in seeds}
    table2_name = _judged_name(budget, [r for results in per_seed.values() for r in results.values()])
    path = Path(budget_folder) / REPORT_NAME
    atomic_write_bytes(path, _render_markdown(expected, per_seed, seeds, budget.name, table2_name).encode())
    return _render_terminal(expected, per_seed, seeds, budget.name, table2_name), path
