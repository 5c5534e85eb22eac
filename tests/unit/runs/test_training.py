"""The training routine: every configuration trains, checkpoints resume exactly, divergence stops."""

import contextlib
import json
import math
import shutil

import pytest
import torch
from torch.nn.modules.module import register_module_forward_pre_hook
from torch.optim.optimizer import register_optimizer_step_pre_hook

from repro.mechanics.attacks import PGDSettings
from repro.mechanics.model import ResNet20
from repro.paper.configs import CONFIGURATIONS, FROM_NORMAL
from repro.paper.expected import METRICS, RESULT_KEY
from repro.runs.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from repro.runs.data import synthetic_dataset
from repro.runs.pipeline import Pipeline, RunSettings
from repro.runs.run_state import CHECKPOINT_NAME
from repro.runs.training import (
    RunExistsError, TrainingDivergedError, attack_seed, augmentation_seed, lr_factor, train,
)
from tests.conftest import make_micro_budget


@pytest.fixture
def micro_data(micro_budget):
    return synthetic_dataset(micro_budget.n_train, micro_budget.n_test, seed=0)


@pytest.fixture(scope="module")
def micro_results(tmp_path_factory):
    """Every configuration trained and evaluated once at the micro budget, through the pipeline."""
    budget = make_micro_budget(epochs_clean=1, epochs_adversarial=1, epochs_finetune=1)
    out = tmp_path_factory.mktemp("runs")
    pipeline = Pipeline(RunSettings(budget=budget, out=out))
    return pipeline, {c.id: pipeline.result(c) for c in CONFIGURATIONS.values()}


@pytest.mark.parametrize("config_id", CONFIGURATIONS)
def test_every_configuration_trains_and_evaluates(micro_results, config_id):
    pipeline, results = micro_results
    metrics = results[config_id]["metrics"]
    state = load_checkpoint(pipeline.folder(CONFIGURATIONS[config_id]) / CHECKPOINT_NAME)
    assert state["epoch"] == state["epochs"] == 1, f"{config_id}: trained {state['epoch']}/{state['epochs']} of 1 epoch"
    model = ResNet20(4)
    model.load_state_dict(state["model"])
    images, labels = pipeline.data.test_images[:metrics["n_clean"]], pipeline.data.test_labels[:metrics["n_clean"]]
    with torch.no_grad():
        wrong = (model.eval()(images.float() / 255).argmax(1) != labels).float().mean().item()
    assert metrics["clean_error"] == pytest.approx(100 * wrong), (
        f"{config_id}: clean error {metrics['clean_error']} is not the trained model's {100 * wrong} on the test images")
    for key in ("pgd_error", "autoattack_error"):
        assert 0 <= metrics[key] <= 100, f"{config_id}: {key} = {metrics[key]} is not a percentage"
    assert metrics["n_clean"] == 64 and metrics["n_robust"] == 32, f"{config_id}: evaluated on n_test, n_robust images"


@pytest.mark.parametrize("config_id", CONFIGURATIONS)
def test_result_has_every_metric_a_claim_can_read(micro_results, config_id):
    _, results = micro_results
    metrics = results[config_id]["metrics"]
    absent = [m for m in METRICS if not math.isfinite(metrics.get(RESULT_KEY.get(m, m), float("nan")))]
    assert absent == [], f"{config_id}: result lacks finite {absent}; claims in expected_results.json read them"


@pytest.mark.parametrize("config_id", CONFIGURATIONS)
def test_result_file_carries_provenance(micro_results, config_id):
    pipeline, _ = micro_results
    record = json.loads((pipeline.folder(CONFIGURATIONS[config_id]) / "result.json").read_text())
    provenance = record["provenance"]
    fields = {"git_commit", "versions", "device", "hardware", "data", "data_sha256", "weights_sha256"}
    if CONFIGURATIONS[config_id].init == FROM_NORMAL:
        fields.add("initial_weights_sha256")  # the NORMAL it was fine-tuned from
    assert set(provenance) == fields, f"provenance fields: {sorted(provenance)}"
    assert provenance["data"]["checksum_status"] == "generated", "data source recorded"
    assert record["config"]["id"] == config_id and record["budget"]["name"] == "micro", "configuration and budget recorded"
    assert record["wall_seconds"]["train"] > 0, "training wall time recorded"


