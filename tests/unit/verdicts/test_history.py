"""The history of nights (repro/verdicts/history.py, `repro history`), on synthetic result records."""

import copy
import json
import math
import multiprocessing
import os
import re
import subprocess
import threading
import time
from dataclasses import asdict, replace
from datetime import datetime, timezone
from pathlib import Path

import pytest
from filelock import FileLock

from repro.cli.main import main
from repro.paper.budgets import SMOKE
from repro.paper.expected import load_expected
from repro.verdicts.history import (allowed_move, append_results, entries_of, moves, new_run, read_history, recent,
                                    weight_comparisons)
from repro.verdicts.determinism import DEFECT, EXPLAINED, compare_runs, run_inputs
from repro.verdicts.history_text import commits_between, render_history

ENTRY_FIELDS = {"date", "run", "commit", "run_commit", "budget", "overrides", "readings", "modes", "selfcheck", "seed",
                "row", "metric", "value", "n", "device", "wall_seconds", "inputs"}
PRODUCED_AT = "b" * 40  # the commit the test records say computed their numbers
HARDWARE = {"cpu_model": "Test CPU", "cpu_capability": "AVX2", "cpu_bf16": [], "machine": "x86_64", "torch_threads": 2}


def record(row="adv", seed=0, clean=20.0, pgd=60.0, aa=65.0, budget=SMOKE, n_clean=512, n_robust=256, variants=None,
           commit=PRODUCED_AT, **provenance):
    """A result record shaped like pipeline.Pipeline.result's, with chosen numbers; `provenance` adds to its
    provenance (hardware, data_sha256, weights_sha256, selfcheck)."""
    return {"config": {"id": row}, "seed": seed, "budget": asdict(budget), "variants": variants or {},
            "metrics": {"clean_error": clean, "pgd_error": pgd, "autoattack_error": aa, "pgd_cross_entropy": 1.5,
                        "n_clean": n_clean, "n_robust": n_robust, "autoattack_version": "custom"},
            "provenance": {"device": "cpu: test", "git_commit": commit, **provenance},
            "wall_seconds": {"train": 10.0, "eval_total": 2.5}}


def hashed(weights="w1", hardware=HARDWARE, data="d1", **changes):
    """A record with the hardware, data and weight hashes of issue 24 (`changes`: record()'s arguments)."""
    return record(hardware=hardware, data_sha256={"train_sha256": data, "test_sha256": data + "t"},
                  weights_sha256=weights, **changes)


def night(date, commit="a" * 40):
    return {"run": f"run-{date}", "date": date, "commit": commit}


def without(mapping: dict, *keys) -> dict:
    return {k: v for k, v in mapping.items() if k not in keys}


@pytest.fixture
def local_time_not_utc():
    """The process's local time zone five hours west of UTC for the test, restored afterwards."""
    before = os.environ.get("TZ")
    os.environ["TZ"] = "EST+05"
    time.tzset()
    yield
    if before is None:
        del os.environ["TZ"]
    else:
        os.environ["TZ"] = before
    time.tzset()


