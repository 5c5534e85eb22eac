"""The error model behind Table 2's tolerances: the paper's evaluation-set sizes, the arithmetic, z."""

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from repro.paper.configs import CONFIGURATIONS, FROM_NORMAL
from repro.verdicts.error_model import (
    CONSISTENT,
    INCONSISTENT,
    NOT_JUDGED,
    Judgement,
    MetricError,
    SeedSpread,
    Separation,
    binomial_noise_threshold,
    binomial_se,
    family_wise_false_alarm,
    measured_separation,
    metric_error,
    paper_separation,
    seed_spread,
    separated_pairs,
    within_binomial_noise,
)
from tests.unit.paper.test_expected import EXPECTED

MODEL = EXPECTED["error_model"]
TABLE2 = EXPECTED["table2"]


# --- the paper's evaluation-set sizes, recomputed from the numbers in the file --------------------

def clean_errors_printed():
    """Every clean error the paper prints: Table 2's and the text's (text_clean_error)."""
    return [row[key]["value"] for row in TABLE2.values() for key in ("clean_error", "text_clean_error") if key in row]


def on_grid(value, n, decimals):
    """Whether `value` (printed to `decimals`) is the rounding of some count k out of n, in %."""
    k = round(value * n / 100)
    return any(abs(100 * c / n - value) <= 0.5 * 10 ** -decimals + 1e-9 for c in (k - 1, k, k + 1))


def test_thirteen_clean_errors_are_printed():
    assert len(clean_errors_printed()) == 13, "the argument counts eleven Table 2 and two text clean errors"


def test_clean_evaluation_set_is_the_smallest_grid_all_clean_errors_lie_on():
    values = clean_errors_printed()
    smallest = next(n for n in range(1, 10_001) if all(on_grid(v, n, 2) for v in values))
    stated = MODEL["paper_evaluation_sets"]["clean_error"]
    assert smallest == stated["n"] == 900, f"smallest n fitting all clean errors is {smallest}, the file says {stated['n']}"


def test_no_clean_error_fits_1000_images():
    fits = [v for v in clean_errors_printed() if on_grid(v, 1000, 2)]
    assert fits == [], f"out of 1000 images every error is a multiple of 0.1%; these fit: {fits}"


def test_thirteen_of_thirteen_on_the_ninth_grid_is_no_coincidence():
    two_decimal = [k / 100 for k in range(10_001)]
    share = sum(on_grid(v, 900, 2) for v in two_decimal) / len(two_decimal)
    chance = share ** len(clean_errors_printed())
    assert abs(share - 0.09) < 0.001 and chance < 1e-13, f"share on the 1/9% grid {share:.4f}, chance {chance:.1e}"


def test_robust_errors_fit_the_stated_1000_images():
    values = [row["robust_error"]["value"] for row in TABLE2.values()]
    assert MODEL["paper_evaluation_sets"]["robust_error"]["n"] == 1000, "Section 3.2: the first 1000 test examples"
    assert all(on_grid(v, 1000, 1) for v in values), f"robust errors off the 0.1% grid: {values}"


# --- z and the family-wise false-alarm rate ---------------------------------------------------------

def test_stated_false_alarm_rate_is_what_z_gives_over_the_judged_metrics():
    stated = MODEL["family_wise_false_alarm_rate"]
    judged = 2 * len(TABLE2)  # clean and robust error of every row
    one_sided = 0.5 * math.erfc(MODEL["z"]["value"] / math.sqrt(2))
    assert stated["judged_metrics"] == judged, f"{judged} metrics are judged, the file says {stated['judged_metrics']}"
    assert abs(stated["value"] - judged * 2 * one_sided) < 5e-4, f"z gives {judged * 2 * one_sided:.4f}, file says {stated['value']}"
    assert abs(family_wise_false_alarm(MODEL["z"]["value"], judged) - stated["value"]) < 5e-4, "report's figure differs"


@pytest.mark.parametrize("z, n_metrics", [(0.0, 26), (0.5, 26), (1.0, 4)])
def test_false_alarm_bound_is_a_probability(z, n_metrics):
    # The Bonferroni sum exceeds 1 at small z; the report prints it as "at most x% chance".
    assert family_wise_false_alarm(z, n_metrics) == 1.0, f"z = {z} over {n_metrics} metrics: a probability is at most 1"


# --- the arithmetic -----------------------------------------------------------------------------------

@pytest.mark.parametrize("percent, n, se", [(4.11, 900, 0.66), (17.67, 900, 1.27), (46.11, 900, 1.66), (58.4, 1000, 1.56)])
def test_binomial_se_matches_the_issue_figures(percent, n, se):
    assert round(binomial_se(percent, n), 2) == se, f"SE of {percent}% on {n} images"


