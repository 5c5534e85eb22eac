"""The report: Table 2 verdicts from the error model, over one seed or several; claims judged only where they apply."""

import copy
import dataclasses
import json
import math
import re

import pytest

from repro.paper.budgets import PAPER, SMOKE
from repro.paper.configs import CONFIGURATIONS, FROM_NORMAL
from repro.verdicts.claims import claim_rows
from repro.verdicts.report import collect_results, render_markdown, write_report, write_seed_report
from repro.verdicts.table2 import table2_rows
from tests.unit.paper.test_expected import EXPECTED
from tests.unit.verdicts.test_claims import paper_results

PROVENANCE = {"git_commit": "abc", "versions": {"torch": "x"}, "device": "cpu", "data": {
    "dataset": "cifar10", "checksum_status": "verified", "n_train": 50000, "n_test": 10000}}
N_OURS = {"clean_error": 10_000, "robust_error": 1000}  # the paper budget's evaluation sets
STORED = {"clean_error": "clean_error", "robust_error": "autoattack_error"}


def records(shift=0.0, seed=0, attack=("standard", 100)):
    """The paper's numbers as result records of seed `seed`, robust errors from `attack` (version, iterations)."""
    out = paper_results()
    for config_id, record in out.items():
        record["metrics"]["clean_error"] += shift
        record["metrics"].update(pgd_error=50.0, pgd_cross_entropy=1.0, n_clean=N_OURS["clean_error"],
                                 n_robust=N_OURS["robust_error"], autoattack_version=attack[0])
        record["metrics"].setdefault("mean_normalized_weight", 0.0)
        record.update(seed=seed, budget={"name": "paper", "width": 64, "dataset": "cifar10", "autoattack_version": attack[0],
                                         "autoattack_iterations": attack[1]}, provenance=PROVENANCE)
    return out


def tolerance_by_hand(config_id, metric, sd=None, k=1):
    """z * sqrt(paper SE^2 + our SE^2 + SD^2 (1 + 1/k)) + allowance, from the file's numbers (prior SD by default)."""
    model, row = EXPECTED["error_model"], EXPECTED["table2"][config_id]
    p = row[metric]["value"] / 100
    paper_var = 1e4 * p * (1 - p) / model["paper_evaluation_sets"][metric]["n"]
    ours_var = 1e4 * p * (1 - p) / N_OURS[metric]
    sd = model["seed_sd_priors"][row["seed_sd_kind"]][metric]["value"] if sd is None else sd
    sigma = math.sqrt(paper_var + ours_var + sd ** 2 * (1 + 1 / k))
    return model["z"]["value"] * sigma + row[metric]["allowance"], sigma


def shifted(offsets):
    """Paper-number records with each Table 2 metric moved by offsets(config_id, metric)."""
    out = records()
    for config_id, record in out.items():
        for metric, key in STORED.items():
            record["metrics"][key] += offsets(config_id, metric)
    return out


def test_paper_numbers_are_consistent_at_paper_budget():
    verdicts = {r.verdict for r in table2_rows(EXPECTED, {0: records()}, "paper")}
    assert verdicts == {"consistent"}, f"the paper's own numbers must be consistent: {verdicts}"


def test_just_inside_the_tolerance_is_consistent():
    inside = shifted(lambda c, m: -(tolerance_by_hand(c, m)[0] - 0.02))
    wrong = [(r.config_id, r.metric) for r in table2_rows(EXPECTED, {0: inside}, "paper") if r.verdict != "consistent"]
    assert wrong == [], f"0.02 inside the tolerance recomputed by hand must be consistent: {wrong}"


def test_just_outside_the_tolerance_is_inconsistent():
    outside = shifted(lambda c, m: -(tolerance_by_hand(c, m)[0] + 0.02))
    wrong = [(r.config_id, r.metric) for r in table2_rows(EXPECTED, {0: outside}, "paper") if r.verdict != "inconsistent"]
    assert wrong == [], f"0.02 beyond the tolerance recomputed by hand must be inconsistent: {wrong}"


