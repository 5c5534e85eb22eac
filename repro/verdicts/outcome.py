"""The outcome of a reproduction in one word, one exit code and one record (verdicts.json).

Exit codes of the commands that judge (reproduce, report, ladder, compare), as pytest's say whether
tests passed:

    0  every verdict judged at this budget holds
    1  a judged Table 2 metric is inconsistent with the paper, or a judged claim does not hold
    2  bad usage or input (the one-line error says which value or file)
    3  nothing could be judged: every row and claim missing, degenerate or not judged at this budget

`--no-gate` explores without failing: the verdicts are printed and recorded, the exit code is 0.

verdicts.json, beside every report.md, holds the same verdicts for a dashboard or the history (its
schema: VERDICTS_SCHEMA and `verdicts_record`).
"""

from __future__ import annotations

from collections import Counter

from repro.paper.budgets import row_overrides_of
from repro.paper.configs import CONFIGURATIONS

from repro.verdicts.claims import FAILS, HOLDS, JUDGED, MISSING, NOT_JUDGED, OTHER_BUDGET, STATUS
from repro.verdicts.error_model import CONSISTENT, INCONSISTENT
from repro.verdicts.like_for_like import SCHEDULE_CHOICES

EXIT_HOLDS, EXIT_FAILS, EXIT_USAGE, EXIT_NOTHING_JUDGED = 0, 1, 2, 3
OUTCOME = {EXIT_HOLDS: "holds", EXIT_FAILS: "does not hold", EXIT_NOTHING_JUDGED: "nothing judged"}
EXIT_CODES_TEXT = """exit codes of reproduce, report, ladder and compare:
  0  every verdict judged at this budget holds
  1  a judged Table 2 metric is inconsistent with the paper, or a judged claim does not hold
  2  bad usage or input (the error names the value or file)
  3  nothing could be judged (rows missing, degenerate, or not judged at this budget)
  --no-gate prints and records the verdicts and exits 0"""
VERDICTS_NAME = "verdicts.json"
VERDICTS_SCHEMA = 1
DEGENERATE_PREFIX = "degenerate"  # how Table 2 shows a collapsed row (repro/verdicts/degenerate.py)


def exit_code(table2_verdicts: list[str], claim_verdicts: list[str]) -> int:
    """EXIT_FAILS if any judged verdict fails, EXIT_NOTHING_JUDGED if none was judged, else EXIT_HOLDS."""
    if INCONSISTENT in table2_verdicts or FAILS in claim_verdicts:
        return EXIT_FAILS
    judged = [v for v in table2_verdicts if v in (CONSISTENT, INCONSISTENT)] + [v for v in claim_verdicts if v in JUDGED]
    return EXIT_HOLDS if judged else EXIT_NOTHING_JUDGED


def gated(code: int, no_gate: bool) -> int:
    """The exit code a command returns: `code`, or 0 under --no-gate."""
    return EXIT_HOLDS if no_gate else code


def headline(budget_name: str, code: int, table2_verdicts: list[str], claim_verdicts: list[str],
             table2_judged: bool, degenerate_labels: dict[str, str]) -> str:
    """The report's first line: the outcome and exit code, what the claims and Table 2 came to, and
    which rows are degenerate."""
    claims = Counter(claim_verdicts)
    not_judged = claims[MISSING] + claims[NOT_JUDGED]
    parts = [f"claims at {budget_name}: {claims[HOLDS]} hold, {claims[FAILS]} FAIL, {not_judged} not judged"]
    if table2_judged:
        t = Counter(table2_verdicts)
        parts.append(f"Table 2: {t[CONSISTENT]} consistent, {t[INCONSISTENT]} inconsistent")
    else:
        parts.append(f"Table 2 not judged at {budget_name}")
    if degenerate_labels:
        parts.append("degenerate: " + ", ".join(f"{label} {why.removeprefix(DEGENERATE_PREFIX).strip()}"
                                                for label, why in degenerate_labels.items()))
    return f"verdict: {OUTCOME[code]} (exit {code}): " + "; ".join(parts)


def reading_of(record: dict) -> str:
    """What a result record ran beyond its budget's registered protocol, in words: its readings
    ("finetune_lr=0.1") and the fields of the budget it ran under that differ from the budget of that name
    now and that its numbers depend on ("set epochs_finetune=1"; an earlier budget's defaults read so
    once the registered budget changed); "defaults" where neither."""
    variants = record.get("variants") or {}
    parts = [f"{c}={r}" for c, r in variants.items()]
    config = CONFIGURATIONS.get((record.get("config") or {}).get("id"))
    if config is not None and isinstance(record.get("budget"), dict):
        # a schedule reading replaces the budget's field, also in records older than set_by_readings
        governed = {f"{attribute}_finetune" for attribute, choice in SCHEDULE_CHOICES.items()
                    if variants.get(choice, "budget") != "budget"}
        parts += [f"set {k}={v}" for k, v in sorted(row_overrides_of(record["budget"], config).items())
                  if k not in governed]
    return "; ".join(parts) or "defaults"


def verdicts_record(content, code: int) -> dict:
    """verdicts.json of a report (repro.verdicts.report.ReportContent): one entry per Table 2 metric
    and per claim, with the numbers each read and, where not judged, why."""
    readings = sorted({reading_of(rec) for rec in content.records})
    degenerate = {c: {"status": d.status, "class": d.top_class, "share": d.share, "source": d.source,
                      "reason": d.reason} for c, d in content.degenerate.items()}
    table2 = []
    for row in content.rows:
        j = row.judgement
        status = (DEGENERATE_PREFIX if row.verdict.startswith(DEGENERATE_PREFIX) else row.verdict)
        table2.append({
            "id": f"{row.config_id}.{row.metric}", "row": row.config_id, "metric": row.metric, "status": status,
            "paper": row.paper, "measured": row.measured, "per_seed": {str(s): v for s, v in row.seeds.values.items()},
            "tolerance": None if j is None else j.error.tolerance, "z": None if j is None else j.z_score,
            "reason": (degenerate.get(row.config_id, {}).get("reason") if status == DEGENERATE_PREFIX else
                       f"no result for seed {', '.join(map(str, row.seeds.missing))}" if row.seeds.missing else
                       "" if j is None or j.judged else f"Table 2 is judged at {', '.join(content.table2_budgets)} only"),
        })
    claims = [{"id": v.id, "status": STATUS[v.verdict], "verdict": v.verdict, "relation": v.relation,
               "numbers": v.numbers, "budgets": v.claim["budgets"], "reason": v.reason,
               "judged_here": v.verdict != OTHER_BUDGET} for v in content.claims]
    counts = Counter(v.verdict for v in content.claims)
    return {
        "schema": VERDICTS_SCHEMA,
        "budget": content.budget_name, "table2_judged_under": content.table2_name,
        "seeds": content.seeds, "readings": readings, "attack": content.attack,
        "outcome": OUTCOME[code], "exit_code": code,
        "summary": {
            "claims": {"hold": counts[HOLDS], "fail": counts[FAILS], "not_judged": counts[MISSING] + counts[NOT_JUDGED],
                       "other_budgets": counts[OTHER_BUDGET]},
            "table2": dict(Counter(t["status"] for t in table2)),
            "degenerate_rows": sorted(degenerate),
        },
        "degenerate": degenerate, "table2": table2, "claims": claims,
    }
