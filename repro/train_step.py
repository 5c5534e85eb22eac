"""One training step of any configuration: clean, PGD adversarial, or forward-only (BN STATS).

Section 3.2: adversarial training uses "10 iterations of PGD with a L-infinity perturbation
budget of eps = 8/255"; Section 3.3: for BN STATS "the statistics are updated by simply
forwarding adversarial examples", with no optimiser step.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from repro.attacks import PGDSettings, pgd
from repro.configs import FORWARD_ADVERSARIAL, Configuration
from repro.freeze import train_mode


def train_step(
    model: nn.Module,
    config: Configuration,
    optimizer: torch.optim.Optimizer | None,
    images: torch.Tensor,
    labels: torch.Tensor,
    attack: PGDSettings,
    seed: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Train `model` on one batch as `config` prescribes.

    Args:
        optimizer: over the configuration's trainable parameters; None when it has none.
        images: (B, 3, H, W) augmented images in [0, 1]; labels (B,).
        attack: PGD settings for adversarial objectives (ignored for clean training).
        seed: seeds the attack's random start.

    Returns (loss, number correct) on the examples trained on, as 0-dim tensors (no host sync).
    """
    inputs = images
    if config.uses_attack:
        inputs = pgd(
            model, images, labels, epsilon=attack.epsilon, step_size=attack.step_size,
            steps=attack.steps, seed=seed, bn_mode=config.attack_bn_mode,
            check_range=False,  # augmented uint8 images: in [0, 1] by construction; no host sync per step
        )
    train_mode(model, config)
    if config.objective == FORWARD_ADVERSARIAL:
        with torch.no_grad():  # the forward pass moves the BN statistics; nothing else changes
            logits = model(inputs)
            loss = F.cross_entropy(logits, labels)
    else:
        if optimizer is None:
            raise ValueError(f"{config.id} trains parameters {config.trainable}: it needs an optimizer")
        logits = model(inputs)
        loss = F.cross_entropy(logits, labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    correct = (logits.argmax(1) == labels).sum()
    return loss.detach(), correct