def test_table2_not_judged_at_smoke_budget():
    verdicts = {r.verdict for r in table2_rows(EXPECTED, {0: records(shift=50.0)}, "smoke")}
    assert verdicts == {"not judged"}, f"Table 2 is judged at the paper budget only: {verdicts}"


def test_missing_rows_are_reported():
    partial = records()
    del partial["adv"]
    rows = [r for r in table2_rows(EXPECTED, {0: partial}, "paper") if r.config_id == "adv"]
    assert {r.verdict for r in rows} == {"missing"}, "a missing result must be shown as missing"


ROBUST = "robust: AutoAttack (standard)"  # the robust metric's name where the standard ensemble ran


def markdown_row(markdown, label, metric_name):
    """The cells of report.md's Table 2 line for `label` and metric ("clean" or e.g. ROBUST)."""
    lines = [line for line in markdown.splitlines() if line.startswith(f"| {label} | {metric_name} |")]
    assert lines, f"report.md has no Table 2 line for {label} {metric_name}"
    return [cell.strip() for cell in lines[0].strip("|").split("|")]


def test_markdown_verdict_columns_show_z_interval_and_verdict():
    adv = records()
    adv["adv"]["metrics"]["autoattack_error"] = 58.4 + 12.0
    markdown = render_markdown(EXPECTED, adv, "paper")
    assert "| Model | metric | paper | measured | Δ | σ | tolerance | z | interval | verdict |" in markdown, "columns"
    tolerance, sigma = tolerance_by_hand("adv", "robust_error")
    cells = markdown_row(markdown, "ADV", ROBUST)
    expected = ["70.40", "+12.00", f"{sigma:.2f}", f"±{tolerance:.2f}", f"{12.0 / sigma:+.2f}",
                f"[{58.4 - tolerance:.2f}, {58.4 + tolerance:.2f}]", "inconsistent"]
    assert cells[3:] == expected, f"ADV robust cells {cells[3:]}, expected {expected}"


def separation_notes_of(markdown):
    return [line for line in markdown.splitlines() if line.startswith("- ") and "cannot separate" in line]


def test_paper_values_raise_no_separation_note():
    # Measured = the paper's values at the paper budget's sizes: BN PARAMS 70.5 and BN ONLY PARAMS 85.3 robust
    # differ by 14.8 points, z ~ 8 on the paper's own 1000 images; no pair a claim separates is that close.
    notes = separation_notes_of(render_markdown(EXPECTED, records(), "paper"))
    assert notes == [], f"the paper's own numbers separate every pair its claims separate: {notes}"


def test_rows_our_measurement_cannot_separate_are_said():
    close = records()
    close["bn_params"]["metrics"]["autoattack_error"] = 84.0  # BN ONLY PARAMS: 85.3
    notes = separation_notes_of(render_markdown(EXPECTED, close, "paper"))
    sd = EXPECTED["error_model"]["seed_sd_priors"]["bn_params_fine_tune"]["robust_error"]["value"]  # one seed: the prior
    sigma = math.sqrt(84.0 * 16.0 / 1000 + 85.3 * 14.7 / 1000 + 2 * sd ** 2)  # binomial at the measured rates, n = 1000
    mine = [n for n in notes if n.startswith("- bn_params_more_robust_than_bn_only_params:")]
    assert len(mine) == 1 and "our measurement cannot separate" in mine[0] and f"z = {-1.3 / sigma:+.2f}" in mine[0], (
        f"a 1.3-point difference of our two rows (sigma {sigma:.2f}) must be said to be inseparable: {notes}")


def test_rows_the_papers_own_data_cannot_separate_are_said():
    close = copy.deepcopy(EXPECTED)
    close["table2"]["bn_params"]["robust_error"]["value"] = 83.0  # against BN ONLY PARAMS' 85.3, on 1000 images
    notes = separation_notes_of(render_markdown(close, records(), "paper"))
    z = (83.0 - 85.3) / math.sqrt(83.0 * 17.0 / 1000 + 85.3 * 14.7 / 1000)
    mine = [n for n in notes if n.startswith("- bn_params_more_robust_than_bn_only_params:")]
    assert len(mine) == 1 and "the paper's own data cannot separate" in mine[0] and f"z = {z:+.2f}" in mine[0], (
        f"paper values 2.3 points apart (z = {z:.2f} on its 1000 images) must be said to be inseparable: {notes}")


