"""BatchNorm as one affine map per channel, Equation 1 of the paper.

In eval mode, BN(z_i) = m_i z_i + b_i with
    m_i = gamma_i / sqrt(sigma_i^2 + eps)            (the "normalized weight")
    b_i = beta_i - gamma_i mu_i / sqrt(sigma_i^2 + eps)  (the "normalized bias").
Figures 1 and 2 analyse m per layer; `fold_conv_bn` checks the algebra end to end by merging a
convolution and its BN into a single convolution.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from repro.mechanics.model import bn_layers


@dataclass(frozen=True)
class FoldedBN:
    """Per-channel normalized weight m and bias b of one BN layer (Equation 1)."""

    name: str
    m: torch.Tensor  # (C,)
    b: torch.Tensor  # (C,)


def fold_bn(layer: nn.modules.batchnorm._BatchNorm) -> tuple[torch.Tensor, torch.Tensor]:
    """(m, b) of Equation 1 for one BN layer, from its affine parameters and running statistics."""
    if layer.running_mean is None or layer.running_var is None:
        raise ValueError("Equation 1 needs running statistics; this BN layer tracks none")
    inv_std = torch.rsqrt(layer.running_var + layer.eps)
    gamma = layer.weight if layer.affine else torch.ones_like(layer.running_mean)
    beta = layer.bias if layer.affine else torch.zeros_like(layer.running_mean)
    m = gamma * inv_std
    b = beta - gamma * layer.running_mean * inv_std
    return m.detach(), b.detach()


def fold_model(model: nn.Module) -> list[FoldedBN]:
    """Equation 1 for every BN layer of `model`, in forward (registration) order."""
    return [FoldedBN(name, *fold_bn(layer)) for name, layer in bn_layers(model)]


def fold_conv_bn(conv: nn.Conv2d, bn: nn.modules.batchnorm._BatchNorm) -> nn.Conv2d:
    """A single convolution computing bn(conv(x)) with `bn` in eval mode (Equation 1)."""
    m, b = fold_bn(bn)
    fused = nn.Conv2d(
        conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
        conv.dilation, conv.groups, bias=True, padding_mode=conv.padding_mode,
    ).to(device=conv.weight.device, dtype=conv.weight.dtype)
    with torch.no_grad():
        fused.weight.copy_(conv.weight * m.view(-1, 1, 1, 1))
        conv_bias = conv.bias if conv.bias is not None else torch.zeros_like(m)
        fused.bias.copy_(m * conv_bias + b)
    return fused


def mean_m_per_layer(model: nn.Module) -> list[float]:
    """Mean normalized weight m of each BN layer, in forward order, in float64 (Figure 2's lines)."""
    return [f.m.double().mean().item() for f in fold_model(model)]


def mean_normalized_weight(model: nn.Module) -> float:
    """Mean over BN layers of each layer's mean m: the level of a Figure 2 line, as results record it.

    The difference of two models' values is Section 3.3's "average difference" (paper: -0.177).
    """
    per_layer = mean_m_per_layer(model)
    return sum(per_layer) / len(per_layer)


def mean_abs_gamma_per_layer(model: nn.Module) -> list[float]:
    """Mean |gamma| of each BN layer, in forward order, in float64: how concentrated around zero
    the BN scale parameters are (Section 3.3 on Figure 1: "the distribution of the BN parameters
    ... becomes slightly more concentrated around zero across most layers"). A layer without
    affine parameters scales by 1."""
    return [layer.weight.detach().double().abs().mean().item() if layer.affine else 1.0
            for _, layer in bn_layers(model)]
