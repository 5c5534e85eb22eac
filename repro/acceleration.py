"""Optional GPU speed-ups, chosen by the budget and falling back cleanly on a CPU.

- channels_last memory format on CUDA (convolutions run faster in NHWC on tensor cores);
- bf16 autocast of the network's forward pass on CUDA (budget.bf16). The attack's perturbation,
  sign step and projection stay in fp32: they act on the images outside the network, and the
  logits are returned in fp32;
- torch.compile (budget.compile) on CUDA; on a CPU the eager model is used.

The wrapper shares the model's parameters and buffers, so freezing, checkpoints and BN statistics
all act on the original model.
"""

from __future__ import annotations

import torch
from torch import nn

from repro.budgets import Budget


class Autocast(nn.Module):
    """Runs `model` under bf16 autocast and returns fp32 logits."""

    def __init__(self, model: nn.Module, device_type: str):
        super().__init__()
        self.model = model
        self.device_type = device_type

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(self.device_type, dtype=torch.bfloat16):
            return self.model(x).float()


def accelerated(model: nn.Module, budget: Budget, device: torch.device) -> nn.Module:
    """The callable network to train and attack with: `model` itself on a CPU."""
    device = torch.device(device)
    if device.type != "cuda":
        return model
    model.to(memory_format=torch.channels_last)
    net = Autocast(model, "cuda") if budget.bf16 else model
    if budget.compile:
        net = torch.compile(net)
    return net
