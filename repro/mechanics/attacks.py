"""Projected gradient descent under the L-infinity threat model (Madry et al. [11]).

Section 3.2: "10 iterations of PGD with a L-infinity perturbation budget of eps = 8/255".
Images live in [0, 1]; the model normalises internally.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from repro.mechanics.freeze import preserved_state
from repro.paper.configs import BN_EVAL

PAPER_EPSILON = 8 / 255  # Section 3.2 and Table 2
PAPER_STEP_SIZE = 2 / 255  # the paper gives none; eps/4 is Madry et al.'s [11] CIFAR ratio
PAPER_STEPS = 10  # Section 3.2: "10 iterations of PGD"
EVALUATION_STEP_FRACTION = 1 / 4  # evaluation PGD steps eps/4, like training's 2/255 at 8/255


@dataclass(frozen=True)
class PGDSettings:
    """An L-infinity PGD attack: radius, step size and number of iterations (images in [0, 1])."""

    epsilon: float = PAPER_EPSILON
    step_size: float = PAPER_STEP_SIZE
    steps: int = PAPER_STEPS

    def __post_init__(self):
        check_threat_model(self.epsilon, self.step_size, self.steps)


def check_images(images: torch.Tensor, labels: torch.Tensor, check_range: bool = True) -> None:
    """Raise ValueError unless `images` is (B, C, H, W) in [0, 1] and `labels` is (B,).

    The range check reads the images' min and max on the host; `check_range=False` skips it.
    """
    if images.dim() != 4:
        raise ValueError(f"images must be (B, C, H, W), got shape {tuple(images.shape)}")
    if labels.dim() != 1 or labels.shape[0] != images.shape[0]:
        raise ValueError(
            f"batch sizes differ: {images.shape[0]} images but labels of shape {tuple(labels.shape)}"
        )
    if check_range and images.numel() and (images.min() < 0 or images.max() > 1):
        raise ValueError(
            f"images must lie in [0, 1], got range [{images.min().item():.4g}, {images.max().item():.4g}]; "
            "pass unnormalised images (the model normalises internally)"
        )


def check_threat_model(epsilon: float, step_size: float, steps: int) -> None:
    """Raise ValueError for an L-infinity budget or schedule that makes no sense."""
    if not (math.isfinite(epsilon) and 0 <= epsilon <= 1):
        raise ValueError(f"epsilon must be in [0, 1] for images in [0, 1], got {epsilon}")
    if not (math.isfinite(step_size) and step_size >= 0):
        raise ValueError(f"step_size must be a finite non-negative number, got {step_size}")
    if int(steps) != steps or steps < 1:
        raise ValueError(f"steps must be an integer >= 1, got {steps}")


def pgd(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    epsilon: float = PAPER_EPSILON,
    step_size: float = PAPER_STEP_SIZE,
    steps: int = PAPER_STEPS,
    random_start: bool = True,
    seed: int | None = None,
    bn_mode: str | None = None,
    check_range: bool = True,
) -> torch.Tensor:
    """Untargeted L-infinity PGD maximising cross-entropy (Madry et al. [11]).

    Args:
        model: maps images (B, C, H, W) in [0, 1] to logits.
        images: (B, C, H, W) in [0, 1].
        labels: (B,) int64 class indices.
        epsilon: L-infinity radius, in [0, 1] (paper: 8/255).
        step_size: signed-gradient step per iteration (default 2/255).
        steps: number of iterations, >= 1 (paper: 10).
        random_start: start uniformly inside the eps-ball.
        seed: seeds the random start; the same seed gives the same result.
        bn_mode: "train" (batch statistics) or "eval" (running statistics) while attacking;
            None keeps the model's current modes.
        check_range: verify images lie in [0, 1] (two host synchronisations); training passes
            False, its batches being in range by construction.

    Returns adversarial images with ||x_adv - x||_inf <= epsilon and 0 <= x_adv <= 1. Only input
    gradients are computed; the model is left exactly as found (modes, requires_grad, .grad,
    BN running statistics).
    """
    check_threat_model(epsilon, step_size, steps)
    check_images(images, labels, check_range)
    x = images.detach()
    lower = (x - epsilon).clamp_(min=0)
    upper = (x + epsilon).clamp_(max=1)
    if random_start and epsilon > 0:
        generator = torch.Generator(device=x.device)
        generator.manual_seed(seed if seed is not None else int(torch.randint(2**62, ()).item()))
        noise = torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        x_adv = torch.min(torch.max(x + (2 * noise - 1) * epsilon, lower), upper)
    else:
        x_adv = x.clone()
    with preserved_state(model, bn_mode), torch.enable_grad():
        for _ in range(int(steps)):
            x_adv.requires_grad_(True)
            loss = F.cross_entropy(model(x_adv), labels, reduction="sum")
            (grad,) = torch.autograd.grad(loss, x_adv)
            x_adv = torch.min(torch.max(x_adv.detach() + step_size * grad.sign(), lower), upper)
    return x_adv.detach()


def evaluation_pgd(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, *, epsilon: float, steps: int,
                   seed: int) -> torch.Tensor:
    """The PGD of evaluation (PGD error, adversarial cross-entropy, Figure 3, `repro bench`).

    Step size epsilon/4 and eval-mode BN: the trained model is attacked as it is tested, with
    its running statistics (Section 3.2 evaluates trained models; nothing is updated).
    """
    return pgd(model, images, labels, epsilon=epsilon, step_size=epsilon * EVALUATION_STEP_FRACTION,
               steps=steps, seed=seed, bn_mode=BN_EVAL)