def test_binomial_se_refuses_no_images():
    with pytest.raises(ValueError, match="at least one image"):
        binomial_se(50.0, 0)


@pytest.mark.parametrize("percent, n, se", [(0.0, 1, 0.0), (100.0, 1, 0.0), (50.0, 1, 50.0)])
def test_binomial_se_takes_the_closed_range_and_a_single_image(percent, n, se):
    # A row can be 0 % or 100 % wrong (NORMAL's robust error is near 100 %), and one image is a sample.
    assert binomial_se(percent, n) == se, f"SE of {percent}% on {n} image(s) must be {se}, not refused"


@pytest.mark.parametrize("percent", [-0.1, 100.5])
def test_binomial_se_refuses_a_rate_outside_0_to_100_saying_so(percent):
    with pytest.raises(ValueError, match=rf"an error rate lies in \[0, 100\] %, got {percent}"):
        binomial_se(percent, 1000)


def test_tolerance_is_the_stated_formula():
    error = MetricError(17.67, 900, 10_000, SeedSpread(0.5, False, 1), allowance=1.5, z=3.0)
    by_hand = 3.0 * math.sqrt(1.2716 ** 2 + 0.3814 ** 2 + 2 * 0.5 ** 2) + 1.5  # ADV clean, one seed, prior SD
    assert abs(error.tolerance - by_hand) < 0.01, f"tolerance {error.tolerance:.3f}, by hand {by_hand:.3f}"


percents = st.floats(1.0, 99.0)
sizes = st.integers(10, 20_000)
more_images = st.integers(1, 20_000)
spreads = st.floats(0.0, 5.0)
more_spread = st.floats(0.01, 5.0)


def error(percent=40.0, paper_n=900, ours_n=1000, sd=0.5, k=1, allowance=1.0, z=3.0):
    return MetricError(percent, paper_n, ours_n, SeedSpread(sd, k >= 3, k), allowance, z)


# Strict: a term the tolerance ignored (ours_n never read, the seed term dropped) fails these.
@given(percents, sizes, more_images)
def test_tolerance_narrows_with_more_images_of_ours(percent, n, more):
    assert error(percent, ours_n=n + more).tolerance < error(percent, ours_n=n).tolerance, "more of our images did not narrow it"


@given(percents, sizes, more_images)
def test_tolerance_narrows_with_more_images_of_the_papers(percent, n, more):
    assert error(percent, paper_n=n + more).tolerance < error(percent, paper_n=n).tolerance, "more paper images did not narrow it"


@given(percents, spreads, more_spread)
def test_tolerance_grows_with_seed_spread(percent, sd, more):
    assert error(percent, sd=sd + more).tolerance > error(percent, sd=sd).tolerance, "a larger seed spread did not widen it"


@given(more_spread, st.integers(1, 20))
def test_averaging_more_seeds_narrows_the_tolerance(sd, k):
    assert error(sd=sd, k=k + 1).tolerance < error(sd=sd, k=k).tolerance, "averaging another seed did not narrow it"


@given(percents, st.floats(0.5, 5.0), st.floats(0.1, 4.0))
def test_statistical_part_scales_with_z(percent, z, factor):
    base, scaled = error(percent, z=z), error(percent, z=z * factor)
    assert math.isclose(scaled.tolerance - scaled.allowance, factor * (base.tolerance - base.allowance), rel_tol=1e-9), (
        "z * sigma must scale linearly with z")


@given(st.floats(30.0, 70.0), st.floats(0.0, 25.0))  # deltas on both sides of the tolerance (~8 points here)
def test_verdict_and_z_score_are_symmetric(paper, delta):
    e = error(paper)
    above, below = Judgement(paper, paper + delta, e, True), Judgement(paper, paper - delta, e, True)
    assert above.verdict == below.verdict, f"±{delta} from {paper} judged differently"
    assert math.isclose(above.z_score, -below.z_score, abs_tol=1e-12), "z-scores of ±delta must be opposite"


@given(percents)
def test_binomial_se_is_symmetric_in_error_and_accuracy(percent):
    assert math.isclose(binomial_se(percent, 1000), binomial_se(100 - percent, 1000)), "SE(p) must equal SE(100 - p)"


@given(st.floats(5.0, 95.0), st.floats(0.001, 1.0))
def test_verdict_switches_at_the_tolerance(paper, beyond):
    e = error(paper)
    inside, outside = Judgement(paper, paper + e.tolerance - beyond, e, True), Judgement(paper, paper + e.tolerance + beyond, e, True)
    assert (inside.verdict, outside.verdict) == (CONSISTENT, INCONSISTENT), f"{inside.verdict}, {outside.verdict}"


def test_unjudged_budget_is_not_judged_however_far():
    assert Judgement(4.11, 90.0, error(4.11), judged=False).verdict == NOT_JUDGED, "outside table2_budgets nothing is judged"


