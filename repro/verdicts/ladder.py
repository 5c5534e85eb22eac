"""The fine-tuning ladder judged: each claim's outcome at each point of longer training runs.

Runs trained with Budget.ladder_epochs keep their weights after those epochs, and their results hold
the full evaluation of each ("ladder": clean error, PGD error, robust error per epoch). At ladder
point k, every row that has a point at k is taken at k; a row whose training ended before k is taken
at its last point, and the cell says so; a row without a ladder (NORMAL, here) at its end. A point
inside a longer schedule is not a shorter run: its learning rate has not decayed yet.

Only the claims judged at the records' budget are listed (the others are named once), and a cell is
judged only as a report would judge it: not on a row degenerate at that point
(repro/verdicts/degenerate.py), not across rows trained under different readings or budgets
(repro/verdicts/like_for_like.py). Claims that compare rows' per-image or per-layer arrays (Figures
1-3) read arrays kept for the end only, so before the end they are not judged. The ladder's verdict
is its last point's.
"""

from __future__ import annotations

from repro.paper.expected import SERIES
from repro.verdicts.claims import check_claim, claim_configurations, claim_references, claim_rows_in_order, missing_inputs
from repro.verdicts.degenerate import degeneracy
from repro.verdicts.like_for_like import unlike_reason
from repro.verdicts.outcome import EXIT_FAILS, EXIT_HOLDS, EXIT_NOTHING_JUDGED

LADDER_METRICS = ("clean_error", "pgd_error", "autoattack_error")
HOLDS, FAILS = "holds", "does not hold"  # the judged outcomes of a cell


def ladder_of(record: dict) -> dict[int, dict]:
    """epoch -> metrics of a result record's ladder (its end included); {} for a record without one."""
    return {point["epoch"]: point["metrics"] for point in record.get("ladder", []) if "metrics" in point}


def is_laddered(record: dict) -> bool:
    """Whether a record has points before its end: a result evaluated under ladder_epochs keeps its end
    as a one-point ladder (NORMAL, adopted by a ladder's folder), which is no ladder."""
    return len(ladder_of(record)) > 1


def ladder_epochs(records: dict[str, dict]) -> list[int]:
    """Every epoch a laddered row has a point at, in order."""
    return sorted({epoch for record in records.values() if is_laddered(record) for epoch in ladder_of(record)})


def results_at(records: dict[str, dict], epoch: int) -> tuple[dict[str, dict], dict[str, int]]:
    """The records with every laddered row's metrics taken at `epoch` (or its last point before it),
    and {row: the epoch it was taken at}; a laddered row with no point at or before `epoch` is left out.

    A point's metrics replace the end's whole: what a point did not record (the predicted-class counts of
    older records) is not borrowed from the end."""
    out, taken = {}, {}
    for config_id, record in records.items():
        ladder = ladder_of(record)
        if not is_laddered(record):
            out[config_id] = record
            continue
        earlier = [e for e in ladder if e <= epoch]
        if not earlier:
            continue
        at = max(earlier)
        out[config_id] = {**record, "metrics": dict(ladder[at])}
        taken[config_id] = at
    return out, taken


def _cell(claim: dict, records: dict[str, dict], epoch: int, labels: dict[str, str]) -> str:
    """One claim's outcome at one ladder point."""
    results, taken = results_at(records, epoch)
    refs = claim_references(claim)
    rows = claim_configurations(claim)
    missing = missing_inputs(claim, results)
    if missing:
        return f"missing ({', '.join(sorted({m.split('.')[0] for m in missing}))})"
    for row in sorted(rows):
        # The record as kept, with the point's metrics: its clean logits are the end's, never a point's.
        found = degeneracy(records[row], results[row]["metrics"])
        if found.degenerate:
            return f"not judged ({row} {found.label})"
    unlike = unlike_reason(records, claim_rows_in_order(claim))
    if unlike:
        return f"not judged ({unlike})"
    arrays_of = {ref.split(".")[0] for ref in refs if ref.split(".")[1] in SERIES}
    if any(c in taken and taken[c] != max(ladder_of(records[c])) for c in arrays_of):
        return "not judged (arrays kept for the end only)"
    outcome = HOLDS if check_claim(claim, results).passed else FAILS
    elsewhere = [f"{labels.get(c, c)} at epoch {taken[c]}" for c in sorted(rows & set(taken)) if taken[c] != epoch]
    return outcome + (f" ({'; '.join(elsewhere)})" if elsewhere else "")


