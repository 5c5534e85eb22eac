"""One training step (repro/mechanics/train_step.py): what the model trains on, what it returns."""

import copy
import dataclasses

import pytest
import torch

from repro.mechanics.attacks import PGDSettings, pgd
from repro.mechanics.freeze import apply_configuration
from repro.paper.configs import CONFIGURATIONS
from repro.mechanics.train_step import train_step

# Unlike pgd's defaults (8/255, 2/255, 10 steps), so a setting that is not passed on shows.
ATTACK = PGDSettings(epsilon=4 / 255, step_size=3 / 255, steps=2)


def step(model, config, images, labels, seed=0):
    """One train_step of `config`; returns (loss, correct, inputs of the training forward, its logits)."""
    trainable = apply_configuration(model, config)
    optimizer = torch.optim.SGD(trainable, lr=0.1) if trainable else None
    seen = []
    hook = model.register_forward_hook(lambda m, inputs, output: seen.append((inputs[0].detach().clone(), output.detach())))
    loss, correct = train_step(model, config, optimizer, images, labels, ATTACK, seed=seed)
    hook.remove()
    inputs, logits = seen[-1]  # the training forward comes after the attack's
    return loss, correct, inputs, logits


def test_trains_on_the_pgd_examples_of_the_given_settings_and_seed(tiny_model, batch):
    images, labels = batch
    config = CONFIGURATIONS["adv"]
    reference = copy.deepcopy(tiny_model)
    apply_configuration(reference, config)
    expected = pgd(reference, images, labels, epsilon=ATTACK.epsilon, step_size=ATTACK.step_size,
                   steps=ATTACK.steps, seed=7, bn_mode=config.attack_bn_mode)
    _, _, inputs, _ = step(tiny_model, config, images, labels, seed=7)
    assert torch.equal(inputs, expected), (
        "ADV must train on PGD with the step's own epsilon, step size, steps and seed (max difference "
        f"{(inputs - expected).abs().max():.3g})")


@pytest.mark.parametrize("batch_size, adv_fraction, attacked", [
    (16, 1.0, 16),   # Madry et al.: every example
    (16, 0.5, 8),    # the adv_fraction reading (repro/paper/variants.py)
    (16, 0.25, 4),
    (4, 0.1, 1),     # round(0.4) = 0: at least one example is attacked
])
def test_the_last_examples_are_attacked_and_the_first_stay_clean(tiny_model, batch, batch_size, adv_fraction, attacked):
    images, labels = batch[0][:batch_size], batch[1][:batch_size]
    config = dataclasses.replace(CONFIGURATIONS["adv"], adv_fraction=adv_fraction)
    _, _, inputs, _ = step(tiny_model, config, images, labels)
    clean = (inputs == images).flatten(1).all(1).tolist()
    expected = [True] * (batch_size - attacked) + [False] * attacked
    assert clean == expected, (
        f"adv_fraction {adv_fraction} of {batch_size}: the first {batch_size - attacked} examples must be "
        f"trained clean and the last {attacked} adversarially, in one forward; clean flags {clean}")


def test_returns_the_number_the_training_forward_classified_correctly(tiny_model, batch):
    images, _ = batch
    config = CONFIGURATIONS["normal"]
    reference = copy.deepcopy(tiny_model)
    apply_configuration(reference, config)
    with torch.no_grad():
        predicted = reference.train()(images).argmax(1)  # the clean training forward, BN on batch statistics
    labels = predicted.clone()
    labels[:5] = (predicted[:5] + 1) % 10  # 11 of 16 right
    _, correct, _, logits = step(tiny_model, config, images, labels)
    assert torch.equal(logits.argmax(1), predicted), "test set-up: the training forward predicts as the reference"
    assert correct.item() == 11, f"11 of 16 examples are classified correctly by the training forward, returned {correct}"


def test_trainable_configuration_without_optimizer_names_itself(tiny_model, batch):
    with pytest.raises(ValueError, match="^adv_bn_only trains parameters .*it needs an optimizer"):
        train_step(tiny_model, CONFIGURATIONS["adv_bn_only"], None, *batch, ATTACK, seed=0)


@pytest.mark.parametrize("config_id", ["normal", "adv", "bn_stats_reset", "bn_only_params"])
def test_a_step_reads_nothing_on_the_host(tiny_model, batch, config_id, monkeypatch):
    reads = []
    for name in ("item", "__bool__", "tolist"):
        real = getattr(torch.Tensor, name)
        monkeypatch.setattr(torch.Tensor, name, lambda self, *a, _real=real, _name=name, **k: reads.append(_name) or _real(self, *a, **k))
    config = CONFIGURATIONS[config_id]
    trainable = apply_configuration(tiny_model, config)
    optimizer = torch.optim.SGD(trainable, lr=0.1, momentum=0.9) if trainable else None
    train_step(tiny_model, config, optimizer, *batch, ATTACK, seed=0)
    monkeypatch.undo()
    assert reads == [], (
        f"{config_id}: a training step must not synchronise with the host (no range check of augmented "
        f"images, 0-dim tensors returned); it read {reads}")
