"""The error model behind Table 2's tolerances: how far a measured number may lie from the paper's.

Every Table 2 metric is an error rate in percent measured on a finite test sample by one trained
model. A reproduction differs from the paper's value by

- the paper's sampling noise: binomial at the paper's evaluation-set size (clean errors on 900
  images, inferred from the 1/9 % grid they lie on; robust errors on the first 1000, Section 3.2);
- our sampling noise: binomial at the number of images we evaluate;
- seed-to-seed spread: the paper's number is one run, ours a mean over k seeds, so the spread
  enters as sd^2 * (1 + 1/k); sd is measured when enough seeds ran, else a stated prior;
- a systematic allowance for the hyperparameters the paper does not give (epochs, learning rates,
  fine-tuning length), stated per metric in expected_results.json with its reason.

    tolerance = z * sqrt(paper_se^2 + ours_se^2 + sd^2 * (1 + 1/k)) + allowance

z, the priors, the allowances and the evaluation-set sizes are data (expected_results.json,
"error_model" and "table2"); this module only does the arithmetic and the verdicts.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

from repro.paper.expected import OPERATORS, TABLE2_METRICS

CONSISTENT, INCONSISTENT, NOT_JUDGED, MISSING = "consistent", "inconsistent", "not judged", "missing"


def binomial_se(percent: float, n: int) -> float:
    """Standard error (points) of an error rate of `percent` % estimated on `n` images."""
    if n < 1:
        raise ValueError(f"an error rate needs at least one image, got n = {n}")
    if not 0 <= percent <= 100:
        raise ValueError(f"an error rate lies in [0, 100] %, got {percent}")
    p = percent / 100
    return 100 * math.sqrt(p * (1 - p) / n)


@dataclass(frozen=True)
class SeedSpread:
    """Seed-to-seed standard deviation (points) used for one metric, and where it came from."""

    sd: float
    measured: bool  # True: the sample SD of the seeds run; False: the file's prior for the row kind
    n_seeds: int  # seeds averaged into the measured value (k)

    @property
    def source(self) -> str:
        return f"measured over {self.n_seeds} seeds" if self.measured else "prior"


def seed_spread(values: list[float], prior: float, min_seeds: int) -> SeedSpread:
    """The sample SD of per-seed `values` when there are at least `min_seeds`, else `prior`."""
    if not values:
        raise ValueError("seed_spread needs the value of at least one seed")
    if len(values) >= min_seeds:
        return SeedSpread(statistics.stdev(values), True, len(values))
    return SeedSpread(prior, False, len(values))


@dataclass(frozen=True)
class MetricError:
    """The error budget of one Table 2 metric (points, except the image counts)."""

    paper_value: float  # the paper's error (%), at which both binomial terms are taken
    paper_n: int  # images the paper evaluated the metric on
    ours_n: int  # images we evaluated it on
    spread: SeedSpread
    allowance: float
    z: float

    @property
    def paper_se(self) -> float:
        return binomial_se(self.paper_value, self.paper_n)

    @property
    def ours_se(self) -> float:
        # At the paper's value too: under the hypothesis judged, both numbers estimate one rate,
        # and a band that moved with the measurement would be judged by the measurement itself.
        return binomial_se(self.paper_value, self.ours_n)

    @property
    def sigma(self) -> float:
        """Standard deviation of (our seed mean - the paper's value) if both estimate one rate."""
        k = self.spread.n_seeds
        return math.sqrt(self.paper_se ** 2 + self.ours_se ** 2 + self.spread.sd ** 2 * (1 + 1 / k))

    @property
    def tolerance(self) -> float:
        """How far from the paper's value a measurement stays consistent: z * sigma + allowance."""
        return self.z * self.sigma + self.allowance


def metric_error(model: dict, row: dict, metric: str, n_ours: int, seed_values: list[float]) -> MetricError:
    """The error budget of `metric` of one table2 `row` of expected_results.json.

    Args:
        model: the file's "error_model" section.
        row: the file's table2 entry of the configuration (its seed_sd_kind picks the prior).
        metric: "clean_error" or "robust_error".
        n_ours: images we evaluated the metric on.
        seed_values: the metric's value per seed run (their count is k).
    """
    entry = row[metric]
    prior = model["seed_sd_priors"][row["seed_sd_kind"]][metric]["value"]
    return MetricError(
        paper_value=entry["value"],
        paper_n=model["paper_evaluation_sets"][metric]["n"],
        ours_n=n_ours,
        spread=seed_spread(seed_values, prior, model["min_seeds_for_measured_sd"]["value"]),
        allowance=entry["allowance"],
        z=model["z"]["value"],
    )


@dataclass(frozen=True)
class Judgement:
    """A measured (seed-mean) value judged against the paper's under its error budget."""

    paper: float
    measured: float
    error: MetricError
    judged: bool  # False where Table 2 does not apply (budget, data): the numbers are only shown

    @property
    def z_score(self) -> float:
        """(measured - paper) / sigma: how many standard deviations of the model apart."""
        return (self.measured - self.paper) / self.error.sigma

    @property
    def interval(self) -> tuple[float, float]:
        """The measured values consistent with the paper's: paper +/- tolerance, within [0, 100]."""
        return max(0.0, self.paper - self.error.tolerance), min(100.0, self.paper + self.error.tolerance)

    @property
    def verdict(self) -> str:
        if not self.judged:
            return NOT_JUDGED
        return CONSISTENT if abs(self.measured - self.paper) <= self.error.tolerance else INCONSISTENT


def family_wise_false_alarm(z: float, n_metrics: int) -> float:
    """Bonferroni bound on P(any of `n_metrics` two-sided z-tests at `z` fires) when all hold.

    Valid however the metrics depend on each other (fine-tuning rows share NORMAL); the
    allowances only lower it.
    """
    return min(1.0, n_metrics * 2 * (1 - statistics.NormalDist().cdf(z)))


@dataclass(frozen=True)
class Separation:
    """The difference of two rows' values on one metric and its standard deviation (points)."""

    difference: float  # left - right
    sigma: float

    @property
    def z_score(self) -> float:
        """difference / sigma (0 where both are 0: equal values without noise are not separated)."""
        if self.sigma == 0:
            return 0.0 if self.difference == 0 else math.copysign(math.inf, self.difference)
        return self.difference / self.sigma

    def separated(self, z: float) -> bool:
        """Whether the difference exceeds z standard deviations."""
        return abs(self.z_score) > z


def paper_separation(model: dict, table2: dict, metric: str, left: str, right: str) -> Separation:
    """How well the paper's own data separates two rows: the difference of its values, with the
    binomial SEs of its own evaluation sets only (model's paper_evaluation_sets), nothing of ours."""
    n = model["paper_evaluation_sets"][metric]["n"]
    a, b = table2[left][metric]["value"], table2[right][metric]["value"]
    return Separation(a - b, math.hypot(binomial_se(a, n), binomial_se(b, n)))


def measured_separation(left: Judgement, right: Judgement) -> Separation:
    """How well our measurement separates two rows: the difference of our (seed-mean) values, each with
    the binomial SE at its measured rate on the images we evaluated (one test sample for every seed, so
    it does not shrink with k) and the seed spread of a k-seed mean, SD^2 / k (measured, else the prior)."""
    def variance(j: Judgement) -> float:
        rate = min(100.0, max(0.0, j.measured))  # a float32 100 % may come back as 100.0000001
        return binomial_se(rate, j.error.ours_n) ** 2 + j.error.spread.sd ** 2 / j.error.spread.n_seeds
    return Separation(left.measured - right.measured, math.sqrt(variance(left) + variance(right)))


def separated_pairs(claims: list[dict], table2: dict) -> list[tuple[str, str, str, str]]:
    """(claim id, metric, left row, right row) for each claim that says two rows differ on a Table 2 metric.

    A claim separates two rows when its relation fails for equal values (at the right row's paper
    value): "ADV is far more robust than NORMAL" does; "BN STATS gains no robustness" and
    |diff| <= 5 do not.
    """
    pairs = []
    for claim in claims:
        check = claim["check"]
        if not (isinstance(check["left"], str) and isinstance(check.get("right"), str)) or check["op"] not in OPERATORS:
            continue  # only a relation between two rows' plain metrics can separate them on Table 2
        (left, metric), (right, right_metric) = (check[s].split(".") for s in ("left", "right"))
        if metric != right_metric or metric not in TABLE2_METRICS or left == right:
            continue
        value = table2[right][metric]["value"]
        if not OPERATORS[check["op"]](value, value * check.get("times", 1.0) + check.get("plus", 0.0)):
            pairs.append((claim["id"], metric, left, right))
    return pairs


def binomial_noise_threshold(error: float, n: int) -> float:
    """The largest |difference| of two robust errors (fractions) at `error` on `n` images that
    `within_binomial_noise` accepts: 2 * sqrt(2 p (1 - p) / n), at least one image (1 / n).

    Why: each robust error is a binomial proportion over n images with SD sqrt(p (1 - p) / n); two
    independent ones differ by at most 2 SD of their difference, sqrt(2 p (1 - p) / n), about 95%
    of the time. On the same images and seeds bf16 and fp32 differ only where an image flips, so a
    difference within that bound is one the evaluation's own sampling of images already carries;
    a larger one is a weaker (or stronger) attack. One image is the finest a difference can be, so
    at p = 0 or 1 a single flip is not a failure.
    """
    return max(2 * math.sqrt(2 * error * (1 - error) / n), 1 / n)


def within_binomial_noise(error_a: float, error_b: float, n: int) -> bool:
    """Whether robust errors `error_a` and `error_b` (fractions in [0, 1]) of two attack variants
    on the same `n` images differ by no more than binomial noise (at their mean, see above)."""
    return abs(error_a - error_b) <= binomial_noise_threshold((error_a + error_b) / 2, n)
