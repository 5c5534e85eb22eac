"""Which trained rows a run reuses: a checkpoint is kept while the fields its row reads are unchanged,
and a mode's fine-tuning rows can start from the fp32 NORMAL (paired)."""

import dataclasses

import pytest

from repro.paper.configs import BN_PARAMS, NORMAL
from repro.runs.checkpoint import CheckpointError, load_checkpoint, save_checkpoint, state_digest
from repro.runs.pipeline import Pipeline, RunSettings
from repro.runs.run_state import CHECKPOINT_NAME, is_complete
from tests.conftest import make_micro_budget

BUDGET = make_micro_budget(epochs_clean=1, epochs_finetune=1, n_train=128)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """NORMAL and BN PARAMS trained at a micro budget: (pipeline, run folder)."""
    pipeline = Pipeline(RunSettings(budget=BUDGET, out=tmp_path_factory.mktemp("reuse")))
    pipeline.trained_model(BN_PARAMS)
    return pipeline, pipeline.run_folder


@pytest.mark.parametrize("change", [{"lr_finetune": 0.2}, {"epochs_finetune": 3}, {"epochs_adversarial": 5}])
def test_normal_is_still_complete_when_a_field_it_does_not_read_changes(trained, change):
    _, folder = trained
    assert is_complete(folder / NORMAL.id, NORMAL, dataclasses.replace(BUDGET, **change), 0), (
        f"NORMAL trains clean from scratch: {change} does not change its weights, so its checkpoint is reused")


def test_normal_is_retrained_when_its_learning_rate_changes(trained):
    _, folder = trained
    with pytest.raises(CheckpointError, match="lr 0.1, not 0.05"):
        is_complete(folder / NORMAL.id, NORMAL, dataclasses.replace(BUDGET, lr=0.05), 0)


def test_a_fine_tuning_row_is_retrained_when_its_rate_changes(trained):
    _, folder = trained
    with pytest.raises(CheckpointError, match="lr_finetune"):
        is_complete(folder / BN_PARAMS.id, BN_PARAMS, dataclasses.replace(BUDGET, lr_finetune=0.2), 0)


def test_a_checkpoint_that_recorded_every_training_field_is_still_reused(trained, tmp_path):
    # Earlier versions recorded all of the budget's training fields, whatever the row read.
    _, folder = trained
    state = load_checkpoint(folder / NORMAL.id / CHECKPOINT_NAME)
    state["budget"] = BUDGET.training_fields()
    save_checkpoint(tmp_path / CHECKPOINT_NAME, state)
    assert is_complete(tmp_path, NORMAL, dataclasses.replace(BUDGET, lr_finetune=0.2), 0), (
        "an older NORMAL checkpoint is this row's while the fields NORMAL reads match")


def test_an_override_of_the_fine_tuning_rate_adopts_the_registered_budgets_normal(tmp_path, monkeypatch):
    import repro.runs.pipeline as pipeline_module

    monkeypatch.setitem(pipeline_module.BUDGETS, BUDGET.name, BUDGET)  # the micro budget as a registered one
    Pipeline(RunSettings(budget=BUDGET, out=tmp_path)).trained_model(NORMAL)
    changed = Pipeline(RunSettings(budget=dataclasses.replace(BUDGET, lr_finetune=0.2), out=tmp_path))
    assert changed.run_folder.parent.name != BUDGET.name, "precondition: the override has its own folder"
    changed.trained_model(NORMAL)
    assert changed.trained_here == [], f"NORMAL was copied from {BUDGET.name}'s folder, not retrained: {changed.trained_here}"


def test_a_paired_run_fine_tunes_in_its_mode_from_the_fp32_normal(trained):
    pipeline, folder = trained
    fp32_normal = load_checkpoint(folder / NORMAL.id / CHECKPOINT_NAME)["model"]
    paired = Pipeline(dataclasses.replace(pipeline.settings, budget=dataclasses.replace(BUDGET, bf16=True),
                                          paired_normal=True))
    record = paired.result(BN_PARAMS)
    assert paired.run_folder != folder and not (paired.run_folder / NORMAL.id / CHECKPOINT_NAME).exists(), (
        "the bf16 rows live in their own folder, and no bf16 NORMAL was trained there")
    assert record["provenance"]["initial_weights_sha256"] == state_digest(fp32_normal), (
        "BN PARAMS in bf16 started from the fp32 NORMAL's weights")


def test_a_paired_runs_folder_holds_the_normal_its_rows_started_from(trained):
    pipeline, folder = trained
    paired = Pipeline(dataclasses.replace(pipeline.settings, budget=dataclasses.replace(BUDGET, bf16=True),
                                          paired_normal=True))
    record = paired.result(NORMAL)
    assert record["budget"]["bf16"] is False and (paired.run_folder / NORMAL.id / "result.json").exists(), (
        "the report of the bf16 folder shows the fp32 NORMAL its fine-tuning rows started from")


def test_a_result_records_the_fine_tuning_rate_its_reading_set(trained):
    from repro.paper.budgets import as_registered, protocol_of

    pipeline, _ = trained
    fast = Pipeline(dataclasses.replace(pipeline.settings, variants={"finetune_lr": "0.1"}))
    recorded = fast.result(BN_PARAMS)["budget"]
    assert (recorded["lr_finetune"], recorded["set_by_readings"]) == (0.1, {"lr_finetune": {"budget": BUDGET.lr_finetune,
                                                                                           "used": 0.1}}), recorded
    assert protocol_of(recorded) == BUDGET.protocol() and as_registered(recorded)["lr_finetune"] == BUDGET.lr_finetune, (
        "the budget asked for stays what protocols and folders are judged by")
