"""Comparing two models' outputs or BN layers: distribution distances and per-position shares.

Figure 3's caption says BN PARAMS "is able to follow the behavior of ADV to a large extent, both
on clean and adversarial examples"; the claims read that as a distance between the histogrammed
distributions (max-softmax confidence, logits) that is smaller from BN PARAMS to ADV than from
NORMAL to ADV. Section 3.3's "in most layers" statements are shares of BN layers in which one
model's per-layer number relates to another's in a stated way.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from repro.paper.expected import OPERATORS


def _finite(values: Sequence[float], name: str) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64).ravel()
    if array.size == 0:
        raise ValueError(f"{name} is empty: a distribution needs at least one value")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} holds non-finite values (NaN or inf): is a model diverged?")
    return array


def wasserstein1(a: Sequence[float], b: Sequence[float]) -> float:
    """1-Wasserstein (earth mover's) distance between the empirical distributions of `a` and `b`.

    Each array is a sample, every value weighted equally (the arrays may differ in length); the
    distance is the area between the two empirical CDFs, in the values' own units (for max-softmax
    confidences: probability). Written in numpy (the integral of |F_a - F_b| over the merged
    support) rather than taking scipy as a dependency for one function.
    """
    # np.sort copies: sorting in place would reorder a float64 array the caller passed (no copy is made for it)
    a, b = np.sort(_finite(a, "first sample")), np.sort(_finite(b, "second sample"))
    support = np.concatenate([a, b])
    support.sort()
    widths = np.diff(support)  # F_a - F_b is constant between consecutive support points
    cdf_a = np.searchsorted(a, support[:-1], side="right") / a.size
    cdf_b = np.searchsorted(b, support[:-1], side="right") / b.size
    return float(np.sum(np.abs(cdf_a - cdf_b) * widths))


def fraction_where(a: Sequence[float], op: str, b: Sequence[float]) -> tuple[int, int]:
    """(k, n): in how many of the n positions `a[i] op b[i]` holds (op one of <, <=, >, >=).

    `a` and `b` are per-position numbers of the same length, e.g. one value per BN layer of two
    models with the same architecture; ValueError otherwise.
    """
    if op not in OPERATORS:
        raise ValueError(f"op must be one of {list(OPERATORS)}, got {op!r}")
    a, b = _finite(a, "first series"), _finite(b, "second series")
    if a.size != b.size:
        raise ValueError(f"need the same number of positions (e.g. BN layers): got {a.size} and {b.size}")
    return int(np.count_nonzero(OPERATORS[op](a, b))), int(a.size)
