"""A selfcheck-approved mode refused at a budget when its rows moved the numbers beyond noise.

The selfcheck approves a mode on one small model's attack strength and clean error. The stronger test
is a budget's rows run in that mode against the fp32 evidence, judged by the mode rule
(repro/verdicts/mode_rule.py: fine-tuning rows paired on their starting NORMAL, the family of metrics
judged together, a second seed asked for before refusing). When the rule refuses, the arithmetic
switches the mode used (bf16, compile; channels_last is a layout) are refused at that budget in the
selfcheck.json, with the rule's finding, and `--selfcheck` then picks the fastest mode without them
(mechanics/acceleration.py approved_mode).
"""

from __future__ import annotations

import json
from pathlib import Path

from repro.mechanics.acceleration import ARITHMETIC_SWITCHES, approved_mode, refusals
from repro.runs.checkpoint import atomic_write_bytes
from repro.runs.provenance import hardware_key

NOT_RECORDED = "not recorded"  # a side whose records carry no provenance.hardware (or was not given)


def hardware_of(records: dict[str, dict] | None) -> str:
    """The hardware (runs.provenance.hardware_key) the `records` ran on, several joined by " / ";
    NOT_RECORDED where none carries it."""
    keys = sorted({key for r in (records or {}).values()
                   if (key := hardware_key(r.get("provenance", {}).get("hardware")))})
    return " / ".join(keys) or NOT_RECORDED


def switches_of(records: dict[str, dict]) -> list[str]:
    """The arithmetic switches (ARITHMETIC_SWITCHES) the rows ran with: those a selfcheck applied
    (provenance "selfcheck") or the budget set (`--set bf16=true`)."""
    def on(record, switch):
        return bool((record.get("provenance", {}).get("selfcheck") or {}).get(switch)) or bool(
            record.get("budget", {}).get(switch))
    return [s for s in ARITHMETIC_SWITCHES if any(on(r, s) for r in records.values())]


def refusal(records: dict[str, dict], finding: str, comparison: str,
            reference: dict[str, dict] | None = None) -> dict:
    """What a refusing mode verdict (`finding`: its reasons) of `records`, the rows run in a mode, against
    the fp32 evidence `reference` refuses: {switch: {budget, reason, comparison}} for each arithmetic
    switch the rows ran with; {} when none was on. The reason names the hardware of both sides ("not
    recorded" where a side's records lack it): a move between runs on other machines may be the machine's.
    """
    switches = switches_of(records)
    if not switches:
        return {}
    budget = next(iter(records.values()))["budget"]["name"]
    first, second = hardware_of(reference), hardware_of(records)
    machines = (f"hardware: fp32 evidence {first}, rows in the mode {second}"
                + ("" if first == second != NOT_RECORDED else
                   " (not shown to be the same: the move may be the hardware's, not the switch's)"))
    reason = f"{' + '.join(switches)} refused by the mode rule: {finding}; {machines}"
    return {s: {"budget": budget, "reason": reason, "comparison": comparison} for s in switches}


def refuse_into(path: Path, refused: dict) -> str:
    """Add `refused` (refusal's {switch: {budget, ...}}, one budget) to the selfcheck.json at `path`,
    under record["refused"][budget][switch]: refusals at other budgets stand, and one of the first
    format is rewritten in this one. Returns the mode now approved at the refused budget."""
    record = json.loads(Path(path).read_text())
    budget = next(iter(refused.values()))["budget"]
    record["refused"] = refusals(record)
    record["refused"].setdefault(budget, {}).update(refused)
    atomic_write_bytes(Path(path), (json.dumps(record, indent=2, sort_keys=True) + "\n").encode())
    return approved_mode(record, budget)


def lift_from(path: Path, records: dict[str, dict], finding: str, comparison: str) -> tuple[list[str], str]:
    """The mode rule approved `records` (rows run in a mode, with the arithmetic switches switches_of
    gives): lift the refusals of those switches at their budget from the selfcheck.json at `path`, keeping
    each under record["lifted"][budget][switch] with the approving comparison, so the record says why the
    switch is used again. Returns (the switches lifted, the mode now approved at the budget)."""
    switches = switches_of(records)
    record = json.loads(Path(path).read_text())
    budget = next(iter(records.values()))["budget"]["name"]
    standing = refusals(record)
    lifted = [s for s in switches if s in standing.get(budget, {})]
    if lifted:
        for switch in lifted:
            record.setdefault("lifted", {}).setdefault(budget, {})[switch] = {
                "refusal": standing[budget].pop(switch), "comparison": comparison,
                "reason": f"{' + '.join(switches)} approved by the mode rule: {finding}"}
        record["refused"] = {b: found for b, found in standing.items() if found}
        atomic_write_bytes(Path(path), (json.dumps(record, indent=2, sort_keys=True) + "\n").encode())
    return lifted, approved_mode(record, budget)
