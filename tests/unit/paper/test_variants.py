"""The register of open choices, selecting readings, their run folders, records and comparison."""

import contextlib
import dataclasses
import io
import json

import pytest

from repro.cli.main import main
from repro.paper.budgets import SMOKE, get_budget
from repro.paper.choices import CHOICES, TRAINING, UnknownVariantError
from repro.paper.configs import CONFIGURATIONS, FROM_NORMAL
from repro.paper.expected import load_expected
from repro.paper.variants import (
    affected_rows,
    apply_variants,
    config_changes,
    folder_suffix,
    parse_variant_list,
    parse_variants,
)
from repro.runs.checkpoint import load_checkpoint, state_fingerprint
from repro.runs.pipeline import Pipeline, RunSettings
from repro.runs.run_state import CHECKPOINT_NAME
from repro.verdicts.compare import comparison_rows, render_comparison
from repro.verdicts.error_model import metric_error
from repro.verdicts.report_text import provenance_lines
from tests.conftest import make_micro_budget
from tests.unit.cli.test_cli import MICRO, MICRO_SETS

ISSUE_CHOICES = {"attack_bn", "adv_fraction", "bn_only_params_stats", "bn_only_augmentation", "adv_checkpoint",
                 "bn_stats_update", "autoaugment_order", "figure3_logits"}
NON_DEFAULT = [(c.id, r.id) for c in CHOICES.values() for r in c.readings[1:]]


def test_register_holds_the_issues_choices():
    assert ISSUE_CHOICES <= set(CHOICES), f"missing open choices: {sorted(ISSUE_CHOICES - set(CHOICES))}"


@pytest.mark.parametrize("choice", CHOICES.values(), ids=lambda c: c.id)
def test_choice_quotes_the_paper_and_has_two_readings(choice):
    assert choice.sentences and all(s and where for s, where in choice.sentences), f"{choice.id}: quote the paper"
    assert len(choice.readings) >= 2 and len({r.id for r in choice.readings}) == len(choice.readings), (
        f"{choice.id}: at least two distinct readings")
    assert all(r.meaning and r.evidence for r in choice.readings), f"{choice.id}: every reading needs meaning and evidence"
    assert choice.rows or choice.figures, f"{choice.id}: name the rows or figures it affects"


@pytest.mark.parametrize("config", CONFIGURATIONS.values(), ids=lambda c: c.id)
def test_defaults_are_the_registry_rows(config):
    assert apply_variants(config, {}) == config, f"{config.id}: default readings must keep the registry row"


@pytest.mark.parametrize("choice_id, reading_id", NON_DEFAULT)
def test_each_reading_changes_exactly_its_rows(choice_id, reading_id):
    choice = CHOICES[choice_id]
    changed = {c.id for c in CONFIGURATIONS.values() if apply_variants(c, {choice_id: reading_id}) != c}
    if choice.scope == TRAINING:
        assert changed and changed <= set(choice.rows), (
            f"{choice_id}={reading_id} changed {sorted(changed)}; its rows are {choice.rows}")
    else:
        assert changed == set(), f"{choice_id} is a figure reading: it changes no training ({sorted(changed)})"


def test_frozen_batch_attacks_with_batch_statistics_unless_attack_bn_eval():
    bn_only_params = CONFIGURATIONS["bn_only_params"]
    alone = apply_variants(bn_only_params, {"bn_only_params_stats": "frozen_batch"})
    both = apply_variants(bn_only_params, {"bn_only_params_stats": "frozen_batch", "attack_bn": "eval"})
    assert (alone.attack_bn_mode, both.attack_bn_mode) == ("train", "eval"), (
        "attack_bn must apply after bn_only_params_stats, whatever the order on the command line")


@pytest.mark.parametrize("pairs, message", [
    (["atack_bn=eval"], "valid choices: bn_only_params_stats"),
    (["attack_bn=batch"], "valid readings: train, eval"),
    (["attack_bn"], "CHOICE=READING"),
    (["attack_bn=eval", "attack_bn=train"], "two readings"),
])
def test_bad_selection_says_what_is_valid(pairs, message):
    with pytest.raises(UnknownVariantError, match=message):
        parse_variants(pairs)


