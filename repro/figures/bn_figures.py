"""Figures 1 and 2 (Section 3.3): the BN parameters of one layer and the mean normalized weight per layer.

Figure 1: histograms of one BN layer's gamma and beta and of their normalized versions m and b
(Equation 1) for NORMAL, ADV and BN PARAMS. Figure 2: the mean of m per BN layer for each model;
the paper reports the average over layers of (BN PARAMS - NORMAL) as -0.177.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from repro.figures.histograms import DEFAULT_BINS, label_of, same_layers, shared_histograms
from repro.mechanics.bn_analysis import fold_bn, mean_m_per_layer
from repro.mechanics.model import bn_layers

# The paper's Figure 1 shows "the BN parameters (8th layer)" without saying how layers are counted.
# We take the 8th BN layer in forward (= registration) order, index 7: `blocks.3.bn1`, the first
# BN of the second stage. Counting the network's conv layers instead (conv1 = layer 1, shortcuts
# not counted, as in "ResNet-20") gives the same layer: the 8th conv is blocks.3.conv1, whose BN
# is blocks.3.bn1. Counting shortcut BNs changes nothing either, since the first one comes later.
PAPER_LAYER_INDEX = 7


PAPER_AVERAGE_DIFFERENCE = -0.177  # Section 3.3: mean m, BN PARAMS minus NORMAL, averaged over layers


FIGURE1_QUANTITIES = ("gamma", "beta", "m", "b")  # BN parameters and their Equation 1 versions


def bn_histogram_data(models: dict[str, nn.Module], layer_index: int = PAPER_LAYER_INDEX,
                      bins: int = DEFAULT_BINS) -> dict:
    """Figure 1: gamma, beta, m and b (Equation 1) of one BN layer per model, with shared bins.

    Args:
        models: {key: model}; every model must have the same BN layers.
        layer_index: 0-based index into `bn_layers(model)` (forward order); the paper's "8th
            layer" is PAPER_LAYER_INDEX.
        bins: number of histogram bins per quantity.

    Returns {"layer_index", "layer_name", "channels", "labels", "values": {key: {q: [C floats]}},
    "edges": {q: [bins + 1]}, "counts": {key: {q: [bins ints]}}} for q in gamma, beta, m, b. The
    edges of one quantity are shared by all models.
    """
    names = same_layers(models)
    if not 0 <= layer_index < len(names):
        raise ValueError(f"layer_index {layer_index} out of range: the models have {len(names)} BN layers")
    values = {}
    for key, model in models.items():
        layer = bn_layers(model)[layer_index][1]
        m, b = fold_bn(layer)
        gamma = layer.weight.detach() if layer.affine else torch.ones_like(m)
        beta = layer.bias.detach() if layer.affine else torch.zeros_like(m)
        values[key] = {q: t.double().cpu().numpy() for q, t in zip(FIGURE1_QUANTITIES, (gamma, beta, m, b))}
    edges, counts = {}, {key: {} for key in models}
    for q in FIGURE1_QUANTITIES:
        edges[q], per_model = shared_histograms({key: v[q] for key, v in values.items()}, bins)
        for key, c in per_model.items():
            counts[key][q] = c
    return {
        "layer_index": layer_index,
        "layer_name": names[layer_index],
        "channels": len(next(iter(values.values()))["m"]),
        "labels": {key: label_of(key) for key in models},
        "values": {key: {q: v.tolist() for q, v in vs.items()} for key, vs in values.items()},
        "edges": edges,
        "counts": counts,
    }


def average_difference(a: nn.Module | Sequence[float], b: nn.Module | Sequence[float]) -> float:
    """Mean over layers of (mean m of `a` - mean m of `b`): Section 3.3's -0.177 for BN PARAMS - NORMAL.

    `a` and `b` are models (checked to have the same BN layers) or per-layer means of equal length.
    """
    if isinstance(a, nn.Module) and isinstance(b, nn.Module):
        same_layers({"a": a, "b": b})
    per_a = mean_m_per_layer(a) if isinstance(a, nn.Module) else list(a)
    per_b = mean_m_per_layer(b) if isinstance(b, nn.Module) else list(b)
    if len(per_a) != len(per_b) or not per_a:
        raise ValueError(f"need the same, non-zero number of layers: got {len(per_a)} and {len(per_b)}")
    return float(np.mean(np.asarray(per_a, dtype=np.float64) - np.asarray(per_b, dtype=np.float64)))


def figure2_data(models: dict[str, nn.Module], pair: tuple[str, str] = ("bn_params", "normal")) -> dict:
    """Figure 2: mean m per BN layer for each model, over the same layers for every model.

    Args:
        models: {key: model}; ValueError when their BN layer names differ.
        pair: (minuend, subtrahend) of the headline average difference (paper: BN PARAMS - NORMAL).

    Returns {"layers": [names], "labels", "mean_m": {key: [floats]}, "average_difference":
    {"minuend", "subtrahend", "value", "paper"} or None when a model of `pair` is absent,
    "differences": {"a - b": value} for every ordered pair in `models`' order}.
    """
    layers = same_layers(models)
    mean_m = {key: mean_m_per_layer(model) for key, model in models.items()}
    keys = list(models)
    differences = {f"{x} - {y}": average_difference(mean_m[x], mean_m[y])
                   for i, x in enumerate(keys) for y in keys[i + 1:]}
    headline = None
    if pair[0] in mean_m and pair[1] in mean_m:
        headline = {"minuend": pair[0], "subtrahend": pair[1],
                    "value": average_difference(mean_m[pair[0]], mean_m[pair[1]]),
                    "paper": PAPER_AVERAGE_DIFFERENCE}
    return {"layers": layers, "labels": {key: label_of(key) for key in models}, "mean_m": mean_m,
            "average_difference": headline, "differences": differences}
