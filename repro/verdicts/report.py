"""The reproduction report: Table 2 side by side with the paper, and the paper's claims.

Headed by provenance (budget, seeds, device, versions, data checksum status), rendered as a
terminal table and as Markdown: `report.md` in a seed's run folder (OUT/BUDGET/seedS), and over
several seeds in OUT/BUDGET (write_seed_report: mean ± SD per row, judged on the seed means).
Table 2's verdicts come from the error model (repro/verdicts/error_model.py).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from repro.paper.budgets import Budget, modes_of, protocol_of
from repro.paper.configs import CONFIGURATIONS
from repro.paper.expected import TABLE2_METRICS
from repro.paper.variants import describe
from repro.runs.checkpoint import atomic_write_bytes
from repro.runs.seeds import mean_records, missing_seeds
from repro.verdicts.claims import FAILS, HOLDS, MISSING as CLAIM_MISSING, NOT_JUDGED, OTHER_BUDGET, ClaimVerdict
from repro.verdicts.claims import claim_rows_in_order, judge_claims
from repro.verdicts.degenerate import Degeneracy, degenerate_rows
from repro.verdicts.determinism import starting_normal_lines
from repro.verdicts.error_model import CONSISTENT, INCONSISTENT, MISSING
from repro.verdicts.like_for_like import unlike_reason
from repro.verdicts.outcome import VERDICTS_NAME, exit_code, headline, verdicts_record
from repro.verdicts.table2 import (
    PAPER_ATTACK,
    Row,
    attack_of,
    by_seed,
    error_model_lines,
    interval_text,
    metric_label,
    separation_notes,
    table2_rows,
)
from repro.verdicts.trends import mean_curve, trend_text

REPORT_NAME = "report.md"


def collect_results(run_folder: Path, budget: Budget | None = None) -> dict[str, dict]:
    """Result records in `run_folder` (OUT/BUDGET/seedS), keyed by configuration id, Table 2 order.

    With `budget`, records evaluated under other settings (an evaluation-only override shares the
    folder) are left out, so one report never mixes evaluation protocols; the acceleration modes a
    selfcheck switched on are not another protocol (Budget.protocol).
    """
    results = {}
    for config_id in CONFIGURATIONS:
        path = Path(run_folder) / config_id / "result.json"
        if path.exists():
            record = json.loads(path.read_text())
            if budget is None or protocol_of(record.get("budget", {})) == budget.protocol():
                results[config_id] = record
    return results


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


@dataclass(frozen=True)
class ReportContent:
    """Everything a report shows, computed once; the Markdown and terminal renderers only format it."""

    records: list[dict]  # every result record of the seeds asked for
    seeds: list[int]
    incomplete: dict[str, list[int]]  # rows lacking some seeds but not all -> the seeds they lack
    budget_name: str  # the budget the claims are judged at
    table2_name: str  # the name Table 2 is judged under (Budget.table2_name, plus the data's status)
    applies: bool  # whether Table 2's verdicts apply under table2_name
    table2_budgets: list[str]  # where Table 2's verdicts apply
    rows: list[Row]  # Table 2's metrics
    claims: list[ClaimVerdict]  # per claim (verdicts.claims.judge_claims)
    notes: list[str]  # where a claim separates two rows the paper's data, or ours, cannot (table2.separation_notes)
    trends: list[tuple[str, str]]  # (row label, where its learning curve was heading), rows with a result
    attack: str  # the attack behind our robust errors (table2.robust_attack), e.g. "APGD-CE (50 it.)"
    runs: list[str]  # runs of one row and seed whose weights differ or cannot be compared (verdicts.determinism)
    degenerate: dict[str, Degeneracy]  # rows whose predictions collapsed, never evidence (verdicts.degenerate)

    @property
    def code(self) -> int:
        """The exit code the verdicts give (repro/verdicts/outcome.py)."""
        return exit_code([r.verdict for r in self.rows], [v.verdict for v in self.claims])

    @property
    def headline(self) -> str:
        labels = {CONFIGURATIONS[c].label: d.label for c, d in self.degenerate.items()}
        return headline(self.budget_name, self.code, [r.verdict for r in self.rows], [v.verdict for v in self.claims],
                        self.applies, labels)


def curve_trends(per_seed: dict[int, dict[str, dict]], seeds: list[int]) -> list[tuple[str, str]]:
    """(row label, trend text) for every row with a result for every seed: the seeds' mean curve's last move."""
    out = []
    for config_id, config in CONFIGURATIONS.items():
        records = [per_seed.get(seed, {}).get(config_id) for seed in seeds]
        if any(r is None for r in records):
            continue
        curves = [r.get("curve", {}).get("points") for r in records]
        if not all(curves):
            out.append((config.label, trend_text([], 0)))
            continue
        out.append((config.label, trend_text(mean_curve(curves), records[0]["curve"]["n_images"] * len(seeds))))
    return out


def report_content(expected: dict, per_seed: dict[int, dict[str, dict]], seeds: list[int], budget_name: str,
                   table2_name: str) -> ReportContent:
    """The report of `per_seed` ({seed: {config_id: record}}) over `seeds`: Table 2 judged under
    `table2_name`, the claims at `budget_name` on the seed's records or the seed means."""
    records = [r for s in seeds for r in per_seed.get(s, {}).values()]
    results = per_seed.get(seeds[0], {}) if len(seeds) == 1 else mean_records(per_seed, seeds)
    incomplete = {c: absent for c, absent in missing_seeds(per_seed, seeds).items() if len(absent) < len(seeds)}
    degenerate = degenerate_rows(per_seed, seeds)
    rows = table2_rows(expected, per_seed, table2_name, seeds, degenerate)
    # Like for like on each seed's records (seed means carry no budget or configuration).
    settings = [per_seed.get(s, {}) for s in seeds]

    def unlike(claim):
        return next(filter(None, (unlike_reason(r, claim_rows_in_order(claim)) for r in settings)), None)

    claims = judge_claims(expected, results, budget_name, incomplete, degenerate, unlike)
    return ReportContent(records, seeds, incomplete, budget_name, table2_name,
                         table2_name in expected["table2_budgets"], expected["table2_budgets"], rows,
                         claims, separation_notes(expected, rows, budget_name),
                         curve_trends(per_seed, seeds), attack_of(records), starting_normal_lines(per_seed, seeds),
                         degenerate)


