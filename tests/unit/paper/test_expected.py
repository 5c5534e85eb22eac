"""expected_results.json: valid and faithful to the paper (its claims checked: tests/unit/verdicts/test_claims.py)."""

import copy

import pytest

from repro.paper.configs import CONFIGURATIONS
from repro.paper.expected import ExpectedResultsError, load_expected, validate

EXPECTED = load_expected()
CLAIMS = EXPECTED["claims"]

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
