"""Evaluation: Table 2's robust error is computed from the examples AutoAttack returns."""

import copy
import dataclasses
import types

import pyautoattack
import pytest
import torch

from repro.mechanics.attacks import evaluation_pgd
from repro.paper.budgets import SMOKE
from repro.runs.data import Dataset, to_float
from repro.runs.evaluate import autoattack_evaluation, error_percent, evaluate, predict

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


# --- the per-row arrays the cross-row claims compare (result.json "series") ----------------------
SERIES_BUDGET = dataclasses.replace(BUDGET, n_test=32, n_robust=24, eval_pgd_steps=2)


@pytest.fixture(scope="module")
def evaluated(trained_tiny_model):
    """evaluate() of a copy of the tiny model (with a stand-in AutoAttack): (model, images, labels, metrics, series)."""
    model, images, labels = trained_tiny_model
    model = copy.deepcopy(model)
    uint8 = (images * 255).round().to(torch.uint8)
    data = Dataset("synthetic", uint8[:8], labels[:8], uint8, labels, "generated")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(pyautoattack, "AutoAttack", fake_autoattack(lambda m, x, y: x))
        metrics, series, _ = evaluate(model, data, SERIES_BUDGET, seed=0)
    return model, to_float(uint8), labels, metrics, series


def test_series_clean_confidences_are_the_models_on_the_robust_images(evaluated):
    model, images, labels, _, series = evaluated
    n = SERIES_BUDGET.n_robust
    with torch.no_grad():
        expected = torch.softmax(model(images[:n]).double(), 1).max(1).values
    measured = torch.tensor(series["confidence_clean"], dtype=torch.float64)
    assert measured.shape == (n,) and torch.allclose(measured, expected, atol=1e-5), \
        f"clean confidences must be the max softmax on the first {n} test images: {measured[:4]} vs {expected[:4]}"


def test_series_pgd_outputs_are_the_examples_the_pgd_error_counts(evaluated):
    _, _, labels, metrics, series = evaluated
    n = SERIES_BUDGET.n_robust
    logits = torch.tensor(series["logits_pgd"]).view(n, -1)
    error = 100.0 * (logits.argmax(1) != labels[:n]).double().mean().item()
    confidence = torch.softmax(logits.double(), 1).max(1).values
    assert error == pytest.approx(metrics["pgd_error"]) and torch.allclose(
        confidence, torch.tensor(series["confidence_pgd"], dtype=torch.float64), atol=1e-5), \
        f"PGD logits give error {error}, the record says {metrics['pgd_error']}"


def test_series_bn_layers_agree_with_the_recorded_mean(evaluated):
    _, _, _, metrics, series = evaluated
    per_layer = series["mean_m_per_layer"]
    assert len(per_layer) == len(series["mean_abs_gamma_per_layer"]) == 21 and \
        sum(per_layer) / 21 == pytest.approx(metrics["mean_normalized_weight"]), \
        "one mean m and one mean |gamma| per BN layer; their m average is Figure 2's level"


def attacked_indices(model, data, budget):
    """Run evaluate(); return (indices of test images the attacks perturbed, largest perturbation).

    Every model input seen with gradients enabled is an attack's input; each is matched to the
    test image it lies nearest to (the images are binary patterns, 1 apart in L-inf).
    """
    from repro.runs.evaluate import evaluate

    seen = []
    model.register_forward_pre_hook(
        lambda _m, inputs: seen.append(inputs[0].detach().clone()) if torch.is_grad_enabled() else None)
    evaluate(model, data, budget, seed=0)
    test_images = data.test_images.float().div(255).flatten(1)
    indices, largest = set(), 0.0
    for batch in seen:
        distances = (batch.flatten(1)[:, None, :] - test_images[None]).abs().amax(2)  # (B, N) L-inf
        nearest = distances.min(1)
        indices |= set(nearest.indices.tolist())
        largest = max(largest, nearest.values.max().item())
    return indices, largest


def test_evaluation_attacks_exactly_the_first_n_robust_images():
    from repro.mechanics.model import ResNet20
    from repro.runs.data import Dataset
    from tests.conftest import make_micro_budget

    budget = make_micro_budget(n_test=64, n_robust=24, eval_batch_size=16, eval_pgd_steps=2, autoattack_iterations=2)
    g = torch.Generator().manual_seed(0)
    test_images = (torch.randint(0, 2, (64, 3, 32, 32), generator=g) * 255).to(torch.uint8)
    labels = torch.zeros(64, dtype=torch.long)
    data = Dataset("patterns", test_images[:1], labels[:1], test_images, labels, "generated")
    torch.manual_seed(0)
    model = ResNet20(width=2)
    with torch.no_grad():
        model.fc.bias[0] = 20.0  # every image classified correctly, so AutoAttack attacks all of them too
    indices, largest = attacked_indices(model, data, budget)
    assert indices == set(range(budget.n_robust)), (
        f"Section 3.2 attacks the first n_robust={budget.n_robust} test images; evaluation attacked {sorted(indices)}")
    assert largest <= budget.epsilon + 1e-6, f"an attack input lies {largest} from its image, eps = {budget.epsilon}"