def test_a_new_night_is_dated_now_in_utc(local_time_not_utc):
    started = math.floor(time.time())
    date = new_run()["date"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", str(date)), \
        f"a night's date is an ISO 8601 UTC timestamp, the key nights sort by: {date!r}"
    stamp = datetime.strptime(date, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc).timestamp()
    assert started <= stamp <= time.time(), (
        f"the date is now in UTC, not in the machine's local time ({time.tzname}), so nights run on clusters "
        f"in other time zones sort as they ran: {date}")


def test_a_night_keeps_the_run_id_given_else_is_named_by_its_date():
    given, unnamed = new_run("night-1"), new_run()
    assert given["run"] == "night-1", f"REPRO_RUN_ID makes several processes one night: kept as given: {given}"
    assert re.fullmatch(re.escape(unnamed["date"]) + r"-[0-9a-f]{8}", str(unnamed["run"])), (
        f"a night without an id is named by its date and 8 random hex digits (two started in one second differ): {unnamed}")


def test_entries_carry_every_field_per_numeric_metric():
    entries = entries_of(record(variants={"attack_bn": "eval"}), night("2025-01-01T00:00:00Z"))
    assert {e["metric"] for e in entries} == {"clean_error", "pgd_error", "autoattack_error", "pgd_cross_entropy"}, \
        "one entry per numeric metric (not the n_* counts nor strings)"
    assert all(set(e) == ENTRY_FIELDS for e in entries), f"fields {set(entries[0])} != {ENTRY_FIELDS}"
    n = {e["metric"]: e["n"] for e in entries}
    assert n == {"clean_error": 512, "pgd_error": 256, "autoattack_error": 256, "pgd_cross_entropy": None}, \
        f"error rates carry the examples they were measured on: {n}"
    assert entries[0]["wall_seconds"] == 12.5 and entries[0]["readings"] == ["attack_bn=eval"], entries[0]


@pytest.mark.parametrize("wall, seconds", [({"train": 10.0, "eval_total": 2.5}, 12.5), ({"train": 10.0}, 10.0),
                                           ({"eval_total": 2.5}, 2.5), ({}, 0.0), (None, 0.0)],
                         ids=["both", "train-only", "eval-only", "empty", "absent"])
def test_wall_time_is_training_plus_evaluation_a_missing_part_counting_zero(wall, seconds):
    rec = without(record(), "wall_seconds") | ({"wall_seconds": wall} if wall is not None else {})
    (entry, *_) = entries_of(rec, night("2025-01-01T00:00:00Z"))
    assert entry["wall_seconds"] == seconds, f"wall time of {wall} must be {seconds} s: {entry['wall_seconds']}"


def test_a_record_without_its_commit_is_credited_to_the_nights():
    rec = record()
    rec["provenance"] = without(rec["provenance"], "git_commit")
    (entry, *_) = entries_of(rec, night("2025-01-01T00:00:00Z", commit="a" * 40))
    assert entry["commit"] == "a" * 40, f"a record that names no commit was computed by the code the night ran: {entry}"


def test_overrides_are_recorded_against_the_registered_budget():
    broken = replace(SMOKE, train_attack_step_size=0.0)
    (entry, *_) = entries_of(record(budget=broken), night("2025-01-01T00:00:00Z"))
    assert entry["budget"] == "smoke" and entry["overrides"] == {"train_attack_step_size": 0.0}, entry


def test_entries_record_the_commit_that_produced_the_numbers():
    (entry, *_) = entries_of(record(commit="c" * 40), night("2025-01-01T00:00:00Z", commit="a" * 40))
    assert (entry["commit"], entry["run_commit"]) == ("c" * 40, "a" * 40), (
        f"a reused result keeps the commit that computed it; the running one is run_commit: {entry}")


def test_entries_take_the_readings_from_the_record():
    (entry, *_) = entries_of(record(variants={"bn_only_params_stats": "frozen_batch"}), night("2025-01-01T00:00:00Z"))
    assert entry["readings"] == ["bn_only_params_stats=frozen_batch"], f"a reading's run must say so: {entry['readings']}"


def test_appended_nights_read_back_in_order(tmp_path):
    path = tmp_path / "history.jsonl"
    append_results(path, [record(aa=65.0)], run=night("2025-01-02T00:00:00Z"))
    append_results(path, [record(aa=66.0)], run=night("2025-01-01T00:00:00Z"))
    values = [e["value"] for e in read_history(path) if e["metric"] == "autoattack_error"]
    assert values == [65.0, 66.0], f"entries are appended, never rewritten: {values}"


def test_appending_creates_the_out_folder_and_its_parents(tmp_path):
    path = tmp_path / "new" / "out" / "history.jsonl"
    append_results(path, [record()], run=night("2025-01-01T00:00:00Z"))
    assert len(read_history(path)) == 4, "the first night of a new --out folder creates it, parents included"


@pytest.mark.parametrize("access", [lambda path: append_results(path, [record()], run=night("2025-01-02T00:00:00Z")),
                                    read_history], ids=["append", "read"])
def test_the_store_is_written_and_read_under_its_lock(tmp_path, access):
    path = tmp_path / "history.jsonl"
    append_results(path, [record()], run=night("2025-01-01T00:00:00Z"))
    finished = threading.Event()
    worker = threading.Thread(target=lambda: (access(path), finished.set()))
    with FileLock(str(path) + ".lock"):  # another run appending its batch
        worker.start()
        waited = not finished.wait(0.1)
    worker.join(timeout=30)
    assert waited and finished.is_set(), (
        "appends and reads wait for history.jsonl.lock, the lock every run takes, so no batch is torn or read half-written")


def band(metric="autoattack_error", row="adv", value=50.0, n=256, model=None):
    """allowed_move between two nights that measured `value` on `n` examples each."""
    return allowed_move(metric, row, {"value": value, "n": n}, {"value": value, "n": n}, model)


def test_band_shrinks_with_more_examples():
    assert band(n=1000) < band(n=256), "an error rate measured on more examples may move less between nights"


def test_band_is_widest_at_half_error():
    assert band(value=50.0) > band(value=90.0) > band(value=100.0), "binomial noise peaks at p = 0.5"


def test_band_at_zero_noise_is_the_seed_prior_alone():
    model = load_expected()
    prior = model["error_model"]["seed_sd_priors"]["adversarial_from_scratch"]["robust_error"]["value"]
    z = model["error_model"]["z"]["value"]
    assert band(value=100.0) == pytest.approx(z * prior * 2 ** 0.5), \
        "at 100% error no binomial noise is left: z times the row kind's seed prior, once per night"


def test_band_scales_with_the_files_z():
    model = load_expected()
    doubled = copy.deepcopy(model)
    doubled["error_model"]["z"]["value"] *= 2
    assert band(model=doubled) == pytest.approx(2 * band(model=model)), "the band is z standard deviations"


def test_noisier_row_kind_gets_a_wider_band():
    # NORMAL's clean-error prior (0.2) is below the BN-only rows' (1.0), at the same rate and n
    assert band("clean_error", "normal_bn_only", value=100.0) > band("clean_error", "normal", value=100.0), \
        "the band carries the row kind's seed-to-seed prior"


def binomial_points(percent, n):
    """The binomial standard error of an error rate, in points, written out here independently of error_model."""
    return 100 * math.sqrt(percent / 100 * (1 - percent / 100) / n)


@pytest.mark.parametrize("metric, row, prior", [
    ("clean_error", "adv", ("adversarial_from_scratch", "clean_error")),
    ("pgd_error", "adv", ("adversarial_from_scratch", "robust_error")),
    ("autoattack_error", "adv", ("adversarial_from_scratch", "robust_error")),
    ("autoattack_error", "not_a_table2_row", None),
], ids=["clean", "pgd", "autoattack", "row-without-prior"])
def test_band_is_z_times_both_nights_binomial_error_and_the_row_kinds_prior(metric, row, prior):
    em = load_expected()["error_model"]
    sd = em["seed_sd_priors"][prior[0]][prior[1]]["value"] if prior else 0.0
    # 40% on 100 examples, then 60% on 400: both at their mean rate, 50%, each at its own n
    expected = em["z"]["value"] * math.sqrt(binomial_points(50, 100) ** 2 + binomial_points(50, 400) ** 2 + 2 * sd ** 2)
    got = allowed_move(metric, row, {"value": 40.0, "n": 100}, {"value": 60.0, "n": 400})
    assert got == pytest.approx(expected), (
        f"allowed = z*sqrt(se(p, n_before)^2 + se(p, n_after)^2 + 2*sd^2), sd the {prior} prior "
        f"(none for a row outside Table 2): {got} != {expected}")


@pytest.mark.parametrize("n_before, n_after", [(None, 256), (256, None), (0, 256), (256, 0)])
def test_an_error_rate_without_its_example_count_on_either_night_has_no_band(n_before, n_after):
    got = allowed_move("autoattack_error", "adv", {"value": 50.0, "n": n_before}, {"value": 60.0, "n": n_after})
    assert got is None, f"without both nights' n there is no binomial band: never flagged (n {n_before} -> {n_after}): {got}"


def test_metrics_that_are_not_error_rates_have_no_band():
    assert band("pgd_cross_entropy") is None, "only error rates have a band"


@pytest.mark.parametrize("direction", [1, -1], ids=["up", "down"])
@pytest.mark.parametrize("delta, flagged", [(-0.01, False), (0.01, True)])
def test_move_is_flagged_just_outside_the_band(direction, delta, flagged):
    move = direction * (band(value=50.0) + delta)  # centred on 50%, so the pair's mean rate is 50% and so is its band
    entries = (entries_of(record(aa=50.0 - move / 2), night("2025-01-01T00:00:00Z"))
               + entries_of(record(aa=50.0 + move / 2), night("2025-01-02T00:00:00Z")))
    found = [(m.series.row, m.series.metric) for m in moves(entries)]
    assert found == ([("adv", "autoattack_error")] if flagged else []), f"move of ±(band{delta:+}) flagged: {found}"


def test_a_move_exactly_the_band_is_not_flagged():
    def allowed(before, after):
        return allowed_move("autoattack_error", "adv", {"value": before, "n": 256}, {"value": after, "n": 256})

    # about the band's width apart around 50%, where the band hardly changes with the rates: pairs whose
    # difference equals, to the last bit, the band allowed_move gives them
    half = band(value=50.0) / 2
    candidates = ((b, b + allowed(b, b + 2 * half)) for b in (50.0 - half + i * 2.0 ** -30 for i in range(64)))
    before, after = next(((b, a) for b, a in candidates if a - b == allowed(b, a)), (None, None))
    assert before is not None, "precondition: a pair of rates exactly the band apart"
    found = moves(entries_of(record(aa=before), night("2025-01-01T00:00:00Z"))
                  + entries_of(record(aa=after), night("2025-01-02T00:00:00Z")))
    assert found == [], f"only a move larger than allowed is flagged, not one of exactly the band ({after - before}): {found}"


def test_only_consecutive_nights_are_compared():
    # 60 -> 70 -> 80: each step inside its band (about ±12-13 points at n = 256), the 20-point drift over two nights is not a flagged step
    entries = [e for i, aa in enumerate([60.0, 70.0, 80.0])
               for e in entries_of(record(aa=aa), night(f"2025-01-0{i + 1}T00:00:00Z"))]
    assert moves(entries) == [], "moves compare each night with the one before"


def two_nights(first: dict, second: dict) -> list[dict]:
    return entries_of(first, night("2025-01-01T00:00:00Z")) + entries_of(second, night("2025-01-02T00:00:00Z"))


def test_a_reading_is_its_own_series():
    entries = two_nights(record(aa=60.0), record(aa=95.0, variants={"bn_only_params_stats": "frozen_batch"}))
    assert moves(entries) == [], "a night under a reading is not compared with a night of the defaults"


def test_training_overrides_are_their_own_series():
    entries = two_nights(record(aa=60.0), record(aa=95.0, budget=replace(SMOKE, epochs_finetune=3)))
    assert moves(entries) == [], "a night with --set epochs_finetune=3 is not compared with the registered budget's"


def test_other_values_of_one_override_are_other_series():
    entries = two_nights(record(aa=60.0, budget=replace(SMOKE, epochs_finetune=3)),
                         record(aa=95.0, budget=replace(SMOKE, epochs_finetune=5)))
    assert moves(entries) == [], "--set epochs_finetune=5 is not compared with --set epochs_finetune=3"


# Fields an entry may lack: written since issue 27 (modes, selfcheck, run_commit, inputs), or left out of a
# hand-written entry (overrides, readings); their absence means the registered budget's defaults.
OPTIONAL_FIELDS = ("overrides", "readings", "modes", "selfcheck", "run_commit", "inputs")


def test_an_older_entry_is_in_the_default_series():
    entries = ([without(e, *OPTIONAL_FIELDS) for e in entries_of(record(aa=60.0), night("2025-01-01T00:00:00Z"))]
               + entries_of(record(aa=95.0), night("2025-01-02T00:00:00Z")))
    found = [(m.series.row, m.series.metric) for m in moves(entries)]
    assert found == [("adv", "autoattack_error")], (
        f"a night recorded without the optional fields is compared with tonight's run of the defaults: {found}")


def test_an_older_history_still_renders():
    text = render_history([without(e, *OPTIONAL_FIELDS) for e in two_nights(record(), record())])
    assert "#1 2025-01-01T00:00:00Z  commit bbbbbbbbbbbb" in text and "cannot be compared" in text, (
        f"nights written before issue 27 show the commit they recorded, and weights they lack are said, not compared:\n{text}")


@pytest.mark.parametrize("older", [0, 1], ids=["older-first", "older-second"])
def test_a_night_recorded_without_inputs_beside_one_with_them_cannot_be_compared(older):
    # e.g. a night run from a checkout before issue 24, before or after one that hashed its weights
    pair = [entries_of(hashed(weights="1" * 64), night("2025-01-01T00:00:00Z")),
               entries_of(hashed(weights="2" * 64), night("2025-01-02T00:00:00Z"))]
    pair[older] = [without(e, "inputs") for e in pair[older]]
    text = render_history(pair[0] + pair[1])
    assert "1 pair(s) of nights cannot be compared" in text and "NON-DETERMINISTIC" not in text, (
        f"a night without the weight, data and hardware hashes is said not comparable, whichever night lacks them:\n{text}")


def test_a_mode_a_selfcheck_approved_stays_in_the_default_series():
    approved = record(aa=95.0, budget=replace(SMOKE, compile=True), selfcheck={"mode": "compiled", "compile": True})
    found = [(m.series.row, m.series.metric) for m in moves(two_nights(record(aa=60.0), approved))]
    assert found == [("adv", "autoattack_error")], f"an approved mode is the protocol run faster, compared as such: {found}"


def test_a_mode_no_selfcheck_approved_is_its_own_series():
    unapproved = record(aa=95.0, budget=replace(SMOKE, compile=True))
    assert moves(two_nights(record(aa=60.0), unapproved)) == [], "a mode nobody approved is not the default's series"


def test_entries_record_the_modes_and_whether_a_selfcheck_approved_them():
    (entry, *_) = entries_of(record(budget=replace(SMOKE, bf16=True, compile=True), selfcheck={"mode": "bf16"}),
                             night("2025-01-01T00:00:00Z"))
    assert (entry["modes"], entry["selfcheck"], entry["overrides"]) == (["bf16", "compile"], True, {}), (
        f"modes are recorded beside the budget, not as overrides: {entry}")


def test_history_shows_the_modes_of_a_night():
    approved = record(budget=replace(SMOKE, compile=True), selfcheck={"mode": "compiled"})
    text = render_history(two_nights(record(), approved))
    assert "modes: compile (approved by a selfcheck)" in text, text


def night_line(text: str, index: int = 1) -> str:
    return next(line for line in text.splitlines() if line.startswith(f"  #{index} "))


def test_history_shows_the_commit_a_night_ran_at_and_where_reused_numbers_came_from():
    line = night_line(render_history(entries_of(record(commit="c" * 40), night("2025-01-01T00:00:00Z", commit="a" * 40))))
    assert "commit aaaaaaaaaaaa" in line and "numbers also from cccccccccccc" in line, (
        f"the night is named by the commit it ran at; numbers computed at another (a reused result) say so: {line}")


def test_history_shows_the_seeds_of_a_night():
    run = night("2025-01-01T00:00:00Z")
    line = night_line(render_history(entries_of(record(seed=1), run) + entries_of(record(seed=0), run)))
    assert "seeds 0 1" in line, f"a night lists the seeds it ran: {line}"


def test_history_shows_a_mode_no_selfcheck_approved():
    line = night_line(render_history(entries_of(record(budget=replace(SMOKE, compile=True)), night("2025-01-01T00:00:00Z"))))
    assert "modes: compile (no selfcheck)" in line, f"a mode nobody approved is marked so on its night: {line}"


def test_history_table_lists_table2_rows_then_error_rates_in_the_papers_order_then_seeds():
    run = night("2025-01-01T00:00:00Z")
    entries = [e for row in ("adv", "a_custom_row", "normal") for seed in (1, 0)
               for e in entries_of(record(row=row, seed=seed), run)]
    lines = render_history(entries).splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("budget ")) + 2  # past the header and its rule
    shown = [tuple(line.split()[1:4]) for line in lines[start:lines.index("", start)]]
    expected = [(row, metric, str(seed)) for row in ("normal", "adv", "a_custom_row")
                for metric in ("clean_error", "pgd_error", "autoattack_error") for seed in (0, 1)]
    assert shown == expected, (
        f"rows in Table 2's order (others after), each row's error rates clean, PGD, AutoAttack, then seeds: {shown}")


