"""The mode rule: an acceleration mode's runs against fp32, judged as a family (repro/verdicts/mode_rule.py)."""

import math
import statistics

from repro.paper.configs import CONFIGURATIONS, FROM_NORMAL
from repro.verdicts.mode_rule import APPROVED, REFUSED, UNDECIDED, mode_verdict, render_mode_verdict
from tests.unit.paper.test_expected import EXPECTED

METRICS = ("clean_error", "pgd_error", "autoattack_error")
N_CLEAN, N_ROBUST = 10_000, 1_000  # as results/cifar_cpu records
# (clean, PGD, AutoAttack) error in %, away from 0 and 100 so that shifts of a few points stay rates.
BASE = {
    "normal": (8.0, 90.0, 92.0), "normal_bn_only": (36.0, 93.0, 95.0), "normal_bn_only_log_conv1": (33.0, 92.0, 94.0),
    "adv": (22.0, 55.0, 58.0), "adv_bn_only": (44.0, 90.0, 92.0), "adv_bn_only_log_conv1": (40.0, 85.0, 88.0),
    "bn_stats_no_reset": (12.0, 93.0, 95.0), "bn_stats_reset": (18.0, 92.0, 94.0),
    "bn_only_params": (35.0, 80.0, 83.0), "bn_params": (30.0, 70.0, 73.0), "bn_params_log_conv1": (28.0, 65.0, 68.0),
}


def prior(row, metric):
    """The row kind's seed SD prior from the file (PGD and AutoAttack take the robust error's)."""
    column = "clean_error" if metric == "clean_error" else "robust_error"
    return EXPECTED["error_model"]["seed_sd_priors"][EXPECTED["table2"][row]["seed_sd_kind"]][column]["value"]


def record(row, seed, values, normal="normal"):
    """A minimal result record of `row` and `seed`; a fine-tuning row started from NORMAL weights named `normal`."""
    config = CONFIGURATIONS[row]
    provenance = {"initial_weights_sha256": f"{normal}-seed{seed}"} if config.init == FROM_NORMAL else {}
    return {"config": {"id": row, "label": config.label, "init": config.init}, "seed": seed, "provenance": provenance,
            "metrics": {**dict(zip(METRICS, values)), "n_clean": N_CLEAN, "n_robust": N_ROBUST}}


def runs(values, seed=1, normal="normal"):
    """{config_id: record} of one seed from {row: (clean, pgd, autoattack)}."""
    return {row: record(row, seed, v, normal) for row, v in values.items()}


def shifted(values, sds, rows=None, metrics=METRICS):
    """`values` with `sds` prior seed SDs added to `metrics` of `rows` (every row by default)."""
    return {row: tuple(x + sds * prior(row, m) if (rows is None or row in rows) and m in metrics else x
                       for m, x in zip(METRICS, v)) for row, v in values.items()}


def two_seeds(values, normal="normal"):
    """Seeds 1 and 2, seed 2 higher by sqrt(2) prior SDs: their sample SD is the prior exactly."""
    return {1: runs(values, 1, normal), 2: runs(shifted(values, math.sqrt(2)), 2, normal)}


def test_a_mode_that_shifts_every_row_by_three_seed_sds_is_refused_by_the_shift_test():
    verdict = mode_verdict({1: runs(BASE)}, {1: runs(shifted(BASE, 3.0))}, EXPECTED)
    assert not verdict.flagged, f"no single metric moves beyond Holm's threshold: {verdict.flagged}"
    assert verdict.outcome == REFUSED, f"every row moved 3 seed SDs the same way: {verdict.outcome}, {verdict.reasons}"
    assert any(s.fired and s.metric == "clean_error" for s in verdict.shifts), f"Stouffer's Z names it: {verdict.shifts}"
    assert any("clean_error shifted across 11 rows" in r for r in verdict.reasons), verdict.reasons


