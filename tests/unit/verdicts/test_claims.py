"""The paper's claims (expected_results.json) checked on results: every claim can pass and fail."""

import operator

import pytest

from repro.paper.expected import load_expected
from repro.verdicts.claims import check_claim
from tests.unit.paper.test_expected import TABLE2

EXPECTED = load_expected()
CLAIMS = EXPECTED["claims"]
TABLE2_METRICS = ("clean_error", "robust_error")
STORED_AS = {"robust_error": "autoattack_error"}  # result records keep Table 2's robust error under this key
RELATIONS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}
SERIES = {"mean_m_per_layer", "mean_abs_gamma_per_layer", "confidence_clean", "confidence_pgd", "logits_clean",
          "logits_pgd"}  # result records keep these arrays under "series", not "metrics"


def refs_of(quantity):
    """The CONFIG_ID.NAME strings one side of a relation reads."""
    if isinstance(quantity, str):
        return [quantity]
    (form, items), = quantity.items()
    return [items[0], items[2]] if form == "fraction" else list(items)


def sides(claim):
    """(config_id, name) of every measurement the claim's relation reads, left side first."""
    check = claim["check"]
    return [tuple(ref.split(".")) for side in ("left", "right") if side in check for ref in refs_of(check[side])]


def records(values):
    """Result records holding `values`: {(config_id, name): number, or list for a series}."""
    out = {}
    for (config_id, name), value in values.items():
        record = out.setdefault(config_id, {"metrics": {}, "series": {}})
        if name in SERIES:
            record["series"][name] = list(value)
        else:
            record["metrics"][STORED_AS.get(name, name)] = value
    return out


# --- every claim can fail ------------------------------------------------------------------------
# Records are built from each claim's own relation, so a new claim is covered automatically: one
# record set just inside the relation's boundary (the claim must hold) and one just outside it (the
# claim must fail). For strict relations the boundary itself is outside; for <=, >=, |diff|<= and
# within it is inside. A check that ignored `times`, `plus` or `tolerance`, flipped an operator,
# confused < with <=, or computed a derived quantity wrongly fails one of the two.
RIGHT_VALUE = 40.0  # any right-hand measurement; 40 and the files' factors keep the bound exact
MARGIN = 0.5  # beyond (or short of) the boundary, for numbers and distances
POSITIONS = 1000  # series length for "fraction" quantities: 0.5 or 0.75 of it is a whole number of positions


def realise(quantity, target, values):
    """Set measurements in `values` so that `quantity` measures exactly `target`; returns `values`.

    Numbers are set directly; a difference as (target, 0); a 1-Wasserstein distance between
    one-point samples (|a - b|), reusing a sample another side already set; a fraction as
    POSITIONS positions of which target * POSITIONS satisfy the relation.
    """
    if isinstance(quantity, str):
        values[tuple(quantity.split("."))] = target
        return values
    (form, items), = quantity.items()
    if form == "difference":
        values[tuple(items[0].split("."))], values[tuple(items[1].split("."))] = target, 0.0
    elif form == "wasserstein1":
        first, second = (tuple(ref.split(".")) for ref in items)
        assert target >= 0 and first not in values, f"cannot realise W1 = {target} with {first} already set"
        values.setdefault(second, [0.0])
        values[first] = [values[second][0] + target]
    else:
        first, op, second = tuple(items[0].split(".")), items[1], tuple(items[2].split("."))
        holding = round(target * POSITIONS)
        assert holding == target * POSITIONS and 0 <= holding <= POSITIONS, f"{target} is not k/{POSITIONS}"
        # Against 0.0: a position that satisfies op, and one that does not; ties sit on the side
        # that tells < from <= (and > from >=), so a check confusing them counts differently.
        satisfies, violates = {"<": (-1.0, 0.0), "<=": (0.0, 1.0), ">": (1.0, 0.0), ">=": (0.0, -1.0)}[op]
        values[second] = [0.0] * POSITIONS
        values[first] = [satisfies] * holding + [violates] * (POSITIONS - holding)
    return values


def step(quantity):
    """How far 'just' outside or inside is for this quantity: one position for a fraction."""
    return 1 / POSITIONS if isinstance(quantity, dict) and "fraction" in quantity else MARGIN


def claim_records(claim, holds):
    check = claim["check"]
    op, left = check["op"], check["left"]
    if op == "|diff|<=":
        values = realise(check["right"], 0.0, {})
        return records(realise(left, check["value"] + (0 if holds else MARGIN), values))
    if op == "within":
        return records(realise(left, check["value"] + check["tolerance"] + (0 if holds else step(left)), {}))
    values = realise(check["right"], RIGHT_VALUE, {}) if "right" in check else {}
    bound = RIGHT_VALUE * check.get("times", 1.0) + check.get("plus", 0.0) if "right" in check else check["value"]
    inward = -step(left) if op in ("<", "<=") else step(left)  # toward the side where the relation holds
    if op in ("<=", ">="):
        value = bound if holds else bound - inward
    else:
        value = bound + inward if holds else bound
    return records(realise(left, value, values))


def claim_id(claim):
    check = claim["check"]
    kinds = sorted(next(iter(check[side])) for side in ("left", "right") if isinstance(check.get(side), dict))
    return f"{claim['id']}[{check['op']}{' times' if 'times' in check else ''}{''.join(' ' + k for k in kinds)}]"


@pytest.mark.parametrize("claim", CLAIMS, ids=claim_id)
def test_claim_holds_just_inside_its_boundary(claim):
    outcome = check_claim(claim, claim_records(claim, holds=True))
    assert outcome.passed, f"claim {claim['id']} rejects records that satisfy it: {outcome.relation}"


@pytest.mark.parametrize("claim", CLAIMS, ids=claim_id)
def test_claim_fails_just_outside_its_boundary(claim):
    outcome = check_claim(claim, claim_records(claim, holds=False))
    assert not outcome.passed, f"claim {claim['id']} accepts records that violate it: {outcome.relation}"


# --- the paper's own numbers satisfy its claims ----------------------------------------------------

def paper_results():
    """The paper's own numbers as result records (Figure 2's difference for the BN claim)."""
    values = {(c, m): v for c, row in TABLE2.items() for m, v in zip(TABLE2_METRICS, row)}
    values[("normal", "mean_normalized_weight")] = 0.0
    values[("bn_params", "mean_normalized_weight")] = -0.177  # Figure 2's average difference
    return records(values)


PAPER_NUMBERS = {(c, m) for c, r in paper_results().items() for m in r["metrics"]}
# Claims the paper's numbers can decide: checked at the paper budget, reading only what the paper
# reports (it gives no PGD error or PGD cross-entropy).
PAPER_CHECKABLE = [c for c in CLAIMS if "paper" in c["budgets"]
                   and all((cfg, STORED_AS.get(m, m)) in PAPER_NUMBERS for cfg, m in sides(c))]


@pytest.mark.parametrize("claim", PAPER_CHECKABLE, ids=[c["id"] for c in PAPER_CHECKABLE])
def test_paper_numbers_satisfy_paper_claims(claim):
    outcome = check_claim(claim, paper_results())
    assert outcome.passed, f"the paper's own Table 2 contradicts claim {claim['id']}: {outcome.relation}"
