"""The open choices' readings side by side with Table 2: which reading comes closest to the paper.

Every reading that has been run under one budget and seed lives in its own run folder
(`OUT/BUDGET+CHOICE=READING/seedSEED`, the defaults in `OUT/BUDGET/seedSEED`). For each open
choice, each row it affects and each Table 2 metric, the comparison shows the paper's value and
tolerance, the measured value under every reading run, and the reading closest to the paper.
Only folders that differ from the defaults in that one choice are compared, so a difference is
the choice's alone.
"""

from __future__ import annotations

from pathlib import Path

from repro.paper.budgets import Budget
from repro.paper.choices import CHOICES, TRAINING, UnknownVariantError
from repro.paper.expected import RESULT_KEY, TABLE2_METRICS
from repro.paper.variants import affected_rows, parse_variants
from repro.verdicts.degenerate import degeneracy
from repro.verdicts.error_model import metric_error
from repro.verdicts.outcome import EXIT_FAILS, EXIT_HOLDS, EXIT_NOTHING_JUDGED
from repro.verdicts.report import collect_results
from repro.verdicts.table2 import attack_of, images_of, metric_label

COMPARISON_NAME = "variants-seed{seed}.md"


def reading_folders(out: Path, budget: Budget, seed: int) -> list[tuple[dict[str, str], Path]]:
    """(readings, run folder) for every folder of `budget` and `seed` under `out`, defaults first.

    Folders whose name does not parse as readings of this budget (other budgets, overrides with
    another hash, hand-made folders) are left out.
    """
    found = []
    for folder in sorted(Path(out).glob(f"{budget.run_name}*/seed{seed}")):
        name = folder.parent.name
        if name != budget.run_name and not name.startswith(budget.run_name + "+"):
            continue
        pairs = name[len(budget.run_name):].split("+")[1:]
        try:
            found.append((parse_variants(pairs), folder))
        except UnknownVariantError:
            continue
    return sorted(found, key=lambda item: len(item[0]))


def comparison_rows(expected: dict, out: Path, budget: Budget, seed: int) -> list[dict]:
    """One entry per (choice, affected row, metric) with at least one non-default reading run.

    Each entry: {"choice", "row", "label", "metric", "paper", "tolerance", "measured": {reading:
    value}, "degenerate": {reading: label}, "closest": reading or None, "within": bool}. Readings
    without a result are absent from "measured"; a reading whose model collapsed (repro/verdicts/
    degenerate.py) is shown but never the closest; "within" says whether the closest reading lies
    inside the paper's tolerance.
    """
    results = {}  # choice -> reading -> {row: record}
    for readings, folder in reading_folders(out, budget, seed):
        if len(readings) > 1:
            continue  # a combination of readings: not one choice's effect
        records = collect_results(folder, budget)
        if not readings:
            for choice in CHOICES.values():
                results.setdefault(choice.id, {})[choice.default] = records
        else:
            (choice_id, reading_id), = readings.items()
            results.setdefault(choice_id, {})[reading_id] = records
    entries = []
    for choice in CHOICES.values():
        runs = results.get(choice.id, {})
        if choice.scope != TRAINING or not set(runs) - {choice.default}:
            continue
        for row in affected_rows(choice):
            for metric in TABLE2_METRICS:
                target = expected["table2"][row][metric]
                key = RESULT_KEY.get(metric, metric)
                records = {reading.id: runs[reading.id][row] for reading in choice.readings
                           if reading.id in runs and row in runs[reading.id]}
                if not records:
                    continue
                measured = {reading: record["metrics"][key] for reading, record in records.items()}
                collapsed = {reading: found.label for reading, record in records.items()
                             if (found := degeneracy(record)).degenerate}
                candidates = [r for r in measured if r not in collapsed]
                closest = min(candidates, key=lambda r: abs(measured[r] - target["value"])) if candidates else None
                # The error model's tolerance (repro/verdicts/error_model.py) for one seed at the closest
                # reading's evaluation size: each reading is one run, so the row's prior seed SD applies.
                reference = closest or next(iter(measured))
                tolerance = metric_error(expected["error_model"], expected["table2"][row], metric,
                                         images_of(records[reference], metric), [measured[reference]]).tolerance
                entries.append({
                    "choice": choice.id, "row": row, "label": expected["table2"][row]["label"], "metric": metric,
                    "paper": target["value"], "tolerance": tolerance, "measured": measured, "degenerate": collapsed,
                    "closest": closest,
                    "within": closest is not None and abs(measured[closest] - target["value"]) <= tolerance,
                    "attack": attack_of(records.values()),
                })
    return entries


def render_comparison(expected: dict, out: Path, budget: Budget, seed: int) -> str:
    """The comparison as Markdown, one table per open choice with a non-default reading run."""
    entries = comparison_rows(expected, out, budget, seed)
    lines = [f"# Open choices: readings beside Table 2 (budget {budget.run_name}, seed {seed})", ""]
    if budget.table2_name not in expected["table2_budgets"]:
        lines += [f"Tolerances apply at budgets {', '.join(expected['table2_budgets'])} only; at budget "
                  f"{budget.table2_name} 'within' is shown for orientation, not judged.", ""]
    if not entries:
        return "\n".join(lines + [f"No non-default reading has been run under {out} for this budget and seed; "
                                  "run one with e.g. `repro reproduce --variant attack_bn=eval` (list: `repro variants`)."]) + "\n"
    for choice in CHOICES.values():
        mine = [e for e in entries if e["choice"] == choice.id]
        if not mine:
            continue
        names = [f"{r.id} (default)" if r.id == choice.default else r.id for r in choice.readings]
        lines += [f"## {choice.id}: {choice.question}", "",
                  "| row | metric | paper | tolerance | " + " | ".join(names) + " | closest |",
                  "|---|---|---:|---:|" + "---:|" * len(names) + "---|"]
        for e in mine:
            cells = [("—" if r.id not in e["measured"] else f"{e['measured'][r.id]:.2f}"
                      + (f" {e['degenerate'][r.id]}" if r.id in e["degenerate"] else "")) for r in choice.readings]
            verdict = "within" if e["within"] else "outside"
            closest = (f"{e['closest']} ({verdict} tolerance)" if e["closest"] is not None
                       else "none: every reading run is degenerate")
            lines.append(f"| {e['label']} | {metric_label(e['metric'], e['attack'])} | {e['paper']:.2f} | ±{e['tolerance']:.2f} | "
                         + " | ".join(cells) + f" | {closest} |")
        lines.append("")
    return "\n".join(lines)


def comparison_code(expected: dict, entries: list[dict], budget: Budget) -> int:
    """The readings comparison's exit code (repro/verdicts/outcome.py): judged only where Table 2 is
    (expected "table2_budgets"); it fails when a row's closest non-degenerate reading lies outside the
    paper's tolerance, or every reading of it is degenerate."""
    if budget.table2_name not in expected["table2_budgets"] or not entries:
        return EXIT_NOTHING_JUDGED
    return EXIT_HOLDS if all(e["within"] for e in entries) else EXIT_FAILS
