"""Learning curves (issue 23): points where they are due, from what the run saw, kept across a resume,
and never a change to the weights."""

import dataclasses

import pytest

from repro.paper.configs import ADV, BN_PARAMS, NORMAL
from repro.runs.checkpoint import load_checkpoint, save_checkpoint
from repro.runs.curves import curve_steps
from repro.runs.data import synthetic_dataset
from repro.runs.run_state import CHECKPOINT_NAME
from repro.runs.training import train
from repro.verdicts.error_model import within_binomial_noise
from tests.conftest import make_micro_budget
from tests.unit.runs.test_training import Interrupt, differing_tensors, interrupt_at, recorded_step_outcomes

BUDGET = make_micro_budget(epochs_adversarial=1, epochs_clean=3, curve_images=32, curve_pgd_steps=2)
STEPS = BUDGET.n_train // BUDGET.batch_size  # per epoch


@pytest.fixture(scope="module")
def data():
    return synthetic_dataset(BUDGET.n_train, BUDGET.n_test, seed=0)


def curve_of(folder):
    return load_checkpoint(folder / CHECKPOINT_NAME)["curve"]


def test_points_before_training_after_every_epoch_and_four_per_epoch_in_short_runs():
    assert curve_steps(64, 1) == [0, 16, 32, 48, 64], curve_steps(64, 1)
    assert curve_steps(64, 2) == [0, 16, 32, 48, 64, 80, 96, 112, 128], curve_steps(64, 2)
    assert curve_steps(64, 3) == [0, 64, 128, 192], "runs longer than two epochs: a point per epoch"


@pytest.fixture(scope="module")
def adv_run(tmp_path_factory, data):
    """(folder, trained model) of ADV at BUDGET, seed 0, with its curve: trained once for two tests."""
    folder = tmp_path_factory.mktemp("adv")
    return folder, train(ADV, BUDGET, data, folder, seed=0)


def test_a_run_records_its_curve_at_the_due_steps(adv_run):
    points = curve_of(adv_run[0])
    assert [p["step"] for p in points] == curve_steps(STEPS, 1), [p["step"] for p in points]
    assert [p["epoch"] for p in points] == [s / STEPS for s in curve_steps(STEPS, 1)], "epochs as fractions"
    assert points[0]["train_loss"] is None and all(p["train_loss"] > 0 for p in points[1:]), \
        "no training loss before the first step, a positive one after"
    lrs = [p["lr"] for p in points]
    assert lrs[0] == pytest.approx(BUDGET.lr) and all(a > b for a, b in zip(lrs, lrs[1:])), \
        f"the linear schedule's rate at each point: {lrs}"
    assert all(0 <= p["clean_error"] <= 100 and 0 <= p["pgd_error"] <= 100 and p["seconds"] > 0 for p in points)


def wrong_images(text: str) -> set[int]:
    """The images a point's pgd_wrong marks: image i is bit i % 4 of hex digit i // 4."""
    return {4 * k + j for k, digit in enumerate(text) for j in range(4) if int(digit, 16) >> j & 1}


