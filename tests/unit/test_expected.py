"""expected_results.json: valid, faithful to the paper, tolerances that can tell rows apart."""

import copy
import json

import pytest

from repro.configs import CONFIGURATIONS
from repro.expected import ExpectedResultsError, check_claim, load_expected, validate, within_tolerance

EXPECTED = load_expected()

TABLE2 = {  # Table 2 of the paper, (clean error, robust error) in %
    "normal": (4.11, 99.8), "normal_bn_only": (46.11, 99.7), "normal_bn_only_log_conv1": (35.89, 99.6),
    "adv": (17.67, 58.4), "adv_bn_only": (43.33, 98.0), "adv_bn_only_log_conv1": (35.22, 98.1),
    "bn_stats_no_reset": (6.44, 99.9), "bn_stats_reset": (6.33, 99.6), "bn_only_params": (77.11, 85.3),
    "bn_params": (29.67, 70.5), "bn_params_log_conv1": (26.89, 68.2),
}


def paper_results():
    """The paper's own numbers as result records (Figure 2's difference for the BN claim)."""
    records = {c: {"metrics": {"clean_error": v[0], "autoattack_error": v[1]}} for c, v in TABLE2.items()}
    records["normal"]["metrics"]["mean_normalized_weight"] = 0.0
    records["bn_params"]["metrics"]["mean_normalized_weight"] = -0.177  # Figure 2's average difference
    return records


@pytest.mark.parametrize("config_id", CONFIGURATIONS)
def test_table2_values_are_the_papers(config_id):
    row = EXPECTED["table2"][config_id]
    assert (row["clean_error"]["value"], row["robust_error"]["value"]) == TABLE2[config_id], f"{config_id} drifted from Table 2"


def test_text_contradictions_are_recorded_beside_table():
    texts = {c: r["text_clean_error"]["value"] for c, r in EXPECTED["table2"].items() if "text_clean_error" in r}
    assert texts == {"bn_params": 30.78, "adv_bn_only": 43.44}, f"Section 3.3's differing values: {texts}"


def test_table1_bn_share():
    assert EXPECTED["table1"]["bn_parameter_percent"] == 0.15, "Table 1: BN is 0.15% of the parameters"


# A tolerance band must not accept the value of the row a claim contrasts it with.
CONTRASTS = [
    ("adv", "robust_error", "normal"), ("adv", "robust_error", "bn_params"), ("adv", "clean_error", "normal"),
    ("bn_params", "robust_error", "adv"), ("bn_params", "robust_error", "bn_only_params"),
    ("bn_params", "robust_error", "normal"), ("bn_params", "clean_error", "adv"),
    ("bn_only_params", "robust_error", "normal"), ("bn_only_params", "clean_error", "bn_params"),
    ("bn_stats_no_reset", "clean_error", "normal"), ("bn_stats_reset", "clean_error", "normal"),
    ("normal", "robust_error", "bn_only_params"), ("adv_bn_only", "robust_error", "bn_params"),
    ("adv_bn_only", "clean_error", "bn_params"),
]


@pytest.mark.parametrize("config_id, metric, contrast", CONTRASTS)
def test_tolerance_excludes_contrasted_row(config_id, metric, contrast):
    entry = EXPECTED["table2"][config_id][metric]
    other = EXPECTED["table2"][contrast][metric]["value"]
    assert not within_tolerance(entry, other), f"{config_id} {metric} band ±{entry['tolerance']} accepts {contrast}'s {other}"


@pytest.mark.parametrize("claim", EXPECTED["claims"], ids=[c["id"] for c in EXPECTED["claims"]])
def test_paper_numbers_satisfy_paper_claims(claim):
    if "paper" not in claim["budgets"] or "pgd" in json.dumps(claim["check"]):
        pytest.skip("the paper reports no PGD numbers for this claim")
    outcome = check_claim(claim, paper_results())
    assert outcome.passed, f"the paper's own Table 2 contradicts claim {claim['id']}: {outcome.relation}"


def test_claim_fails_when_relation_is_violated():
    claim = next(c for c in EXPECTED["claims"] if c["id"] == "adv_far_more_robust")
    broken = paper_results()
    broken["adv"]["metrics"]["autoattack_error"] = 99.0  # an ADV model that gained nothing
    assert not check_claim(claim, broken).passed, "a claim that cannot fail is no check"


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda d: d.pop("claims"), "claims"),
        (lambda d: d["table2"].pop("adv"), "table2"),
        (lambda d: d["table2"]["adv"]["clean_error"].update(value="17.67"), "must be a number"),
        (lambda d: d["table2"]["adv"]["robust_error"].pop("reason"), "reason"),
        (lambda d: d["claims"][0]["check"].update(left="adv.accuracy"), "unknown metric"),
        (lambda d: d["claims"][0]["check"].update(left="advv.clean_error"), "unknown configuration"),
        (lambda d: d["claims"][0]["check"].update(op="=="), "op"),
        (lambda d: d.update(schema_version=2), "schema_version"),
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