def test_a_weight_comparison_is_of_the_record_not_of_one_metric():
    found = weight_comparisons(two_nights(hashed(weights="1" * 64), hashed(weights="2" * 64)))
    assert [(c.series.row, c.series.seed, c.series.metric) for c in found] == [("adv", 0, "")], (
        f"every metric of a record shares its weights: one comparison per row and seed, naming no metric: {found}")


def nights_of(count: int) -> list[dict]:
    return [e for day in range(1, count + 1) for e in entries_of(record(), night(f"2025-01-{day:02d}T00:00:00Z"))]


def test_recent_is_the_last_five_nights_by_default():
    runs = sorted({e["run"] for e in recent(nights_of(6))})
    assert runs == [f"run-2025-01-{day:02d}T00:00:00Z" for day in range(2, 7)], \
        f"by default the last five nights, as `repro history` shows: {runs}"


def test_recent_keeps_only_the_metrics_asked_of_the_last_nights():
    kept = [(e["run"], e["metric"]) for e in recent(nights_of(2), last=1, metrics=("clean_error",))]
    assert kept == [("run-2025-01-02T00:00:00Z", "clean_error")], \
        f"the last night's entries of the metrics asked, nothing of earlier nights or other metrics: {kept}"


def test_seeds_and_rows_are_separate_series():
    entries = (entries_of(record(seed=0, aa=60.0), night("2025-01-01T00:00:00Z"))
               + entries_of(record(seed=1, aa=95.0), night("2025-01-02T00:00:00Z")))
    assert moves(entries) == [], "seed 1 tonight is not compared with seed 0 last night"


