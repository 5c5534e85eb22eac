"""expected_results.json: valid, faithful to the paper; every claim can pass and fail."""

import copy
import operator

import pytest

from repro.paper.configs import CONFIGURATIONS
from repro.paper.expected import ExpectedResultsError, load_expected, validate
from repro.verdicts.claims import check_claim

EXPECTED = load_expected()

TABLE2 = {  # Table 2 of the paper, (clean error, robust error) in %
    "normal": (4.11, 99.8), "normal_bn_only": (46.11, 99.7), "normal_bn_only_log_conv1": (35.89, 99.6),
    "adv": (17.67, 58.4), "adv_bn_only": (43.33, 98.0), "adv_bn_only_log_conv1": (35.22, 98.1),
    "bn_stats_no_reset": (6.44, 99.9), "bn_stats_reset": (6.33, 99.6), "bn_only_params": (77.11, 85.3),
    "bn_params": (29.67, 70.5), "bn_params_log_conv1": (26.89, 68.2),
}


@pytest.mark.parametrize("config_id", CONFIGURATIONS)
def test_table2_values_are_the_papers(config_id):
    row = EXPECTED["table2"][config_id]
    assert (row["clean_error"]["value"], row["robust_error"]["value"]) == TABLE2[config_id], f"{config_id} drifted from Table 2"


def test_text_contradictions_are_recorded_beside_table():
    texts = {c: r["text_clean_error"]["value"] for c, r in EXPECTED["table2"].items() if "text_clean_error" in r}
    assert texts == {"bn_params": 30.78, "adv_bn_only": 43.44}, f"Section 3.3's differing values: {texts}"


def test_table1_bn_share():
    assert EXPECTED["table1"]["bn_parameter_percent"] == 0.15, "Table 1: BN is 0.15% of the parameters"


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


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda d: d.pop("claims"), "claims"),
        (lambda d: d["table2"].pop("adv"), "table2"),
        (lambda d: d["table2"]["adv"]["clean_error"].update(value="17.67"), "must be a number"),
        (lambda d: d["table2"]["adv"]["robust_error"].pop("reason"), "reason"),
        (lambda d: d["table2"]["adv"]["clean_error"].pop("allowance"), "allowance"),
        (lambda d: d["table2"]["adv"].update(seed_sd_kind="adversarial"), "seed_sd_kind"),
        (lambda d: d.pop("error_model"), "error_model"),
        (lambda d: d["error_model"]["z"].pop("reason"), "error_model.z.reason"),
        (lambda d: d["error_model"]["paper_evaluation_sets"]["clean_error"].update(n=0), "evaluation-set size"),
        (lambda d: d["error_model"]["seed_sd_priors"]["adversarial_from_scratch"]["robust_error"].update(value=-1),
         "seed_sd_priors.adversarial_from_scratch.robust_error.value"),
        (lambda d: d["claims"][0]["check"].update(left="adv.accuracy"), "unknown metric"),
        (lambda d: d["claims"][0]["check"].update(left="advv.clean_error"), "unknown configuration"),
        (lambda d: d["claims"][0]["check"].update(op="=="), "op"),
        (lambda d: d.update(schema_version=2), "schema_version"),
        (lambda d: d.update(table1=[1]), "table1: must be an object"),
        (lambda d: d.update(table2_budgets="paper"), "table2_budgets: must be a list"),
        (lambda d: d["table2"].update(adv=3), "table2.adv: must be an object"),
        (lambda d: d["claims"].__setitem__(0, "adv beats normal"), r"claims\[0\]: must be an object"),
        (lambda d: d["claims"][0].update(budgets="smoke"), "budgets"),
        (lambda d: d["claims"][0]["check"].update(left={"wasserstein1": ["adv.clean_error", "normal.clean_error"]}),
         "unknown series 'clean_error'"),
        (lambda d: d["claims"][0]["check"].update(left={"difference": ["adv.confidence_pgd", "normal.clean_error"]}),
         "unknown metric 'confidence_pgd'"),
        (lambda d: d["claims"][0]["check"].update(left={"fraction": ["adv.mean_m_per_layer", "=", "normal.mean_m_per_layer"]}),
         r"fraction\[1\]"),
        (lambda d: d["claims"][0]["check"].update(left={"fraction": ["adv.mean_m_per_layer", "normal.mean_m_per_layer"]}),
         "must list 3 items"),
        (lambda d: d["claims"][0]["check"].update(left={"distance": ["adv.confidence_pgd", "normal.confidence_pgd"]}),
         "one key of"),
        (lambda d: d["claims"][0]["check"].update(op="within", tolerance=1.0), "tolerance_reason"),
        (lambda d: d["claims"][0].update(tolerance_reason=" "), "tolerance_reason"),
        (lambda d: d["claims"][0]["check"].update(op="within", tolerance=-1.0), "tolerance: must lie"),
        (lambda d: d["claims"][1]["check"].update(op="within", value=1.0, tolerance=1.0), "drop right"),
    ],
)
def test_malformed_file_gives_clear_error(mutate, message):
    doc = copy.deepcopy(EXPECTED)
    mutate(doc)
    with pytest.raises(ExpectedResultsError, match=message):
        validate(doc)


def test_unreadable_file_names_path(tmp_path):
    path = tmp_path / "expected_results.json"
    path.write_text("{not json")
    with pytest.raises(ExpectedResultsError, match="expected_results.json"):
        load_expected(path)


@pytest.mark.parametrize("claim", CLAIMS, ids=[c["id"] for c in CLAIMS])
def test_every_claim_states_its_expectation_at_each_small_budget(claim):
    for budget in EXPECTED["scale_budgets"]["budgets"]:
        entry = claim["scale_expectations"][budget]
        assert entry["reason"].strip() and entry["holds"] == (budget in claim["budgets"]), (
            f"{claim['id']}: at {budget} it must be judged exactly when expected to hold, with a reason: {entry}")


@pytest.mark.parametrize("change, message", [
    (lambda c: c.pop("scale_expectations"), "expected to hold at this budget"),
    (lambda c: c["scale_expectations"]["cifar_cpu"].update(reason=" "), "one-sentence reason"),
    (lambda c: c["budgets"].remove("cifar_cpu"), "exactly when the claim is expected to hold"),
])
def test_malformed_scale_expectation_is_refused(change, message):
    doc = copy.deepcopy(EXPECTED)
    change(next(c for c in doc["claims"] if c["id"] == "normal_learns"))
    with pytest.raises(ExpectedResultsError, match=message):
        validate(doc)
