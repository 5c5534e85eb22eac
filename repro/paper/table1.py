"""Table 1's "%params" column: the share of parameters a configuration trains, rounded as the paper prints it.

The other columns ("all", "BN params", "BN stats") are properties of Configuration (repro/paper/configs.py).
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

from repro.paper.configs import Configuration
from repro.paper.groups import BN


def trainable_fraction(config: Configuration, group_sizes: dict[str, int]) -> float:
    """Table 1 '%params': percentage of parameters trained, given each group's size.

    For BN STATS, which trains no parameter, Table 1 prints "(0.15)": the statistics are as many
    as the BN parameters (Section 3.3), so the BN share is returned for statistics-only rows.
    """
    total = sum(group_sizes.values())
    groups = config.trainable if config.trainable else ((BN,) if config.updates_bn_stats else ())
    return 100.0 * sum(group_sizes[g] for g in groups) / total


def table1_percent(percent: float) -> float:
    """Round a percentage as Table 1 prints it: two decimals, from three significant ones.

    Width-64 ResNet-20's BN share is 0.1449...%; Table 1's "0.15" is that value reported as
    0.145 and rounded half up (plain two-decimal rounding would give 0.14).
    """
    three = Decimal(f"{percent:.3f}")
    return float(three.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))
