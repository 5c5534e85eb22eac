"""A selfcheck-approved mode refused at a budget when its rows moved a number beyond noise (issue 28).

The selfcheck approves a mode on one small model's attack strength and clean error. The stronger test
is all of a budget's rows run in that mode against the fp32 evidence (`repro compare`): a mode must not
move a number beyond the two-run band. When one does, the arithmetic switches the mode used (bf16,
compile; channels_last is a layout) are refused at that budget in the selfcheck.json, with the
comparison's finding, and `--selfcheck` then picks the fastest mode without them
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


def refusal(entries: list[dict], records: dict[str, dict], comparison: str,
            reference: dict[str, dict] | None = None) -> dict:
    """What a comparison (verdicts/agreement.py entries of fp32 evidence, `reference`, against `records`,
    the rows run in a mode) refuses: {switch: {budget, reason, comparison}} for each arithmetic switch
    the rows ran with, when a metric lies outside the band; {} when every metric is within it or no
    switch was on. The reason names the hardware of both sides ("not recorded" where a side's records
    lack it, or `reference` is not given): a move between runs on other machines may be the machine's.
    """
    outside = [e for e in entries if not e["within"]]
    applied = [r["provenance"].get("selfcheck") or {} for r in records.values()]
    switches = [s for s in ARITHMETIC_SWITCHES if any(a.get(s) for a in applied)]
    if not outside or not switches:
        return {}
    budget = next(iter(records.values()))["budget"]["name"]
    moved = "; ".join(f"{e['label']} {e['metric']} {e['first']:.2f} -> {e['second']:.2f} (band ±{e['allowed']:.2f})"
                      for e in outside)
    first, second = hardware_of(reference), hardware_of(records)
    machines = (f"hardware: fp32 evidence {first}, rows in the mode {second}"
                + ("" if first == second != NOT_RECORDED else
                   " (not shown to be the same: the move may be the hardware's, not the switch's)"))
    reason = (f"{' + '.join(switches)} moved {len(outside)} of {len(entries)} metrics beyond the two-run band: {moved}; "
              f"{machines}")
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
