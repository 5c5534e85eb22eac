"""The reproduction report: Table 2 side by side with the paper, and the paper's claims.

Headed by provenance (budget, seeds, device, versions, data checksum status), rendered as a
terminal table and as Markdown: `report.md` in a seed's run folder (OUT/BUDGET/seedS), and over
several seeds in OUT/BUDGET (write_seed_report: mean ± SD per row, judged on the seed means).
Table 2's verdicts come from the error model (repro/verdicts/error_model.py).
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from repro.paper.budgets import Budget
from repro.paper.configs import CONFIGURATIONS
from repro.paper.variants import describe
from repro.runs.checkpoint import atomic_write_bytes
from repro.runs.seeds import mean_records, missing_seeds
from repro.verdicts.claims import claim_rows
from repro.verdicts.table2 import (
    METRIC_NAME,
    Row,
    by_seed,
    error_model_lines,
    interval_text,
    separation_notes,
    table2_rows,
)

REPORT_NAME = "report.md"


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
        "interval": "—" if j is None else interval_text(j),
    }


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
        out.append(f"| {row.label} | {METRIC_NAME[row.metric]} | {row.paper:.2f} | {c['measured']} | {c['delta']} "
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
