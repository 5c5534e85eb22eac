"""Applying a configuration to a model: which tensors train, and how BatchNorm behaves.

Table 1 distinguishes training all parameters, only the BN parameters, and updating the BN
statistics. `apply_configuration` sets `requires_grad` per parameter group and resets the BN
statistics where the configuration says so; `train_mode` puts the model in training mode with
BN frozen (running statistics, no updates) where the configuration freezes statistics. Two
readings of the paper's open choices (repro/paper/variants.py) are BN settings applied here too: the
cumulative average of the statistics (momentum None) and batch statistics that never move the
running ones (STATS_FROZEN_BATCH).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn

from repro.mechanics.model import bn_layers, parameter_group_of
from repro.paper.configs import (
    BN_EVAL,
    CUMULATIVE_AVERAGE,
    STATS_FROZEN,
    STATS_FROZEN_BATCH,
    STATS_RESET,
    Configuration,
)


def apply_configuration(model: nn.Module, config: Configuration) -> list[nn.Parameter]:
    """Freeze and unfreeze `model`'s parameters for `config`; reset BN statistics if it says so.

    Call once, before training starts (on resume, loading the checkpoint then replaces the reset
    statistics with the saved ones). Returns the trainable parameters, in model order, for the
    optimiser.
    """
    group_of = parameter_group_of(model)
    trainable = []
    for name, param in model.named_parameters():
        param.requires_grad_(group_of[name] in config.trainable)
        if param.requires_grad:
            trainable.append(param)
    if config.bn_stats == STATS_RESET:
        # Section 3.3: "resetting the statistics before forwarding adversarial examples".
        for _, layer in bn_layers(model):
            layer.reset_running_stats()
    for _, layer in bn_layers(model):
        if config.stats_average == CUMULATIVE_AVERAGE:
            layer.momentum = None  # PyTorch then averages every batch since the counter's start equally
        # Without tracking, a train-mode BN normalises with the batch's statistics and leaves its
        # buffers (statistics and counter) alone; in eval mode it still uses the stored ones.
        layer.track_running_stats = config.bn_stats != STATS_FROZEN_BATCH
    return trainable


def train_mode(model: nn.Module, config: Configuration) -> None:
    """Put `model` in training mode as `config` trains it.

    BN layers use batch statistics and update their running statistics, except under
    STATS_FROZEN, where they stay in eval mode: they normalise with the stored statistics
    throughout and never update them (BN ONLY PARAMS, Section 3.3). Under STATS_FROZEN_BATCH they
    train, normalising with batch statistics, but apply_configuration stopped them tracking, so
    the stored statistics stay as they were.
    """
    model.train()
    if config.bn_stats == STATS_FROZEN:
        for _, layer in bn_layers(model):
            layer.eval()


def bn_buffers(model: nn.Module) -> dict[str, torch.Tensor]:
    """Copies of every BN running statistic and counter, keyed by state-dict name."""
    return {
        f"{name}.{b}": buf.detach().clone()
        for name, layer in bn_layers(model)
        for b, buf in layer.named_buffers()
    }


@contextlib.contextmanager
def preserved_state(model: nn.Module, bn_mode: str | None = None) -> Iterator[None]:
    """Run a block with `model` in `bn_mode` ("train"/"eval"/None = as is), then restore it.

    On exit the module modes, `requires_grad` flags, `.grad` tensors and BN running statistics
    are exactly what they were on entry. Inside, no parameter requires a gradient, so a backward
    pass computes input gradients only (no weight-gradient work).
    """
    modes = {m: m.training for m in model.modules()}
    flags = {p: p.requires_grad for p in model.parameters()}
    grads = {p: p.grad for p in model.parameters()}
    layers = [layer for _, layer in bn_layers(model)]
    # BN in eval mode never writes its statistics: copy them only if some layer will train inside.
    updates = any(layer.training for layer in layers) if bn_mode is None else bn_mode != BN_EVAL
    buffers = bn_buffers(model) if updates else {}
    try:
        if bn_mode is not None:
            for layer in layers:
                layer.train(bn_mode != BN_EVAL)
        for p in model.parameters():
            p.requires_grad_(False)
        yield
    finally:
        for m, training in modes.items():
            m.training = training
        for p, flag in flags.items():
            p.requires_grad_(flag)
            p.grad = grads[p]
        with torch.no_grad():
            state = dict(model.named_buffers())
            for name, value in buffers.items():
                state[name].copy_(value)