def test_seed_spread_is_measured_from_three_seeds():
    spread = seed_spread([10.0, 12.0, 14.0], prior=0.3, min_seeds=3)
    assert (spread.sd, spread.measured, spread.n_seeds) == (2.0, True, 3), f"sample SD of 10, 12, 14 is 2: {spread}"


def test_seed_spread_of_no_seed_is_refused_saying_so():
    with pytest.raises(ValueError, match="^seed_spread needs the value of at least one seed$"):
        seed_spread([], prior=0.3, min_seeds=3)


def test_seed_spread_below_three_seeds_is_the_prior():
    spread = seed_spread([10.0, 14.0], prior=0.3, min_seeds=3)
    assert (spread.sd, spread.measured, spread.n_seeds) == (0.3, False, 2), f"two seeds use the prior: {spread}"


def test_metric_error_reads_the_rows_prior_allowance_and_sizes():
    e = metric_error(MODEL, TABLE2["adv"], "robust_error", n_ours=1000, seed_values=[58.0])
    prior = MODEL["seed_sd_priors"]["adversarial_from_scratch"]["robust_error"]["value"]
    assert (e.paper_n, e.ours_n, e.spread.sd, e.allowance, e.z) == (1000, 1000, prior, TABLE2["adv"]["robust_error"]["allowance"], 3.0), e


# --- the rows' kinds and what the bands can still tell apart ------------------------------------------

@pytest.mark.parametrize("config_id", CONFIGURATIONS)
def test_seed_prior_kind_matches_how_the_row_trains(config_id):
    config, kind = CONFIGURATIONS[config_id], TABLE2[config_id]["seed_sd_kind"]
    fine_tunes = config.init == FROM_NORMAL
    assert kind.endswith("fine_tune") == fine_tunes, f"{config_id} ({'fine-tunes' if fine_tunes else 'from scratch'}) has kind {kind}"
    assert (kind == "bn_only_from_scratch") == (not fine_tunes and not config.trains_all), f"{config_id}: kind {kind}"


def paper_budget_interval(config_id, metric):
    """The interval at the paper budget (10,000 clean / 1000 robust images), one seed, prior SD."""
    n_ours = {"clean_error": 10_000, "robust_error": 1000}[metric]
    value = TABLE2[config_id][metric]["value"]
    return Judgement(value, value, metric_error(MODEL, TABLE2[config_id], metric, n_ours, [value]), True).interval


@pytest.mark.parametrize("metric", ["clean_error", "robust_error"])
def test_bands_still_separate_normal_from_adv(metric):
    normal, adv = paper_budget_interval("normal", metric), paper_budget_interval("adv", metric)
    assert normal[1] < adv[0] or adv[1] < normal[0], f"NORMAL {normal} and ADV {adv} overlap on {metric}: bands too wide to judge the paper's main contrast"


def test_claims_that_forbid_equal_rows_separate_them():
    pairs = {(claim_id, left, right) for claim_id, _, left, right in separated_pairs(EXPECTED["claims"], TABLE2)}
    assert ("adv_far_more_robust", "adv", "normal") in pairs, "ADV far more robust than NORMAL separates the two"
    assert not {p for p in pairs if p[0] in ("bn_stats_reset_gains_no_robustness", "log_conv1_changes_little")}, (
        f"claims that equal rows satisfy separate nothing: {pairs}")



def claim(check, claim_id="c"):
    return {"id": claim_id, "check": check}


@pytest.mark.parametrize("check, separates", [
    ({"left": "adv.robust_error", "op": "<=", "right": "normal.robust_error", "times": 0.8}, True),  # v <= 0.8 v fails
    ({"left": "adv.robust_error", "op": "<=", "right": "normal.robust_error", "times": 1.25}, False),
    ({"left": "adv.robust_error", "op": "<", "right": "normal.robust_error"}, True),  # no plus: v < v fails
    ({"left": "adv.robust_error", "op": "<=", "right": "normal.robust_error"}, False),
    ({"left": "adv.clean_error", "op": ">=", "right": "normal.clean_error", "times": 2.0, "plus": -1.0}, True),  # v >= 2 v - 1 fails for v > 1
])
def test_a_claims_factor_and_offset_decide_whether_it_forbids_equal_rows(check, separates):
    # times defaults to 1 and plus to 0 (expected.py); a claim separates rows when equal values fail it.
    got = separated_pairs([claim(check)], TABLE2)
    left, right = check["left"].split(".")[0], check["right"].split(".")[0]
    want = [("c", check["left"].split(".")[1], left, right)] if separates else []
    assert got == want, f"{check}: equal values {'fail' if separates else 'satisfy'} it, so it separates {want}; got {got}"


# --- telling two rows apart (Table 2 separation notes) -------------------------------------------------

