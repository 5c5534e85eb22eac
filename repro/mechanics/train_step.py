"""One training step of any configuration: clean, PGD adversarial, or forward-only (BN STATS).

Section 3.2: adversarial training uses "10 iterations of PGD with a L-infinity perturbation
budget of eps = 8/255"; Section 3.3: for BN STATS "the statistics are updated by simply
forwarding adversarial examples", with no optimiser step. Under the `adv_fraction` reading
(repro/paper/variants.py) only part of an adversarial batch is attacked; clean and adversarial examples
then share one forward pass, so BN's batch statistics mix both.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from repro.mechanics.attacks import PGDSettings, pgd
from repro.mechanics.freeze import train_mode
from repro.paper.configs import ADVERSARIAL, FORWARD_ADVERSARIAL, Configuration


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
    With config.adv_fraction < 1 the first examples stay clean and the rest are attacked; the loss
    is the mean cross-entropy over the whole batch, i.e. the size-weighted sum of both parts'.
    """
    inputs = images
    if config.uses_attack:
        n_clean = len(images) - adversarial_count(config, len(images))
        adversarial = pgd(
            model, images[n_clean:], labels[n_clean:], epsilon=attack.epsilon, step_size=attack.step_size,
            steps=attack.steps, seed=seed, bn_mode=config.attack_bn_mode,
            check_range=False,  # augmented uint8 images: in [0, 1] by construction; no host sync per step
        )
        inputs = torch.cat([images[:n_clean], adversarial]) if n_clean else adversarial
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


def adversarial_count(config: Configuration, batch_size: int) -> int:
    """How many examples of a batch of `batch_size` are attacked: all, except under an ADVERSARIAL
    objective with adv_fraction < 1, where it is the rounded share (at least one)."""
    if config.objective != ADVERSARIAL:
        return batch_size
    return min(batch_size, max(1, round(config.adv_fraction * batch_size)))
