"""Throughput of this code on a device, and wall-time estimates of a budget's rows.

Measured, not assumed: `measure_rates` times the real training and attack code paths for a few
steps on random CIFAR-shaped data; estimates scale those rates by each row's epochs.
"""

from __future__ import annotations

import math
import time

import torch

from repro.mechanics.attacks import PGDSettings, evaluation_pgd
from repro.paper.budgets import Budget
from repro.paper.configs import ADV, BN_STATS_NO_RESET, CLEAN, FORWARD_ADVERSARIAL, NORMAL, Configuration
from repro.mechanics.freeze import apply_configuration
from repro.mechanics.model import ResNet20
from repro.mechanics.train_step import train_step
from repro.mechanics.acceleration import accelerated


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _rate(run, batch_size: int, device: torch.device, repeats: int) -> float:
    """Images per second of the fastest of `repeats` timed calls (after one warm-up call).

    The fastest, not the mean: a call is only ever slowed by something else (another process, a
    page fault, the scheduler), so the minimum time is the estimate of the code's own cost, as
    Python's timeit advises. One slow call in a mean of few (the refusal's estimate times short
    steps) can otherwise multiply a row's estimate several times.
    """
    run()  # warm-up: kernel selection, compilation, allocator
    _synchronize(device)
    fastest = math.inf
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        _synchronize(device)
        fastest = min(fastest, time.perf_counter() - started)
    return batch_size / fastest


def measure_rates(budget: Budget, device: torch.device, batch_size: int | None = None, repeats: int = 2) -> dict[str, float]:
    """Images per second of this code at `budget`'s width on `device`.

    Keys: clean_step (NORMAL's step), adversarial_step (ADV's step with the budget's training
    PGD), forward_adversarial (BN STATS's step), pgd_eval (the evaluation PGD attack alone).
    """
    batch_size = batch_size or budget.batch_size
    images = torch.rand(batch_size, 3, 32, 32, device=device)
    labels = torch.randint(0, 10, (batch_size,), device=device)
    train_attack = PGDSettings(budget.epsilon, budget.train_attack_step_size, budget.train_attack_steps)
    rates = {}
    for key, config in (("clean_step", NORMAL), ("adversarial_step", ADV), ("forward_adversarial", BN_STATS_NO_RESET)):
        model = ResNet20(budget.width).to(device)
        trainable = apply_configuration(model, config)
        net = accelerated(model, budget, device)
        optimizer = torch.optim.SGD(trainable, lr=1e-3, momentum=0.9) if trainable else None
        rates[key] = _rate(lambda: train_step(net, config, optimizer, images, labels, train_attack, seed=0),
                           batch_size, device, repeats)
    model = ResNet20(budget.width).to(device).eval()
    net = accelerated(model, budget, device)
    rates["pgd_eval"] = _rate(lambda: evaluation_pgd(net, images, labels, epsilon=budget.epsilon,
                                                     steps=budget.eval_pgd_steps, seed=0), batch_size, device, repeats)
    return rates


def row_seconds(config: Configuration, budget: Budget, rates: dict[str, float], n_train: int) -> float:
    """Estimated seconds to train and evaluate one row (AutoAttack counted as 10x the PGD evaluation
    under "standard", as its iterations under "custom"; rough by design)."""
    epochs = budget.epochs_of(config)
    key = {CLEAN: "clean_step", FORWARD_ADVERSARIAL: "forward_adversarial"}.get(config.objective, "adversarial_step")
    training = epochs * n_train / rates[key]
    attack_factor = 10.0 if budget.autoattack_version == "standard" else budget.autoattack_iterations / budget.eval_pgd_steps
    evaluation = budget.n_robust * (1 + attack_factor) / rates["pgd_eval"]
    return training + evaluation


def estimate_seconds(budget: Budget, configs: list[Configuration], device: torch.device, n_train: int,
                     rates: dict[str, float] | None = None) -> float:
    """Estimated seconds to train and evaluate `configs` under `budget` on `device`."""
    rates = rates or measure_rates(budget, device, batch_size=16, repeats=3)  # order of magnitude, a few seconds
    return sum(row_seconds(c, budget, rates, n_train) for c in configs)
