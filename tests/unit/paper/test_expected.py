"""expected_results.json: valid and faithful to the paper (its claims checked: tests/unit/verdicts/test_claims.py)."""

import copy
import json
from pathlib import Path

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


# A malformed document, one corruption per case: the error names the file given, the exact location
# (the dotted path a user follows into the file) and what to put there. Locations are built from the
# real document, so reordering its claims moves them with it.
PATH = Path("/checkouts/other/expected_results.json")  # not the default, so the caller's path must reach the message
INDEX = {claim["id"]: index for index, claim in enumerate(CLAIMS)}
PRIORS = sorted(EXPECTED["error_model"]["seed_sd_priors"])
QUANTITY_FORMS = "must be CONFIG_ID.METRIC or an object with one key of ['difference', 'wasserstein1', 'fraction']"
VALID_METRICS = "clean_error, robust_error, pgd_error, pgd_cross_entropy, mean_normalized_weight"
VALID_SERIES = "mean_m_per_layer, mean_abs_gamma_per_layer, confidence_clean, confidence_pgd, logits_clean, logits_pgd"
HOLDS = 'must say whether the claim is expected to hold at this budget: {"holds": true|false, "reason": "..."}'
TWO_FORMS = {"difference": ["adv.clean_error", "normal.clean_error"], "wasserstein1": ["adv.logits_pgd", "normal.logits_pgd"]}


def claim(claim_id, *keys):
    """Keys from the document's root to a claim's field, e.g. claim("normal_learns", "check", "op")."""
    return ("claims", INDEX[claim_id], *keys)


def at(claim_id):
    """How error messages name a claim's location."""
    return f"claims[{INDEX[claim_id]}]"


def put(keys, value):
    def corrupt(doc):
        *parents, last = keys
        node = doc
        for key in parents:
            node = node[key]
        node[last] = value
        return doc
    return corrupt


def drop(keys):
    def corrupt(doc):
        *parents, last = keys
        node = doc
        for key in parents:
            node = node[key]
        del node[last]
        return doc
    return corrupt