class Interrupt(Exception):
    pass


@pytest.mark.parametrize("config_id", [c.id for c in CONFIGURATIONS.values() if c.init == FROM_NORMAL])
def test_fine_tuning_starts_from_trained_normal(micro_results, tmp_path, config_id):
    # What the model holds when the fine-tuning run first forwards anything, through the pipeline
    # (which finds the trained NORMAL in its run folder), against NORMAL's finished checkpoint.
    pipeline, _ = micro_results
    normal = CONFIGURATIONS["normal"]
    fresh = Pipeline(RunSettings(budget=pipeline.settings.budget, out=tmp_path))
    shutil.copytree(pipeline.folder(normal), fresh.folder(normal))
    start = {}

    def first_forward(module, _inputs):
        if isinstance(module, ResNet20):
            start.update({k: v.clone() for k, v in module.state_dict().items()})
            raise Interrupt

    handle = register_module_forward_pre_hook(first_forward)
    try:
        with pytest.raises(Interrupt):
            fresh.trained_model(CONFIGURATIONS[config_id])
    finally:
        handle.remove()
    expected = load_checkpoint(fresh.folder(normal) / CHECKPOINT_NAME)["model"]
    if config_id == "bn_stats_reset":  # Section 3.3: its statistics start reset, its weights are NORMAL's
        expected = {k: v for k, v in expected.items() if "running" not in k and "num_batches" not in k}
    differing = [k for k in expected if not torch.equal(start[k], expected[k])]
    assert differing == [], f"{config_id} starts with tensors other than the trained NORMAL's: {differing}"


def test_normal_is_trained_once(micro_results):
    pipeline, _ = micro_results
    assert pipeline.trained_here.count("normal") == 1, (
        f"NORMAL must be trained once and reused by the fine-tuning rows: {pipeline.trained_here}")


def interrupt_at(step):
    def on_step(current):
        if current == step:
            raise Interrupt
    return on_step


def recording(steps):
    def on_step(current):
        steps.append(current)
    return on_step


def interrupted_and_resumed(tmp_path, budget, data, config, initial, stop_at, checkpoint_seconds):
    """(checkpoint left by a run interrupted at step `stop_at`, steps the resumed run took, its model)."""
    with pytest.raises(Interrupt):
        train(config, budget, data, tmp_path / "cut", seed=0, initial_model=initial,
              on_step=interrupt_at(stop_at), checkpoint_seconds=checkpoint_seconds)
    left = load_checkpoint(tmp_path / "cut" / CHECKPOINT_NAME)
    steps = []
    resumed = train(config, budget, data, tmp_path / "cut", seed=0, initial_model=initial, resume=True,
                    on_step=recording(steps), checkpoint_seconds=checkpoint_seconds)
    return left, steps, resumed


def differing_tensors(a, b):
    a, b = a.state_dict(), b.state_dict()
    return [k for k in a if not torch.equal(a[k], b[k])]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """config_id -> that row trained once without interruption at the micro budget (seed 0; a fine-tuning
    row from the NORMAL here), shared by the resume tests, which compare against it and never change it
    (train copies an initial model's weights into a new one)."""
    budget = make_micro_budget()
    data = synthetic_dataset(budget.n_train, budget.n_test, seed=0)
    runs = {}

    def get(config_id):
        if config_id not in runs:
            config = CONFIGURATIONS[config_id]
            initial = get("normal") if config.init == FROM_NORMAL else None
            runs[config_id] = train(config, budget, data, tmp_path_factory.mktemp(config_id), seed=0,
                                    initial_model=initial)
        return runs[config_id]
    return get


