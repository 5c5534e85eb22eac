"""The report: Table 2 verdicts follow the tolerances; claims are judged only where they apply."""

import copy
import re
import dataclasses
import json

from repro.budgets import PAPER, SMOKE
from repro.report import claim_rows, collect_results, render_markdown, table2_rows, write_report
from tests.unit.test_expected import EXPECTED, paper_results

PROVENANCE = {"git_commit": "abc", "versions": {"torch": "x"}, "device": "cpu", "data": {
    "dataset": "cifar10", "checksum_status": "verified", "n_train": 50000, "n_test": 10000}}


def records(shift=0.0):
    out = paper_results()
    for config_id, record in out.items():
        record["metrics"]["clean_error"] += shift
        record["metrics"].update(pgd_error=50.0, pgd_cross_entropy=1.0)
        record["metrics"].setdefault("mean_normalized_weight", 0.0)
        record.update(seed=0, budget={"name": "paper", "width": 64, "dataset": "cifar10"}, provenance=PROVENANCE)
    return out


def test_paper_numbers_pass_at_paper_budget():
    verdicts = {r.verdict for r in table2_rows(EXPECTED, records(), "paper")}
    assert verdicts == {"pass"}, f"the paper's own numbers must pass: {verdicts}"


def test_shifted_numbers_fail():
    failed = [r for r in table2_rows(EXPECTED, records(shift=6.0), "paper") if r.verdict == "FAIL"]
    assert len(failed) == 11, f"a 6-point clean-error shift must fail every clean row, failed {len(failed)}"


def test_table2_not_judged_at_smoke_budget():
    verdicts = {r.verdict for r in table2_rows(EXPECTED, records(shift=50.0), "smoke")}
    assert verdicts == {"n/a"}, f"Table 2 tolerances apply at the paper budget only: {verdicts}"


def test_missing_rows_are_reported():
    partial = records()
    del partial["adv"]
    rows = [r for r in table2_rows(EXPECTED, partial, "paper") if r.config_id == "adv"]
    assert {r.verdict for r in rows} == {"missing"}, "a missing result must be shown as missing"


def test_claims_not_applicable_at_budget_say_so():
    verdicts = {c["id"]: v for c, v, _ in claim_rows(EXPECTED, records(), "smoke")}
    assert verdicts["adv_far_more_robust"] == "n/a", "paper-budget claims are not judged at smoke"


def test_markdown_has_provenance_rows_and_claims():
    markdown = render_markdown(EXPECTED, records(), "paper", figures=["figures/figure1.png"])
    for needle in ("checksums verified", "| BN PARAMS + log + conv1 |", "bn_params_lowers_normalized_weight",
                   "![figure1](figures/figure1.png)"):
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


def test_unverified_data_is_not_judged_against_table2(tmp_path):
    for config_id, record in records().items():
        record["budget"] = dataclasses.asdict(PAPER)
        record["provenance"] = {**PROVENANCE, "data": {**PROVENANCE["data"], "checksum_status": "unverified (x)"}}
        (tmp_path / config_id).mkdir()
        (tmp_path / config_id / "result.json").write_text(json.dumps(record))
    text, _ = write_report(tmp_path, EXPECTED, PAPER)
    labels = tuple(row["label"] for row in EXPECTED["table2"].values())
    judged = [line for line in text.splitlines() if line.startswith(labels) and ("pass" in line or "FAIL" in line)]
    assert judged == [], f"Table 2 on data without verified checksums must be shown, not judged:\n{text}"


def test_claims_not_judged_still_show_their_measured_relation():
    rows = {c["id"]: (v, relation) for c, v, relation in claim_rows(EXPECTED, records(), "smoke")}
    verdict, relation = rows["adv_far_more_robust"]
    assert verdict == "n/a" and "58.400 <= 79.800" in relation and "judged at budgets paper" in relation, \
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