@pytest.fixture
def git_repo(tmp_path):
    """A repository with three commits; returns their hashes, oldest first."""
    repo = tmp_path / "repo"
    repo.mkdir()
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(git + ["init", "-q"], check=True)
    hashes = []
    for message in ("first", "second", "third"):
        (repo / "f").write_text(message)
        subprocess.run(git + ["add", "f"], check=True)
        subprocess.run(git + ["commit", "-q", "-m", message], check=True)
        hashes.append(subprocess.run(git + ["rev-parse", "HEAD"], check=True, capture_output=True,
                                     text=True).stdout.strip())
    return repo, hashes


def test_commits_between_names_the_later_commits(git_repo):
    repo, (first, second, third) = git_repo
    names = [line.split(" ", 1)[1] for line in commits_between(first, third + "+dirty", repo=repo)]
    assert names == ["third", "second"], f"commits after the earlier night up to the later one: {names}"


def test_a_rerun_at_an_older_commit_lists_the_commits_it_lacks_marked_older(git_repo):
    repo, (first, second, third) = git_repo
    lines = commits_between(third, first, repo=repo)
    assert [line.split(" ") for line in lines] == [["(older)", third[:7], "third"], ["(older)", second[:7], "second"]], (
        f"the later night ran at an older commit: the commits the earlier night had and it lacks, marked older: {lines}")