@pytest.mark.parametrize("difference, sigma, z, separated", [
    (3.0, 1.0, 3.0, False), (-3.0, 1.0, 3.0, False),  # exactly z SDs: not beyond
    (3.5, 1.0, 3.0, True), (-3.5, 1.0, 3.0, True),
    (0.0, 0.0, 3.0, False), (0.1, 0.0, 3.0, True),  # no noise: any difference separates, none does not
])
def test_separated_means_more_than_z_standard_deviations_apart(difference, sigma, z, separated):
    assert Separation(difference, sigma).separated(z) == separated, (
        f"{difference:+} points at sigma {sigma}: separated at z = {z} must be {separated} (strictly beyond z sigma)")


def se_by_hand(percent, n):
    """Binomial SE (points) of `percent` % on `n` images, written out."""
    return 100 * math.sqrt(percent / 100 * (1 - percent / 100) / n)


@pytest.mark.parametrize("metric, left, right", [("clean_error", "adv", "normal"), ("robust_error", "normal", "bn_params")])
def test_papers_separation_is_its_difference_over_its_own_binomial_ses(metric, left, right):
    a, b = TABLE2[left][metric]["value"], TABLE2[right][metric]["value"]
    n = {"clean_error": 900, "robust_error": 1000}[metric]  # the paper's evaluation sets (tests above)
    got = paper_separation(MODEL, TABLE2, metric, left, right)
    assert math.isclose(got.difference, a - b) and math.isclose(got.sigma, math.hypot(se_by_hand(a, n), se_by_hand(b, n))), (
        f"{left} - {right} on {metric}: the paper's values {a} - {b} with SEs on {n} images each, got {got}")


def judged(measured, ours_n, sd, k):
    return Judgement(40.0, measured, error(ours_n=ours_n, sd=sd, k=k), True)


def test_measured_separation_is_binomial_at_the_measured_rates_plus_the_seed_means_spread():
    left, right = judged(42.0, 1000, 2.0, 4), judged(0.5, 500, 1.0, 1)
    sigma = math.sqrt(se_by_hand(42.0, 1000) ** 2 + 2.0 ** 2 / 4 + se_by_hand(0.5, 500) ** 2 + 1.0 ** 2 / 1)
    got = measured_separation(left, right)
    assert math.isclose(got.difference, 41.5) and math.isclose(got.sigma, sigma), (
        f"difference 42.0 - 0.5 and sigma sqrt(SE(42%, 1000)^2 + 2^2/4 + SE(0.5%, 500)^2 + 1^2/1) = {sigma:.4f}, got {got}")


@pytest.mark.parametrize("hair, bound", [(100.0000001, 100.0), (-1e-7, 0.0)])
def test_measured_separation_takes_a_rate_a_hair_outside_0_100_at_the_bound(hair, bound):
    # A float32 100 % can come back as 100.0000001: it is 100 %, not an invalid rate.
    other = judged(50.0, 1000, 0.5, 1)
    got, at_bound = measured_separation(judged(hair, 1000, 0.5, 1), other), measured_separation(judged(bound, 1000, 0.5, 1), other)
    assert math.isclose(got.sigma, at_bound.sigma), f"measured {hair} must count as {bound}: sigma {got.sigma} vs {at_bound.sigma}"


# --- the selfcheck's and the trends' rule: two error rates on the same images ---------------------------

@pytest.mark.parametrize("error, n, threshold", [
    (0.5, 8, 0.5),  # 2 sqrt(2 * 0.25 / 8)
    (0.1, 1000, 2 * math.sqrt(2 * 0.1 * 0.9 / 1000)),
    (0.0, 1000, 1 / 1000), (1.0, 1000, 1 / 1000),  # no binomial spread at the extremes: one image
])
def test_noise_threshold_is_two_sds_of_a_difference_and_at_least_one_image(error, n, threshold):
    assert math.isclose(binomial_noise_threshold(error, n), threshold), (
        f"p = {error}, n = {n}: max(2 sqrt(2 p (1 - p) / n), 1 / n) = {threshold}, got {binomial_noise_threshold(error, n)}")


@pytest.mark.parametrize("error_a, error_b, n, within", [
    (0.25, 0.75, 8, True),  # 2 vs 6 of 8 images: a difference of 0.5, exactly the threshold at their mean 0.5
    (0.75, 0.25, 8, True),
    (0.25, 0.80, 8, False),
    (0.3, 0.3, 100, True),
    (0.30, 0.42, 100, True), (0.30, 0.45, 100, False),  # thresholds at their means: 0.136 and 0.137
])
def test_rule_judges_the_difference_at_the_two_rates_mean_inclusively(error_a, error_b, n, within):
    assert within_binomial_noise(error_a, error_b, n) == within, (
        f"{error_a} vs {error_b} on {n} images: |diff| <= threshold at their mean must be {within}")