@pytest.mark.parametrize("config_id", ["normal", "adv", "bn_stats_reset", "bn_params"])
def test_resume_matches_uninterrupted_run(tmp_path, micro_budget, micro_data, uninterrupted, config_id):
    config = CONFIGURATIONS[config_id]
    initial = uninterrupted("normal") if config.init == FROM_NORMAL else None
    full = uninterrupted(config_id)
    steps_per_epoch = micro_budget.n_train // micro_budget.batch_size
    # Interrupted in the middle of the second epoch, no timed checkpoint: resumes from epoch 1's.
    _, _, resumed = interrupted_and_resumed(tmp_path, micro_budget, micro_data, config, initial,
                                            stop_at=steps_per_epoch + 1, checkpoint_seconds=float("inf"))
    assert differing_tensors(full, resumed) == [], f"{config_id}: resumed run differs from uninterrupted run"


def test_resume_replays_only_the_unfinished_epoch(tmp_path, micro_budget, micro_data):
    steps_per_epoch = micro_budget.n_train // micro_budget.batch_size
    _, steps, _ = interrupted_and_resumed(tmp_path, micro_budget, micro_data, CONFIGURATIONS["normal"], None,
                                          stop_at=steps_per_epoch + 1, checkpoint_seconds=float("inf"))
    assert steps == list(range(steps_per_epoch, 2 * steps_per_epoch)), f"resumed run took steps {steps}"


@pytest.mark.parametrize("config_id", ["normal", "adv"])
def test_resume_inside_an_epoch_matches_uninterrupted_run(tmp_path, micro_budget, micro_data, uninterrupted,
                                                          config_id):
    config = CONFIGURATIONS[config_id]
    full = uninterrupted(config_id)
    steps_per_epoch = micro_budget.n_train // micro_budget.batch_size
    _, _, resumed = interrupted_and_resumed(tmp_path, micro_budget, micro_data, config, None,
                                            stop_at=steps_per_epoch + 2, checkpoint_seconds=0)
    assert differing_tensors(full, resumed) == [], f"{config_id}: resumed-in-epoch run differs from uninterrupted run"


# Interrupted in epoch 2's last step: with a timer of 0 s every step before it was checkpointed, the one
# before last included; with a timer of an hour, not yet due, only the epoch's start was.
@pytest.mark.parametrize("checkpoint_seconds, kept_steps", [(0, 3), (3600, 0)])
def test_timed_checkpoint_keeps_the_steps_inside_an_epoch(tmp_path, micro_budget, micro_data, checkpoint_seconds,
                                                          kept_steps):
    steps_per_epoch = micro_budget.n_train // micro_budget.batch_size
    assert steps_per_epoch == 4, "the cases are written for the micro budget's 4 steps an epoch"
    stop_at = 2 * steps_per_epoch - 1
    left, _, _ = interrupted_and_resumed(tmp_path, micro_budget, micro_data, CONFIGURATIONS["normal"], None,
                                         stop_at=stop_at, checkpoint_seconds=checkpoint_seconds)
    assert (left["epoch"], left["step_in_epoch"]) == (1, kept_steps), (
        f"checkpointing every {checkpoint_seconds} s, a run interrupted at step {stop_at} must have kept epoch 1, "
        f"step {kept_steps}: it kept epoch {left['epoch']}, step {left['step_in_epoch']}")


def test_existing_run_needs_resume_flag(tmp_path, micro_budget, micro_data):
    train(CONFIGURATIONS["normal"], micro_budget, micro_data, tmp_path, seed=0)
    with pytest.raises(RunExistsError) as raised:
        train(CONFIGURATIONS["normal"], micro_budget, micro_data, tmp_path, seed=0)
    assert str(raised.value) == (f"{tmp_path / CHECKPOINT_NAME} already holds a run of normal; pass --resume to "
                                 "continue it or --restart to discard it"), f"both ways out, whole: {raised.value}"


def test_resume_refuses_other_seed(tmp_path, micro_budget, micro_data):
    train(CONFIGURATIONS["normal"], micro_budget, micro_data, tmp_path, seed=0)
    with pytest.raises(CheckpointError, match="seed"):
        train(CONFIGURATIONS["normal"], micro_budget, micro_data, tmp_path, seed=1, resume=True)


