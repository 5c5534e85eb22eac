"""The paper's claims checked on measured results: each relation of expected_results.json evaluated.

The relations' forms (LEFT op RIGHT * times + plus, |diff|, within; metrics, differences, 1-Wasserstein
distances and per-layer shares) are documented where the file is read, repro/paper/expected.py. Here a
claim's sides are computed from result records keyed by configuration id and the relation is judged,
with the measured numbers filled into the text the report prints.
"""

from __future__ import annotations

from dataclasses import dataclass

from repro.paper.expected import OPERATORS, RESULT_KEY, SERIES
from repro.verdicts.distances import fraction_where, wasserstein1


@dataclass(frozen=True)
class ClaimOutcome:
    """A claim checked against measured numbers."""

    id: str
    sentence: str
    relation: str  # the relation with the measured numbers filled in
    passed: bool


def measured(results: dict[str, dict], ref: str) -> float | list[float]:
    """The measured CONFIG_ID.METRIC (a number) or CONFIG_ID.SERIES (an array) from result records
    keyed by configuration id."""
    config_id, name = ref.split(".")
    if config_id not in results:
        raise KeyError(f"no result for {config_id} (needed by {ref})")
    if name in SERIES:
        return results[config_id]["series"][name]
    return results[config_id]["metrics"][RESULT_KEY.get(name, name)]


def _references(quantity) -> list[str]:
    if isinstance(quantity, str):
        return [quantity]
    (form, items), = quantity.items()
    return [items[0], items[2]] if form == "fraction" else list(items)


def claim_references(claim: dict) -> list[str]:
    """Every CONFIG_ID.NAME a claim's relation reads, in order."""
    check = claim["check"]
    return [ref for side in ("left", "right") if side in check for ref in _references(check[side])]


def claim_configurations(claim: dict) -> set[str]:
    """The configuration ids a claim's relation reads."""
    return {ref.split(".")[0] for ref in claim_references(claim)}


def claim_rows_in_order(claim: dict) -> list[str]:
    """The configuration ids a claim's relation reads, each once, in the order it reads them (left first)."""
    return list(dict.fromkeys(ref.split(".")[0] for ref in claim_references(claim)))


def missing_inputs(claim: dict, results: dict[str, dict]) -> list[str]:
    """The CONFIG_ID.NAME a claim reads that `results` lack (a row not run, or a record written
    before that metric or series was recorded); empty when the claim can be checked."""
    missing = []
    for ref in claim_references(claim):
        config_id, name = ref.split(".")
        record = results.get(config_id, {})
        held = record.get("series", {}) if name in SERIES else record.get("metrics", {})
        if RESULT_KEY.get(name, name) not in held and ref not in missing:
            missing.append(ref)
    return missing


def _shown(value: float, quantity) -> str:
    # Distances between confidence distributions are often a few hundredths: one more digit.
    return f"{value:.4f}" if isinstance(quantity, dict) and "wasserstein1" in quantity else f"{value:.3f}"


def _evaluate(quantity, results: dict[str, dict]) -> tuple[float, str, str]:
    """(value, what it is, the measured value as shown) of one side of a relation."""
    if isinstance(quantity, str):
        value = measured(results, quantity)
        return value, quantity, f"{value:.3f}"
    (form, items), = quantity.items()
    if form == "difference":
        value = measured(results, items[0]) - measured(results, items[1])
        return value, f"({items[0]} - {items[1]})", f"{value:.3f}"
    if form == "wasserstein1":
        value = wasserstein1(measured(results, items[0]), measured(results, items[1]))
        return value, f"W1({items[0]}, {items[1]})", _shown(value, quantity)
    count, total = fraction_where(measured(results, items[0]), items[1], measured(results, items[2]))
    return count / total, f"share({items[0]} {items[1]} {items[2]})", f"{count}/{total}={count / total:.3f}"


def check_claim(claim: dict, results: dict[str, dict]) -> ClaimOutcome:
    """Evaluate one claim's relation on measured results."""
    check = claim["check"]
    left, left_name, left_shown = _evaluate(check["left"], results)
    op = check["op"]
    if op == "|diff|<=":
        right, right_name, right_shown = _evaluate(check["right"], results)
        passed = abs(left - right) <= check["value"]
        relation = f"|{left_name} - {right_name}| = |{left_shown} - {right_shown}| <= {check['value']}"
    elif op == "within":
        value, tolerance = check["value"], check["tolerance"]
        passed = abs(left - value) <= tolerance
        relation = (f"{left_name} within {value:g} ± {tolerance:g}: {left_shown} in "
                    f"[{value - tolerance:.3f}, {value + tolerance:.3f}]")
    elif "right" in check:
        right, right_name, _ = _evaluate(check["right"], results)
        times, plus = check.get("times", 1.0), check.get("plus", 0.0)
        bound = right * times + plus
        passed = OPERATORS[op](left, bound)
        scaled = right_name if times == 1 else f"{times:g}*{right_name}"
        offset = f" {'+' if plus >= 0 else '-'} {abs(plus):g}" if plus else ""
        relation = f"{left_name} {op} {scaled}{offset}: {left_shown} {op} {_shown(bound, check['left'])}"
    else:
        passed = OPERATORS[op](left, check["value"])
        relation = f"{left_name} {op} {check['value']}: {left_shown} {op} {check['value']}"
    return ClaimOutcome(claim["id"], claim["sentence"], relation, bool(passed))


