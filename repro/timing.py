"""Rough wall-time estimates of a budget on a device, from a short throughput measurement."""

from __future__ import annotations

import time

import torch
from torch.nn import functional as F

from repro.budgets import Budget
from repro.configs import ADVERSARIAL, CLEAN, FROM_NORMAL, Configuration
from repro.model import ResNet20


def clean_step_images_per_second(width: int, device: torch.device, batch_size: int = 32, steps: int = 2) -> float:
    """Images per second of a clean SGD step of ResNet-20 at `width` (one warm-up step first)."""
    model = ResNet20(width).to(device).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    images = torch.rand(batch_size, 3, 32, 32, device=device)
    labels = torch.randint(0, 10, (batch_size,), device=device)

    def step():
        optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(model(images), labels).backward()
        optimizer.step()

    step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    started = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return steps * batch_size / (time.perf_counter() - started)


def step_cost(config: Configuration, budget: Budget) -> float:
    """Cost of training on one image, in clean-step units (an attack iteration counts as one)."""
    if config.objective == CLEAN:
        return 1.0
    attack = float(budget.train_attack_steps)
    return attack + (1.0 if config.objective == ADVERSARIAL else 1 / 3)


def estimate_seconds(budget: Budget, configs: list[Configuration], device: torch.device, n_train: int,
                     images_per_second: float | None = None) -> float:
    """Estimated seconds to train and evaluate `configs` (rough: AutoAttack counted as 100 iterations)."""
    rate = images_per_second or clean_step_images_per_second(budget.width, device)
    total = 0.0
    for config in configs:
        epochs = budget.epochs_for(config.objective, config.init == FROM_NORMAL)
        total += epochs * n_train * step_cost(config, budget)
        attack_iterations = budget.eval_pgd_steps + (100 if budget.autoattack_version == "standard"
                                                     else budget.autoattack_iterations)
        total += budget.n_robust * attack_iterations
    return total / rate