def report_nan_loss_after(monkeypatch, good_steps: int) -> None:
    """Make every training step after the first `good_steps` report a NaN loss (each step still runs)."""
    import repro.runs.training

    real_step, calls = repro.runs.training.train_step, {"n": 0}

    def diverging_step(*args, **kwargs):
        loss, correct = real_step(*args, **kwargs)
        calls["n"] += 1
        return (torch.tensor(float("nan")) if calls["n"] > good_steps else loss), correct

    monkeypatch.setattr(repro.runs.training, "train_step", diverging_step)


def recorded_step_outcomes(monkeypatch) -> list[tuple[float, int]]:
    """Make train() record every step's (loss, number correct) as train_step returned them; returns the list
    it appends to."""
    import repro.runs.training

    outcomes, real_step = [], repro.runs.training.train_step

    def recording_step(*args, **kwargs):
        loss, correct = real_step(*args, **kwargs)
        outcomes.append((float(loss), int(correct)))
        return loss, correct

    monkeypatch.setattr(repro.runs.training, "train_step", recording_step)
    return outcomes


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path, micro_budget, micro_data, monkeypatch):
    report_nan_loss_after(monkeypatch, micro_budget.n_train // micro_budget.batch_size)  # epoch 2 diverges
    with pytest.raises(TrainingDivergedError) as raised:
        train(CONFIGURATIONS["normal"], micro_budget, micro_data, tmp_path, seed=0)
    assert load_checkpoint(tmp_path / CHECKPOINT_NAME)["epoch"] == 1, "the epoch-1 checkpoint must survive"
    assert str(raised.value) == (  # what was kept, and which --set rate to lower
        f"normal: training loss became nan in epoch 2; stopped, kept the last good checkpoint "
        f"{tmp_path / CHECKPOINT_NAME}. Lower the learning rate (--set lr=...) and run again."), str(raised.value)


def test_divergence_of_a_fine_tuning_row_in_its_first_epoch_names_lr_finetune(tmp_path, micro_data, monkeypatch):
    report_nan_loss_after(monkeypatch, 0)
    budget = make_micro_budget(n_train=64)  # one step an epoch: the loss is checked at the epoch's end
    with pytest.raises(TrainingDivergedError) as raised:
        train(CONFIGURATIONS["bn_params"], budget, micro_data, tmp_path, seed=0, initial_model=ResNet20(budget.width))
    assert str(raised.value) == (
        "bn_params: training loss became nan in epoch 1; stopped, kept no checkpoint. "
        "Lower the learning rate (--set lr_finetune=...) and run again."), str(raised.value)


# The budget's SGD, worked by hand: weight decay added to the gradient, momentum buffer, Nesterov's look-ahead
# or plain momentum, and the schedule's factor at each step (the step schedule holds the peak early on).
@pytest.mark.parametrize("nesterov", [True, False])
def test_optimizer_takes_the_budgets_sgd_steps(nesterov):
    import dataclasses

    from repro.runs.training import optimizer_and_schedule

    budget = dataclasses.replace(make_micro_budget(), momentum=0.9, weight_decay=0.01, nesterov=nesterov,
                                 schedule="linear")
    weight = torch.nn.Parameter(torch.tensor([1.0]))
    optimizer, scheduler = optimizer_and_schedule([weight], budget, lr=0.5, total_steps=4)
    p, buffer = 1.0, 0.0
    for step in range(2):
        optimizer.zero_grad()
        (3.0 * weight).sum().backward()  # gradient 3
        optimizer.step()
        scheduler.step()
        d = 3.0 + budget.weight_decay * p
        buffer = d if step == 0 else budget.momentum * buffer + d
        p -= 0.5 * lr_factor("linear", step, 4) * (d + budget.momentum * buffer if nesterov else buffer)
    assert weight.item() == pytest.approx(p, rel=1e-6), (
        f"two SGD steps (momentum 0.9, weight decay 0.01, nesterov={nesterov}, linear schedule from 0.5) must take "
        f"the weight from 1.0 to {p}, not {weight.item()}")


def test_missing_normal_for_fine_tuning_is_an_error(tmp_path, micro_budget, micro_data):
    with pytest.raises(ValueError, match="initial_model"):
        train(CONFIGURATIONS["bn_params"], micro_budget, micro_data, tmp_path, seed=0)


@pytest.mark.parametrize(
    "schedule, progress, expected",
    [("linear", 0.0, 1.0), ("linear", 0.5, 0.5), ("step", 0.49, 1.0), ("step", 0.5, 0.1), ("step", 0.8, 0.01)],
)
def test_lr_schedule(schedule, progress, expected):
    factor = lr_factor(schedule, int(progress * 1000), 1000)
    assert factor == pytest.approx(expected), f"{schedule} at {progress:.0%}: {factor}"


def retrain_normal_differently(pipeline):
    """Stand in for `repro train normal --restart` giving other weights (as a GPU run may)."""
    path = pipeline.folder(CONFIGURATIONS["normal"]) / CHECKPOINT_NAME
    state = load_checkpoint(path)
    state["model"]["fc.bias"] = state["model"]["fc.bias"] + 1.0
    save_checkpoint(path, {k: v for k, v in state.items() if k != "format"})


def test_fine_tuned_row_refuses_a_retrained_normal(tmp_path):
    settings = RunSettings(budget=make_micro_budget(epochs_clean=1, epochs_finetune=1), out=tmp_path)
    Pipeline(settings).trained_model(CONFIGURATIONS["bn_params"])
    again = Pipeline(settings)
    again.trained_model(CONFIGURATIONS["bn_params"])  # the same NORMAL: its fine-tuned row is found, not refused
    assert again.trained_here == [], f"with its NORMAL unchanged the finished row must be reused: {again.trained_here}"
    retrain_normal_differently(Pipeline(settings))
    with pytest.raises(CheckpointError, match="another NORMAL"):
        Pipeline(settings).trained_model(CONFIGURATIONS["bn_params"])


def test_result_is_not_reused_for_other_weights(tmp_path):
    settings = RunSettings(budget=make_micro_budget(epochs_clean=1), out=tmp_path)
    before = Pipeline(settings).result(CONFIGURATIONS["normal"])
    retrain_normal_differently(Pipeline(settings))
    after = Pipeline(settings).result(CONFIGURATIONS["normal"])
    assert after["identity"]["model"] != before["identity"]["model"], (
        "a result evaluated on the old weights was reused for the retrained model")


# The learning rate of every step of a run of 2 epochs x 4 steps (micro budget: 256 images,
# batches of 64), as a fraction of the peak; written out, not computed by lr_factor.
LR_AT_EVERY_STEP = {
    "linear": [1, 7 / 8, 6 / 8, 5 / 8, 4 / 8, 3 / 8, 2 / 8, 1 / 8],  # decays to 0 at the run's end
    "step": [1, 1, 1, 1, 0.1, 0.1, 0.01, 0.01],  # x0.1 at 50% and 75% of the run (Frankle et al. [3])
}


def recorded_learning_rates(config, budget, data, folder, initial=None):
    """The learning rate of every optimiser step a real train() run takes."""
    rates = []
    handle = register_optimizer_step_pre_hook(
        lambda optimizer, _args, _kwargs: rates.append(optimizer.param_groups[0]["lr"]))
    try:
        train(config, budget, data, folder, seed=0, initial_model=initial)
    finally:
        handle.remove()
    return rates


@pytest.mark.parametrize("config_id, schedule", [("normal", "linear"), ("bn_params", "step")])
def test_learning_rate_of_every_step(tmp_path, micro_data, config_id, schedule):
    budget = make_micro_budget(schedule=schedule, epochs_clean=2, epochs_finetune=2)
    config = CONFIGURATIONS[config_id]
    initial = ResNet20(budget.width) if config.init == FROM_NORMAL else None
    peak = budget.lr_finetune if initial is not None else budget.lr  # Section 3.2: fine-tuning has its own rate
    rates = recorded_learning_rates(config, budget, micro_data, tmp_path, initial)
    expected = [peak * f for f in LR_AT_EVERY_STEP[schedule]]
    assert rates == pytest.approx(expected), f"{config_id}, {schedule} schedule: lr per step {rates}, expected {expected}"


@pytest.mark.parametrize("schedule, expected", [("linear", 0.0), ("step", 0.01)])
@pytest.mark.parametrize("total_steps", [1, 2, 8])
def test_lr_schedule_reaches_its_end_at_the_last_step(schedule, total_steps, expected):
    factor = lr_factor(schedule, total_steps, total_steps)
    assert factor == pytest.approx(expected), (
        f"{schedule} schedule of {total_steps} steps must stand at its end ({expected}) after the last step, "
        f"also for a one-step run: {factor}")


# (seed, step) -> (attack seed, augmentation seed), written out: a run's per-step draws are part of its
# reproducibility, so a changed formula would silently change every model trained (and every resume of a
# checkpoint written before). The large seed checks the values stay inside 2**62 (a 64-bit generator seed).
SEEDS_OF_A_STEP = {
    (0, 0): (0, 7_919),
    (1, 5): (1_000_008, 1_007_957),
    (7, 123_456): (7_123_477, 7_131_606),
    (5 * 10**12, 3): (388_328_981_572_612_099, 388_478_981_572_620_018),
}


@pytest.mark.parametrize("seed, step", SEEDS_OF_A_STEP)
def test_seeds_of_a_step_are_fixed(seed, step):
    got = attack_seed(seed, step), augmentation_seed(seed, step)
    assert got == SEEDS_OF_A_STEP[seed, step], (
        f"seed {seed}, step {step}: (attack, augmentation) seeds {got} must stay {SEEDS_OF_A_STEP[seed, step]} "
        "so runs stay reproducible across versions")


@pytest.mark.parametrize("seed_of", [attack_seed, augmentation_seed])
def test_every_step_of_a_run_gets_its_own_seed(seed_of):
    steps = 1_000  # more steps than a run of the smoke budget takes
    seeds = [seed_of(seed, step) for seed in range(3) for step in range(steps)]
    assert len(set(seeds)) == len(seeds), (
        f"{seed_of.__name__}: every (seed, step) of {steps} steps x 3 seeds must get its own seed, "
        "else steps would repeat the same random draws")


def test_an_epochs_loss_and_accuracy_are_over_all_its_steps(tmp_path, monkeypatch):
    # What a run reports for each epoch (train(progress=...); the curve's epoch-end point takes the same sums):
    # the mean training loss over the epoch's steps and the share of its training images classified correctly.
    stepped = recorded_step_outcomes(monkeypatch)
    budget, reported = make_micro_budget(n_train=128), []  # 2 epochs of 2 steps
    data = synthetic_dataset(budget.n_train, budget.n_test, seed=0)
    train(CONFIGURATIONS["adv"], budget, data, tmp_path, seed=0, progress=reported.append)
    steps = budget.n_train // budget.batch_size
    expected = [value for e in range(budget.epochs_adversarial)
                for value in (sum(loss for loss, _ in stepped[e * steps:(e + 1) * steps]) / steps,
                              sum(n for _, n in stepped[e * steps:(e + 1) * steps]) / (steps * budget.batch_size))]
    got = [value for info in reported for value in (info["loss"], info["accuracy"])]
    assert got == pytest.approx(expected, rel=1e-5), (
        f"per epoch, mean loss and accuracy reported {got}, but each epoch's {steps} steps give {expected}")


def test_adversarial_training_attacks_with_the_budgets_pgd(tmp_path, monkeypatch):
    import repro.runs.training

    attacks, real_step = [], repro.runs.training.train_step
    monkeypatch.setattr(repro.runs.training, "train_step",
                        lambda *args, **kwargs: attacks.append(args[5]) or real_step(*args, **kwargs))
    budget = make_micro_budget(n_train=64, epochs_adversarial=1, train_attack_steps=3, train_attack_step_size=1 / 255)
    train(CONFIGURATIONS["adv"], budget, synthetic_dataset(budget.n_train, budget.n_test, seed=0), tmp_path, seed=0)
    expected = PGDSettings(budget.epsilon, budget.train_attack_step_size, budget.train_attack_steps)
    assert attacks == [expected], f"ADV's steps must attack with the budget's eps, step size and iterations: {attacks}"


def test_progress_names_each_epoch_of_the_run(tmp_path):
    budget, reported = make_micro_budget(n_train=128), []  # 2 epochs of 2 steps
    data = synthetic_dataset(budget.n_train, budget.n_test, seed=0)
    train(CONFIGURATIONS["normal"], budget, data, tmp_path, seed=0, progress=reported.append)
    assert [(info["epoch"], info["epochs"]) for info in reported] == [(1, 2), (2, 2)], (
        f"progress must say epoch k of the run's 2 after each epoch (the progress line shows it): {reported}")


def test_a_configuration_without_epochs_is_refused_with_its_name(tmp_path):
    budget = make_micro_budget(epochs_clean=0)
    data = synthetic_dataset(budget.n_train, budget.n_test, seed=0)
    with pytest.raises(ValueError) as raised:
        train(CONFIGURATIONS["normal"], budget, data, tmp_path, seed=0)
    assert str(raised.value) == "normal has 0 epochs under budget micro; it needs at least 1", str(raised.value)


def test_too_few_training_images_for_a_batch_are_refused_with_both_counts(tmp_path):
    budget = make_micro_budget(n_train=32, batch_size=64)
    data = synthetic_dataset(budget.n_train, budget.n_test, seed=0)
    with pytest.raises(ValueError) as raised:
        train(CONFIGURATIONS["normal"], budget, data, tmp_path, seed=0)
    assert str(raised.value) == "32 training images cannot fill one batch of 64", str(raised.value)


def test_training_seconds_add_up_over_epochs_and_a_resume(tmp_path, micro_budget, micro_data):
    # result.json's wall_seconds.train is the run's training time, summed over its epochs and over an
    # interruption: bounded above by the wall time of the train() calls and below by the time its steps took.
    import time

    config, steps_per_epoch = CONFIGURATIONS["adv"], micro_budget.n_train // micro_budget.batch_size
    stop_at = steps_per_epoch + 2  # inside epoch 2; its checkpoint then holds steps_per_epoch + 2 steps
    step_times, reported, calls = {}, [], []

    def on_step(step):
        step_times.setdefault(len(calls), []).append(time.perf_counter())
        if step == stop_at and len(calls) == 1:
            raise Interrupt

    def progress(info):
        reported.append((time.perf_counter(), info["seconds"]))

    for resume in (False, True):
        calls.append(time.perf_counter())
        with contextlib.nullcontext() if resume else pytest.raises(Interrupt):
            train(config, micro_budget, micro_data, tmp_path, seed=0, resume=resume, on_step=on_step,
                  progress=progress, checkpoint_seconds=0)
    finished = time.perf_counter()
    (first_epoch_end, first), (_, total) = reported
    before, after = step_times[1], step_times[2]
    first_epoch_steps = before[steps_per_epoch - 1] - before[0]
    assert first_epoch_steps <= first <= first_epoch_end - calls[0], (
        f"epoch 1 reported {first} s of training; its steps took at least {first_epoch_steps} s and the call had run "
        f"{first_epoch_end - calls[0]} s")
    at_least = first + (before[stop_at - 1] - before[steps_per_epoch]) + (after[-1] - after[0])
    at_most = finished - calls[0]
    assert at_least <= total <= at_most, (
        f"after a resume inside epoch 2 the run reported {total} s of training: at least epoch 1's {first} s plus "
        f"the steps checkpointed in epoch 2 and those after the resume ({at_least} s in all), at most the {at_most} s "
        "both train() calls took")


# NORMAL: the epoch shuffle; ADV: the shuffle, crop/flip and each step's PGD random start (attack_seed).
@pytest.mark.parametrize("config_id", ["normal", "adv"])
def test_a_run_ignores_other_draws_from_the_global_generator(tmp_path, config_id):
    config = CONFIGURATIONS[config_id]
    budget = make_micro_budget(n_train=128)  # 2 epochs of 2 steps: the hook draws before epoch 2's shuffle
    data = synthetic_dataset(budget.n_train, budget.n_test, seed=0)
    quiet = train(config, budget, data, tmp_path / "quiet", seed=0)
    noisy = train(config, budget, data, tmp_path / "noisy", seed=0, on_step=lambda _step: torch.rand(1))
    assert differing_tensors(quiet, noisy) == [], (
        f"{config_id}: the run's random draws (shuffle, augmentation, attack starts) come from its own seeds: a hook "
        "drawing from torch's global RNG must not change the trained weights")


def test_each_normal_step_draws_autoaugment_from_its_own_seed(tmp_path, micro_budget, micro_data, monkeypatch):
    # The per-step seeds of SEEDS_OF_A_STEP are the ones used: step s's AutoAugment draws come from a generator
    # seeded augmentation_seed(run seed, s), so a step's images can be made again from (seed, step) alone.
    import repro.runs.augmentation

    seeded, real = [], repro.runs.augmentation.autoaugment
    monkeypatch.setattr(repro.runs.augmentation, "autoaugment",
                        lambda images, generator=None: seeded.append(generator.initial_seed()) or real(images, generator))
    train(CONFIGURATIONS["normal"], micro_budget, micro_data, tmp_path, seed=3)
    steps = micro_budget.epochs_clean * (micro_budget.n_train // micro_budget.batch_size)
    assert seeded == [augmentation_seed(3, step) for step in range(steps)], (
        f"NORMAL at seed 3: AutoAugment's generators were seeded {seeded}, not augmentation_seed(3, step) for its "
        f"{steps} steps in order")


def recorded_random_starts(monkeypatch, tmp_path, seed: int) -> list[torch.Tensor]:
    """ADV trained at 2 epochs of 2 steps with `seed`: each step's PGD random start (the start minus the
    images, in units of eps), made by the attack itself from the arguments that step passed it."""
    import repro.mechanics.attacks
    import repro.mechanics.train_step

    starts, real = [], repro.mechanics.attacks.pgd

    def recording(model, images, labels, **kwargs):
        start = real(model, images, labels, **{**kwargs, "step_size": 0.0, "steps": 1})  # the start, projected
        starts.append((start - images) / kwargs["epsilon"])
        return real(model, images, labels, **kwargs)

    monkeypatch.setattr(repro.mechanics.train_step, "pgd", recording)
    budget = make_micro_budget(n_train=128)
    train(CONFIGURATIONS["adv"], budget, synthetic_dataset(budget.n_train, budget.n_test, seed=0), tmp_path, seed=seed)
    return starts


def test_each_training_step_draws_its_own_pgd_random_start(tmp_path, monkeypatch):
    starts = recorded_random_starts(monkeypatch, tmp_path, seed=0)
    # Where a start is not clipped at 0 or 1 it is the draw itself: one draw reused makes most elements equal.
    shared = [((a - b).abs() < 1e-4).float().mean().item() for a, b in zip(starts, starts[1:])]
    assert len(starts) == 4 and all(share < 0.5 for share in shared), (
        f"consecutive steps' random starts agree on {shared} of their elements: each step must draw its own")


def test_the_training_random_starts_are_the_seeds(tmp_path, monkeypatch):
    first = recorded_random_starts(monkeypatch, tmp_path / "first", seed=5)
    second = recorded_random_starts(monkeypatch, tmp_path / "second", seed=5)
    assert len(first) == len(second) == 4 and all(torch.equal(a, b) for a, b in zip(first, second)), (
        "two runs of one seed must draw the same random start at every step")
