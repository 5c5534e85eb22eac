"""Evaluation: Table 2's robust error is computed from the examples AutoAttack returns."""

import dataclasses
import types

import pytest
import pyautoattack
import torch

from repro.attacks import evaluation_pgd
from repro.budgets import SMOKE
from repro.evaluate import autoattack_evaluation, error_percent, predict

BUDGET = dataclasses.replace(SMOKE, eval_batch_size=64)


def fake_autoattack(make_examples):
    """An AutoAttack stand-in returning make_examples(x, y) as its adversarial examples."""

    class FakeAutoAttack:
        def __init__(self, model, *args, **kwargs):
            self.model = model
            self.apgd = types.SimpleNamespace()

        def run_standard_evaluation(self, x, y, batch_size):
            return make_examples(self.model, x, y), y

    return FakeAutoAttack


@pytest.fixture
def model_and_images(trained_tiny_model):
    model, images, labels = trained_tiny_model
    return model, (images * 255).round().to(torch.uint8), labels


def pgd_examples(model, x, y):
    return evaluation_pgd(model, x, y, epsilon=BUDGET.epsilon, steps=5, seed=0)


def test_robust_error_comes_from_the_returned_examples(model_and_images, monkeypatch):
    model, images, labels = model_and_images
    monkeypatch.setattr(pyautoattack, "AutoAttack", fake_autoattack(pgd_examples))
    measured = autoattack_evaluation(model, images, labels, BUDGET, seed=0)["autoattack_error"]
    adversarial = pgd_examples(model, images.float() / 255, labels)
    expected = error_percent(predict(model, adversarial, 64), labels)
    clean = error_percent(predict(model, images, 64), labels)
    assert expected > clean, f"the stand-in attack must change predictions (clean {clean}, attacked {expected})"
    assert measured == pytest.approx(expected), f"robust error {measured} is not the returned examples' {expected}"


def test_examples_outside_the_ball_are_refused(model_and_images, monkeypatch):
    model, images, labels = model_and_images
    monkeypatch.setattr(pyautoattack, "AutoAttack", fake_autoattack(lambda m, x, y: (x + 2 * BUDGET.epsilon).clamp(0, 1)))
    with pytest.raises(RuntimeError, match="eps-ball"):
        autoattack_evaluation(model, images, labels, BUDGET, seed=0)