def budget_of(records: dict[str, dict]) -> str:
    """The budget the records ran under (the first record's name)."""
    return next(iter(records.values()))["budget"]["name"] if records else "?"


def ladder_claims(expected: dict, records: dict[str, dict],
                  labels: dict[str, str] | None = None) -> list[tuple[dict, dict[int, str]]]:
    """(claim, {epoch: outcome}) for every claim judged at the records' budget that reads a laddered row;
    an outcome is "holds" or "does not hold" (naming any row taken at another epoch), "missing (ROWS)",
    or "not judged (why)"."""
    laddered = {c for c, r in records.items() if is_laddered(r)}
    budget = budget_of(records)
    rows = []
    for claim in expected["claims"]:
        if budget not in claim["budgets"] or not laddered & claim_configurations(claim):
            continue
        rows.append((claim, {e: _cell(claim, records, e, labels or {}) for e in ladder_epochs(records)}))
    return rows


def ladder_code(outcomes: list[tuple[dict, dict[int, str]]]) -> int:
    """The exit code of the ladder's last point (repro/verdicts/outcome.py)."""
    last = [o[max(o)] for _, o in outcomes if o]
    if any(cell.startswith(FAILS) for cell in last):
        return EXIT_FAILS
    return EXIT_HOLDS if any(cell.startswith(HOLDS) for cell in last) else EXIT_NOTHING_JUDGED


def _point_state(record: dict, metrics: dict) -> str:
    found = degeneracy(record, metrics)
    return found.label if found.degenerate else ""


def render_ladder(expected: dict, records: dict[str, dict], labels: dict[str, str], title: str,
                  shown: list[tuple[str, dict]] | None = None, attack: str = "the robust attack") -> str:
    """Markdown: the ladder's points per row (clean / PGD / robust error at each epoch, and whether the
    model collapsed there), then each claim's outcome at each point. `labels`: row -> how to name it
    (e.g. with its readings). `shown`: (label, record) pairs whose points are listed instead of
    `records`' (e.g. one row under two readings, of which the claims judge one). `attack`: what the
    robust error measured (table2.attack_of)."""
    epochs = ladder_epochs(records)
    budget = budget_of(records)
    shown = shown if shown is not None else [(labels.get(c, c), r) for c, r in records.items()]
    outcomes = ladder_claims(expected, records, labels)
    code = ladder_code(outcomes)
    out = [f"# {title}", "",
           f"Verdict at the last point (epoch {epochs[-1] if epochs else '—'}): exit {code}.", "",
           "Errors in % (clean on the budget's clean test set, PGD and the robust attack on its first n_robust "
           "images), after each number of epochs; a point inside a longer schedule is not a shorter run (its "
           "learning rate has not decayed).", "",
           f"| row | epoch | clean | PGD | robust: {attack} | predictions |", "|---|---:|---:|---:|---:|---|"]
    for label, record in shown:
        for epoch, metrics in sorted(ladder_of(record).items()):
            out.append(f"| {label} | {epoch} | {metrics['clean_error']:.2f} | {metrics['pgd_error']:.1f} "
                       f"| {metrics['autoattack_error']:.1f} | {_point_state(record, metrics)} |")
    out += ["", f"## Claims along the ladder (judged at {budget})", "",
            "| claim | " + " | ".join(f"epoch {e}" for e in epochs) + " | paper's sentence |",
            "|---|" + "---|" * len(epochs) + "---|"]
    unjudged = []
    for claim, cells in outcomes:
        if all(o.startswith("missing") for o in cells.values()):
            unjudged.append(f"{claim['id']} ({cells[epochs[-1]]})")
            continue
        out.append(f"| {claim['id']} | {' | '.join(cells[e] for e in epochs)} | {claim['sentence']} ({claim['source']}) |")
    elsewhere = [c["id"] for c in expected["claims"] if budget not in c["budgets"]]
    if unjudged:
        out += ["", "Not judged at any point, their rows are in none of these folders: " + "; ".join(unjudged) + "."]
    if elsewhere:
        out += ["", f"Judged at other budgets only, so not listed here: {', '.join(elsewhere)}."]
    return "\n".join(out) + "\n"