def test_robust_column_names_apgd_ce_where_apgd_ce_alone_ran():
    markdown = render_markdown(EXPECTED, records(attack=("custom", 50)), "paper")
    cells = markdown_row(markdown, "ADV", "robust: APGD-CE (50 it.)")
    assert cells[2] == "58.40", f"the ADV robust line must name the attack run, APGD-CE with 50 iterations: {cells}"
    assert "AutoAttack (standard)" not in "\n".join(line for line in markdown.splitlines() if line.startswith("| ADV |")), (
        "a 50-iteration APGD-CE number must not be called AutoAttack")


def test_robust_column_names_autoattack_where_the_standard_ensemble_ran():
    markdown = render_markdown(EXPECTED, records(attack=("standard", 100)), "paper")
    assert markdown_row(markdown, "ADV", ROBUST)[2] == "58.40", "the standard ensemble is AutoAttack (standard)"


def test_terminal_names_the_attack_run():
    lines = [line for line in terminal(records(attack=("custom", 20)), "smoke") if line.startswith("ADV ")]
    assert any("APGD-CE (20 it.)" in line for line in lines), f"the terminal's ADV robust line must name APGD-CE: {lines}"


def test_claims_not_applicable_at_budget_say_so():
    verdicts = {c["id"]: v for c, v, _ in claim_rows(EXPECTED, records(), "smoke")}
    assert verdicts["adv_far_more_robust"] == "n/a", "paper-budget claims are not judged at smoke"


def test_markdown_has_provenance_rows_and_claims():
    markdown = render_markdown(EXPECTED, records(), "paper", figures=["figures/figure1.png"])
    for needle in ("checksums verified", "| BN PARAMS + log + conv1 |", "bn_params_lowers_normalized_weight",
                   "![figure1](figures/figure1.png)", "### Error model"):
        assert needle in markdown, f"report.md lacks {needle!r}"


def test_bad_model_fails_claims():
    broken = copy.deepcopy(records())
    broken["bn_params"]["metrics"]["autoattack_error"] = 99.8  # fine-tuning bought nothing
    verdicts = {c["id"]: v for c, v, _ in claim_rows(EXPECTED, broken, "paper")}
    assert verdicts["bn_params_more_robust_than_normal"] == "FAIL", verdicts


