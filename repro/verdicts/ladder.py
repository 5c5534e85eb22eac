"""The fine-tuning ladder judged (issue 23): each claim's outcome at each point of longer training runs.

Runs trained with Budget.ladder_epochs keep their weights after those epochs, and their results hold
the full evaluation of each ("ladder": clean error, PGD error, AutoAttack error per epoch). At
ladder point k, every row that has a point at k is taken at k; a row whose training ended before k
is taken at its end (its last point); a row without a ladder (NORMAL, here) at its end. A point
inside a longer schedule is not a shorter run: its learning rate has not decayed yet.

Claims that compare rows' per-image or per-layer arrays (Figures 1-3) read arrays kept for the end
only, so along the ladder they are shown as not judged.
"""

from __future__ import annotations

from repro.paper.expected import SERIES
from repro.verdicts.claims import check_claim, claim_references, missing_inputs

LADDER_METRICS = ("clean_error", "pgd_error", "autoattack_error")


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
    and {row: the epoch it was taken at}."""
    out, taken = {}, {}
    for config_id, record in records.items():
        ladder = ladder_of(record)
        if not is_laddered(record):
            out[config_id] = record
            continue
        at = max((e for e in ladder if e <= epoch), default=min(ladder))
        out[config_id] = {**record, "metrics": {**record["metrics"], **ladder[at]}}
        taken[config_id] = at
    return out, taken


def ladder_claims(expected: dict, records: dict[str, dict]) -> list[tuple[dict, dict[int, str]]]:
    """(claim, {epoch: outcome}) for every claim that reads a laddered row; an outcome is "holds",
    "does not hold", "missing (ROWS)" or "not judged (arrays kept for the end only)"."""
    laddered = {c for c, r in records.items() if is_laddered(r)}
    epochs = ladder_epochs(records)
    rows = []
    for claim in expected["claims"]:
        refs = claim_references(claim)
        if not laddered & {ref.split(".")[0] for ref in refs}:
            continue
        outcomes = {}
        for epoch in epochs:
            results, taken = results_at(records, epoch)
            arrays_of = {ref.split(".")[0] for ref in refs if ref.split(".")[1] in SERIES}
            reads_arrays = any(c in taken and taken[c] != max(ladder_of(records[c])) for c in arrays_of)
            missing = missing_inputs(claim, results)
            if missing:
                outcomes[epoch] = f"missing ({', '.join(sorted({m.split('.')[0] for m in missing}))})"
            elif reads_arrays:
                outcomes[epoch] = "not judged (arrays kept for the end only)"
            else:
                outcomes[epoch] = "holds" if check_claim(claim, results).passed else "does not hold"
        rows.append((claim, outcomes))
    return rows


def render_ladder(expected: dict, records: dict[str, dict], labels: dict[str, str], title: str,
                  shown: list[tuple[str, dict]] | None = None) -> str:
    """Markdown: the ladder's points per row (clean / PGD / AutoAttack-or-stand-in error at each epoch),
    then each claim's outcome at each point. `labels`: row -> how to name it (e.g. with its readings).
    `shown`: (label, record) pairs whose points are listed instead of `records`' (e.g. one row under two
    readings, of which the claims judge one)."""
    epochs = ladder_epochs(records)
    shown = shown if shown is not None else [(labels.get(c, c), r) for c, r in records.items()]
    out = [f"# {title}", "", "Errors in % (clean on the budget's clean test set, PGD and the robust attack on its "
           "first n_robust images), after each number of epochs; a point inside a longer schedule is not a "
           "shorter run (its learning rate has not decayed).", "",
           "| row | epoch | clean | PGD | robust (AutoAttack or its stand-in) |", "|---|---:|---:|---:|---:|"]
    for label, record in shown:
        for epoch, metrics in sorted(ladder_of(record).items()):
            out.append(f"| {label} | {epoch} | {metrics['clean_error']:.2f} "
                       f"| {metrics['pgd_error']:.1f} | {metrics['autoattack_error']:.1f} |")
    out += ["", "## Claims along the ladder", "",
            "| claim | " + " | ".join(f"epoch {e}" for e in epochs) + " | paper's sentence |",
            "|---|" + "---|" * len(epochs) + "---|"]
    unjudged = []
    for claim, outcomes in ladder_claims(expected, records):
        if all(o.startswith("missing") for o in outcomes.values()):
            unjudged.append(f"{claim['id']} ({outcomes[epochs[-1]]})")
            continue
        cells = " | ".join(outcomes[e] for e in epochs)
        out.append(f"| {claim['id']} | {cells} | {claim['sentence']} ({claim['source']}) |")
    earlier = [f"{labels.get(c, c)} at epoch {at} for epoch {e}" for e in epochs
               for c, at in results_at(records, e)[1].items() if at != e]
    if earlier:
        out += ["", "A row without a point at an epoch is judged at its last point before it (its training had "
                    "ended, or kept no weights then): " + "; ".join(earlier) + "."]
    if unjudged:
        out += ["", "Not judged at any point, their rows are in none of these folders: " + "; ".join(unjudged) + "."]
    return "\n".join(out) + "\n"
