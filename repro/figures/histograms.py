"""What Figures 1-3 share: the paper's labels of the models compared, and histograms over shared bins.

Every histogram of one quantity uses the same bin edges for every model compared (computed from
the union of their values), so bars line up and counts are comparable. Models are keyed by
configuration id ("normal", "adv", "bn_params"); each figure's dict also carries the paper's labels.
"""

from __future__ import annotations

import numpy as np
from torch import nn

from repro.mechanics.model import bn_layers
from repro.paper.configs import CONFIGURATIONS

FIGURE_CONFIG_IDS = ("normal", "adv", "bn_params")  # the three models of Figures 1-3


DEFAULT_BINS = 30


def label_of(key: str) -> str:
    """The paper's label of a configuration id, or the key itself for anything else."""
    return CONFIGURATIONS[key].label if key in CONFIGURATIONS else key


def shared_histograms(values: dict[str, np.ndarray], bins: int) -> tuple[list[float], dict[str, list[int]]]:
    """Histogram counts of each array over one set of `bins` equal-width edges spanning all arrays.

    Returns (edges (bins + 1,), {key: counts (bins,)}); each array's counts sum to its length (the
    last bin includes its right edge). A constant union gets a unit-wide range around the value.
    """
    if bins < 1:
        raise ValueError(f"bins must be >= 1, got {bins}")
    union = np.concatenate([np.asarray(v, dtype=np.float64).ravel() for v in values.values()])
    if union.size == 0:
        raise ValueError("nothing to histogram")
    if not np.all(np.isfinite(union)):
        raise ValueError("cannot histogram non-finite values (NaN or inf): is a model diverged?")
    lo, hi = float(union.min()), float(union.max())
    if lo == hi:  # numpy's convention for a single value
        lo, hi = lo - 0.5, hi + 0.5
    edges = np.linspace(lo, hi, bins + 1)
    counts = {k: np.histogram(np.asarray(v, dtype=np.float64), edges)[0].tolist() for k, v in values.items()}
    return edges.tolist(), counts


def _layer_names(model: nn.Module) -> list[str]:
    return [name for name, _ in bn_layers(model)]


def same_layers(models: dict[str, nn.Module]) -> list[str]:
    """The BN layer names shared by every model; ValueError naming the models that differ."""
    if not models:
        raise ValueError("no models given")
    names = {key: _layer_names(model) for key, model in models.items()}
    first_key, first = next(iter(names.items()))
    differing = [key for key, n in names.items() if n != first]
    if differing:
        raise ValueError(f"models {differing} have different BN layers than {first_key!r} "
                         f"({len(first)} layers); per-layer comparisons need the same architecture")
    return first