def test_report_leaves_out_records_of_other_evaluation_settings(tmp_path):
    other = dataclasses.replace(SMOKE, n_robust=SMOKE.n_robust // 2)
    for config_id, budget in (("normal", SMOKE), ("adv", other)):
        (tmp_path / config_id).mkdir()
        (tmp_path / config_id / "result.json").write_text(json.dumps({"budget": dataclasses.asdict(budget)}))
    assert list(collect_results(tmp_path, SMOKE)) == ["normal"], "one report must not mix evaluation protocols"


def write_runs(folder, results, checksum_status="verified"):
    for config_id, record in results.items():
        record["budget"] = dataclasses.asdict(PAPER)
        record["provenance"] = {**PROVENANCE, "data": {**PROVENANCE["data"], "checksum_status": checksum_status}}
        (folder / config_id).mkdir(parents=True)
        (folder / config_id / "result.json").write_text(json.dumps(record))


def test_unverified_data_is_not_judged_against_table2(tmp_path):
    write_runs(tmp_path, records(), "unverified (x)")
    text, _, _ = write_report(tmp_path, EXPECTED, PAPER)
    labels = tuple(row["label"] for row in EXPECTED["table2"].values())
    judged = [line for line in text.splitlines() if line.startswith(labels) and "consistent" in line]
    assert judged == [], f"Table 2 on data without verified checksums must be shown, not judged:\n{text}"


def test_claims_not_judged_still_show_their_measured_relation():
    rows = {c["id"]: (v, relation) for c, v, relation in claim_rows(EXPECTED, records(), "smoke")}
    verdict, relation = rows["adv_far_more_robust"]
    claim = next(c for c in EXPECTED["claims"] if c["id"] == "adv_far_more_robust")
    where = f"judged at budgets {', '.join(claim['budgets'])}"
    assert verdict == "n/a" and "58.400 <= 79.800" in relation and where in relation, \
        f"an n/a claim must show the measured relation and where it is judged: {relation!r}"


def test_old_records_without_series_say_what_is_missing():
    rows = {c["id"]: (v, relation) for c, v, relation in claim_rows(EXPECTED, records(), "paper")}
    verdict, relation = rows["bn_params_follows_adv_confidence_pgd"]
    assert verdict == "missing" and "bn_params.confidence_pgd" in relation and "adv.confidence_pgd" in relation, \
        f"a claim whose arrays an old result.json lacks must be 'missing' naming them: {verdict} {relation!r}"


def with_series(results, values):
    """Copies of `results` with series set: {(config_id, name): list}."""
    out = copy.deepcopy(results)
    for (config_id, name), value in values.items():
        out[config_id].setdefault("series", {})[name] = value
    return out


def test_distance_claims_are_judged_from_recorded_series():
    follows = with_series(records(), {("adv", "confidence_pgd"): [0.5, 0.6], ("bn_params", "confidence_pgd"): [0.5, 0.7],
                                      ("normal", "confidence_pgd"): [1.0, 1.0]})
    strays = with_series(follows, {("bn_params", "confidence_pgd"): [0.0, 0.0]})
    verdicts = [{c["id"]: v for c, v, _ in claim_rows(EXPECTED, r, "paper")}["bn_params_follows_adv_confidence_pgd"]
                for r in (follows, strays)]
    assert verdicts == ["pass", "FAIL"], f"W1(BN PARAMS, ADV) 0.05 vs NORMAL's 0.45, then 0.55 vs 0.45: {verdicts}"


def test_markdown_claim_cells_escape_table_pipes():
    markdown = render_markdown(EXPECTED, records(), "paper")
    row = next(line for line in markdown.splitlines() if line.startswith("| log_conv1_changes_little |"))
    cells = re.split(r"(?<!\\)\|", row)[1:-1]  # split on unescaped pipes only
    assert len(cells) == 4, f"|diff| must not split the Markdown cell: {row}"
    relation = {c["id"]: r for c, _, r in claim_rows(EXPECTED, records(), "paper")}["log_conv1_changes_little"]
    assert cells[2].strip().replace("\\|", "|") == relation, \
        f"the escaped cell must render as the measured relation, nothing added: {cells[2]!r} vs {relation!r}"


# --- the report over seeds (OUT/BUDGET/report.md) ----------------------------------------------------

@pytest.fixture
def three_seeds(tmp_path):
    """Paper-budget runs of seeds 0-2; NORMAL's clean error 4.11 - 1, 4.11, 4.11 + 1; ADV lacks seed 2."""
    for seed, offset in ((0, -1.0), (1, 0.0), (2, 1.0)):
        results = records(seed=seed)
        results["normal"]["metrics"]["clean_error"] += offset
        if seed == 2:
            del results["adv"]
        write_runs(tmp_path / f"seed{seed}", results)
    return tmp_path


def test_seed_report_shows_mean_and_sd_and_judges_with_measured_spread(three_seeds):
    text, path, _ = write_seed_report(three_seeds, [0, 1, 2], EXPECTED, PAPER)
    assert path == three_seeds / "report.md", f"the report over seeds lives in OUT/BUDGET: {path}"
    cells = markdown_row(path.read_text(), "NORMAL", "clean")
    tolerance, _ = tolerance_by_hand("normal", "clean_error", sd=1.0, k=3)  # measured SD of 3.11, 4.11, 5.11
    assert cells[3] == "4.11 ± 1.00 (3 seeds)" and cells[6] == f"±{tolerance:.2f}", (
        f"NORMAL clean: mean ± SD over three seeds and a tolerance from their SD, got {cells}")


def test_seed_report_names_a_missing_seed_instead_of_averaging_fewer(three_seeds):
    _, path, _ = write_seed_report(three_seeds, [0, 1, 2], EXPECTED, PAPER)
    markdown = path.read_text()
    cells = markdown_row(markdown, "ADV", "clean")
    assert cells[3] == "— (no seed 2)" and cells[-1] == "missing", f"ADV lacks seed 2: {cells}"
    claims = [line for line in markdown.splitlines() if line.startswith("| adv_far_more_robust |")]
    assert claims and "| missing | adv lacks seed 2 |" in claims[0], f"a claim on ADV must say seed 2 is missing: {claims}"
    assert "- adv: no result for seed 2" in markdown, "the header must list the missing seed"


def test_seed_report_judges_claims_on_seed_means(three_seeds):
    results = records(seed=0)
    _, path, _ = write_seed_report(three_seeds, [0, 1], EXPECTED, PAPER)
    line = next(line for line in path.read_text().splitlines() if line.startswith("| adv_pays_clean_error |"))
    mean_normal = results["normal"]["metrics"]["clean_error"] - 0.5  # seeds 0 and 1: 3.11 and 4.11
    assert f"{mean_normal + 5:.3f}" in line, f"claims must read NORMAL's seed mean {mean_normal:.2f}: {line}"


def test_claim_not_expected_at_a_small_budget_shows_its_outcome_and_the_stated_reason():
    claim = next(c for c in EXPECTED["claims"] if not c["scale_expectations"]["cifar_cpu"]["holds"]
                 and c["id"] == "bn_params_less_robust_than_adv")
    results = records()  # the paper's numbers: BN PARAMS 70.5 >= ADV 58.4 + 5 holds
    rows = {c["id"]: (v, relation) for c, v, relation in claim_rows(EXPECTED, results, "cifar_cpu")}
    verdict, relation = rows[claim["id"]]
    reason = claim["scale_expectations"]["cifar_cpu"]["reason"]
    assert verdict == "n/a" and ": holds (not expected to hold at cifar_cpu: " in relation and reason in relation, (
        f"a claim expected not to hold at cifar_cpu must show whether it held and the reason stated beforehand: {relation!r}")
    results["bn_params"]["metrics"]["autoattack_error"] = 58.4
    relation = {c["id"]: r for c, _, r in claim_rows(EXPECTED, results, "cifar_cpu")}[claim["id"]]
    assert ": does not hold (not expected" in relation, f"BN PARAMS = ADV breaks the relation: {relation!r}"


# --- runs of one row and seed in the report (issue 24 item 2) ---------------------------------------

HARDWARE = {"cpu_model": "Test CPU", "cpu_capability": "AVX2", "cpu_bf16": [], "machine": "x86_64", "torch_threads": 2}
FINE_TUNED = [c.id for c in CONFIGURATIONS.values() if c.init == FROM_NORMAL]


def write_hashed_runs(folder, seed, started_from=None, hardware=None):
    """Paper-budget runs of `seed` whose records carry the hardware, data and weight hashes; every fine-tuning
    row started from NORMAL's recorded weights unless `started_from` ({row: weights}) says otherwise;
    `hardware` ({row: hardware}) replaces a row's."""
    results = records(seed=seed)
    for config_id, record in results.items():
        weights = "normal-weights" if config_id == "normal" else f"{config_id}-weights"
        provenance = {**PROVENANCE, "hardware": (hardware or {}).get(config_id, HARDWARE),
                      "data_sha256": {"train_sha256": "d", "test_sha256": "t"}, "weights_sha256": weights}
        if config_id in FINE_TUNED:
            provenance["initial_weights_sha256"] = (started_from or {}).get(config_id, "normal-weights")
        record.update(budget=dataclasses.asdict(PAPER), provenance=provenance)
        (folder / f"seed{seed}" / config_id).mkdir(parents=True)
        (folder / f"seed{seed}" / config_id / "result.json").write_text(json.dumps(record))


def runs_section(markdown: str) -> list[str]:
    """The items of the report's section on runs of one row and seed ([] where it has none)."""
    lines = markdown.splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith("### Runs of one row and seed")), None)
    if start is None:
        return []
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("#")), len(lines))
    return [line for line in lines[start + 1:end] if line.startswith("- ")]