@pytest.mark.parametrize("pair, tail", [
    ("atack_bn=eval", f"valid choices: {', '.join(CHOICES)} (see `repro variants`)"),
    ("attack_bn", f"choices: {', '.join(CHOICES)}"),
])
def test_bad_choice_lists_every_valid_choice(pair, tail):
    with pytest.raises(UnknownVariantError) as refused:
        parse_variants([pair])
    assert str(refused.value).endswith(tail), f"{pair!r}: the one-line error must end with every choice: {refused.value}"


def test_a_reading_is_everything_after_the_first_equals_sign():
    # "attack_bn=eval=train" names choice attack_bn and reading "eval=train", which it lacks: a one-line
    # error listing attack_bn's readings, not a crash (traceback) nor an unknown choice "attack_bn=eval".
    with pytest.raises(UnknownVariantError, match="open choice attack_bn has no reading 'eval=train'; valid readings: train, eval"):
        parse_variants(["attack_bn=eval=train"])


def test_selection_keeps_non_default_readings_in_register_order():
    got = parse_variant_list("adv_fraction=0.5, attack_bn=train,bn_only_params_stats=frozen_batch")
    assert list(got.items()) == [("bn_only_params_stats", "frozen_batch"), ("adv_fraction", "0.5")], got


def test_run_folders_default_and_variant(tmp_path):
    default = Pipeline(RunSettings(budget=SMOKE, out=tmp_path)).run_folder
    variant = Pipeline(RunSettings(budget=SMOKE, out=tmp_path,
                                   variants={"attack_bn": "eval", "figure3_logits": "max"})).run_folder
    assert default == tmp_path / "smoke" / "seed0", f"default readings keep today's folder: {default}"
    assert variant == tmp_path / "smoke+attack_bn=eval" / "seed0", (
        f"a training reading gets its own folder, a figure reading does not: {variant}")
    assert folder_suffix({}) == "", "no suffix for the defaults"


