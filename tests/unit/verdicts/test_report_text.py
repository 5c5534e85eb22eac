"""What a reader of the rendered report sees: its sections and tables, the provenance header, the summary
lines, the rows and seeds it names, where each row was heading, and what the written reports read and show.

Pinned from the text itself (issue 26: 207 mutants of repro/verdicts/report.py survived because the tests
read verdicts, not the words, numbers and layout around them). Records are built by hand; nothing trains.
"""

import copy
import dataclasses
import json
import re

import pytest

from repro.paper.budgets import PAPER, SMOKE
from repro.paper.configs import CONFIGURATIONS
from repro.runs.curves import pack_wrong
from repro.verdicts.claims import claim_rows
from repro.verdicts.report import (
    collect_results,
    render_markdown,
    render_terminal,
    write_report,
    write_seed_report,
)
from repro.verdicts.report_text import provenance_lines
from tests.unit.paper.test_expected import EXPECTED
from tests.unit.verdicts.test_report import PROVENANCE, markdown_row, records, smoke_records, terminal, write_runs

TITLE = "# Reproduction report: On Fragile Features and Batch Normalization in Adversarial Training"
LABELS = [c.label for c in CONFIGURATIONS.values()]


def paper_inseparable():
    """The expected results with BN PARAMS' robust error 2.3 points from BN ONLY PARAMS': a claim separates
    two rows the paper's own 1000 images cannot, so the report has a section saying so."""
    out = copy.deepcopy(EXPECTED)
    out["table2"]["bn_params"]["robust_error"]["value"] = 83.0
    return out


def one_seed_markdown():
    """report.md of one seed at smoke with every section: notes, runs, learning curves and a figure."""
    return render_markdown(paper_inseparable(), records(), "smoke", figures=["figures/figure1.png"])


def three_seed_markdown(folder):
    """report.md over seeds 0-2 at the paper budget (OUT/BUDGET/report.md)."""
    for seed in (0, 1, 2):
        write_runs(folder / f"seed{seed}", records(seed=seed))
    _, path, _ = write_seed_report(folder, [0, 1, 2], paper_inseparable(), PAPER)
    return path.read_text()


def headings(markdown):
    return [line for line in markdown.splitlines() if line.startswith("#")]


# --- the Markdown report's layout -------------------------------------------------------------------

@pytest.mark.parametrize("seeds", ["one", "three"])
def test_markdown_outline_names_each_section_and_what_its_numbers_are(seeds, tmp_path):
    markdown = one_seed_markdown() if seeds == "one" else three_seed_markdown(tmp_path)
    over = "" if seeds == "one" else ", mean ± SD over seeds 0, 1, 2"
    claims_on = "" if seeds == "one" else " (on seed means)"
    expected = [TITLE, f"## Table 2 (errors in %{over})", "### Error model",
                "### Rows a claim separates that the data cannot", "### Runs of one row and seed",
                f"## Claims{claims_on}", "## Learning curves: where each row was heading"]
    expected += ["## Figures"] if seeds == "one" else []
    assert headings(markdown) == expected, (
        f"report.md must open with the paper's title and name each section, saying when Table 2 is mean ± SD over "
        f"which seeds and when the claims read seed means: {headings(markdown)}")
    assert markdown.startswith(TITLE + "\n"), "the title is the report's first line"


def block_kind(block):
    """What a blank-line-separated block of report.md renders as, or None for a block that mixes kinds."""
    if len(block) == 1 and block[0].startswith("#"):
        return "heading"
    for kind, starts in (("list", "- "), ("figures", "!["), ("summary", "**")):
        if all(line.startswith(starts) for line in block):
            return kind
    if all(line.startswith("|") and line.endswith("|") for line in block):
        return "table"
    return "paragraph" if len(block) == 1 and not block[0].startswith(("#", "|", "- ")) else None


