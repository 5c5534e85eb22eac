"""Where the reproduction stands: one line per committed report, computed from its verdicts.json.

The README's status table is this module's output (`repro status`), and a fast test renders it from
results/ and compares, so the table cannot drift from the evidence. Each line counts what its report
judged: Table 2's metrics (consistent / inconsistent / not judged), the claims judged at its budget
(hold / fail / not judged), and the rows whose predictions collapsed (repro/verdicts/degenerate.py).
"""

from __future__ import annotations

import json
from pathlib import Path

from repro.paper.configs import CONFIGURATIONS
from repro.verdicts.outcome import VERDICTS_NAME

STATUS_START, STATUS_END = "<!-- status:start -->", "<!-- status:end -->"  # the README's table between these


def verdict_files(results: Path) -> list[Path]:
    """Every verdicts.json under `results`, the reports over seeds first, then by path."""
    return sorted(Path(results).rglob(VERDICTS_NAME), key=lambda p: (len(p.relative_to(results).parts), str(p)))


def _table2(summary: dict) -> str:
    judged = summary.get("consistent", 0) + summary.get("inconsistent", 0)
    if not judged:
        shown = sum(v for k, v in summary.items() if k != "missing")
        return f"not judged ({shown} shown)"
    return f"{summary.get('consistent', 0)} consistent, {summary.get('inconsistent', 0)} inconsistent"


def _readings(readings: list[str]) -> str:
    """The readings of a report's records as one cell: each reading or budget field once ("defaults" where
    no record has any)."""
    parts = sorted({part for reading in readings for part in reading.split("; ") if part != "defaults"})
    return "; ".join(parts) or "defaults"


def status_line(path: Path, root: Path) -> str:
    """One Markdown table line of the report whose verdicts.json is at `path`; links relative to `root`."""
    record = json.loads(Path(path).read_text())
    claims, table2 = record["summary"]["claims"], record["summary"]["table2"]
    degenerate = ", ".join(CONFIGURATIONS[c].label for c in record["summary"]["degenerate_rows"]) or "none"
    folder = Path(path).parent
    report = (folder / "report.md").relative_to(root).as_posix()
    return (f"| {folder.relative_to(root).parent.as_posix()}/**{folder.name}** | {record['budget']} "
            f"| {', '.join(map(str, record['seeds']))} | {_readings(record['readings'])} | {_table2(table2)} "
            f"| {claims['hold']} hold, {claims['fail']} fail, {claims['not_judged']} not judged "
            f"| {degenerate} | {record['outcome']} (exit {record['exit_code']}) | [report]({report}) |")


def status_table(results: Path, root: Path | None = None) -> str:
    """The status table of every report under `results` (links relative to `root`, default its parent)."""
    results = Path(results)
    root = Path(root) if root is not None else results.parent
    lines = ["| evidence | budget | seeds | readings | Table 2 | claims at its budget | degenerate rows | verdict | |",
             "|---|---|---|---|---|---|---|---|---|"]
    lines += [status_line(p, root) for p in verdict_files(results)]
    return "\n".join(lines) + "\n"


def embedded_table(text: str) -> str | None:
    """The status table a document (README.md) holds between STATUS_START and STATUS_END, or None."""
    if STATUS_START not in text or STATUS_END not in text:
        return None
    return text.split(STATUS_START, 1)[1].split(STATUS_END, 1)[0].strip("\n") + "\n"


def embed(text: str, table: str) -> str:
    """`text` with the table between its markers replaced by `table`."""
    head, rest = text.split(STATUS_START, 1)
    return head + STATUS_START + "\n" + table + rest[rest.index(STATUS_END):]