def test_a_fine_tuning_row_started_from_another_normal_of_the_same_inputs_is_flagged(tmp_path):
    write_hashed_runs(tmp_path, 0)
    write_hashed_runs(tmp_path, 1, started_from={"bn_params_log_conv1": "retrained-normal"})
    _, path, _ = write_seed_report(tmp_path, [0, 1], EXPECTED, PAPER)
    lines = runs_section(path.read_text())
    flagged = [line for line in lines if "NON-DETERMINISTIC" in line]
    assert len(flagged) == 1 and "seed1/normal/result.json" in flagged[0] and \
        "seed1/bn_params_log_conv1/result.json" in flagged[0], f"both records must be named: {lines}"


def test_another_normal_on_other_hardware_is_said_not_flagged(tmp_path):
    write_hashed_runs(tmp_path, 0, started_from={"bn_params": "retrained-normal"},
                      hardware={"bn_params": {**HARDWARE, "cpu_capability": "AVX512"}})
    _, path, _ = write_seed_report(tmp_path, [0], EXPECTED, PAPER)
    lines = runs_section(path.read_text())
    assert lines and not any("NON-DETERMINISTIC" in line for line in lines) and \
        any("seed0/bn_params/result.json" in line and "AVX512" in line for line in lines), \
        f"a NORMAL retrained on other hardware is said, not flagged: {lines}"