@pytest.mark.parametrize("seeds", ["one", "three"])
def test_markdown_blocks_are_separated_by_blank_lines(seeds, tmp_path):
    markdown = one_seed_markdown() if seeds == "one" else three_seed_markdown(tmp_path)
    assert markdown.endswith("\n") and not markdown.endswith("\n\n"), "report.md ends with one newline"
    blocks = [block.split("\n") for block in markdown[:-1].split("\n\n")]
    assert all(all(block) for block in blocks), "two blank lines in a row, or a block that opens or ends blank"
    mixed = [block for block in blocks if block_kind(block) is None]
    assert mixed == [], (
        "every block of report.md must be one heading, one list, one table, the figures, the bold summaries or a "
        f"one-line paragraph, so nothing runs into its neighbour (a list swallowing the next line, a sentence "
        f"before a table) and no stray line appears: {mixed}")


def test_markdown_tables_name_their_columns_and_render():
    lines = one_seed_markdown().splitlines()
    tables = [(lines[i], lines[i + 1]) for i, line in enumerate(lines)
              if line.startswith("| Model | metric | paper |") or line.startswith("| claim |")]
    assert tables == [
        ("| Model | metric | paper | measured | Δ | σ | tolerance | z | interval | verdict |",
         "|---|---|---:|---:|---:|---:|---:|---:|---|---|"),
        ("| claim | verdict | relation (measured) | paper's sentence |", "|---|---|---|---|"),
    ], f"Table 2 and the claims table must name their columns and have the delimiter row that makes them tables: {tables}"


def test_markdown_says_where_the_robust_errors_come_from():
    markdown = render_markdown(EXPECTED, records(attack=("custom", 50)), "paper")
    n = EXPECTED["error_model"]["paper_evaluation_sets"]["robust_error"]["n"]
    sentence = (f"Robust errors: ours from APGD-CE (50 it.), the paper's from AutoAttack (standard) on its first {n} "
                "test images (Section 3.2).")
    assert sentence in markdown.splitlines(), (
        f"report.md must say which attack gave our robust errors and which, on how many images, the paper's: {sentence}")


@pytest.mark.parametrize("budget, said", [("smoke", True), ("paper", False)])
def test_markdown_says_table2_is_shown_not_judged_only_where_it_is_not_judged(budget, said):
    lines = render_markdown(EXPECTED, records(), budget).splitlines()
    sentence = "Verdicts apply at budgets paper only; at budget smoke the numbers are shown, not judged."
    found = [line for line in lines if line.startswith("Verdicts apply")]
    assert found == ([sentence] if said else []), (
        f"at {budget} Table 2 is {'not ' if said else ''}judged; the sentence saying it is shown, not judged, "
        f"must appear exactly where it is true: {found}")


def test_table2_names_every_budget_its_verdicts_apply_at():
    expected = copy.deepcopy(EXPECTED)
    expected["table2_budgets"] = ["paper", "paper_long"]
    markdown = render_markdown(expected, records(), "smoke")
    assert "Verdicts apply at budgets paper, paper_long only; at budget smoke the numbers are shown, not judged." in \
        markdown.splitlines(), "the sentence must list both budgets Table 2 is judged at"
    summary = next(line for line in render_terminal(expected, records(), "smoke").splitlines() if line.startswith("Table 2:"))
    assert summary == "Table 2: 22 metrics shown, not judged at smoke (judged at paper, paper_long only)", summary


def test_markdown_sections_say_what_they_list():
    lines = one_seed_markdown().splitlines()
    for sentence in ("NORMAL's record beside the NORMAL each fine-tuning row started from (repro/verdicts/determinism.py):",
                     "The curve's last epoch (repro/verdicts/trends.py); reported, never used to select weights."):
        assert sentence in lines, f"report.md must introduce its section with {sentence!r}"


# --- the provenance header ----------------------------------------------------------------------

def test_provenance_lists_every_seed_device_commit_version_data_and_reading():
    results = records()
    other = {"git_commit": "def", "device": "cuda (NVIDIA H200)", "versions": {"torch": "2.4.0", "numpy": "1.26"},
             "data": {**PROVENANCE["data"], "checksum_status": "unverified (no network)"}}
    for config_id in ("adv", "bn_params"):
        results[config_id].update(seed=1, provenance=other, variants={"attack_bn": "eval"})
    results["normal"]["provenance"] = {**PROVENANCE, "versions": {"torch": "2.3.0", "numpy": "1.26"}}
    lines = render_terminal(EXPECTED, results, "smoke").splitlines()[2:9]
    assert lines == [
        "budget: paper (width 64, dataset cifar10)",
        "seeds: 0, 1",
        "device: cpu, cuda (NVIDIA H200)",
        "code: abc, def",
        "versions: torch 2.3.0, numpy 1.26; torch 2.4.0, numpy 1.26; torch x",
        "data: cifar10, checksums unverified (no network), 50000 train images; cifar10, checksums verified, 50000 train images",
        "readings: attack_bn=eval; defaults (see `repro variants`)",
    ], "the header must name every seed, device, commit, set of library versions, data status and set of readings " \
       f"the results came from, not only the first record's: {lines}"


