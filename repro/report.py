"""The reproduction report: Table 2 side by side with the paper, and the paper's claims.

Headed by provenance (budget, seeds, device, versions, data checksum status), rendered as a
terminal table and as Markdown (`report.md` in the run folder).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from repro.budgets import Budget
from repro.checkpoint import atomic_write_bytes
from repro.configs import CONFIGURATIONS
from repro.expected import RESULT_KEY, check_claim, claim_configurations, within_tolerance
from repro.variants import describe

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


@dataclass(frozen=True)
class Row:
    """One Table 2 metric: paper value, measured value, tolerance, verdict."""

    config_id: str
    label: str
    metric: str
    paper: float
    measured: float | None
    tolerance: float
    verdict: str  # "pass", "FAIL", "n/a" (tolerances do not apply at this budget), "missing"


def table2_rows(expected: dict, results: dict[str, dict], budget_name: str) -> list[Row]:
    applies = budget_name in expected["table2_budgets"]
    rows = []
    for config_id, entry in expected["table2"].items():
        for metric in ("clean_error", "robust_error"):
            target = entry[metric]
            value = results[config_id]["metrics"][RESULT_KEY.get(metric, metric)] if config_id in results else None
            if value is None:
                verdict = "missing"
            elif not applies:
                verdict = "n/a"
            else:
                verdict = "pass" if within_tolerance(target, value) else "FAIL"
            rows.append(Row(config_id, entry["label"], metric, target["value"], value, target["tolerance"], verdict))
    return rows


def claim_rows(expected: dict, results: dict[str, dict], budget_name: str) -> list[tuple[dict, str, str]]:
    """(claim, verdict, relation) per claim: pass/FAIL where checkable, else why not."""
    rows = []
    for claim in expected["claims"]:
        missing = sorted(claim_configurations(claim) - set(results))
        if budget_name not in claim["budgets"]:
            rows.append((claim, "n/a", f"checked at budgets {', '.join(claim['budgets'])}"))
        elif missing:
            rows.append((claim, "missing", f"no result for {', '.join(missing)}"))
        else:
            outcome = check_claim(claim, results)
            rows.append((claim, "pass" if outcome.passed else "FAIL", outcome.relation))
    return rows


def provenance_lines(results: dict[str, dict]) -> list[str]:
    if not results:
        return ["no results found"]
    first = next(iter(results.values()))
    prov = first["provenance"]
    commits = sorted({r["provenance"]["git_commit"] for r in results.values()})
    versions = ", ".join(f"{k} {v}" for k, v in prov["versions"].items())
    data = prov["data"]
    return [
        f"budget: {first['budget']['name']} (width {first['budget']['width']}, dataset {first['budget']['dataset']})",
        f"seeds: {', '.join(sorted({str(r['seed']) for r in results.values()}))}",
        f"device: {', '.join(sorted({r['provenance']['device'] for r in results.values()}))}",
        f"code: {', '.join(commits)}",
        f"versions: {versions}",
        f"data: {data['dataset']}, checksums {data['checksum_status']}, {data['n_train']} train images",
        # The open choices' readings (repro/variants.py); one run folder holds one set of readings.
        f"readings: {'; '.join(sorted({describe(r.get('variants')) for r in results.values()}))}",
    ]


def _fmt(value: float | None, digits: int = 2) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def render_markdown(expected: dict, results: dict[str, dict], budget_name: str, figures: list[str] = (),
                    table2_name: str | None = None) -> str:
    """The whole report as Markdown; Table 2 is judged under `table2_name` (default `budget_name`)."""
    table2_name = table2_name or budget_name
    out = ["# Reproduction report: On Fragile Features and Batch Normalization in Adversarial Training", ""]
    out += [f"- {line}" for line in provenance_lines(results)]
    applies = table2_name in expected["table2_budgets"]
    out += ["", "## Table 2 (errors in %)", ""]
    if not applies:
        out += [f"Tolerances apply at budgets {', '.join(expected['table2_budgets'])} only; "
                f"at budget {table2_name} the numbers are shown, not judged.", ""]
    out += ["| Model | metric | paper | measured | Δ | tolerance | verdict |", "|---|---|---:|---:|---:|---:|---|"]
    for row in table2_rows(expected, results, table2_name):
        delta = None if row.measured is None else row.measured - row.paper
        metric = "clean" if row.metric == "clean_error" else "robust (AutoAttack)"
        out.append(f"| {row.label} | {metric} | {row.paper:.2f} | {_fmt(row.measured)} | {_fmt(delta)} "
                   f"| ±{row.tolerance:g} | {row.verdict} |")
    out += ["", "## Claims", "", "| claim | verdict | relation (measured) | paper's sentence |", "|---|---|---|---|"]
    for claim, verdict, relation in claim_rows(expected, results, budget_name):
        out.append(f"| {claim['id']} | {verdict} | {relation} | {claim['sentence']} ({claim['source']}) |")
    if figures:
        out += ["", "## Figures", ""] + [f"![{Path(f).stem}]({f})" for f in figures]
    return "\n".join(out) + "\n"


def render_terminal(expected: dict, results: dict[str, dict], budget_name: str, table2_name: str | None = None) -> str:
    """Table 2 and the claims as a fixed-width terminal table; Table 2 judged as in render_markdown."""
    lines = provenance_lines(results) + [""]
    lines.append(f"{'Model':<30} {'clean':>6} {'meas.':>6} {'Δ':>6} {'tol':>4} {'':<7} "
                 f"{'robust':>6} {'meas.':>6} {'Δ':>6} {'tol':>4} {'':<7}")
    rows = table2_rows(expected, results, table2_name or budget_name)
    for clean, robust in zip(rows[0::2], rows[1::2]):
        cells = []
        for row in (clean, robust):
            delta = None if row.measured is None else row.measured - row.paper
            cells.append(f"{row.paper:>6.2f} {_fmt(row.measured):>6} {_fmt(delta):>6} {row.tolerance:>4g} {row.verdict:<7}")
        lines.append(f"{clean.label:<30} {cells[0]} {cells[1]}")
    lines.append("")
    for claim, verdict, relation in claim_rows(expected, results, budget_name):
        lines.append(f"{verdict:<7} {claim['id']}: {relation}")
    return "\n".join(lines)


def write_report(run_folder: Path, expected: dict, budget: Budget) -> tuple[str, Path]:
    """Render the report of `run_folder` under `budget`; writes report.md there, returns (terminal text, path).

    Only records evaluated under `budget` count. Table 2's tolerances apply when the budget is a
    registered one without overrides (Budget.table2_name) and every record's data has verified
    checksums; claims apply under overrides and on unverified data too.
    """
    results = collect_results(run_folder, budget)
    table2_name = budget.table2_name
    statuses = {r["provenance"]["data"]["checksum_status"] for r in results.values()}
    if statuses - {"verified"}:
        table2_name += " (data without verified checksums)"
    figures = sorted(str(p.relative_to(run_folder)) for p in Path(run_folder).glob("figures/*.png"))
    path = Path(run_folder) / REPORT_NAME
    markdown = render_markdown(expected, results, budget.name, figures, table2_name=table2_name)
    atomic_write_bytes(path, markdown.encode())
    return render_terminal(expected, results, budget.name, table2_name), path
