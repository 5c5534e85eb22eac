"""Several seeds: the loop over seeds, mean and SD per row, and a missing seed reported, not averaged away."""

import pytest

from repro.paper.budgets import SMOKE
from repro.runs.pipeline import RunSettings
from repro.runs.seeds import check_seeds, for_each_seed, mean_records, missing_seeds, parse_seeds, seed_values


def record(clean, robust, version="custom"):
    return {"metrics": {"clean_error": clean, "autoattack_error": robust, "n_clean": 900,
                        "autoattack_version": version}}


PER_SEED = {  # seed -> {config_id: record}; adv lacks seed 2
    0: {"normal": record(4.0, 99.0), "adv": record(17.0, 58.0)},
    1: {"normal": record(5.0, 100.0), "adv": record(18.0, 60.0)},
    2: {"normal": record(6.0, 98.0)},
}


def test_mean_and_sd_over_seeds():
    values = seed_values(PER_SEED, [0, 1, 2], "normal", "clean_error")
    assert (values.mean, values.sd) == (5.0, 1.0), f"4, 5, 6: mean 5, sample SD 1; got {values.mean}, {values.sd}"


def test_one_seed_has_a_mean_and_no_sd():
    values = seed_values(PER_SEED, [1], "adv", "autoattack_error")
    assert (values.mean, values.sd) == (60.0, None), "one seed: its value, no spread"


def test_missing_seed_is_named_and_nothing_is_averaged():
    values = seed_values(PER_SEED, [0, 1, 2], "adv", "clean_error")
    assert values.missing == (2,) and values.mean is None and values.sd is None, (
        f"adv lacks seed 2: must not be averaged over seeds 0 and 1, got {values}")


def test_missing_seeds_lists_rows_and_seeds():
    missing = missing_seeds(PER_SEED, [0, 1, 2])
    assert missing["adv"] == [2] and "normal" not in missing, f"{missing}"


def test_mean_records_average_numbers_and_leave_out_incomplete_rows():
    means = mean_records(PER_SEED, [0, 1, 2])
    assert set(means) == {"normal"}, f"adv lacks seed 2 and must be left out: {sorted(means)}"
    assert means["normal"]["metrics"] == {"clean_error": 5.0, "autoattack_error": 99.0, "n_clean": 900.0}, (
        f"numeric metrics averaged, text dropped: {means['normal']['metrics']}")


def test_mean_records_of_the_seeds_present():
    means = mean_records(PER_SEED, [0, 1])
    assert means["adv"]["metrics"]["autoattack_error"] == 59.0, "adv over seeds 0 and 1: (58 + 60) / 2"


def test_repro_seeds_is_parsed():
    assert parse_seeds("0,1, 2") == [0, 1, 2], "REPRO_SEEDS=0,1,2 is seeds 0, 1, 2"


@pytest.mark.parametrize("text, message", [("0,a", "REPRO_SEEDS"), ("1,1", "distinct"), ("", "at least one"),
                                           ("-1", "non-negative")])
def test_bad_seeds_are_refused(text, message):
    with pytest.raises(ValueError, match=message):
        parse_seeds(text)


def test_for_each_seed_changes_only_the_seed(tmp_path):
    settings = RunSettings(budget=SMOKE, seed=7, out=tmp_path, resume=True)
    seen = for_each_seed(settings, [2, 0], lambda s: (s.seed, s.out, s.budget, s.resume))
    assert seen == {2: (2, tmp_path, SMOKE, True), 0: (0, tmp_path, SMOKE, True)}, f"{seen}"


def test_mean_records_pool_series_in_seed_order():
    per_seed = {s: {"normal": {**record(4.0, 99.0), "series": {"confidence_pgd": [s, s + 0.5]}}} for s in (0, 1)}
    means = mean_records(per_seed, [1, 0])
    assert means["normal"]["series"] == {"confidence_pgd": [1, 1.5, 0, 0.5]}, (
        f"series (distances, per-layer counts) must read every seed's values, in seed order: {means['normal']}")


def test_no_seed_is_refused_saying_how_to_give_one():
    with pytest.raises(ValueError, match=r"^give at least one seed, e\.g\. --seeds 0 1 2$"):
        check_seeds([])  # the message is all the user reads: it must say what to type


@pytest.mark.parametrize("seeds", [[True], [1.5], ["1"]], ids=["bool", "float", "text"])
def test_seeds_that_are_not_integers_are_refused(seeds):
    # True would run as seed 1 and 1.5 would name a folder seed1.5: neither is a seed a user can rerun.
    with pytest.raises(ValueError, match="seeds must be non-negative integers"):
        check_seeds(seeds)


def test_seed_values_name_a_seed_without_any_result_as_missing():
    values = seed_values({0: {"normal": record(4.0, 99.0)}}, [0, 1], "normal", "clean_error")
    assert values.missing == (1,) and values.mean is None, (
        f"seed 1 has no results at all (e.g. its folder is empty): it is missing, not an error: {values}")


def test_missing_seeds_name_a_seed_without_any_result():
    missing = missing_seeds({0: {"normal": record(4.0, 99.0)}}, [0, 1])
    assert missing["normal"] == [1], f"seed 1 has no results at all: every row lacks it, got {missing}"


def test_mean_records_of_one_seed_are_that_seeds_numbers():
    per_seed = {3: {"normal": {**record(4.0, 99.0), "series": {"confidence_pgd": [0.25, 0.5]}}}}
    means = mean_records(per_seed, [3])
    assert means["normal"]["metrics"] == {"clean_error": 4.0, "autoattack_error": 99.0, "n_clean": 900} and \
        means["normal"]["series"] == {"confidence_pgd": [0.25, 0.5]}, (
            f"a mean over one seed is that seed's metrics and series: {means.get('normal')}")


def test_mean_records_leave_out_a_series_that_a_seed_lacks():
    per_seed = {0: {"normal": {**record(4.0, 99.0), "series": {"confidence_pgd": [0.5]}}},
                1: {"normal": record(5.0, 100.0)}}  # seed 1's record has no series at all
    means = mean_records(per_seed, [0, 1])
    assert means["normal"]["series"] == {}, (
        f"a series only seed 0 has must not be pooled as if it covered both seeds: {means['normal']['series']}")


def test_mean_records_name_the_seeds_they_average():
    means = mean_records(PER_SEED, [0, 1, 2])
    assert means["normal"]["seeds"] == [0, 1, 2], f"a seed mean must say which seeds it averages: {means['normal']}"


def test_mean_records_average_only_metrics_every_seed_has():
    later = {"metrics": {"clean_error": 6.0, "n_clean": 900}}  # a later seed's record without autoattack_error
    means = mean_records({0: {"adv": record(4.0, 58.0)}, 1: {"adv": later}}, [0, 1])
    assert means["adv"]["metrics"] == {"clean_error": 5.0, "n_clean": 900}, (
        f"a metric one seed lacks is left out (a claim on it is reported missing), the others averaged: "
        f"{means['adv']['metrics']}")


def test_seed_values_count_a_result_without_the_metric_as_missing():
    values = seed_values({0: {"adv": record(4.0, 58.0)}, 1: {"adv": {"metrics": {"clean_error": 6.0}}}},
                         [0, 1], "adv", "autoattack_error")
    assert values.missing == (1,) and values.mean is None, (
        f"seed 1's result lacks autoattack_error: that seed is missing it, nothing is averaged: {values}")