def test_a_run_folder_with_one_result_shows_its_provenance():
    lines = render_terminal(EXPECTED, {"normal": records()["normal"]}, "smoke").splitlines()[2:]
    assert lines[:2] == ["budget: paper (width 64, dataset cifar10)", "seeds: 0"], \
        f"a folder where only NORMAL has finished must still be reported with its provenance: {lines[:2]}"


def test_provenance_lines_take_results_by_id_or_as_a_list():
    results = records()
    assert provenance_lines(results) == provenance_lines(list(results.values())), \
        "provenance_lines is documented to take the records keyed by configuration id, or as a list"


def test_an_empty_run_folder_is_reported_without_results(tmp_path):
    text, path, _ = write_report(tmp_path, EXPECTED, PAPER)
    markdown = path.read_text()
    assert text.splitlines()[2] == "no results found" and "- no results found" in markdown.splitlines(), (
        f"a folder without result.json must say it found none: {text.splitlines()[2]!r}")
    assert next(line for line in text.splitlines() if line.startswith("Table 2:")) == \
        "Table 2: 0 metrics judged at paper: 0 consistent with the paper, 0 inconsistent (22 missing)", \
        "every Table 2 metric of an empty folder is missing"
    assert markdown_row(markdown, "ADV", "clean")[3:] == ["—"] * 6 + ["missing"], "nothing measured, nothing judged"


# --- which rows and seeds the report names ---------------------------------------------------------

def test_a_row_without_any_result_shows_dashes_and_missing():
    partial = records()
    del partial["adv"]
    for metric in ("clean", "robust: AutoAttack (standard)"):
        cells = markdown_row(render_markdown(EXPECTED, partial, "paper"), "ADV", metric)
        assert cells[3:] == ["—"] * 6 + ["missing"], (
            f"ADV was not run: measured, Δ, σ, tolerance, z and interval must be dashes and the verdict missing: {cells}")


@pytest.fixture
def adv_in_seed0_only(tmp_path):
    for seed in (0, 1, 2):
        results = records(seed=seed)
        if seed:
            del results["adv"]
        write_runs(tmp_path / f"seed{seed}", results)
    return tmp_path


def test_a_row_lacking_several_seeds_names_them_all(adv_in_seed0_only):
    _, path, _ = write_seed_report(adv_in_seed0_only, [0, 1, 2], EXPECTED, PAPER)
    markdown = path.read_text()
    assert "- adv: no result for seed 1, 2" in markdown.splitlines(), "the header must list both seeds ADV lacks"
    assert markdown_row(markdown, "ADV", "clean")[3] == "— (no seed 1, 2)", "ADV's measured cell must name seeds 1 and 2"


def test_a_row_never_run_is_said_to_have_no_result_not_to_lack_seeds(tmp_path):
    for seed in (0, 1):
        results = records(seed=seed)
        del results["adv"]
        write_runs(tmp_path / f"seed{seed}", results)
    _, path, _ = write_seed_report(tmp_path, [0, 1], EXPECTED, PAPER)
    lines = path.read_text().splitlines()
    assert not any(line.startswith("- adv:") for line in lines), "the header lists rows lacking some seeds, not rows never run"
    claim = next(line for line in lines if line.startswith("| adv_far_more_robust |"))
    assert "| missing | no result for adv |" in claim, f"a claim on a row never run must say it has no result: {claim}"