def test_render_names_the_moved_row_and_the_commits_between(git_repo, monkeypatch):
    repo, (first, _, third) = git_repo
    monkeypatch.setattr("repro.verdicts.history_text.PACKAGE_DIR", repo)
    # Both nights ran at the third commit; the first night's numbers were computed at the first (a reused result).
    entries = (entries_of(record(aa=60.0, commit=first), night("2025-01-01T00:00:00Z", third))
               + entries_of(record(row="normal", clean=10.0, commit=third), night("2025-01-01T00:00:00Z", third))
               + entries_of(record(aa=90.0, commit=third), night("2025-01-02T00:00:00Z", third))
               + entries_of(record(row="normal", clean=10.0, commit=third), night("2025-01-02T00:00:00Z", third)))
    text = render_history(entries)
    moved = [line for line in text.splitlines() if line.startswith("MOVED")]
    assert len(moved) == 1 and "adv autoattack_error" in moved[0] and "60.00 -> 90.00" in moved[0], text
    assert "third" in text and "second" in text, f"commits in between are listed:\n{text}"
    assert "#1" in text and "#2" in text, f"both nights shown:\n{text}"


# --- runs of one row and seed: non-determinism, or different inputs (issue 24 item 2) -----------------

def determinism_lines(first: dict, second: dict) -> list[str]:
    """The lines of render_history's last section, on runs of one row and seed; [] where it has none."""
    lines = render_history(two_nights(first, second)).splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith("runs of one row and seed")), len(lines))
    return lines[start + 1:]