def table2_summary(content: ReportContent) -> str:
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


def claims_summary(content: ReportContent, shown: str = "below") -> str:
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


def _render_markdown(expected: dict, content: ReportContent, figures=()) -> str:
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
                "The curve's last interval (repro/runs/curves.py); reported, never used to select weights.", ""]
        out += [f"- {label}: {text}" for label, text in content.trends]
    if figures:
        out += ["", "## Figures", ""] + [f"![{Path(f).stem}]({f})" for f in figures]
    return "\n".join(out) + "\n"


def _render_terminal(content: ReportContent) -> str:
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
        lines += ["", "where each row was heading (learning curve, last interval):"]
        lines += [f"  {label:<30} {text}" for label, text in content.trends]
    lines += ["", "in short:", f"  {table2_summary(content)}", f"  {claims_summary(content, shown='above')}"]
    return "\n".join(lines)


def render_markdown(expected: dict, results: dict[str, dict], budget_name: str, figures: list[str] = (),
                    table2_name: str | None = None) -> str:
    """One run folder's report as Markdown; Table 2 is judged under `table2_name` (default `budget_name`)."""
    per_seed = by_seed(results)
    content = report_content(expected, per_seed, sorted(per_seed) or [0], budget_name, table2_name or budget_name)
    return _render_markdown(expected, content, figures)


def render_terminal(expected: dict, results: dict[str, dict], budget_name: str, table2_name: str | None = None) -> str:
    """Table 2 and the claims as a fixed-width terminal table; Table 2 judged as in render_markdown."""
    per_seed = by_seed(results)
    return _render_terminal(report_content(expected, per_seed, sorted(per_seed) or [0], budget_name,
                                           table2_name or budget_name))


def _judged_name(budget: Budget, records: list[dict]) -> str:
    """The name Table 2 is judged under: the budget's, unless overrides, unverified data or acceleration
    modes no selfcheck approved rule it out. A mode a passing selfcheck switched on (recorded in the
    result's provenance) is the protocol run faster, and judged (issue 27)."""
    statuses = {r["provenance"]["data"]["checksum_status"] for r in records}
    suffix = " (data without verified checksums)" if statuses - {"verified"} else ""
    unapproved = sorted({mode for r in records if not r["provenance"].get("selfcheck")
                         for mode in modes_of(r["budget"])})
    if unapproved and not budget.overrides:
        suffix += f" (with {', '.join(unapproved)} not approved by a selfcheck)"
    return budget.table2_name + suffix


class WrittenReport(NamedTuple):
    """What writing a report gives: the terminal text, report.md's path, and the verdicts' exit code."""

    text: str
    path: Path
    code: int


def _write(folder: Path, expected: dict, content: ReportContent, figures=()) -> WrittenReport:
    """report.md and verdicts.json (repro/verdicts/outcome.py) of `content` in `folder`."""
    path = Path(folder) / REPORT_NAME
    atomic_write_bytes(path, _render_markdown(expected, content, figures).encode())
    record = verdicts_record(content, content.code)
    atomic_write_bytes(Path(folder) / VERDICTS_NAME, (json.dumps(record, indent=1) + "\n").encode())
    return WrittenReport(_render_terminal(content), path, content.code)


def write_report(run_folder: Path, expected: dict, budget: Budget) -> WrittenReport:
    """Render the report of `run_folder` under `budget`; writes report.md and verdicts.json there.

    Only records evaluated under `budget` count. Table 2's tolerances apply when the budget is a
    registered one without overrides (Budget.table2_name) and every record's data has verified
    checksums; claims apply under overrides and on unverified data too.
    """
    results = collect_results(run_folder, budget)
    table2_name = _judged_name(budget, list(results.values()))
    figures = sorted(str(p.relative_to(run_folder)) for p in Path(run_folder).glob("figures/*.png"))
    per_seed = by_seed(results)
    content = report_content(expected, per_seed, sorted(per_seed) or [0], budget.name, table2_name)
    return _write(run_folder, expected, content, figures)


def write_seed_report(budget_folder: Path, seeds: list[int], expected: dict, budget: Budget) -> WrittenReport:
    """The report over `seeds` (runs in BUDGET_FOLDER/seedS): Table 2 as mean ± SD per row, judged
    on seed means with the measured spread, claims on seed means; writes BUDGET_FOLDER/report.md and
    verdicts.json.

    A row lacking a seed is reported missing, never averaged over fewer.
    """
    per_seed = {seed: collect_results(Path(budget_folder) / f"seed{seed}", budget) for seed in seeds}
    table2_name = _judged_name(budget, [r for results in per_seed.values() for r in results.values()])
    content = report_content(expected, per_seed, seeds, budget.name, table2_name)
    return _write(budget_folder, expected, content)
