"""CIFAR ResNet-20 with BatchNorm before the activation, and its parameter groups.

Section 3.2 of the paper: "we use ResNet-20 [5] as a base model. Similar to [3], we place
the BN layers before the activation layer". Following Frankle et al. [3], every convolution
is followed by BN and then ReLU; shortcuts that change shape are a 1x1 convolution plus BN.

Table 1 says BN parameters are 0.15% of ResNet-20's parameters. Only the width-64 variant
(stages of 64/128/256 channels) with projection shortcuts matches: 4,327,754 parameters of
which 6,272 are BN gamma/beta (0.145%). Width 64 is the paper default; narrower widths are
for CPU tests and smoke runs.

Input normalisation lives inside the model, so every attack works on images in [0, 1].
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from repro.paper.groups import BN, CONV1, LOGITS, PARAMETER_GROUPS, REST

# CIFAR-10 per-channel training-set mean and standard deviation (for images in [0, 1]).
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)

PAPER_WIDTH = 64  # Table 1's 0.15% holds only at this width (see module docstring).
NUM_CLASSES = 10



class BasicBlock(nn.Module):
    """conv-BN-ReLU-conv-BN plus shortcut, then ReLU (He et al. [5], BN before activation)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_channels != out_channels:
            # Projection shortcut: needed for Table 1's 0.15% (identity/zero-pad gives 0.3%+).
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet20(nn.Module):
    """CIFAR ResNet-20: conv1, 3 stages x 3 basic blocks, global average pooling, linear logits.

    Args:
        width: channels of the first stage; stages have width, 2*width, 4*width channels.
            64 is the paper's model (Table 1); 16 is He et al.'s original.
        num_classes: number of logits.

    forward takes images (B, 3, H, W) in [0, 1] and returns logits (B, num_classes).
    """

    def __init__(self, width: int = PAPER_WIDTH, num_classes: int = NUM_CLASSES):
        super().__init__()
        if width < 1:
            raise ValueError(f"width must be a positive integer, got {width}")
        self.width = width
        # Non-persistent: they are constants, not state, and not parameters.
        self.register_buffer("mean", torch.tensor(CIFAR10_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(CIFAR10_STD).view(1, 3, 1, 1), persistent=False)
        self.conv1 = nn.Conv2d(3, width, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        layers = []
        in_channels = width
        for stage, out_channels in enumerate((width, 2 * width, 4 * width)):
            for block in range(3):
                stride = 2 if stage > 0 and block == 0 else 1
                layers.append(BasicBlock(in_channels, out_channels, stride))
                in_channels = out_channels
        self.blocks = nn.Sequential(*layers)
        self.fc = nn.Linear(in_channels, num_classes)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = (x - self.mean) / self.std
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.blocks(x)
        x = F.adaptive_avg_pool2d(x, 1).flatten(1)
        return self.fc(x)


def bn_layers(model: nn.Module) -> list[tuple[str, nn.modules.batchnorm._BatchNorm]]:
    """All BatchNorm layers of `model` in forward (registration) order, with their names."""
    return [(n, m) for n, m in model.named_modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def parameter_group_of(model: nn.Module) -> dict[str, str]:
    """Map each parameter name of a ResNet20 to its group: bn, logits, conv1 or rest."""
    bn_names = {f"{name}.{p}" for name, layer in bn_layers(model) for p, _ in layer.named_parameters()}
    groups = {}
    for name, _ in model.named_parameters():
        if name in bn_names:
            groups[name] = BN
        elif name.startswith("fc."):
            groups[name] = LOGITS
        elif name == "conv1.weight":
            groups[name] = CONV1
        else:
            groups[name] = REST
    return groups


def parameters_in(model: nn.Module, groups: tuple[str, ...]) -> list[tuple[str, nn.Parameter]]:
    """The named parameters of `model` belonging to any of `groups` (names from PARAMETER_GROUPS)."""
    unknown = set(groups) - set(PARAMETER_GROUPS)
    if unknown:
        raise ValueError(f"unknown parameter group(s) {sorted(unknown)}; valid: {PARAMETER_GROUPS}")
    group_of = parameter_group_of(model)
    return [(n, p) for n, p in model.named_parameters() if group_of[n] in groups]


def count_parameters(model: nn.Module, groups: tuple[str, ...] = PARAMETER_GROUPS) -> int:
    """Number of scalar parameters in `groups` (all parameters by default)."""
    return sum(p.numel() for _, p in parameters_in(model, groups))