def test_each_point_records_which_images_pgd_got_wrong(adv_run):
    points = curve_of(adv_run[0])
    n = BUDGET.curve_images
    assert all(len(p["pgd_wrong"]) == -(-n // 4) for p in points), f"{n} images in {-(-n // 4)} hex digits a point"
    assert all(100 * len(wrong_images(p["pgd_wrong"])) / n == p["pgd_error"] and max(wrong_images(p["pgd_wrong"]),
               default=0) < n for p in points), (
        "a point's per-image record marks as many of the slice's images as its PGD error counts: "
        f"{[(p['pgd_error'], p['pgd_wrong']) for p in points]}")


def test_the_curve_measures_the_model_as_it_trains(tmp_path, data):
    budget = dataclasses.replace(BUDGET, epochs_clean=8, curve_images=64)
    train(NORMAL, budget, data, tmp_path, seed=0)
    first, last = (curve_of(tmp_path)[i]["clean_error"] for i in (0, -1))
    assert last < first and not within_binomial_noise(first / 100, last / 100, 64), \
        f"a learning NORMAL's clean error on the slice must fall beyond the slice's noise: {first} -> {last}"


def test_the_curve_changes_no_weight(tmp_path, data, adv_run):
    without = train(ADV, dataclasses.replace(BUDGET, curve_images=0), data, tmp_path / "off", seed=0)
    assert differing_tensors(adv_run[1], without) == [], "taking curve points changed the trained weights"
    assert curve_of(tmp_path / "off") == [], "curve_images=0 takes no point"


def test_a_resumed_run_keeps_its_points_and_takes_none_twice(tmp_path, data):
    normal = train(NORMAL, dataclasses.replace(BUDGET, epochs_clean=1), data, tmp_path / "normal", seed=0)
    budget = dataclasses.replace(BUDGET, epochs_finetune=2)
    train(BN_PARAMS, budget, data, tmp_path / "full", seed=0, initial_model=normal)
    with pytest.raises(Interrupt):  # in the second epoch, after a checkpoint at every step
        train(BN_PARAMS, budget, data, tmp_path / "cut", seed=0, initial_model=normal,
              on_step=interrupt_at(STEPS + 2), checkpoint_seconds=0)
    kept = [p["step"] for p in curve_of(tmp_path / "cut")]
    assert kept and max(kept) <= STEPS + 2, f"the interrupted run's checkpoint keeps the points so far: {kept}"
    train(BN_PARAMS, budget, data, tmp_path / "cut", seed=0, initial_model=normal, resume=True, checkpoint_seconds=0)
    resumed, full = curve_of(tmp_path / "cut"), curve_of(tmp_path / "full")
    assert [p["step"] for p in resumed] == [p["step"] for p in full], \
        f"resumed steps {[p['step'] for p in resumed]} vs uninterrupted {[p['step'] for p in full]}"
    for a, b in zip(resumed, full):
        assert (a["clean_error"], a["pgd_error"]) == (b["clean_error"], b["pgd_error"]), \
            f"step {a['step']}: the resumed run's point differs from the uninterrupted run's"


def test_each_points_training_loss_and_accuracy_are_its_epochs_steps_so_far(tmp_path, data, monkeypatch):
    # Every step's own loss and correct count, as train_step returned them; a point after global step s
    # must average the steps of s's epoch up to s (inside the epoch and at its end alike). Batches of 32
    # make 8 steps an epoch, so the inner points (every 2 steps) are not at every step.
    outcomes = recorded_step_outcomes(monkeypatch)
    epochs = 2  # a short run: four points an epoch
    budget = dataclasses.replace(BUDGET, epochs_clean=epochs, batch_size=32)
    steps = budget.n_train // budget.batch_size
    train(NORMAL, budget, data, tmp_path, seed=0)
    points = curve_of(tmp_path)[1:]
    assert [p["step"] for p in points] == curve_steps(steps, epochs)[1:], points
    assert len(points) < epochs * steps, "points must skip steps, or one whose values are read a step late passes"
    assert len(outcomes) == epochs * steps, f"{len(outcomes)} steps ran"
    for point in points:
        first = (point["step"] - 1) // steps * steps  # the first step of the point's epoch
        so_far = outcomes[first:point["step"]]
        loss = sum(loss for loss, _ in so_far) / len(so_far)
        accuracy = sum(correct for _, correct in so_far) / (len(so_far) * budget.batch_size)
        assert point["train_loss"] == pytest.approx(loss, rel=1e-5), \
            f"step {point['step']}: the point's training loss must be the mean of its epoch's {len(so_far)} steps"
        assert point["train_accuracy"] == pytest.approx(accuracy, rel=1e-9), \
            f"step {point['step']}: the point's training accuracy must be its epoch's {len(so_far)} steps' correct share"


def test_a_resume_never_takes_the_starting_point_from_resumed_weights(tmp_path, data):
    # A checkpoint written before curves existed holds no point; resuming it after an epoch must not
    # record the resumed weights as the run's start (step 0).
    epochs = 2
    budget = dataclasses.replace(BUDGET, epochs_clean=epochs)
    with pytest.raises(Interrupt):  # the last checkpoint is epoch 1's end (no timed one inside epoch 2)
        train(NORMAL, budget, data, tmp_path, seed=0, on_step=interrupt_at(STEPS + 1))
    state = load_checkpoint(tmp_path / CHECKPOINT_NAME)
    assert state["epoch"] == 1 and state["step_in_epoch"] == 0, "the interruption must leave epoch 1's checkpoint"
    save_checkpoint(tmp_path / CHECKPOINT_NAME, {k: v for k, v in state.items() if k != "curve"})
    train(NORMAL, budget, data, tmp_path, seed=0, resume=True)
    steps = [p["step"] for p in curve_of(tmp_path)]
    assert steps == [s for s in curve_steps(STEPS, epochs) if s > STEPS], \
        f"a run resumed after epoch 1 takes only epoch 2's points, no step 0 from its resumed weights: {steps}"
