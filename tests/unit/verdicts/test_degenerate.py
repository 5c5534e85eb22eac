"""Degenerate models are never evidence: the rule, and every place that reads a collapsed row."""

import copy

import pytest

from repro.paper.budgets import SMOKE
from repro.verdicts.claims import judge_claims
from repro.verdicts.degenerate import CLASSIFIES, DEGENERATE, UNCHECKED, degeneracy, degenerate_rows
from repro.verdicts.ladder import ladder_claims
from repro.verdicts.table2 import table2_rows
from tests.unit.paper.test_expected import EXPECTED
from tests.unit.verdicts.test_gate import canned, report


def counted(top_share: float, n: int = 10_000, clean_error: float = 50.0, top: int = 3) -> dict:
    """A record whose clean-test predictions give class `top` the share `top_share`, the rest spread evenly."""
    first = round(top_share * n)
    rest = [(n - first) // 9 + (1 if i < (n - first) % 9 else 0) for i in range(9)]
    counts = rest[:top] + [first] + rest[top:]
    return {"metrics": {"clean_error": clean_error, "n_clean": n, "predicted_classes": {"clean_test": counts}}}


@pytest.mark.parametrize("share, status", [(0.5, DEGENERATE), (0.49, CLASSIFIES)])
def test_one_class_taking_half_the_predictions_is_degenerate(share, status):
    found = degeneracy(counted(share))
    assert found.status == status, f"class 3 answered for {share:.0%} of the images: {found.status} ({found.reason})"


@pytest.mark.parametrize("clean_error, status", [(89.2, DEGENERATE), (88.9, CLASSIFIES)])
def test_a_clean_error_within_three_binomial_ses_of_chance_is_degenerate(clean_error, status):
    # At chance (90 %) on 10,000 images the SE is 0.3 points: 3 SEs reach down to 89.1 %.
    found = degeneracy(counted(0.1, clean_error=clean_error))
    assert found.status == status, f"clean error {clean_error} % with evenly spread answers: {found.status}"


@pytest.mark.parametrize("clean_error, n, status", [
    (89.1, 10_000, DEGENERATE),  # exactly 3 SEs below chance still counts as chance
    (89.102, 10_000, DEGENERATE), (89.098, 10_000, CLASSIFIES),  # the SE is 0.3 points: sqrt(0.9 * 0.1 / n)
    (85.6, 400, DEGENERATE), (85.4, 400, CLASSIFIES),  # and grows as 1 / sqrt(n): 1.5 points on 400 images
])
def test_the_chance_band_is_three_binomial_ses_at_ninety_percent(clean_error, n, status):
    found = degeneracy(counted(0.1, n=n, clean_error=clean_error))
    assert found.status == status, f"clean error {clean_error} % on {n} images: {found.status} ({found.reason})"


def test_the_reasons_name_the_share_the_class_and_the_source():
    collapsed_ = degeneracy(counted(0.8, top=2))
    assert (collapsed_.top_class, collapsed_.share) == (2, 0.8) and collapsed_.reason == (
        "class 2 takes 80.0 % of predictions on the clean test set"), collapsed_
    fine = degeneracy(counted(0.2, top=5))
    assert (fine.status, fine.top_class, fine.share) == (CLASSIFIES, 5, 0.2) and fine.reason == (
        "largest class share 20.0 % on the clean test set, clean error not at chance") and \
        fine.source == "the clean test set", fine
    at_chance = degeneracy(counted(0.2, top=5, clean_error=90.0))
    assert (at_chance.status, at_chance.top_class, at_chance.share, at_chance.source) == (
        DEGENERATE, 5, 0.2, "the clean test set"), f"a model at chance keeps its counts on record: {at_chance}"


def test_an_older_record_without_counts_says_what_is_missing():
    found = degeneracy({"metrics": {"clean_error": 40.0, "n_clean": 10_000}})
    assert found.reason == "clean error 40.00 % is not at chance, and no predicted-class counts were recorded" and \
        found.source == "no predicted-class counts recorded", found
    bare = degeneracy({})  # a record with no metrics block at all
    assert bare.status == UNCHECKED and bare.reason == "no clean error or class counts recorded", bare


def test_over_one_seed_the_reason_names_no_seed_and_over_several_it_does():
    record = counted(0.9, top=1)
    one = degenerate_rows({0: {"bn_only_params": record}}, [0])["bn_only_params"]
    two = degenerate_rows({1: {"bn_only_params": record}}, [0, 1])["bn_only_params"]  # seed 0 not run at all
    assert not one.reason.startswith("seed") and two.reason.startswith("seed 1: class 1 takes 90.0 %"), (one, two)
    assert (two.status, two.top_class, two.share, two.source) == (one.status, 1, 0.9, one.source), two


def test_the_label_names_the_class_and_its_share():
    assert degeneracy(counted(0.987, top=6)).label == "degenerate (predicts class 6 for 98.7 % of images)"


def test_an_older_record_at_chance_on_a_balanced_set_is_degenerate_without_counts():
    found = degeneracy({"metrics": {"clean_error": 90.0, "n_clean": 10_000}})
    assert found.status == DEGENERATE and "chance" in found.reason, found


def test_an_older_records_share_is_inferred_from_its_clean_logits():
    logits = [10.0 if k == 4 else 0.0 for _ in range(80) for k in range(10)] + [0.0] * 10 * 20  # 80 of 100: class 4
    found = degeneracy({"metrics": {"clean_error": 70.0, "n_clean": 10_000}, "series": {"logits_clean": logits}})
    assert (found.status, found.top_class, found.share) == (DEGENERATE, 4, 0.8) and "inferred" in found.source, found


def test_an_older_record_without_counts_or_logits_cannot_be_checked():
    found = degeneracy({"metrics": {"clean_error": 40.0, "n_clean": 10_000}})
    assert found.status == UNCHECKED, f"40 % clean error and nothing to count: {found.status}"


def collapsed(results, row="bn_only_params", top=6):
    out = copy.deepcopy(results)
    out[row]["metrics"]["predicted_classes"] = {"clean_test": [0] * top + [10_000] + [0] * (9 - top)}
    return out


def test_a_claim_reading_a_degenerate_row_is_not_judged():
    results = collapsed(canned(SMOKE))
    verdicts = {v.id: v for v in judge_claims(EXPECTED, results, "cifar_cpu", degenerate=degenerate_rows({0: results}, [0]))}
    slight = verdicts["bn_only_params_slight_robustness"]
    assert (slight.verdict, slight.reason) == ("not judged", "bn_only_params is degenerate (predicts class 6 for "
                                                             "100.0 % of images)"), slight


def test_a_claim_that_judges_collapse_fails_on_a_degenerate_normal():
    results = collapsed(canned(SMOKE), row="normal")
    results["normal"]["metrics"]["clean_error"] = 90.0
    verdicts = {v.id: v.verdict for v in judge_claims(EXPECTED, results, "smoke",
                                                      degenerate=degenerate_rows({0: results}, [0]))}
    assert (verdicts["normal_learns"], verdicts["adv_buys_pgd_robustness"]) == ("FAIL", "not judged"), (
        f"normal_learns exists to catch a collapsed NORMAL; the claims that merely read it are not judged: {verdicts}")


def test_table2_shows_a_degenerate_row_as_such():
    results = collapsed(canned(SMOKE))
    rows = table2_rows(EXPECTED, {0: results}, "paper", degenerate=degenerate_rows({0: results}, [0]))
    shown = {r.verdict for r in rows if r.config_id == "bn_only_params"}
    assert shown == {"degenerate (predicts class 6 for 100.0 % of images)"}, shown


def test_a_row_degenerate_in_one_seed_is_degenerate_over_seeds():
    first, second = canned(SMOKE), collapsed(canned(SMOKE))
    found = degenerate_rows({0: first, 1: second}, [0, 1])
    assert list(found) == ["bn_only_params"] and found["bn_only_params"].reason.startswith("seed 1:"), found


def test_the_report_counts_claims_of_degenerate_rows_apart(tmp_path, capsys):
    code, out, _ = report(tmp_path, capsys, SMOKE, collapsed(canned(SMOKE), row="bn_params"))
    summary = next(line for line in out.out.splitlines() if line.startswith("claims:"))
    assert "1 not judged (1 reading a degenerate row)" in summary and code == 0, (
        f"bn_params_lowers_normalized_weight reads the collapsed BN PARAMS: counted apart, the others hold: {summary}")


def test_the_ladder_judges_no_point_where_a_row_collapsed():
    results = canned(SMOKE)
    base = results["bn_only_params"]["metrics"]
    results["bn_only_params"]["ladder"] = [
        {"epoch": 1, "metrics": {**base, "clean_error": 90.0}},  # at chance on 10,000 images: collapsed
        {"epoch": 2, "metrics": base}]
    for record in results.values():
        record["budget"]["name"] = "cifar_cpu"
    cells = dict((c["id"], o) for c, o in ladder_claims(EXPECTED, results))["bn_only_params_slight_robustness"]
    assert cells[1].startswith("not judged (bn_only_params degenerate") and cells[2] in ("holds", "does not hold"), cells


def test_a_ladder_point_is_not_judged_degenerate_on_the_ends_logits():
    results = canned(SMOKE)
    base = results["bn_only_params"]["metrics"]
    one_class = [10.0 if k == 2 else 0.0 for _ in range(100) for k in range(10)]  # the end answers class 2 only
    results["bn_only_params"]["series"] = {"logits_clean": one_class}
    results["bn_only_params"]["ladder"] = [{"epoch": 1, "metrics": dict(base)}, {"epoch": 2, "metrics": dict(base)}]
    for record in results.values():
        record["budget"]["name"] = "cifar_cpu"
    cells = dict((c["id"], o) for c, o in ladder_claims(EXPECTED, results))["bn_only_params_slight_robustness"]
    assert not cells[1].startswith("not judged"), (
        f"epoch 1's weights are not the end's: the end's one-class logits say nothing of them: {cells}")


def test_a_degenerate_rows_label_says_what_its_features_measured():
    record = counted(1.0, top=2)
    record["metrics"]["features"] = {"sd_over_images": 0.00004, "zero_share": 0.98, "n_images": 1000}
    assert degeneracy(record).label == ("degenerate (predicts class 2 for 100.0 % of images; features over the first "
                                        "1000 test images: SD 0.0000, 98 % of channels zero for every image)"), (
        "a collapsed row's label names how far its features still depend on the image")


def test_a_classifying_rows_features_are_not_called_a_collapse():
    record = counted(0.2)
    record["metrics"]["features"] = {"sd_over_images": 0.5, "zero_share": 0.0, "n_images": 1000}
    assert degeneracy(record).features == "", "only a degenerate row carries the features in its label"