@pytest.mark.parametrize("render", ["markdown", "terminal", "write_report"])
def test_a_run_folder_of_another_seed_reports_that_seed(render, tmp_path):
    results = records(seed=3)
    if render == "markdown":
        text = render_markdown(EXPECTED, results, "paper")
    elif render == "terminal":
        text = render_terminal(EXPECTED, results, "paper")
    else:
        write_runs(tmp_path, results)
        text, _, _ = write_report(tmp_path, EXPECTED, PAPER)
    assert "seeds: 3" in text and "Table 2: 22 metrics judged at paper: 22 consistent" in text, (
        f"a seed-3 run folder must be reported as seed 3 with its results, not as a missing seed 0:\n{text[:600]}")


@pytest.mark.parametrize("write", ["write_report", "write_seed_report"])
def test_written_reports_leave_out_rows_evaluated_under_other_settings(write, tmp_path):
    folder = tmp_path / "seed0" if write == "write_seed_report" else tmp_path
    write_runs(folder, records())
    adv = folder / "adv" / "result.json"
    other = json.loads(adv.read_text())
    other["budget"]["n_robust"] //= 2
    adv.write_text(json.dumps(other))
    _, path, _ = (write_seed_report(tmp_path, [0], EXPECTED, PAPER) if write == "write_seed_report"
               else write_report(tmp_path, EXPECTED, PAPER))
    assert markdown_row(path.read_text(), "ADV", "clean")[-1] == "missing", \
        "ADV evaluated on half the robust images is another protocol: the report must leave it out, not judge it"


def test_a_record_without_a_budget_is_left_out_of_a_budgeted_report(tmp_path):
    (tmp_path / "normal").mkdir()
    (tmp_path / "normal" / "result.json").write_text(json.dumps({"seed": 0}))
    assert collect_results(tmp_path, SMOKE) == {} and list(collect_results(tmp_path)) == ["normal"], \
        "a result.json without its budget cannot be of the budget asked for; it is left out, not a crash"


@pytest.mark.parametrize("write", ["write_report", "write_seed_report"])
def test_written_reports_judge_at_the_budget_they_are_given(write, tmp_path):
    write_runs(tmp_path / "seed0" if write == "write_seed_report" else tmp_path, records())
    text, _, _ = (write_seed_report(tmp_path, [0], EXPECTED, PAPER) if write == "write_seed_report"
               else write_report(tmp_path, EXPECTED, PAPER))
    lines = text.splitlines()
    at_paper = len([c for c in EXPECTED["claims"] if "paper" in c["budgets"]])
    claims = next(line for line in lines if line.startswith("claims: "))
    counted = re.match(r"claims: (\d+) judged at paper: .*; (\d+) not judged \(", claims)
    assert any(line.startswith("Table 2: 22 metrics judged at paper:") for line in lines) and counted and \
        sum(map(int, counted.groups())) == at_paper, (
            f"a report written for the paper budget must judge Table 2 and its {at_paper} claims at it (judged or "
            f"not judged for missing inputs):\n{claims}")


@pytest.mark.parametrize("status, modes, judged_at", [
    ("unverified (x)", {}, "paper (data without verified checksums)"),
    ("unverified (x)", {"bf16": True}, "paper (data without verified checksums) (with bf16 not approved by a selfcheck)"),
    ("verified", {"bf16": True, "compile": True}, "paper (with bf16, compile not approved by a selfcheck)"),
])
def test_table2_summary_says_why_it_is_not_judged(status, modes, judged_at, tmp_path):
    for config_id, record in records().items():
        record["budget"] = {**dataclasses.asdict(PAPER), **modes}
        record["provenance"] = {**PROVENANCE, "data": {**PROVENANCE["data"], "checksum_status": status}}
        (tmp_path / config_id).mkdir()
        (tmp_path / config_id / "result.json").write_text(json.dumps(record))
    text, _, _ = write_report(tmp_path, EXPECTED, dataclasses.replace(PAPER, **modes))
    summary = next(line for line in text.splitlines() if line.startswith("Table 2:"))
    assert summary == f"Table 2: 22 metrics shown, not judged at {judged_at} (judged at paper only)", (
        f"Table 2's summary must give every reason it is not judged: {summary}")


def test_write_report_shows_the_run_folders_figures(tmp_path):
    write_runs(tmp_path, records())
    (tmp_path / "figures").mkdir()
    for name in ("figure1.png", "figure3.png", "notes.txt"):
        (tmp_path / "figures" / name).write_bytes(b"")
    _, path, _ = write_report(tmp_path, EXPECTED, PAPER)
    lines = path.read_text().splitlines()
    shown = lines[lines.index("## Figures") + 2:] if "## Figures" in lines else []
    assert shown == ["![figure1](figures/figure1.png)", "![figure3](figures/figure3.png)"], \
        f"report.md must show the folder's figures (PNGs only) by their path relative to it: {shown}"