def test_same_inputs_different_weights_is_flagged_as_nondeterminism():
    lines = determinism_lines(hashed(weights="1" * 64), hashed(weights="2" * 64))
    flagged = [line for line in lines if line.startswith("NON-DETERMINISTIC")]
    assert len(flagged) == 1 and "#1" in flagged[0] and "#2" in flagged[0] and "111111" in flagged[0] \
        and "222222" in flagged[0], f"same commit, data, hardware and readings, other weights is a defect naming both: {lines}"


def test_same_weights_say_nothing():
    assert determinism_lines(hashed(), hashed()) == [], "two nights with equal weights need no line"


def test_different_hardware_is_said_not_flagged():
    other = {**HARDWARE, "cpu_capability": "AVX512"}
    lines = determinism_lines(hashed(weights="1" * 64), hashed(weights="2" * 64, hardware=other))
    assert lines and not any(line.startswith("NON-DETERMINISTIC") for line in lines) \
        and any("hardware" in line and "AVX512" in line for line in lines), f"other hardware is said, not flagged: {lines}"


def test_different_data_is_said_not_flagged():
    lines = determinism_lines(hashed(weights="1" * 64), hashed(weights="2" * 64, data="d2"))
    assert lines and not any(line.startswith("NON-DETERMINISTIC") for line in lines) \
        and any("data" in line for line in lines), f"other data is said, not flagged: {lines}"