def test_cli_unknown_reading_is_one_line(capsys, tmp_path):
    code = main(["train", "adv", "--variant", "attack_bn=batch", "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "valid readings: train, eval" in err, err


def test_repro_variants_prints_the_register(capsys):
    assert main(["variants"]) == 0
    out = capsys.readouterr().out
    for choice in CHOICES.values():
        assert f"{choice.id}: {choice.question}" in out, f"{choice.id} missing from `repro variants`"
        assert f"{choice.id}={choice.default} (default)" in out, f"{choice.id}: default reading not marked"
        assert choice.sentences[0][0][:40] in out, f"{choice.id}: sentence not printed"


def register_lines(capsys) -> list[str]:
    assert main(["variants"]) == 0
    return capsys.readouterr().out.splitlines()


def test_register_marks_only_the_default_reading_and_gives_each_its_evidence(capsys):
    lines = register_lines(capsys)
    for choice in CHOICES.values():
        for reading in choice.readings:
            mark = " (default)" if reading.id == choice.default else ""
            line = f"  {choice.id}={reading.id}{mark}: {reading.meaning}"
            assert line in lines, f"`repro variants` must print {line!r} (only the default marked)"
            assert lines[lines.index(line) + 1] == f"      evidence: {reading.evidence}", f"{choice.id}={reading.id}: evidence line"


def test_register_says_which_rows_or_figures_each_choice_affects(capsys):
    lines = register_lines(capsys)
    for choice in CHOICES.values():
        # training choices: the rows some reading moves (affected_rows, pinned above); figure choices: the figures
        affects = ", ".join(affected_rows(choice) if choice.scope == TRAINING else choice.figures)
        assert affects and f"  affects: {affects}" in lines, f"{choice.id}: `repro variants` must say it affects {affects!r}"


def test_register_separates_choices_by_a_blank_line_and_ends_with_how_to_select(capsys):
    lines = register_lines(capsys)
    heads = [lines.index(f"{c.id}: {c.question}") for c in CHOICES.values()]
    assert all(lines[i - 1] == "" for i in heads[1:]), "each choice after the first must follow a blank line"
    assert lines[-1] == "select with --variant CHOICE=READING (repeatable); compare with `repro report --variants`", (
        f"the register must end with how to select and compare readings: {lines[-1]!r}")


@pytest.mark.parametrize("config_id, readings, changes", [
    ("bn_only_params", {"bn_only_params_stats": "frozen_batch"}, {"bn_stats": "frozen_batch", "attack_bn_mode": "train"}),
    ("adv", {"adv_fraction": "0.5"}, {"adv_fraction": 0.5}),
    ("normal", {"attack_bn": "eval"}, None),  # a reading that leaves the row as registered
])
def test_a_records_config_changes_are_exactly_the_fields_its_readings_changed(config_id, readings, changes):
    got = config_changes(apply_variants(CONFIGURATIONS[config_id], readings))
    assert got == changes, f"{config_id} under {readings}: run identity and checkpoint must record {changes}, got {got}"


def test_config_changes_read_back_from_json_equal_the_computed_ones():
    # Result records store the identity as JSON and compare it with one computed again: a tuple field
    # (trainable) must be stored as the list JSON gives back, or a record of it would never be reused.
    changes = config_changes(dataclasses.replace(CONFIGURATIONS["normal"], trainable=("bn",)))
    assert changes == {"trainable": ["bn"]} and json.loads(json.dumps(changes)) == changes, changes


def provenance_record(variants):
    """A result record with the fields the report's provenance lines read."""
    return {"budget": {"name": "smoke", "width": 8, "dataset": "cifar10"}, "seed": 0, "variants": variants,
            "provenance": {"git_commit": "abc", "versions": {"torch": "x"}, "device": "cpu",
                           "data": {"dataset": "cifar10", "checksum_status": "verified", "n_train": 64}}}


@pytest.mark.parametrize("variants, line", [
    (None, "readings: defaults (see `repro variants`)"),  # records written before readings existed
    ({}, "readings: defaults (see `repro variants`)"),
    ({"attack_bn": "eval", "adv_fraction": "0.5"}, "readings: attack_bn=eval, adv_fraction=0.5"),
])
def test_report_header_names_the_readings_or_the_defaults(variants, line):
    lines = provenance_lines([provenance_record(variants)])
    assert line in lines, f"report header for readings {variants} must say {line!r}: {lines}"


# --- a run under readings, end to end ---------------------------------------------------------

READINGS = ["autoaugment_order=crop_flip_then_autoaugment", "bn_only_params_stats=frozen_batch"]


@pytest.fixture(scope="module")
def variant_run(tmp_path_factory):
    """`repro reproduce --configs bn_only_params` under two readings at micro scale: (code, stdout, folder)."""
    out = tmp_path_factory.mktemp("variants")
    stdout, stderr = io.StringIO(), io.StringIO()
    argv = ["reproduce", "--configs", "bn_only_params", "--out", str(out), "--no-gate", *MICRO]
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = main(argv + [arg for r in READINGS for arg in ("--variant", r)])
    name = get_budget("smoke", MICRO_SETS).run_name + "+bn_only_params_stats=frozen_batch+autoaugment_order=crop_flip_then_autoaugment"
    assert code == 0, stderr.getvalue()
    return stdout.getvalue(), out / name / "seed0"


def test_variant_run_lands_in_its_own_folder_and_records_readings(variant_run):
    _, folder = variant_run
    record = json.loads((folder / "bn_only_params" / "result.json").read_text())
    assert record["variants"] == {"bn_only_params_stats": "frozen_batch",
                                  "autoaugment_order": "crop_flip_then_autoaugment"}, record.get("variants")
    assert record["config"]["bn_stats"] == "frozen_batch", "result.json records the configuration as trained"


def test_variant_report_header_names_the_readings(variant_run):
    out, folder = variant_run
    line = "readings: bn_only_params_stats=frozen_batch, autoaugment_order=crop_flip_then_autoaugment"
    assert line in out and line in (folder / "report.md").read_text(), f"report must say which readings ran:\n{out}"


def test_evaluate_finds_the_model_trained_under_the_readings(variant_run, capsys):
    _, folder = variant_run
    argv = ["evaluate", "bn_only_params", "--out", str(folder.parent.parent), *MICRO]
    code = main(argv + [arg for r in READINGS for arg in ("--variant", r)])
    err = capsys.readouterr().err
    assert code == 0, f"evaluate --variant must load the run trained under those readings: {err}"


def test_fine_tuning_uses_normal_trained_under_the_same_readings(variant_run):
    _, folder = variant_run
    normal = load_checkpoint(folder / "normal" / CHECKPOINT_NAME)
    tuned = load_checkpoint(folder / "bn_only_params" / CHECKPOINT_NAME)
    assert normal["config_changes"] == {"autoaugment_order": "crop_flip_then_autoaugment"}, normal["config_changes"]
    assert tuned["initial_fingerprint"] == state_fingerprint(normal["model"]), (
        "BN ONLY PARAMS must start from the NORMAL trained under the same readings")


def test_rows_a_reading_leaves_unchanged_reuse_the_default_run(tmp_path):
    budget = make_micro_budget(n_train=64, batch_size=32, epochs_clean=1)
    Pipeline(RunSettings(budget=budget, out=tmp_path)).trained_model(CONFIGURATIONS["normal"])
    same = Pipeline(RunSettings(budget=budget, out=tmp_path, variants={"bn_only_params_stats": "frozen_batch"}))
    same.trained_model(CONFIGURATIONS["normal"])
    other = Pipeline(RunSettings(budget=budget, out=tmp_path, variants={"autoaugment_order": "crop_flip_then_autoaugment"}))
    other.trained_model(CONFIGURATIONS["normal"])
    assert (same.trained_here, other.trained_here) == ([], ["normal"]), (
        "NORMAL is reused where the readings leave it unchanged and retrained where they change it: "
        f"{same.trained_here}, {other.trained_here}")


# --- comparison -----------------------------------------------------------------------------

def write_result(folder, config_id, clean, robust, variants):
    path = folder / config_id / "result.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"budget": dataclasses.asdict(SMOKE), "variants": variants,
                                "metrics": {"clean_error": clean, "autoattack_error": robust,
                                            "n_clean": SMOKE.n_test, "n_robust": SMOKE.n_robust}}))


