"""Evaluation: clean test error, PGD robust error and adversarial cross-entropy, AutoAttack.

Table 2 reports clean test error and robust test error "against AutoAttack, in %" for L-inf
attacks with eps = 8/255 on "the first 1000 test examples" (Section 3.2). Section 3.3 also uses
the cross-entropy on PGD examples for BN STATS, "as AutoAttack does not maximize loss".
The model is evaluated in eval mode with every parameter frozen.
"""

from __future__ import annotations

import logging
import time

import torch
from torch import nn
from torch.nn import functional as F

from repro.acceleration import accelerated
from repro.attacks import check_threat_model, evaluation_pgd
from repro.bn_analysis import mean_normalized_weight
from repro.budgets import Budget
from repro.data import Dataset, robust_eval_subset, to_float


def freeze_for_evaluation(model: nn.Module) -> nn.Module:
    """Eval mode (BN uses running statistics) and no parameter requiring gradients."""
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


@torch.no_grad()
def predict(model: nn.Module, images: torch.Tensor, batch_size: int) -> torch.Tensor:
    """Predicted classes (N,) for uint8 or float images, in batches."""
    out = []
    for start in range(0, len(images), batch_size):
        batch = images[start:start + batch_size]
        out.append(model(to_float(batch) if batch.dtype == torch.uint8 else batch).argmax(1))
    return torch.cat(out)


def error_percent(predictions: torch.Tensor, labels: torch.Tensor) -> float:
    """Percentage of wrong predictions."""
    return 100.0 * (predictions != labels).float().mean().item()


def pgd_evaluation(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, budget: Budget, seed: int) -> dict:
    """PGD robust error (%) and mean cross-entropy on PGD examples (eval-mode BN)."""
    errors, losses = [], []
    for start in range(0, len(images), budget.eval_batch_size):
        x = to_float(images[start:start + budget.eval_batch_size])
        y = labels[start:start + budget.eval_batch_size]
        adv = evaluation_pgd(model, x, y, epsilon=budget.epsilon, steps=budget.eval_pgd_steps, seed=seed + start)
        with torch.no_grad():
            logits = model(adv)
        errors.append(logits.argmax(1) != y)
        losses.append(F.cross_entropy(logits, y, reduction="none"))
    return {
        "pgd_error": 100.0 * torch.cat(errors).float().mean().item(),
        "pgd_cross_entropy": torch.cat(losses).mean().item(),
    }


def autoattack_evaluation(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, budget: Budget, seed: int) -> dict:
    """Robust error (%) under AutoAttack (L-inf, budget.epsilon), from the returned examples.

    pyautoattack reports its accuracies only at DEBUG level, so the robust accuracy is computed
    here from the adversarial examples it returns.
    """
    from pyautoattack import AutoAttack

    check_threat_model(budget.epsilon, 0.0, 1)
    device = images.device
    logging.getLogger("auto-attack").setLevel(logging.WARNING)
    if budget.autoattack_version == "standard":
        attack = AutoAttack(model, norm="Linf", eps=budget.epsilon, version="standard", seed=seed, device=device)
    else:
        attack = AutoAttack(model, norm="Linf", eps=budget.epsilon, version="custom",
                            attacks=["apgd-ce"], seed=seed, device=device)
        attack.apgd.n_iter = budget.autoattack_iterations
        attack.apgd.n_restarts = 1
    x = to_float(images)
    x_adv, _ = attack.run_standard_evaluation(x, labels, batch_size=budget.eval_batch_size)
    if (x_adv - x).abs().max().item() > budget.epsilon + 1e-5:
        raise RuntimeError("AutoAttack returned examples outside the eps-ball; refusing its result")
    predictions = predict(model, x_adv, budget.eval_batch_size)
    return {"autoattack_error": error_percent(predictions, labels), "autoattack_version": budget.autoattack_version}


def evaluate(model: nn.Module, data: Dataset, budget: Budget, seed: int) -> tuple[dict, dict]:
    """All Table 2 metrics of a trained model; returns (metrics, seconds per phase).

    `model` and `data` must be on the same device.
    """
    freeze_for_evaluation(model)
    normalized_weight = mean_normalized_weight(model)
    model = accelerated(model, budget, data.test_images.device)  # the model itself on a CPU
    timings = {}
    started = time.perf_counter()
    n_test = len(data.test_labels) if budget.n_test is None else min(budget.n_test, len(data.test_labels))
    clean = error_percent(predict(model, data.test_images[:n_test], budget.eval_batch_size), data.test_labels[:n_test])
    timings["clean"] = time.perf_counter() - started
    images, labels = robust_eval_subset(data, budget.n_robust)
    started = time.perf_counter()
    metrics = {"clean_error": clean, "n_clean": n_test, "n_robust": len(labels),
               "mean_normalized_weight": normalized_weight}
    metrics.update(pgd_evaluation(model, images, labels, budget, seed))
    timings["pgd"] = time.perf_counter() - started
    started = time.perf_counter()
    metrics.update(autoattack_evaluation(model, images, labels, budget, seed))
    timings["autoattack"] = time.perf_counter() - started
    return metrics, timings