# A claim's verdict as reports show it: judged (holds / FAIL), not judged at this budget although its
# budgets include it (inputs missing, a degenerate row, rows not like for like), or judged elsewhere.
HOLDS, FAILS, MISSING, NOT_JUDGED, OTHER_BUDGET = "pass", "FAIL", "missing", "not judged", "n/a"
JUDGED = (HOLDS, FAILS)
STATUS = {HOLDS: "holds", FAILS: "fails", MISSING: "not judged", NOT_JUDGED: "not judged",
          OTHER_BUDGET: "judged at other budgets"}  # verdicts.json's words for each


@dataclass(frozen=True)
class ClaimVerdict:
    """One claim at one budget: its verdict, the relation with the measured numbers, and why it was
    not judged where it was not."""

    claim: dict
    verdict: str  # HOLDS, FAILS, MISSING, NOT_JUDGED or OTHER_BUDGET
    relation: str  # what the report prints beside the verdict
    numbers: dict  # CONFIG_ID.METRIC -> the measured value read (plain metrics only)
    reason: str = ""  # why not judged (MISSING, NOT_JUDGED, OTHER_BUDGET)

    @property
    def id(self) -> str:
        return self.claim["id"]


def _numbers(claim: dict, results: dict[str, dict]) -> dict:
    out = {}
    for ref in claim_references(claim):
        config_id, name = ref.split(".")
        value = results.get(config_id, {}).get("metrics", {}).get(RESULT_KEY.get(name, name))
        if name not in SERIES and isinstance(value, (int, float)) and not isinstance(value, bool):
            out[ref] = value
    return out


def judge_claims(expected: dict, results: dict[str, dict], budget_name: str,
                 incomplete: dict[str, list[int]] | None = None, degenerate: dict | None = None,
                 unlike=None) -> list[ClaimVerdict]:
    """Every claim of `expected` at `budget_name` on `results` ({config_id: record}, or seed means).

    A claim is judged (HOLDS / FAILS) only where its budgets include `budget_name`, its inputs are all
    measured, no row it reads is degenerate (`degenerate`: {config_id: Degeneracy}, from
    repro/verdicts/degenerate.py; a claim whose "judges_collapse" says why reads a collapse as evidence)
    and its rows ran like for like (`unlike(claim) -> reason or None`;
    repro/verdicts/like_for_like.py). `incomplete` names the seeds each row lacks, so a claim on such
    a row says which seed is missing instead of being judged on fewer. A claim of other budgets shows
    its measured relation for information, never "holds" on a degenerate row.
    """
    incomplete, degenerate = incomplete or {}, degenerate or {}
    out = []
    for claim in expected["claims"]:
        rows = claim_configurations(claim)
        lacking = sorted(rows & set(incomplete))
        missing = missing_inputs(claim, results)
        absent_rows = sorted({ref.split(".")[0] for ref in missing} - set(results) - set(lacking))
        unrecorded = [ref for ref in missing if ref.split(".")[0] in results]
        why_missing = "; ".join(part for part in (
            *(f"{c} lacks seed {', '.join(map(str, incomplete[c]))}" for c in lacking),
            f"no result for {', '.join(absent_rows)}" if absent_rows else "",
            f"not recorded: {', '.join(unrecorded)} (results from older code; `repro evaluate` records them)"
            if unrecorded else "") if part)
        # A claim that exists to catch a collapse (normal_learns: "far above chance") reads it as evidence.
        collapsed = "" if claim.get("judges_collapse") else "; ".join(
            f"{c} is {degenerate[c].label}" for c in sorted(rows & set(degenerate)))
        unlike_why = None if why_missing or collapsed or unlike is None else unlike(claim)
        outcome = None if why_missing or collapsed or unlike_why else check_claim(claim, results)
        numbers = _numbers(claim, results)
        if budget_name not in claim["budgets"]:
            shown = (f"{outcome.relation}: {'holds' if outcome.passed else 'does not hold'}" if outcome
                     else why_missing or collapsed or unlike_why)
            expectation = claim.get("scale_expectations", {}).get(budget_name)
            why_not = (f"not expected to hold at {budget_name}: {expectation['reason']}" if expectation
                       else f"judged at budgets {', '.join(claim['budgets'])}")
            out.append(ClaimVerdict(claim, OTHER_BUDGET, f"{shown} ({why_not})", numbers, why_not))
        elif why_missing:
            out.append(ClaimVerdict(claim, MISSING, why_missing, numbers, why_missing))
        elif collapsed or unlike_why:
            why = collapsed or unlike_why
            out.append(ClaimVerdict(claim, NOT_JUDGED, f"not judged: {why}", numbers, why))
        else:
            out.append(ClaimVerdict(claim, HOLDS if outcome.passed else FAILS, outcome.relation, numbers))
    return out


def claim_rows(expected: dict, results: dict[str, dict], budget_name: str,
               incomplete: dict[str, list[int]] | None = None, degenerate: dict | None = None,
               unlike=None) -> list[tuple[dict, str, str]]:
    """(claim, verdict, relation) per claim: judge_claims as the report's table rows."""
    return [(v.claim, v.verdict, v.relation)
            for v in judge_claims(expected, results, budget_name, incomplete, degenerate, unlike)]