def test_one_metric_of_one_row_moved_by_one_seed_sd_is_approved():
    # At 1 % on 10,000 images the binomial SE is 0.1 point: only the seed SD (1 point) makes this noise.
    reference = {**BASE, "normal_bn_only": (1.0, 93.0, 95.0)}
    mode = {**BASE, "normal_bn_only": (1.0 + prior("normal_bn_only", "clean_error"), 93.0, 95.0)}
    verdict = mode_verdict({1: runs(reference)}, {1: runs(mode)}, EXPECTED)
    assert verdict.outcome == APPROVED, f"one seed SD on one metric is what a seed does: {verdict.reasons}"


def test_a_row_moved_over_two_seeds_on_both_sides_is_refused():
    mode = {1: runs(shifted(BASE, 5.0, rows={"normal_bn_only"}), 1),
            2: runs(shifted(shifted(BASE, math.sqrt(2)), 5.0, rows={"normal_bn_only"}), 2)}
    verdict = mode_verdict(two_seeds(BASE), mode, EXPECTED)
    assert not any(s.fired for s in verdict.shifts), f"one row of eleven is no systematic shift: {verdict.shifts}"
    assert {(e.row, e.k_mode) for e in verdict.flagged} == {("normal_bn_only", 2)}, verdict.flagged
    assert verdict.outcome == REFUSED, f"5 seed SDs on both mode seeds is the mode's: {verdict.outcome}"


def test_a_large_move_on_one_mode_seed_needs_a_second_seed():
    mode = {**BASE, "normal_bn_only": (BASE["normal_bn_only"][0] + 8.0, *BASE["normal_bn_only"][1:])}
    verdict = mode_verdict({1: runs(BASE)}, {1: runs(mode)}, EXPECTED)
    assert [(e.row, e.metric) for e in verdict.flagged] == [("normal_bn_only", "clean_error")], verdict.flagged
    assert verdict.outcome == UNDECIDED, f"one seed cannot tell the mode from an unlucky run: {verdict.outcome}"
    assert verdict.to_settle == ("normal_bn_only",), verdict.to_settle
    assert "a second seed of normal_bn_only in the mode settles it" in verdict.reasons[0], verdict.reasons


def test_a_fine_tuning_row_started_from_different_normals_is_not_judged():
    mode = runs(BASE)
    mode["bn_params"] = record("bn_params", 1, (BASE["bn_params"][0] + 20.0, *BASE["bn_params"][1:]), normal="other")
    verdict = mode_verdict({1: runs(BASE)}, {1: mode}, EXPECTED)
    assert not any(e.row == "bn_params" for e in verdict.entries), "an unpaired fine-tuning row is not compared"
    reasons = {n.row: n.reason for n in verdict.not_judged}
    assert "not paired" in reasons.get("bn_params", "") and "different NORMAL" in reasons["bn_params"], reasons
    assert verdict.outcome == APPROVED, f"the other NORMAL's 20 points are not the mode's: {verdict.reasons}"


def test_allow_unpaired_judges_the_row_and_marks_it_unpaired():
    mode = runs(BASE)
    mode["bn_params"] = record("bn_params", 1, BASE["bn_params"], normal="other")
    verdict = mode_verdict({1: runs(BASE)}, {1: mode}, EXPECTED, allow_unpaired=True)
    paired = {e.paired for e in verdict.entries if e.row == "bn_params"}
    assert paired == {False}, f"judged when allowed, and said to be unpaired: {paired}"


def test_the_seed_sd_is_measured_from_two_reference_seeds_and_the_prior_otherwise():
    adv = {"adv": (22.0, 55.0, 58.0)}
    reference = {1: runs(BASE), 2: runs({"adv": (23.0, 55.5, 57.0)}, 2)}
    verdict = mode_verdict(reference, {1: runs(BASE)}, EXPECTED)
    for e in verdict.entries:
        if e.row == "adv":
            values = [adv["adv"][METRICS.index(e.metric)], reference[2]["adv"]["metrics"][e.metric]]
            assert e.spread.source == "measured over 2 seeds", f"adv {e.metric}: {e.spread}"
            assert math.isclose(e.spread.sd, statistics.stdev(values)), f"adv {e.metric}: {e.spread.sd} vs {values}"
        else:
            assert e.spread.source == "prior" and e.spread.sd == prior(e.row, e.metric), f"{e.row} {e.metric}: {e.spread}"


