"""Two runs of the same rows side by side: does each metric agree within the two-run band?

For checking that something which must not move a number did not (a selfcheck-approved acceleration
mode against the fp32 evidence, results/cifar_cpu/cifar_cpu@bf16; a rerun against a kept record,
results/cifar_cpu/determinism/rerun-fp32). The band is
the history's (repro/verdicts/history.py allowed_move): z times the binomial standard errors of both
runs at their mean rate plus the row kind's seed-to-seed prior once per run. Within the band is what
two seeds of one experiment would show; outside it is a move to explain.
"""

from __future__ import annotations

from repro.paper.configs import CONFIGURATIONS
from repro.paper.expected import ERROR_RATES
from repro.verdicts.history import allowed_move
from repro.verdicts.outcome import EXIT_FAILS, EXIT_HOLDS, EXIT_NOTHING_JUDGED


def agreement(first: dict[str, dict], second: dict[str, dict], expected: dict) -> list[dict]:
    """One entry per row in both {config_id: result record} and error metric: the two values, their
    difference (second - first), the band and whether the difference lies within it."""
    entries = []
    for config_id in CONFIGURATIONS:
        if config_id not in first or config_id not in second:
            continue
        for metric, n_key in ERROR_RATES.items():
            a, b = first[config_id]["metrics"], second[config_id]["metrics"]
            if metric not in a or metric not in b:
                continue
            before, after = {"value": a[metric], "n": a.get(n_key)}, {"value": b[metric], "n": b.get(n_key)}
            band = allowed_move(metric, config_id, before, after, expected)
            delta = b[metric] - a[metric]
            entries.append({"row": config_id, "label": CONFIGURATIONS[config_id].label, "metric": metric,
                            "first": a[metric], "second": b[metric], "delta": delta, "allowed": band,
                            "within": band is not None and abs(delta) <= band})
    return entries


def agreement_code(entries: list[dict]) -> int:
    """The comparison's exit code (repro/verdicts/outcome.py): a metric outside its band fails it; with
    no metric that has a band nothing was judged."""
    if any(e["allowed"] is not None and not e["within"] for e in entries):
        return EXIT_FAILS
    return EXIT_HOLDS if any(e["allowed"] is not None for e in entries) else EXIT_NOTHING_JUDGED


def render_agreement(entries: list[dict], first_name: str, second_name: str) -> str:
    """Markdown: a first line counting the metrics within the band, then the table."""
    within = sum(e["within"] for e in entries)
    out = [f"# {second_name} against {first_name}", "",
           f"{within} of {len(entries)} metrics within the two-run band (repro/verdicts/agreement.py); "
           + ("every one agrees." if within == len(entries) else
              "outside: " + ", ".join(f"{e['label']} {e['metric']}" for e in entries if not e["within"]) + "."),
           "", f"| row | metric | {first_name} | {second_name} | Δ | band | |", "|---|---|---:|---:|---:|---:|---|"]
    for e in entries:
        band = "—" if e["allowed"] is None else f"±{e['allowed']:.2f}"
        out.append(f"| {e['label']} | {e['metric']} | {e['first']:.2f} | {e['second']:.2f} | {e['delta']:+.2f} "
                   f"| {band} | {'within' if e['within'] else 'OUTSIDE'} |")
    return "\n".join(out) + "\n"
