"""The report as text: the Markdown of report.md and the terminal's fixed-width table.

Both render a ReportContent (repro/verdicts/report.py), computed once: provenance, the verdict line,
Table 2 beside the paper with the error model's terms, the claims judged at this budget and those judged
elsewhere, and where each row's learning curve was heading.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from repro.paper.expected import TABLE2_METRICS
from repro.paper.variants import describe
from repro.verdicts.claims import FAILS, HOLDS, MISSING as CLAIM_MISSING, NOT_JUDGED, OTHER_BUDGET
from repro.verdicts.error_model import CONSISTENT, INCONSISTENT, MISSING
from repro.verdicts.table2 import PAPER_ATTACK, Row, error_model_lines, interval_text, metric_label


def provenance_lines(results: dict[str, dict] | list[dict]) -> list[str]:
    """Budget, seeds, device, code, versions and data of result records (a dict by id, or a list)."""
    records = list(results.values()) if isinstance(results, dict) else list(results)
    if not records:
        return ["no results found"]
    first = records[0]
    commits = sorted({r["provenance"]["git_commit"] for r in records})
    # Every record's versions and data, not the first's only: seeds run on other machines, or before a
    # download was verified, differ there (one "; "-separated entry per distinct set).
    versions = "; ".join(sorted({", ".join(f"{k} {v}" for k, v in r["provenance"]["versions"].items()) for r in records}))
    data = "; ".join(sorted({f"{d['dataset']}, checksums {d['checksum_status']}, {d['n_train']} train images"
                             for d in (r["provenance"]["data"] for r in records)}))
    return [
        f"budget: {first['budget']['name']} (width {first['budget']['width']}, dataset {first['budget']['dataset']})",
        f"seeds: {', '.join(str(s) for s in sorted({r['seed'] for r in records}))}",
        f"device: {', '.join(sorted({r['provenance']['device'] for r in records}))}",
        f"code: {', '.join(commits)}",
        f"versions: {versions}",
        f"data: {data}",
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


def table2_summary(content) -> str:
    """One line: how many Table 2 metrics were judged at this budget and how many were inconsistent."""
    counts = Counter(row.verdict for row in content.rows)
    total = len(content.rows)
    missing = f" ({counts[MISSING]} missing)" if counts[MISSING] else ""
    collapsed = sum(row.config_id in content.degenerate and row.judgement is not None for row in content.rows)
    missing += f" ({collapsed} of degenerate rows, never judged)" if collapsed else ""
    if not content.applies:
        return (f"Table 2: {total - counts[MISSING]} metrics shown, not judged at {content.table2_name} "
                f"(judged at {', '.join(content.table2_budgets)} only){missing}")
    return (f"Table 2: {counts[CONSISTENT] + counts[INCONSISTENT]} metrics judged at {content.table2_name}: "
            f"{counts[CONSISTENT]} consistent with the paper, {counts[INCONSISTENT]} inconsistent{missing}")


def claims_summary(content, shown: str = "below") -> str:
    """One line: how many claims were judged at this budget and how many of them hold or fail; how many
    of this budget's claims could not be judged (inputs missing, a degenerate row, rows not like for
    like), counted apart; and how many are judged only at other budgets (shown for information)."""
    counts = Counter(v.verdict for v in content.claims)
    parts = [f"{counts[HOLDS]} hold"] + ([f"{counts[FAILS]} FAIL"] if counts[FAILS] else [])
    line = f"claims: {counts[HOLDS] + counts[FAILS]} judged at {content.budget_name}: {', '.join(parts)}"
    collapsed = sum(v.verdict == NOT_JUDGED and " is degenerate" in v.reason for v in content.claims)
    why = ([f"{counts[CLAIM_MISSING]} missing inputs"] if counts[CLAIM_MISSING] else []) + (
        [f"{collapsed} reading a degenerate row"] if collapsed else []) + (
        [f"{counts[NOT_JUDGED] - collapsed} rows not like for like"] if counts[NOT_JUDGED] - collapsed else [])
    if why:
        line += f"; {counts[CLAIM_MISSING] + counts[NOT_JUDGED]} not judged ({', '.join(why)})"
    if counts[OTHER_BUDGET]:
        line += f"; {counts[OTHER_BUDGET]} judged at other budgets, shown {shown} for information"
    return line


def markdown_text(expected: dict, content, figures=()) -> str:
    seeds = content.seeds
    out = ["# Reproduction report: On Fragile Features and Batch Normalization in Adversarial Training", "",
           f"**{content.headline}**", ""]
    out += [f"- {line}" for line in provenance_lines(content.records)]
    out += [f"- {config_id}: no result for seed {', '.join(map(str, absent))}"
            for config_id, absent in content.incomplete.items()]
    out += ["", f"**{table2_summary(content)}**  ", f"**{claims_summary(content)}**"]
    heading = "" if len(seeds) == 1 else f", mean ± SD over seeds {', '.join(map(str, seeds))}"
    out += ["", f"## Table 2 (errors in %{heading})", "", table2_summary(content), ""]
    if not content.applies:
        out += [f"Verdicts apply at budgets {', '.join(content.table2_budgets)} only; "
                f"at budget {content.table2_name} the numbers are shown, not judged.", ""]
    paper_n = expected["error_model"]["paper_evaluation_sets"]["robust_error"]["n"]
    out += [f"Robust errors: ours from {content.attack}, the paper's from {PAPER_ATTACK} on its first {paper_n} "
            "test images (Section 3.2).", ""]
    out += ["| Model | metric | paper | measured | Δ | σ | tolerance | z | interval | verdict |",
            "|---|---|---:|---:|---:|---:|---:|---:|---|---|"]
    for row in content.rows:
        c = _cells(row)
        out.append(f"| {row.label} | {metric_label(row.metric, content.attack)} | {row.paper:.2f} | {c['measured']} | {c['delta']} "
                   f"| {c['sigma']} | {c['tolerance']} | {c['z']} | {c['interval']} | {row.verdict} |")
    out += ["", "### Error model", ""] + error_model_lines(expected, content.rows)
    if content.notes:
        out += ["", "### Rows a claim separates that the data cannot", ""] + [f"- {note}" for note in content.notes]
    if content.runs:
        out += ["", "### Runs of one row and seed", "",
                "NORMAL's record beside the NORMAL each fine-tuning row started from (repro/verdicts/determinism.py):", ""]
        out += [f"- {line}" for line in content.runs]
    claims_on = "" if len(seeds) == 1 else " (on seed means)"
    out += ["", f"## Claims{claims_on}", "", claims_summary(content), "",
            "| claim | verdict | relation (measured) | paper's sentence |", "|---|---|---|---|"]
    for v in content.claims:
        relation = v.relation.replace("|", "\\|")  # |diff| relations inside a Markdown table cell
        out.append(f"| {v.id} | {v.verdict} | {relation} | {v.claim['sentence']} ({v.claim['source']}) |")
    if content.trends:
        out += ["", "## Learning curves: where each row was heading", "",
                "The curve's last epoch (repro/verdicts/trends.py); reported, never used to select weights.", ""]
        out += [f"- {label}: {text}" for label, text in content.trends]
    if figures:
        out += ["", "## Figures", ""] + [f"![{Path(f).stem}]({f})" for f in figures]
    return "\n".join(out) + "\n"


def terminal_text(content) -> str:
    lines = [content.headline, ""] + provenance_lines(content.records) + ["", table2_summary(content)]
    width = max(len(metric_label(m, content.attack)) for m in TABLE2_METRICS)
    lines.append(f"{'Model':<30} {'metric':<{width}} {'paper':>6} {'measured':>22} {'Δ':>6} {'tol':>7} {'z':>6} "
                 f"{'interval':<16} verdict")
    for row in content.rows:
        c = _cells(row)
        metric = metric_label(row.metric, content.attack)
        lines.append(f"{row.label:<30} {metric:<{width}} {row.paper:>6.2f} {c['measured']:>22} {c['delta']:>6} "
                     f"{c['tolerance']:>7} {c['z']:>6} {c['interval']:<16} {row.verdict}")
    if content.runs:
        lines += ["", "runs of one row and seed (NORMAL beside the NORMAL each fine-tuning row started from):"]
        lines += [f"  {line}" for line in content.runs]
    judged = [v for v in content.claims if v.verdict != OTHER_BUDGET]
    others = [v for v in content.claims if v.verdict == OTHER_BUDGET]
    lines += ["", claims_summary(content)]
    lines += [f"{v.verdict:<10} {v.id}: {v.relation}" for v in judged]
    if others:
        lines += ["", f"judged at other budgets, for information (n/a at {content.budget_name}):"]
        lines += [f"{v.verdict:<10} {v.id}: {v.relation}" for v in others]
    if content.trends:
        lines += ["", "where each row was heading (learning curve, last epoch):"]
        lines += [f"  {label:<30} {text}" for label, text in content.trends]
    lines += ["", "in short:", f"  {table2_summary(content)}", f"  {claims_summary(content, shown='above')}"]
    return "\n".join(lines)
