"""The reproduction report: Table 2 side by side with the paper, and the paper's claims.

Headed by provenance (budget, seeds, device, versions, data checksum status), rendered as a
terminal table and as Markdown: `report.md` in a seed's run folder (OUT/BUDGET/seedS), and over
several seeds in OUT/BUDGET (write_seed_report: mean ± SD per row, judged on the seed means).
Table 2's verdicts come from the error model (repro/verdicts/error_model.py).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from repro.paper.budgets import Budget, budget_from_record, modes_of, protocol_of
from repro.paper.configs import CONFIGURATIONS, NORMAL
from repro.runs.checkpoint import atomic_write_bytes
from repro.runs.seeds import mean_records, missing_seeds
from repro.verdicts.claims import ClaimVerdict, claim_rows_in_order, judge_claims
from repro.verdicts.degenerate import Degeneracy, degenerate_rows
from repro.verdicts.determinism import not_like_for_like, starting_normal_lines
from repro.verdicts.like_for_like import unlike_reason
from repro.verdicts.outcome import VERDICTS_NAME, exit_code, headline, verdicts_record
from repro.verdicts.report_text import markdown_text, terminal_text
from repro.verdicts.table2 import Row, attack_of, by_seed, separation_notes, table2_rows
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

    started_elsewhere = not_like_for_like(per_seed, seeds)  # {"seedS/row": what differs from the NORMAL beside it}

    def unlike(claim):
        rows = claim_rows_in_order(claim)
        if NORMAL.id in rows:
            for key, why in started_elsewhere.items():
                if key.split("/")[1] in rows:
                    return f"{key} did not start from the NORMAL beside it ({why})"
        return next(filter(None, (unlike_reason(r, rows) for r in settings)), None)

    claims = judge_claims(expected, results, budget_name, incomplete, degenerate, unlike)
    return ReportContent(records, seeds, incomplete, budget_name, table2_name,
                         table2_name in expected["table2_budgets"], expected["table2_budgets"], rows,
                         claims, separation_notes(expected, rows, budget_name),
                         curve_trends(per_seed, seeds), attack_of(records), starting_normal_lines(per_seed, seeds),
                         degenerate)


def render_markdown(expected: dict, results: dict[str, dict], budget_name: str, figures: list[str] = (),
                    table2_name: str | None = None) -> str:
    """One run folder's report as Markdown; Table 2 is judged under `table2_name` (default `budget_name`)."""
    per_seed = by_seed(results)
    content = report_content(expected, per_seed, sorted(per_seed) or [0], budget_name, table2_name or budget_name)
    return markdown_text(expected, content, figures)


def render_terminal(expected: dict, results: dict[str, dict], budget_name: str, table2_name: str | None = None) -> str:
    """Table 2 and the claims as a fixed-width terminal table; Table 2 judged as in render_markdown."""
    per_seed = by_seed(results)
    return terminal_text(report_content(expected, per_seed, sorted(per_seed) or [0], budget_name,
                                           table2_name or budget_name))


def _judged_name(budget: Budget, records: list[dict]) -> str:
    """The name Table 2 is judged under: the budget's, unless overrides, unverified data or acceleration
    modes no selfcheck approved rule it out. A mode a passing selfcheck switched on (recorded in the
    result's provenance) is the protocol run faster, and judged."""
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


def _texts(expected: dict, content: ReportContent, figures=()) -> tuple[str, bytes]:
    """report.md's Markdown and verdicts.json's bytes of `content`."""
    record = verdicts_record(content, content.code)
    return markdown_text(expected, content, figures), (json.dumps(record, indent=1) + "\n").encode()


def _write(folder: Path, expected: dict, content: ReportContent, figures=()) -> WrittenReport:
    """report.md and verdicts.json (repro/verdicts/outcome.py) of `content` in `folder`."""
    markdown, verdicts = _texts(expected, content, figures)
    path = Path(folder) / REPORT_NAME
    atomic_write_bytes(path, markdown.encode())
    atomic_write_bytes(Path(folder) / VERDICTS_NAME, verdicts)
    return WrittenReport(terminal_text(content), path, content.code)


def _seed_content(run_folder: Path, expected: dict, budget: Budget) -> tuple[ReportContent, list[str]]:
    results = collect_results(run_folder, budget)
    table2_name = _judged_name(budget, list(results.values()))
    figures = sorted(str(p.relative_to(run_folder)) for p in Path(run_folder).glob("figures/*.png"))
    per_seed = by_seed(results)
    return report_content(expected, per_seed, sorted(per_seed) or [0], budget.name, table2_name), figures


def _seeds_content(budget_folder: Path, seeds: list[int], expected: dict, budget: Budget) -> ReportContent:
    per_seed = {seed: collect_results(Path(budget_folder) / f"seed{seed}", budget) for seed in seeds}
    table2_name = _judged_name(budget, [r for results in per_seed.values() for r in results.values()])
    return report_content(expected, per_seed, seeds, budget.name, table2_name)


def write_report(run_folder: Path, expected: dict, budget: Budget) -> WrittenReport:
    """Render the report of `run_folder` under `budget`; writes report.md and verdicts.json there.

    Only records evaluated under `budget` count. Table 2's tolerances apply when the budget is a
    registered one without overrides (Budget.table2_name) and every record's data has verified
    checksums; claims apply under overrides and on unverified data too.
    """
    content, figures = _seed_content(run_folder, expected, budget)
    return _write(run_folder, expected, content, figures)


def write_seed_report(budget_folder: Path, seeds: list[int], expected: dict, budget: Budget) -> WrittenReport:
    """The report over `seeds` (runs in BUDGET_FOLDER/seedS): Table 2 as mean ± SD per row, judged
    on seed means with the measured spread, claims on seed means; writes BUDGET_FOLDER/report.md and
    verdicts.json.

    A row lacking a seed is reported missing, never averaged over fewer.
    """
    return _write(budget_folder, expected, _seeds_content(budget_folder, seeds, expected, budget))


def report_scope(folder: Path) -> tuple[Budget, list[int] | None]:
    """What a report folder covers, read from its records: the budget they ran under, and the seeds of a
    budget folder (OUT/BUDGET, its seedS folders) or None for one seed's folder (OUT/BUDGET/seedS)."""
    folder = Path(folder)
    seeds = sorted(int(p.name[4:]) for p in folder.glob("seed*") if p.name[4:].isdigit() and p.is_dir())
    paths = sorted(folder.glob("seed*/*/result.json") if seeds else folder.glob("*/result.json"))
    if not paths:
        raise ValueError(f"{folder} holds no result.json; a report folder is OUT/BUDGET or OUT/BUDGET/seedS")
    try:
        budget = budget_from_record(json.loads(paths[0].read_text())["budget"])
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as error:
        raise ValueError(f"{paths[0]}: no budget to report under ({error}); rerun `repro evaluate` for that row") from None
    return budget, seeds or None


def rendered(folder: Path, expected: dict) -> tuple[str, bytes]:
    """report.md and verdicts.json of `folder` as its records give them now (report_scope), nothing written:
    what a committed report must equal, so that it cannot go stale."""
    budget, seeds = report_scope(folder)
    if seeds is None:
        return _texts(expected, *_seed_content(folder, expected, budget))
    return _texts(expected, _seeds_content(folder, seeds, expected, budget))


def refresh(folder: Path, expected: dict) -> WrittenReport:
    """Write `folder`'s report.md and verdicts.json again from its records (report_scope)."""
    budget, seeds = report_scope(folder)
    return write_report(folder, expected, budget) if seeds is None else write_seed_report(folder, seeds, expected, budget)