def test_comparison_shows_each_reading_beside_the_paper(tmp_path, capsys):
    write_result(tmp_path / "smoke" / "seed0", "adv", 25.0, 60.0, {})  # paper: 17.67, 58.4
    write_result(tmp_path / "smoke+attack_bn=eval" / "seed0", "adv", 18.0, 70.0, {"attack_bn": "eval"})
    write_result(tmp_path / "smoke+attack_bn=eval+adv_fraction=0.5" / "seed0", "adv", 17.7, 58.4, {})  # a combination
    rows = {(e["row"], e["metric"]): e for e in comparison_rows(load_expected(), tmp_path, SMOKE, 0)
            if e["choice"] == "attack_bn"}
    clean, robust = rows[("adv", "clean_error")], rows[("adv", "robust_error")]
    assert clean["measured"] == {"train": 25.0, "eval": 18.0} and clean["closest"] == "eval" and clean["within"], clean
    assert robust["closest"] == "train" and robust["within"], robust
    assert main(["report", "--variants", "--out", str(tmp_path)]) == 3, "at smoke the comparison judges nothing"
    out = capsys.readouterr().out
    # The tolerance is the error model's for one run at the smoke budget's evaluation sizes.
    tolerance = metric_error(load_expected()["error_model"], load_expected()["table2"]["adv"], "clean_error",
                             SMOKE.n_test, [18.0]).tolerance
    assert clean["tolerance"] == tolerance, clean
    assert f"| ADV | clean | 17.67 | ±{tolerance:.2f} | 25.00 | 18.00 | eval (within tolerance) |" in out, out