def test_records_without_hashes_cannot_be_compared():
    lines = determinism_lines(record(), hashed())
    assert any("cannot be compared" in line for line in lines) and not any(
        line.startswith("NON-DETERMINISTIC") for line in lines), f"an older record lacks the hashes: {lines}"


VERSIONS = {"python": "3.11.7", "torch": "2.13.0", "torchvision": "0.28.0", "numpy": "2.1.0"}


def test_other_library_versions_explain_other_weights():
    upgraded = {**VERSIONS, "torch": "2.14.1"}
    kind, why = compare_runs(run_inputs(hashed(weights="1" * 64, versions=VERSIONS)),
                             run_inputs(hashed(weights="2" * 64, versions=upgraded)))
    assert kind == EXPLAINED and "versions: torch 2.13.0 vs 2.14.1" in why, (
        f"a torch upgrade between two runs explains other weights, and is named: {kind}: {why}")


def test_versions_recorded_on_one_run_only_are_not_a_difference():
    kind, why = compare_runs(run_inputs(hashed(weights="1" * 64, versions=VERSIONS)),
                             run_inputs(hashed(weights="2" * 64)))
    assert kind == DEFECT, (f"a run recorded without versions (an older history entry) cannot show other versions: "
                            f"same other inputs, other weights stay a defect: {kind}: {why}")