def test_fine_tuning_rows_started_from_their_seeds_normal_need_no_line(tmp_path):
    write_hashed_runs(tmp_path, 0)
    _, path, _ = write_seed_report(tmp_path, [0], EXPECTED, PAPER)
    assert runs_section(path.read_text()) == [], "every fine-tuning row started from the NORMAL recorded beside it"


def test_records_without_hashes_are_said_to_be_incomparable(three_seeds):
    _, path, _ = write_seed_report(three_seeds, [0, 1], EXPECTED, PAPER)
    lines = runs_section(path.read_text())
    assert len(lines) == 1 and "cannot be compared" in lines[0], f"older records lack the hashes; one line says so: {lines}"


# --- the summary lines (issue 22): what was judged at this budget, and what failed ---------------

def terminal(results, budget_name, table2_name=None):
    from repro.verdicts.report import render_terminal

    return render_terminal(EXPECTED, results, budget_name, table2_name).splitlines()


def smoke_records():
    """Paper-number records on which every claim judged at smoke holds (ADV buys PGD robustness)."""
    out = records()
    out["adv"]["metrics"]["pgd_error"] = 30.0
    return out


def test_claims_section_opens_with_what_was_judged_at_this_budget_and_lists_those_first():
    lines = terminal(smoke_records(), "smoke")
    judged_here = [c for c in EXPECTED["claims"] if "smoke" in c["budgets"]]
    first = next(i for i, line in enumerate(lines) if line.startswith("claims:"))
    assert lines[first] == (f"claims: {len(judged_here)} judged at smoke: {len(judged_here)} hold; "
                            f"{len(EXPECTED['claims']) - len(judged_here)} judged at other budgets, shown below for "
                            "information"), lines[first]
    listed = [line.split()[1].rstrip(":") for line in lines[first + 1:first + 1 + len(judged_here)]]
    assert listed == [c["id"] for c in judged_here], f"the claims judged at smoke must come first: {listed}"
    assert not any(line.startswith("n/a") for line in lines[:first + len(judged_here) + 1]), \
        "a claim not judged at this budget is listed before the judged ones"