# --- the summary lines ------------------------------------------------------------------------------

@pytest.mark.parametrize("budget, summary", [
    ("paper", "Table 2: 20 metrics judged at paper: 20 consistent with the paper, 0 inconsistent (2 missing)"),
    ("smoke", "Table 2: 20 metrics shown, not judged at smoke (judged at paper only) (2 missing)"),
])
def test_table2_summary_counts_missing_metrics_apart(budget, summary):
    partial = records()
    del partial["adv"]
    found = next(line for line in terminal(partial, budget) if line.startswith("Table 2:"))
    assert found == summary, f"ADV's two metrics are missing: neither shown nor judged, and counted apart: {found}"


def test_claims_summary_counts_claims_missing_inputs():
    results = smoke_records()
    verdicts = [v for _, v, _ in claim_rows(EXPECTED, results, "paper")]
    n = {v: verdicts.count(v) for v in ("pass", "FAIL", "missing")}
    assert n["missing"] and not n["FAIL"], f"precondition: some claims lack inputs (old records), none fails: {n}"
    summary = next(line for line in terminal(results, "paper") if line.startswith("claims:"))
    assert summary == (f"claims: {n['pass']} judged at paper: {n['pass']} hold; {n['missing']} not judged "
                       f"({n['missing']} missing inputs)"), (
        f"claims missing inputs are not judged: counted apart from those judged, never as judged: {summary}")


# --- the terminal report ----------------------------------------------------------------------------

def test_terminal_sections_open_after_a_blank_line():
    lines = terminal(smoke_records(), "smoke")
    opened = [lines[i + 1] for i, line in enumerate(lines) if line == ""]
    assert [line.split(":")[0] for line in opened] == [
        "budget", "Table 2", "runs of one row and seed (NORMAL beside the NORMAL each fine-tuning row started from)", "claims",
        "judged at other budgets, for information (n/a at smoke)", "where each row was heading (learning curve, last epoch)",
        "in short"], f"each section must open, after one blank line, with the words that say what it lists: {opened}"
    assert "" not in opened, "one blank line between sections, never two"


def test_terminal_table2_header_names_its_columns():
    lines = terminal(records(), "smoke")
    header = lines[lines.index("Table 2: 22 metrics shown, not judged at smoke (judged at paper only)") + 1]
    assert header.split() == ["Model", "metric", "paper", "measured", "Δ", "tol", "z", "interval", "verdict"], header


def test_terminal_lists_each_claim_once_under_where_it_is_judged():
    lines = terminal(smoke_records(), "smoke")
    verdicts = {c["id"]: v for c, v, _ in claim_rows(EXPECTED, smoke_records(), "smoke")}
    start = lines.index("judged at other budgets, for information (n/a at smoke):")
    end = lines.index("", start)
    others = [line.split()[1].rstrip(":") for line in lines[start + 1:end]]
    assert others == [c for c, v in verdicts.items() if v == "n/a"], \
        f"every claim not judged at smoke, and only those, must be listed under 'judged at other budgets': {others}"
    listed = [line.split()[1].rstrip(":") for line in lines if line.split()[:1] and line.split()[0] in ("pass", "FAIL",
                                                                                                   "missing", "n/a")]
    assert sorted(listed) == sorted(verdicts), f"every claim is listed exactly once: {listed}"


def test_terminal_closing_summary_says_the_other_claims_are_above():
    lines = terminal(smoke_records(), "smoke")
    here = len([c for c in EXPECTED["claims"] if "smoke" in c["budgets"]])
    assert lines[-1] == (f"  claims: {here} judged at smoke: {here} hold; {len(EXPECTED['claims']) - here} judged at "
                         "other budgets, shown above for information"), \
        f"the closing summary comes after the claims it points to: {lines[-1]}"


# --- where each row was heading (issue 23) ----------------------------------------------------------