def test_check_exits_1_on_nondeterminism(tmp_path, capsys):
    path = tmp_path / "history.jsonl"
    append_results(path, [hashed(weights="1" * 64)], run=new_run("night-1") | {"date": "2025-01-01T00:00:00Z"})
    append_results(path, [hashed(weights="2" * 64)], run=new_run("night-2") | {"date": "2025-01-02T00:00:00Z"})
    code = main(["history", "--out", str(tmp_path), "--check"])
    assert code == 1, f"--check fails a night whose weights differ from the same inputs:\n{capsys.readouterr().out}"


def _append_batches(path, worker, batches, barrier):
    barrier.wait()  # both processes start appending at the same moment
    for b in range(batches):
        run = {"run": f"w{worker}-b{b}", "date": "2025-01-01T00:00:00Z", "commit": "c"}
        append_results(path, [record(row=f"row{worker}", seed=s) for s in range(12)], run=run)


def test_two_processes_appending_at_once_keep_every_batch_whole(tmp_path):
    # A batch of 12 records is ~10 KB: more than one buffered write, so without the lock the
    # writers' chunks interleave mid-line.
    path, batches = tmp_path / "history.jsonl", 15
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(2)
    workers = [context.Process(target=_append_batches, args=(path, w, batches, barrier)) for w in (0, 1)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=60)
    assert all(w.exitcode == 0 for w in workers), f"writers failed: {[w.exitcode for w in workers]}"
    lines = path.read_text().splitlines()
    runs = [json.loads(line)["run"] for line in lines]  # a torn line fails to parse here
    blocks = [r for i, r in enumerate(runs) if i == 0 or runs[i - 1] != r]
    assert len(runs) == 2 * batches * 12 * 4, f"{len(runs)} entries, expected {2 * batches * 12 * 4}"
    assert len(blocks) == len(set(blocks)) == 2 * batches, "each batch's lines must be contiguous"


def test_malformed_line_is_named(tmp_path):
    path = tmp_path / "history.jsonl"
    append_results(path, [record()], run=night("2025-01-01T00:00:00Z"))
    with open(path, "a") as f:
        f.write('{"run": "torn\n')
    with pytest.raises(ValueError, match=r"history.jsonl:5 is not a JSON line"):
        read_history(path)


def test_cli_history_shows_both_nights_flags_and_plots(tmp_path, capsys):
    path = tmp_path / "history.jsonl"
    append_results(path, [record(aa=60.0)], run=new_run("night-1") | {"date": "2025-01-01T00:00:00Z"})
    append_results(path, [record(aa=95.0), record(aa=20.0, budget=replace(SMOKE, train_attack_step_size=0.0))],
                   run=new_run("night-2") | {"date": "2025-01-02T00:00:00Z"})
    code = main(["history", "--out", str(tmp_path), "--plot", "--check"])
    out = capsys.readouterr().out
    assert code == 1, "--check exits 1 when a move is flagged"
    assert "MOVED adv autoattack_error" in out and "overrides: train_attack_step_size=0.0" in out, out
    assert not [line for line in out.splitlines() if line.startswith("MOVED") and "train_attack_step_size" in line], \
        f"the overridden run is its own series, not a move of the default's: {out}"
    assert Path(tmp_path / "history.png").stat().st_size > 0, "--plot writes beside the history file"


def test_cli_history_without_a_store_is_one_line(tmp_path, capsys):
    code = main(["history", "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and "no history at" in err and err.count("\n") == 1, err
