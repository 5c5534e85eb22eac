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

from repro.mechanics.acceleration import ARITHMETIC_SWITCHES, approved_mode
from repro.runs.checkpoint import atomic_write_bytes


def refusal(entries: list[dict], records: dict[str, dict], comparison: str) -> dict:
    """What a comparison (verdicts/agreement.py entries of fp32 evidence against `records`, the rows run
    in a mode) refuses: {switch: {budget, reason, comparison}} for each arithmetic switch the rows ran
    with, when a metric lies outside the band; {} when every metric is within it or no switch was on."""
    outside = [e for e in entries if not e["within"]]
    applied = [r["provenance"].get("selfcheck") or {} for r in records.values()]
    switches = [s for s in ARITHMETIC_SWITCHES if any(a.get(s) for a in applied)]
    if not outside or not switches:
        return {}
    budget = next(iter(records.values()))["budget"]["name"]
    moved = "; ".join(f"{e['label']} {e['metric']} {e['first']:.2f} -> {e['second']:.2f} (band ±{e['allowed']:.2f})"
                      for e in outside)
    reason = f"{' + '.join(switches)} moved {len(outside)} of {len(entries)} metrics beyond the two-run band: {moved}"
    return {s: {"budget": budget, "reason": reason, "comparison": comparison} for s in switches}


def refuse_into(path: Path, refused: dict) -> str:
    """Add `refused` to the selfcheck.json at `path`; returns the mode now approved at the refused budget."""
    record = json.loads(Path(path).read_text())
    record.setdefault("refused", {}).update(refused)
    atomic_write_bytes(Path(path), (json.dumps(record, indent=2, sort_keys=True) + "\n").encode())
    budget = next(iter(refused.values()))["budget"]
    return approved_mode(record, budget)
