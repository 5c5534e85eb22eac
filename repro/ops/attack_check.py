"""Whether each speed-up leaves the model's clean accuracy and the evaluation attacks as fp32 eager has them,
and whether runs repeat.

The modes are compared on a briefly adversarially trained model (so robust error can move, and a
weaker attack shows); the rule is `within_binomial_noise`, for the clean error, PGD and APGD-CE.
Determinism: the same short run twice, weights compared.
"""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path

import torch

from repro.mechanics.attacks import evaluation_pgd
from repro.mechanics.model import ResNet20
from repro.ops.modes import Mode, Sizes, network_in_mode, refusal
from repro.paper.budgets import PAPER, SMOKE, Budget
from repro.paper.configs import ADV
from repro.runs.data import synthetic_dataset, to_float
from repro.runs.evaluate import error_percent, freeze_for_evaluation, predict
from repro.runs.training import train
from repro.verdicts.error_model import within_binomial_noise


def _training_budget(sizes: Sizes, steps: int) -> Budget:
    """A one-epoch ADV run of `steps` PGD steps at `sizes` on the built-in data (offline): PGD-10 at
    step 2/255 (Section 3.2), or fewer iterations at a step that still reaches the eps boundary."""
    step_size = 2 / 255 if sizes.train_attack_steps >= 4 else PAPER.epsilon * 2 / (sizes.train_attack_steps + 1)
    return dataclasses.replace(SMOKE, name="selfcheck", n_train=steps * sizes.batch_size, width=sizes.width,
                               batch_size=sizes.batch_size, epochs_adversarial=1,
                               train_attack_steps=sizes.train_attack_steps, train_attack_step_size=step_size,
                               epsilon=PAPER.epsilon)


def _train_adv(sizes: Sizes, steps: int, device: torch.device, seed: int = 0) -> ResNet20:
    budget = _training_budget(sizes, steps)
    data = synthetic_dataset(budget.n_train, sizes.n_images, seed=0).to(device)
    with tempfile.TemporaryDirectory(prefix="repro-selfcheck-") as folder:
        return train(ADV, budget, data, Path(folder), seed=seed, device=device)


ERRORS = ("clean_error", "pgd_error", "apgd_ce_error")  # what each mode must leave within binomial noise


def robust_errors(model: ResNet20, sizes: Sizes, mode: Mode, device: torch.device, backend: str,
                  images: torch.Tensor, labels: torch.Tensor, seed: int = 0) -> dict:
    """Clean, PGD and APGD-CE error (%) of `model` run as `mode` on `images` (fixed seeds)."""
    from pyautoattack.autopgd_base import APGDAttack

    net = network_in_mode(freeze_for_evaluation(model), sizes, mode, device, backend)
    pgd = evaluation_pgd(net, images, labels, epsilon=PAPER.epsilon, steps=sizes.pgd_steps, seed=seed)
    apgd = APGDAttack(net, n_iter=sizes.apgd_iterations, eps=PAPER.epsilon, seed=seed, device=device)
    adversarial = apgd.perturb(images, labels)
    return {"clean_error": error_percent(predict(net, images, sizes.batch_size), labels),
            "pgd_error": error_percent(predict(net, pgd, sizes.batch_size), labels),
            "apgd_ce_error": error_percent(predict(net, adversarial, sizes.batch_size), labels)}


def attack_strength(sizes: Sizes, modes: tuple[Mode, ...], device: torch.device, backend: str) -> dict:
    """Clean and robust errors of one briefly ADV-trained model in every mode, and each mode's verdict
    against the first (fp32): f"{mode}_checks" per error, f"{mode}_passes" for all of them."""
    model = _train_adv(sizes, sizes.train_steps, device)
    data = synthetic_dataset(sizes.batch_size, sizes.n_images, seed=0)  # held out: the test split
    images, labels = to_float(data.test_images).to(device), data.test_labels.to(device)
    out = {"n_images": sizes.n_images, "train_steps": sizes.train_steps, "train_attack_steps": sizes.train_attack_steps,
           "pgd_steps": sizes.pgd_steps, "apgd_iterations": sizes.apgd_iterations,
           "rule": "|error - fp32 error| <= max(2 sqrt(2 p (1 - p) / n), 1 / n), p their mean, for the clean, "
                   "PGD and APGD-CE errors"}
    reference = modes[0].name
    for mode in modes:
        reason = refusal(mode, device)
        try:
            if reason is not None:
                raise ValueError(reason)
            out[mode.name] = robust_errors(model, sizes, mode, device, backend, images, labels)
        except ValueError as refused:  # plan() refuses, e.g. compile without a compiler
            out[mode.name] = {"skipped": str(refused)}
    for mode in modes[1:]:
        if "skipped" in out[mode.name]:
            out[f"{mode.name}_passes"] = False
            continue
        checks = {error: within_binomial_noise(out[reference][error] / 100, out[mode.name][error] / 100,
                                               sizes.n_images) for error in ERRORS}
        out[f"{mode.name}_checks"] = checks
        out[f"{mode.name}_passes"] = all(checks.values())
    return out


def determinism(sizes: Sizes, device: torch.device) -> dict:
    """The same short ADV run twice: whether the weights are identical, and their largest difference."""
    first, second = (_train_adv(sizes, sizes.determinism_steps, device).state_dict() for _ in range(2))
    difference = max((first[k].double() - second[k].double()).abs().max().item() for k in first)
    return {"steps": sizes.determinism_steps, "identical": difference == 0.0, "max_abs_difference": difference}
