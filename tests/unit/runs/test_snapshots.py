"""Budget.ladder_epochs: a run keeps the weights of those epochs, and its result evaluates them like the end."""

import dataclasses

import pytest
import torch

from repro.paper.configs import ADV
from repro.runs.checkpoint import load_checkpoint
from repro.runs.data import synthetic_dataset
from repro.runs.pipeline import Pipeline, RunSettings
from repro.runs.run_state import CHECKPOINT_NAME, load_snapshot, snapshot_path
from repro.runs.training import train
from tests.conftest import make_micro_budget
from tests.unit.runs.test_training import Interrupt, interrupt_at

BUDGET = make_micro_budget(epochs_adversarial=3, ladder_epochs=(1, 2), eval_pgd_steps=1, n_robust=16,
                           autoattack_iterations=1, curve_images=0)


# A ladder that skips epoch 1 and names the last epoch, whose weights are the run's checkpoint itself.
SKIPPING_BUDGET = dataclasses.replace(BUDGET, ladder_epochs=(2, 3))


@pytest.fixture(scope="module")
def skipping_run(tmp_path_factory):
    """(folder, data) of ADV trained for 3 epochs under SKIPPING_BUDGET, seed 0."""
    data = synthetic_dataset(BUDGET.n_train, BUDGET.n_test, seed=0)
    folder = tmp_path_factory.mktemp("full")
    train(ADV, SKIPPING_BUDGET, data, folder, seed=0)
    return folder, data


def test_a_kept_snapshot_holds_the_weights_after_that_epoch(skipping_run, tmp_path):
    full, data = skipping_run
    steps = BUDGET.n_train // BUDGET.batch_size
    with pytest.raises(Interrupt):  # stopped right after epoch 2's checkpoint, before any step of epoch 3
        train(ADV, SKIPPING_BUDGET, data, tmp_path / "cut", seed=0, on_step=interrupt_at(2 * steps),
              checkpoint_seconds=float("inf"))
    after_two = load_checkpoint(tmp_path / "cut" / CHECKPOINT_NAME)
    assert after_two["epoch"] == 2, "the interrupted run's checkpoint must be the end of epoch 2"
    kept = load_snapshot(full, ADV, SKIPPING_BUDGET, 0, 2).state_dict()
    differing = [k for k in kept if not torch.equal(kept[k], after_two["model"][k])]
    assert differing == [], f"snapshot-epoch2 is not the weights after two epochs: {differing}"


def test_only_the_ladders_epochs_before_the_end_are_kept(skipping_run):
    full, _ = skipping_run
    kept = [epoch for epoch in (1, 2, 3) if snapshot_path(full, epoch).exists()]
    assert kept == [2], (f"ladder {SKIPPING_BUDGET.ladder_epochs} over 3 epochs keeps epoch 2 only (epoch 1 is not on "
                         f"it, and the end is the checkpoint, not a snapshot); kept {kept}")


@pytest.fixture(scope="module")
def laddered_record(tmp_path_factory):
    pipeline = Pipeline(RunSettings(budget=BUDGET, out=tmp_path_factory.mktemp("runs")))
    return pipeline.result(ADV), pipeline


def test_the_result_evaluates_every_kept_epoch_and_the_end(laddered_record):
    record, _ = laddered_record
    epochs = [point["epoch"] for point in record["ladder"]]
    assert epochs == [1, 2, 3], f"ladder points {epochs}"
    assert record["ladder"][-1]["metrics"] == record["metrics"], "the ladder's last point is the row's result"
    for point in record["ladder"]:
        assert {"clean_error", "pgd_error", "autoattack_error"} <= point["metrics"].keys(), point


def test_an_epoch_without_kept_weights_is_said_not_invented(laddered_record, tmp_path):
    _, pipeline = laddered_record
    asked = dataclasses.replace(BUDGET, ladder_epochs=(1, 2))
    (pipeline.folder(ADV) / "snapshot-epoch1.pt").unlink()
    record = Pipeline(RunSettings(budget=asked, out=pipeline.settings.out)).result(ADV, reuse=False)
    first = record["ladder"][0]
    assert first["epoch"] == 1 and "missing" in first and "metrics" not in first, first