MALFORMED = [  # (corruption, where, what the message must say)
    # the top level
    (lambda doc: [doc], "top level", "must be an object"),
    (put(("schema_version",), 2), "schema_version", "must be 1, got 2"),
    (drop(("protocol",)), "protocol", "is missing"),
    (put(("table1",), [0.15]), "table1", "must be an object, got list"),
    (put(("claims",), {}), "claims", "must be a list, got dict"),
    (put(("table2_budgets",), ["paper", 1]), "table2_budgets", "must list budget names"),
    (put(("scale_budgets",), ["cifar_cpu"]), "scale_budgets", "must be an object with budgets, got list"),
    (put(("scale_budgets", "budgets"), "cifar_cpu"), "scale_budgets.budgets", "must list budget names"),
    (put(("scale_budgets", "budgets"), [3]), "scale_budgets.budgets", "must list budget names"),
    (put(("table1", "bn_parameter_percent"), "0.15"), "table1.bn_parameter_percent", "must be a number, got '0.15'"),
    (put(("table1", "bn_parameter_percent"), True), "table1.bn_parameter_percent", "must be a number, got True"),
    (put(("table1", "bn_parameter_percent"), -0.5), "table1.bn_parameter_percent", "must lie in [0, 100], got -0.5"),
    (put(("table1", "bn_parameter_percent"), 100.5), "table1.bn_parameter_percent", "must lie in [0, 100], got 100.5"),
    # error_model
    (drop(("error_model",)), "error_model", "must be an object (z, paper_evaluation_sets, seed_sd_priors, ...)"),
    (put(("error_model", "paper_evaluation_sets"), [900, 1000]), "error_model.paper_evaluation_sets",
     "must be an object with clean_error and robust_error"),
    (put(("error_model", "paper_evaluation_sets", "clean_error"), 900), "error_model.paper_evaluation_sets.clean_error",
     "must give the paper's evaluation-set size n (a positive integer)"),
    (put(("error_model", "paper_evaluation_sets", "robust_error", "n"), True),
     "error_model.paper_evaluation_sets.robust_error", "must give the paper's evaluation-set size n (a positive integer)"),
    (put(("error_model", "paper_evaluation_sets", "robust_error", "n"), 1000.0),
     "error_model.paper_evaluation_sets.robust_error", "must give the paper's evaluation-set size n (a positive integer)"),
    (put(("error_model", "paper_evaluation_sets", "clean_error", "n"), 0),
     "error_model.paper_evaluation_sets.clean_error", "must give the paper's evaluation-set size n (a positive integer)"),
    (drop(("error_model", "paper_evaluation_sets", "clean_error", "argument")),
     "error_model.paper_evaluation_sets.clean_error", "must say where n comes from (argument or source)"),
    (put(("error_model", "paper_evaluation_sets", "robust_error", "source"), " "),
     "error_model.paper_evaluation_sets.robust_error", "must say where n comes from (argument or source)"),
    (put(("error_model", "z"), 3.0), "error_model.z", "must be an object with value and reason"),
    (put(("error_model", "z", "value"), "3"), "error_model.z.value", "must be a number, got '3'"),
    (put(("error_model", "z", "value"), -1.0), "error_model.z.value", "must lie in [0, None], got -1.0"),
    (put(("error_model", "z", "reason"), " "), "error_model.z.reason", "every stated number needs its reason"),
    (drop(("error_model", "z", "reason")), "error_model.z.reason", "every stated number needs its reason"),
    (drop(("error_model", "family_wise_false_alarm_rate")), "error_model.family_wise_false_alarm_rate",
     "must be an object with value and reason"),
    (put(("error_model", "family_wise_false_alarm_rate", "value"), -0.01),
     "error_model.family_wise_false_alarm_rate.value", "must lie in [0, 1], got -0.01"),
    (put(("error_model", "family_wise_false_alarm_rate", "value"), 1.5),
     "error_model.family_wise_false_alarm_rate.value", "must lie in [0, 1], got 1.5"),
    (drop(("error_model", "min_seeds_for_measured_sd")), "error_model.min_seeds_for_measured_sd",
     "must be an object with value and reason"),
    (put(("error_model", "min_seeds_for_measured_sd", "value"), 1), "error_model.min_seeds_for_measured_sd.value",
     "must lie in [2, None], got 1"),
    (put(("error_model", "seed_sd_priors"), {}), "error_model.seed_sd_priors", "must be an object of row kinds"),
    (put(("error_model", "seed_sd_priors"), ["clean_from_scratch"]), "error_model.seed_sd_priors",
     "must be an object of row kinds"),
    (put(("error_model", "seed_sd_priors", "adversarial_from_scratch"), 0.5),
     "error_model.seed_sd_priors.adversarial_from_scratch", "must be an object with clean_error and robust_error"),
    (drop(("error_model", "seed_sd_priors", "adversarial_from_scratch", "clean_error")),
     "error_model.seed_sd_priors.adversarial_from_scratch.clean_error", "must be an object with value and reason"),
    (put(("error_model", "seed_sd_priors", "adversarial_from_scratch", "robust_error", "value"), -1),
     "error_model.seed_sd_priors.adversarial_from_scratch.robust_error.value", "must lie in [0, None], got -1"),
    # table2
    (drop(("table2", "adv")), "table2",
     f"must have exactly the registry's rows {list(CONFIGURATIONS)}, got {sorted(set(CONFIGURATIONS) - {'adv'})}"),
    (put(("table2", "adv_extra"), {}), "table2",
     f"must have exactly the registry's rows {list(CONFIGURATIONS)}, got {sorted([*CONFIGURATIONS, 'adv_extra'])}"),
    (put(("table2", "adv"), 3), "table2.adv", "must be an object"),
    (put(("table2", "adv", "label"), None), "table2.adv.label", "must be a string"),
    (drop(("table2", "adv", "source")), "table2.adv.source", "must be a string"),
    (put(("table2", "adv", "label"), "Adv"), "table2.adv.label", "'Adv' is not the registry's 'ADV'"),
    (put(("table2", "adv", "seed_sd_kind"), "adversarial"), "table2.adv.seed_sd_kind",
     f"must name one of error_model.seed_sd_priors {PRIORS}, got 'adversarial'"),
    (put(("table2", "adv", "seed_sd_kind"), ["adversarial_from_scratch"]), "table2.adv.seed_sd_kind",
     f"must name one of error_model.seed_sd_priors {PRIORS}, got ['adversarial_from_scratch']"),
    (put(("table2", "adv", "clean_error"), 17.67), "table2.adv.clean_error",
     "must be an object with value, allowance and reason"),
    (drop(("table2", "adv", "robust_error")), "table2.adv.robust_error",
     "must be an object with value, allowance and reason"),
    (put(("table2", "adv", "clean_error", "value"), "17.67"), "table2.adv.clean_error.value",
     "must be a number, got '17.67'"),
    (put(("table2", "adv", "clean_error", "value"), -0.5), "table2.adv.clean_error.value",
     "must lie in [0, 100], got -0.5"),
    (put(("table2", "adv", "robust_error", "value"), 100.5), "table2.adv.robust_error.value",
     "must lie in [0, 100], got 100.5"),
    (drop(("table2", "adv", "clean_error", "allowance")), "table2.adv.clean_error.allowance",
     "must be a number, got None"),
    (put(("table2", "adv", "clean_error", "allowance"), -0.5), "table2.adv.clean_error.allowance",
     "must lie in [0, 100], got -0.5"),
    (put(("table2", "adv", "robust_error", "allowance"), 100.5), "table2.adv.robust_error.allowance",
     "must lie in [0, 100], got 100.5"),
    (put(("table2", "adv", "robust_error", "reason"), " "), "table2.adv.robust_error.reason",
     "every allowance needs its reason"),
    (drop(("table2", "adv", "clean_error", "reason")), "table2.adv.clean_error.reason", "every allowance needs its reason"),
    # a claim's own fields
    (put(("claims", 0), "adv beats normal"), "claims[0]", "must be an object"),
    (put(claim("normal_learns", "id"), 5), f"{at('normal_learns')}.id", "must be a non-empty string"),
    (put(claim("normal_learns", "sentence"), ""), f"{at('normal_learns')}.sentence", "must be a non-empty string"),
    (drop(claim("normal_learns", "source")), f"{at('normal_learns')}.source", "must be a non-empty string"),
    (put(claim("adv_buys_pgd_robustness", "id"), "normal_learns"), f"{at('adv_buys_pgd_robustness')}.id",
     "duplicate claim id 'normal_learns'"),
    (put(claim("normal_learns", "budgets"), []), f"{at('normal_learns')}.budgets",
     "must list the budgets the claim is checked at"),
    (put(claim("normal_learns", "budgets"), ["paper", 5]), f"{at('normal_learns')}.budgets",
     "must list the budgets the claim is checked at"),
    (put(claim("normal_learns", "budgets"), "paper"), f"{at('normal_learns')}.budgets",
     "must list the budgets the claim is checked at"),
    (put(claim("normal_learns", "tolerance_reason"), " "), f"{at('normal_learns')}.tolerance_reason",
     "must say why the margin or tolerance is this wide"),
    (drop(claim("bn_params_normalized_weight_difference_value", "tolerance_reason")),
     f"{at('bn_params_normalized_weight_difference_value')}.tolerance_reason",
     "must say why the margin or tolerance is this wide"),
    # a claim's relation ("check") and its quantities
    (put(claim("normal_learns", "check"), "adv < normal"), f"{at('normal_learns')}.check", "must be an object"),
    (drop(claim("normal_learns", "check", "left")), f"{at('normal_learns')}.check.left", f"{QUANTITY_FORMS}, got None"),
    (put(claim("normal_learns", "check", "left"), 5), f"{at('normal_learns')}.check.left", f"{QUANTITY_FORMS}, got 5"),
    (put(claim("normal_learns", "check", "left"), TWO_FORMS), f"{at('normal_learns')}.check.left",
     f"{QUANTITY_FORMS}, got {TWO_FORMS!r}"),
    (put(claim("normal_learns", "check", "left"), {"distance": ["adv.logits_pgd", "normal.logits_pgd"]}),
     f"{at('normal_learns')}.check.left",
     f"{QUANTITY_FORMS}, got {{'distance': ['adv.logits_pgd', 'normal.logits_pgd']}}"),
    (put(claim("normal_learns", "check", "left"), "advv.clean_error"), f"{at('normal_learns')}.check.left",
     "unknown configuration 'advv'"),
    (put(claim("normal_learns", "check", "left"), "adv.accuracy"), f"{at('normal_learns')}.check.left",
     f"unknown metric 'accuracy'; valid: {VALID_METRICS}"),
    (put(claim("normal_learns", "check", "left"), "adv.clean.error"), f"{at('normal_learns')}.check.left",
     "must read CONFIG_ID.METRIC, got 'adv.clean.error'"),
    (put(claim("normal_learns", "check", "left"), "adv_clean_error"), f"{at('normal_learns')}.check.left",
     "must read CONFIG_ID.METRIC, got 'adv_clean_error'"),
    (put(claim("normal_learns", "check", "left"), {"difference": [5, "normal.clean_error"]}),
     f"{at('normal_learns')}.check.left.difference[0]", "must read CONFIG_ID.METRIC, got 5"),
    (put(claim("normal_learns", "check", "left"), {"difference": ["adv.clean_error"]}),
     f"{at('normal_learns')}.check.left.difference", "must list 2 items, got ['adv.clean_error']"),
    (put(claim("bn_params_follows_adv_confidence_pgd", "check", "left", "wasserstein1", 0), "adv"),
     f"{at('bn_params_follows_adv_confidence_pgd')}.check.left.wasserstein1[0]", "must read CONFIG_ID.SERIES, got 'adv'"),
    (put(claim("bn_params_follows_adv_confidence_pgd", "check", "right", "wasserstein1", 1), "adv.clean_error"),
     f"{at('bn_params_follows_adv_confidence_pgd')}.check.right.wasserstein1[1]",
     f"unknown series 'clean_error'; valid: {VALID_SERIES}"),
    (put(claim("bn_params_lower_mean_m_than_adv_in_most_layers", "check", "left", "fraction", 1), "="),
     f"{at('bn_params_lower_mean_m_than_adv_in_most_layers')}.check.left.fraction[1]",
     "must be one of ['<', '<=', '>', '>='], got '='"),
    (put(claim("bn_params_lower_mean_m_than_adv_in_most_layers", "check", "left", "fraction", 0), "bn_params.m"),
     f"{at('bn_params_lower_mean_m_than_adv_in_most_layers')}.check.left.fraction[0]",
     f"unknown series 'm'; valid: {VALID_SERIES}"),
    (put(claim("bn_params_lower_mean_m_than_adv_in_most_layers", "check", "left", "fraction", 2), "adv.m"),
     f"{at('bn_params_lower_mean_m_than_adv_in_most_layers')}.check.left.fraction[2]",
     f"unknown series 'm'; valid: {VALID_SERIES}"),
    (put(claim("normal_learns", "check", "op"), "=="), f"{at('normal_learns')}.check.op",
     "must be one of ['<', '<=', '>', '>=', '|diff|<=', 'within'], got '=='"),
    (put(claim("normal_learns", "check", "op"), ["<"]), f"{at('normal_learns')}.check.op",
     "must be one of ['<', '<=', '>', '>=', '|diff|<=', 'within'], got ['<']"),
    (put(claim("bn_params_lower_mean_m_than_adv_in_most_layers", "check", "left", "fraction", 1), ["<"]),
     f"{at('bn_params_lower_mean_m_than_adv_in_most_layers')}.check.left.fraction[1]",
     "must be one of ['<', '<=', '>', '>='], got ['<']"),
    (drop(claim("normal_learns", "check", "op")), f"{at('normal_learns')}.check.op",
     "must be one of ['<', '<=', '>', '>=', '|diff|<=', 'within'], got None"),
    (put(claim("normal_learns", "check", "value"), "50"), f"{at('normal_learns')}.check.value",
     "must be a number, got '50'"),
    (put(claim("adv_buys_pgd_robustness", "check", "right"), "normal.accuracy"),
     f"{at('adv_buys_pgd_robustness')}.check.right", f"unknown metric 'accuracy'; valid: {VALID_METRICS}"),
    (put(claim("adv_buys_pgd_robustness", "check", "plus"), "-5"), f"{at('adv_buys_pgd_robustness')}.check.plus",
     "must be a number, got '-5'"),
    (put(claim("bn_stats_adversarial_loss_not_halved", "check", "times"), "half"),
     f"{at('bn_stats_adversarial_loss_not_halved')}.check.times", "must be a number, got 'half'"),
    (drop(claim("log_conv1_changes_little", "check", "right")), f"{at('log_conv1_changes_little')}.check.right",
     f"{QUANTITY_FORMS}, got None"),
    (put(claim("log_conv1_changes_little", "check", "value"), -1.0), f"{at('log_conv1_changes_little')}.check.value",
     "must lie in [0, None], got -1.0"),
    (drop(claim("log_conv1_changes_little", "check", "value")), f"{at('log_conv1_changes_little')}.check.value",
     "must be a number, got None"),
    (put(claim("bn_params_normalized_weight_difference_value", "check", "right"), "normal.mean_normalized_weight"),
     f"{at('bn_params_normalized_weight_difference_value')}.check.right",
     "op 'within' compares LEFT with a value: drop right"),
    (put(claim("bn_params_normalized_weight_difference_value", "check", "value"), "x"),
     f"{at('bn_params_normalized_weight_difference_value')}.check.value", "must be a number, got 'x'"),
    (put(claim("bn_params_normalized_weight_difference_value", "check", "tolerance"), -0.1),
     f"{at('bn_params_normalized_weight_difference_value')}.check.tolerance", "must lie in [0, None], got -0.1"),
    (drop(claim("bn_params_normalized_weight_difference_value", "check", "tolerance")),
     f"{at('bn_params_normalized_weight_difference_value')}.check.tolerance", "must be a number, got None"),
    # a claim's expectations at the small budgets (issue 12)
    (put(claim("normal_learns", "scale_expectations"), ["cifar_cpu"]), f"{at('normal_learns')}.scale_expectations",
     "must be an object keyed by budget"),
    (drop(claim("normal_learns", "scale_expectations", "cifar_cpu")),
     f"{at('normal_learns')}.scale_expectations.cifar_cpu", HOLDS),
    (put(claim("normal_learns", "scale_expectations", "cifar_cpu"), True),
     f"{at('normal_learns')}.scale_expectations.cifar_cpu", HOLDS),
    (put(claim("normal_learns", "scale_expectations", "cifar_cpu", "holds"), "yes"),
     f"{at('normal_learns')}.scale_expectations.cifar_cpu", HOLDS),
    (put(claim("normal_learns", "scale_expectations", "cifar_cpu", "reason"), " "),
     f"{at('normal_learns')}.scale_expectations.cifar_cpu.reason", "every expectation needs its one-sentence reason"),
    (drop(claim("normal_learns", "scale_expectations", "cifar_cpu", "reason")),
     f"{at('normal_learns')}.scale_expectations.cifar_cpu.reason", "every expectation needs its one-sentence reason"),
    (put(claim("normal_learns", "budgets"), ["smoke", "paper"]), f"{at('normal_learns')}.budgets",
     "must include cifar_cpu exactly when the claim is expected to hold there (scale_expectations says holds=True)"),
    (put(claim("bn_stats_adversarial_loss_not_halved", "budgets"), ["cifar_cpu", "paper"]),
     f"{at('bn_stats_adversarial_loss_not_halved')}.budgets",
     "must include cifar_cpu exactly when the claim is expected to hold there (scale_expectations says holds=False)"),
]