def test_report_variants_compares_each_seed_asked_for(tmp_path, capsys):
    for seed in (1, 2):
        write_result(tmp_path / "smoke" / f"seed{seed}", "adv", 20.0 + seed, 60.0, {})
        write_result(tmp_path / "smoke+attack_bn=eval" / f"seed{seed}", "adv", 30.0 + seed, 70.0, {"attack_bn": "eval"})
    assert main(["report", "--variants", "--seeds", "1", "2", "--out", str(tmp_path), "--no-gate"]) == 0, \
        capsys.readouterr().err
    written = sorted(p.name for p in (tmp_path / "smoke").glob("variants-seed*.md"))
    assert written == ["variants-seed1.md", "variants-seed2.md"], f"one comparison per seed asked for: {written}"
    second = (tmp_path / "smoke" / "variants-seed2.md").read_text()
    assert "seed 2)" in second and "| 22.00 | 32.00 |" in second, f"seed 2's comparison must show seed 2's runs:\n{second}"


# --- the rows a choice affects: those some reading changes (issue 27 item 7) -------------------------

def rows_changed(choice) -> set[str]:
    """Rows whose configuration some non-default reading of `choice` changes, applied alone."""
    return {c.id for c in CONFIGURATIONS.values() for r in choice.readings[1:] if apply_variants(c, {choice.id: r.id}) != c}


@pytest.mark.parametrize("choice", [c for c in CHOICES.values() if c.scope == TRAINING], ids=lambda c: c.id)
def test_every_affected_row_is_changed_by_a_reading_or_fine_tuned_from_a_changed_normal(choice):
    changed = rows_changed(choice)
    from_changed_normal = {c.id for c in CONFIGURATIONS.values() if c.init == FROM_NORMAL and "normal" in changed}
    assert set(affected_rows(choice)) == changed | from_changed_normal, (
        f"{choice.id} lists {affected_rows(choice)}; its readings change {sorted(changed)}")


def test_attack_bn_does_not_list_bn_only_params_which_attacks_in_eval_already():
    assert "bn_only_params" not in affected_rows(CHOICES["attack_bn"]), affected_rows(CHOICES["attack_bn"])


def test_autoaugment_order_lists_normal_and_its_fine_tuning_rows_not_the_crop_flip_rows():
    rows = affected_rows(CHOICES["autoaugment_order"])
    assert "normal" in rows and "bn_params" in rows and not {"normal_bn_only", "normal_bn_only_log_conv1"} & set(rows), (
        f"the reading's condition (AutoAugment) excludes the NORMAL +BN ONLY rows: {rows}")


def test_comparison_leaves_out_rows_the_reading_does_not_change(tmp_path):
    write_result(tmp_path / "smoke" / "seed0", "bn_only_params", 80.0, 90.0, {})
    write_result(tmp_path / "smoke+attack_bn=eval" / "seed0", "bn_only_params", 80.0, 90.0, {"attack_bn": "eval"})
    listed = {(e["choice"], e["row"]) for e in comparison_rows(load_expected(), tmp_path, SMOKE, 0)}
    assert ("attack_bn", "bn_only_params") not in listed, (
        f"attack_bn=eval leaves BN ONLY PARAMS as it was; showing it would read as 'measured to make no difference': {listed}")


def test_a_degenerate_reading_is_shown_as_such_and_never_the_closest(tmp_path):
    write_result(tmp_path / "smoke" / "seed0", "adv", 25.0, 60.0, {})  # paper: 17.67, 58.4
    write_result(tmp_path / "smoke+attack_bn=eval" / "seed0", "adv", 18.0, 58.4, {"attack_bn": "eval"})
    collapsed = tmp_path / "smoke+attack_bn=eval" / "seed0" / "adv" / "result.json"
    record = json.loads(collapsed.read_text())
    record["metrics"]["predicted_classes"] = {"clean_test": [SMOKE.n_test] + [0] * 9}  # one class, whatever it sees
    collapsed.write_text(json.dumps(record))
    robust = next(e for e in comparison_rows(load_expected(), tmp_path, SMOKE, 0)
                  if e["choice"] == "attack_bn" and e["metric"] == "robust_error")
    text = render_comparison(load_expected(), tmp_path, SMOKE, 0)
    assert robust["closest"] == "train" and "58.40 degenerate (predicts class 0 for 100.0 % of images)" in text, (
        f"the eval reading matches the paper's 58.4 on a model that answers one class: shown, never the closest: "
        f"{robust['closest']}\n{text}")