def test_identical_records_are_approved():
    # NORMAL's AutoAttack error at 100 % on both seeds: no binomial noise and a measured SD of 0, so sigma = 0.
    values = {**BASE, "normal": (8.0, 90.0, 100.0)}
    both = {1: runs(values, 1), 2: runs(values, 2)}
    verdict = mode_verdict(both, both, EXPECTED)
    assert all(e.diff == 0 for e in verdict.entries) and len(verdict.entries) == 33, verdict.entries[:2]
    assert verdict.outcome == APPROVED and not verdict.reasons, f"nothing moved: {verdict.reasons}"


def test_the_rendering_opens_with_the_outcome_and_its_counts():
    mode = {**BASE, "normal_bn_only": (BASE["normal_bn_only"][0] + 8.0, *BASE["normal_bn_only"][1:])}
    text = render_mode_verdict(mode_verdict({1: runs(BASE)}, {1: runs(mode)}, EXPECTED))
    first = text.splitlines()[0]
    assert first.startswith(f"**{UNDECIDED}**: 1 of 33 metrics flagged (Holm), 0 of 3 shift tests fired"), first
    flagged = [line for line in text.splitlines() if line.endswith("| FLAGGED |")]
    assert len(flagged) == 1 and flagged[0].startswith("| NORMAL +BN ONLY | clean_error | 36.00 (1) | 44.00 (1) | +8.00 |"), flagged


def test_a_row_trained_under_another_reading_on_one_side_is_not_judged():
    reference, mode = runs(BASE), runs(shifted(BASE, 5, rows={"bn_params"}))
    mode["bn_params"]["config"]["lr"] = 0.1  # the mode's BN PARAMS fine-tuned at another rate
    reference["bn_params"]["config"]["trainable"] = mode["bn_params"]["config"]["trainable"] = ["bn"]
    verdict = mode_verdict({1: reference}, {1: mode}, EXPECTED)
    reasons = {n.row: n.reason for n in verdict.not_judged}
    assert "bn_params" in reasons and "lr: None vs 0.1" in reasons["bn_params"] and verdict.outcome == APPROVED, (
        f"a move between two readings is not the mode's: {reasons}, {verdict.outcome}")


def test_one_huge_move_on_one_seed_is_not_taken_for_a_shift_of_every_row():
    verdict = mode_verdict({1: runs(BASE)}, {1: runs(shifted(BASE, 20, rows={"adv"}))}, EXPECTED)
    assert verdict.outcome == UNDECIDED and not any(s.fired for s in verdict.shifts), (
        f"ADV alone moved 20 SDs on one seed: a second seed settles it; no shift test may fire on it: "
        f"{verdict.outcome}, {[(s.metric, round(s.stouffer_z, 2)) for s in verdict.shifts]}")


def test_a_row_holding_the_reference_weights_on_the_mode_side_is_not_judged():
    # --paired-normal trains NORMAL once without the mode and puts that record beside the mode's rows.
    reference, mode = runs(BASE), runs(BASE)
    for side in (reference, mode):
        side["normal"]["provenance"]["weights_sha256"] = "one-normal"
    mode["bn_params"]["provenance"]["weights_sha256"] = "bf16-bn-params"
    verdict = mode_verdict({1: reference}, {1: mode}, EXPECTED)
    judged = {e.row for e in verdict.entries}
    assert "normal" not in judged and "bn_params" in judged, \
        f"a shared record is equal by construction and must not count for the mode: {sorted(judged)}"