def curve(*pgd, n_images=500, wrong=None):
    """A learning curve of PGD errors `pgd` (%) at epochs 0, 1, ... on `n_images` images; `wrong`: per point
    the images PGD got wrong (none recorded where not given, as in curves recorded before them)."""
    points = [{"step": 10 * e, "epoch": e, "pgd_error": p, "clean_error": 20.0, "lr": None} for e, p in enumerate(pgd)]
    for point, images in zip(points, wrong or []):
        point["pgd_wrong"] = pack_wrong([i in images for i in range(n_images)])
    return {"points": points, "n_images": n_images}


def first(k):
    """The first k images."""
    return set(range(k))


NONE = "no learning curve (a run that predates curves)"
UNJUDGED = "flatness cannot be judged without per-image outcomes (a curve recorded before them)"


def trend_lines(markdown):
    lines = markdown.splitlines()
    start = lines.index("## Learning curves: where each row was heading")
    return [line for line in lines[start:] if line.startswith("- ")]


def test_learning_curves_say_where_each_row_was_heading():
    results = records()  # NORMAL, the first row, has no curve
    results["adv"]["curve"] = curve(99.0, 90.0, 80.0, wrong=[first(495), first(450), first(400)])
    # 20 images wrong -> right, 25 right -> wrong: |25 - 20| <= 2 sqrt(45)
    results["bn_params"]["curve"] = curve(99.0, 90.0, 91.0, wrong=[first(495), first(450),
                                                                   first(450) - first(20) | set(range(450, 475))])
    results["bn_only_params"]["curve"] = curve(99.0, 90.0, 91.0)
    results["bn_params_log_conv1"]["curve"] = curve(99.0, 90.0)
    lines = trend_lines(render_markdown(EXPECTED, results, "paper"))
    expected = {"NORMAL": NONE,
                "ADV": "PGD error on the curve's slice 90.0 -> 80.0 % over the last 1 epoch: still falling by 10.0 points "
                       "per epoch (50 images wrong -> right, 0 right -> wrong of 500)",
                "BN PARAMS": "PGD error on the curve's slice 90.0 -> 91.0 % over the last 1 epoch: flat (20 images wrong "
                             "-> right, 25 right -> wrong of 500: within McNemar's noise at z = 2)",
                "BN ONLY PARAMS": f"PGD error on the curve's slice 90.0 -> 91.0 % over the last 1 epoch (+1.0 points per "
                                  f"epoch): {UNJUDGED}",
                "BN PARAMS + log + conv1": "too few points to judge a trend (the curve covers 1 epoch)"}
    assert lines == [f"- {label}: {expected.get(label, NONE)}" for label in LABELS], (
        f"every row must say where its curve was heading, or that it has none, in Table 2's order: {lines}")


def test_learning_curves_over_seeds_average_the_seeds_and_pair_each_seeds_images(tmp_path):
    normal = (curve(99.0, 94.0, 90.0, wrong=[first(495), first(470), first(450)]),
              curve(99.0, 90.0, 60.0, wrong=[first(495), first(450), first(300)]))
    bn_params = (curve(99.0, 90.0, 90.5), curve(99.0, 90.0, 91.5))
    for seed in (0, 1):
        results = records(seed=seed)
        results["normal"]["curve"], results["bn_params"]["curve"] = normal[seed], bn_params[seed]
        if seed == 1:
            del results["adv"]
        write_runs(tmp_path / f"seed{seed}", results)
    _, path, _ = write_seed_report(tmp_path, [0, 1], EXPECTED, PAPER)
    lines = trend_lines(path.read_text())
    expected = {"NORMAL": "PGD error on the curve's slice 92.0 -> 75.0 % over the last 1 epoch: still falling by 17.0 "
                          "points per epoch (170 images wrong -> right, 0 right -> wrong of 1000)",
                "BN PARAMS": f"PGD error on the curve's slice 90.0 -> 91.0 % over the last 1 epoch (+1.0 points per "
                             f"epoch): {UNJUDGED}"}
    assert lines == [f"- {label}: {expected.get(label, NONE)}" for label in LABELS if label != "ADV"], (
        "over seeds: the seeds' mean curve, its flips counted over both seeds' images each paired within its seed, "
        f"and a row lacking a seed (ADV) left out while the rows after it are still listed: {lines}")