@pytest.mark.parametrize("corrupt, where, what", MALFORMED, ids=[f"{where}: {what}"[:80] for _, where, what in MALFORMED])
def test_malformed_document_is_refused_naming_where_and_what_to_fix(corrupt, where, what):
    doc = corrupt(copy.deepcopy(EXPECTED))
    with pytest.raises(ExpectedResultsError) as error:
        validate(doc, PATH)
    assert str(error.value) == f"{PATH}: {where}: {what}", (
        "a malformed expected_results.json must be refused with the file, the exact location and what to put there")


ACCEPTED = [  # (change, why it must pass)
    (lambda doc: doc, "the real document"),
    (drop(("scale_budgets",)), "scale_budgets is optional"),
    (drop(("scale_budgets", "budgets")), "scale_budgets.budgets is optional"),
    (put(("table1", "bn_parameter_percent"), 0), "a percentage's bounds are inclusive (0)"),
    (put(("table1", "bn_parameter_percent"), 100), "a percentage's bounds are inclusive (100)"),
    (put(("table2", "adv", "clean_error", "value"), 0), "an error rate's bounds are inclusive (0)"),
    (put(("table2", "adv", "robust_error", "value"), 100), "an error rate's bounds are inclusive (100)"),
    (put(("table2", "adv", "clean_error", "allowance"), 0), "an allowance's bounds are inclusive (0)"),
    (put(("table2", "adv", "robust_error", "allowance"), 100), "an allowance's bounds are inclusive (100)"),
    (put(("error_model", "paper_evaluation_sets", "clean_error", "n"), 1), "one image is a positive set size"),
    (put(("error_model", "z", "value"), 0), "z's lower bound is inclusive"),
    (put(("error_model", "family_wise_false_alarm_rate", "value"), 0), "a rate's bounds are inclusive (0)"),
    (put(("error_model", "family_wise_false_alarm_rate", "value"), 1), "a rate's bounds are inclusive (1)"),
    (put(("error_model", "min_seeds_for_measured_sd", "value"), 2), "two seeds give a sample SD"),
    (put(("error_model", "seed_sd_priors", "adversarial_from_scratch", "clean_error", "value"), 0),
     "a prior SD's lower bound is inclusive"),
    (put(claim("log_conv1_changes_little", "check", "value"), 0), "|diff|<= 0 demands equality"),
    (put(claim("bn_params_normalized_weight_difference_value", "check", "tolerance"), 0), "a zero tolerance"),
    (drop(claim("bn_params_lowers_normalized_weight", "tolerance_reason")),
     "tolerance_reason is optional for an op other than within"),
    (drop(claim("adv_buys_pgd_robustness", "check", "plus")), "plus is optional (0)"),
]


@pytest.mark.parametrize("change, why", ACCEPTED, ids=[why for _, why in ACCEPTED])
def test_well_formed_edge_cases_are_accepted(change, why):
    doc = change(copy.deepcopy(EXPECTED))
    assert validate(doc, PATH) is doc, f"{why}: validate must accept the document and return it"


def test_load_expected_returns_the_files_document(tmp_path):
    path = tmp_path / "expected_results.json"
    path.write_text(json.dumps(EXPECTED))
    assert load_expected(path) == EXPECTED, "load_expected must return the document it read, validated"


def test_load_expected_names_the_file_read_in_a_validation_error(tmp_path):
    path = tmp_path / "expected_results.json"
    path.write_text(json.dumps({**EXPECTED, "schema_version": 2}))
    with pytest.raises(ExpectedResultsError) as error:
        load_expected(path)
    assert str(error.value) == f"{path}: schema_version: must be 1, got 2", (
        "a malformed file's error must name the file that was read, not the default one")