def test_claims_summary_counts_a_failed_claim():
    broken = smoke_records()
    broken["normal"]["metrics"]["clean_error"] = 60.0  # normal_learns (smoke) fails; 60 % is far from chance
    summary = next(line for line in terminal(broken, "smoke") if line.startswith("claims:"))
    assert summary.startswith("claims: 3 judged at smoke: 2 hold, 1 FAIL;"), f"the failed claim is not counted: {summary}"


def test_table2_summary_counts_judged_and_inconsistent_metrics():
    lines = terminal(shifted(lambda c, m: 60.0 if (c, m) == ("adv", "clean_error") else 0.0), "paper")
    summary = next(line for line in lines if line.startswith("Table 2:"))
    assert summary == "Table 2: 22 metrics judged at paper: 21 consistent with the paper, 1 inconsistent", summary


def test_table2_summary_says_when_nothing_is_judged():
    summary = next(line for line in terminal(records(), "smoke") if line.startswith("Table 2:"))
    assert summary == "Table 2: 22 metrics shown, not judged at smoke (judged at paper only)", summary


def test_terminal_ends_with_both_summaries():
    lines = terminal(records(), "smoke")
    assert lines[-3] == "in short:" and lines[-2].strip().startswith("Table 2:") and \
        lines[-1].strip().startswith("claims:"), lines[-3:]


# --- acceleration modes and old records (issue 27 item 5, issue 22: old result folders still load) ---

def write_mode_runs(folder, modes: dict, selfcheck: dict | None):
    """Paper-number records of the paper budget run with `modes` switched on, with or without a selfcheck."""
    for config_id, record in records().items():
        record["budget"] = {**dataclasses.asdict(PAPER), **modes}
        record["provenance"] = {**PROVENANCE, **({"selfcheck": selfcheck} if selfcheck else {})}
        (folder / config_id).mkdir(parents=True)
        (folder / config_id / "result.json").write_text(json.dumps(record))


def test_a_selfcheck_approved_mode_is_judged_against_table2(tmp_path):
    write_mode_runs(tmp_path, {"compile": True}, selfcheck={"mode": "compiled", "compile": True})
    text, _, _ = write_report(tmp_path, EXPECTED, dataclasses.replace(PAPER, compile=True))
    summary = next(line for line in text.splitlines() if line.startswith("Table 2:"))
    assert summary.startswith("Table 2: 22 metrics judged at paper:"), \
        f"a mode a selfcheck approved is the protocol run faster, and judged: {summary}"


def test_a_mode_no_selfcheck_approved_is_not_judged(tmp_path):
    write_mode_runs(tmp_path, {"bf16": True}, selfcheck=None)
    text, _, _ = write_report(tmp_path, EXPECTED, dataclasses.replace(PAPER, bf16=True))
    summary = next(line for line in text.splitlines() if line.startswith("Table 2:"))
    assert "not judged" in summary and "bf16 not approved by a selfcheck" in summary, summary


def test_a_report_without_the_selfcheck_still_finds_the_runs_it_approved(tmp_path):
    write_mode_runs(tmp_path, {"compile": True, "channels_last": True}, selfcheck={"mode": "compiled"})
    found = collect_results(tmp_path, PAPER)
    assert len(found) == len(EXPECTED["table2"]), \
        f"`repro report` without --selfcheck must not drop the rows a selfcheck-approved mode ran: {list(found)}"


def test_records_written_before_a_budget_field_existed_still_load(tmp_path):
    old = {k: v for k, v in dataclasses.asdict(PAPER).items() if k != "channels_last"}  # before issue 28
    (tmp_path / "normal").mkdir()
    (tmp_path / "normal" / "result.json").write_text(json.dumps({"budget": old}))
    assert list(collect_results(tmp_path, PAPER)) == ["normal"], "a record without channels_last must load"
    assert "channels_last" not in PAPER.identity(), "results of the default must keep the identity they had"
    assert dataclasses.replace(PAPER, channels_last=True).identity()["channels_last"] is True, \
        "a record evaluated with channels_last on must not be reused for one without"
