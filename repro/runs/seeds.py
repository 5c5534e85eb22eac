"""Several training seeds: one run folder per seed, and their aggregation over seeds.

The paper reports one run per row and no seed spread; a reproduction that runs several seeds
judges Table 2 and the claims on seed means, with the measured spread in the error model
(repro/verdicts/error_model.py). Runs of seed S live in OUT/BUDGET/seedS/ exactly as a single-seed run's
do, and the fine-tuning rows of seed S start from seed S's NORMAL (Pipeline.trained_model). A
row that lacks a seed is reported as missing that seed, never averaged over fewer.
"""

from __future__ import annotations

import dataclasses
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from repro.paper.configs import CONFIGURATIONS
from repro.runs.pipeline import RunSettings

SEEDS_ENV = "REPRO_SEEDS"  # the reproduction tier's seeds, e.g. REPRO_SEEDS=0,1,2
T = TypeVar("T")


def check_seeds(seeds: list[int]) -> list[int]:
    """`seeds` if they are a non-empty list of distinct non-negative integers; else ValueError."""
    if not seeds:
        raise ValueError("give at least one seed, e.g. --seeds 0 1 2")
    if any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in seeds):
        raise ValueError(f"seeds must be non-negative integers, got {seeds}")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be distinct (a repeated seed would be averaged twice), got {seeds}")
    return list(seeds)


def parse_seeds(text: str) -> list[int]:
    """Seeds written as "0,1,2" (REPRO_SEEDS); ValueError saying the format otherwise."""
    try:
        seeds = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ValueError(f"{SEEDS_ENV} expects comma-separated integers such as 0,1,2, got {text!r}") from None
    return check_seeds(seeds)


def for_each_seed(settings: RunSettings, seeds: list[int], work: Callable[[RunSettings], T]) -> dict[int, T]:
    """Run `work` once per seed on `settings` with that seed; returns {seed: what work returned}.

    Every other setting (budget, device, output folder, ...) is shared, so seed S's runs land in
    OUT/BUDGET/seedS/. Seeds run one after another in the order given.
    """
    return {seed: work(dataclasses.replace(settings, seed=seed)) for seed in check_seeds(seeds)}


@dataclass(frozen=True)
class SeedValues:
    """One metric of one row over the seeds asked for."""

    values: dict[int, float]  # seed -> measured value, for the seeds that have a result
    missing: tuple[int, ...]  # seeds asked for without a result, or whose result lacks the metric

    @property
    def complete(self) -> bool:
        return bool(self.values) and not self.missing

    @property
    def mean(self) -> float | None:
        """The mean over seeds; None unless every seed asked for has a result."""
        return statistics.fmean(self.values.values()) if self.complete else None

    @property
    def sd(self) -> float | None:
        """The sample standard deviation over seeds (n - 1); None below two complete seeds."""
        return statistics.stdev(self.values.values()) if self.complete and len(self.values) >= 2 else None


def seed_values(per_seed: dict[int, dict[str, dict]], seeds: list[int], config_id: str, key: str) -> SeedValues:
    """`key` of `config_id`'s metrics in each seed's result records ({seed: {config_id: record}}); a seed
    without the row's record, or whose record lacks `key`, is missing."""
    values, missing = {}, []
    for seed in seeds:
        record = per_seed.get(seed, {}).get(config_id)
        if record is None or key not in record["metrics"]:
            missing.append(seed)
        else:
            values[seed] = record["metrics"][key]
    return SeedValues(values, tuple(missing))


def missing_seeds(per_seed: dict[int, dict[str, dict]], seeds: list[int]) -> dict[str, list[int]]:
    """Configuration id -> the seeds it has no result for (rows with every seed left out)."""
    out = {}
    for config_id in CONFIGURATIONS:
        absent = [s for s in seeds if config_id not in per_seed.get(s, {})]
        if absent:
            out[config_id] = absent
    return out


def mean_records(per_seed: dict[int, dict[str, dict]], seeds: list[int]) -> dict[str, dict]:
    """Result-like records whose metrics are seed means, for rows with a result for every seed.

    Numeric metrics are averaged, series pooled over seeds; rows missing any seed are left out (see missing_seeds), and so
    is a metric or series any seed's record lacks, so a claim on them is reported missing rather than judged on fewer seeds.
    """
    incomplete = missing_seeds(per_seed, seeds)
    out = {}
    for config_id in CONFIGURATIONS:
        if config_id in incomplete or not seeds:
            continue
        records = [per_seed[s][config_id] for s in seeds]
        metrics = {key: statistics.fmean(r["metrics"][key] for r in records)
                   for key, value in records[0]["metrics"].items()
                   if isinstance(value, (int, float)) and not isinstance(value, bool)
                   and all(key in r["metrics"] for r in records)}
        # Series (per-layer values, per-image confidences) are pooled in seed order, so a distance
        # compares the rows' distributions over all seeds and a per-layer count pairs layer l of
        # seed s with layer l of the same seed in the other row.
        series = {name: [x for r in records for x in r["series"][name]]
                  for name in records[0].get("series", {}) if all(name in r.get("series", {}) for r in records)}
        out[config_id] = {"metrics": metrics, "series": series, "seeds": list(seeds)}
    return out
