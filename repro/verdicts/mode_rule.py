"""Did an acceleration mode change a budget's numbers beyond noise? fp32 runs against the mode's, as a family.

The two-run band (agreement.py, history.allowed_move) asks of each metric alone whether it lies within
z = 3 of one fp32 run; across a budget's 33 metrics that is 33 chances of a false alarm, it blames a
fine-tuning row's different starting NORMAL on the mode, and it uses the prior where fp32 seeds measured
the spread. This rule judges the mode instead:

Pairing. A fine-tuning row (record["config"]["init"] == FROM_NORMAL) is compared only PAIRED: every
mode seed of it has a reference run of the same seed that started from the same NORMAL weights (equal
provenance["initial_weights_sha256"]). Otherwise the row is not judged, because the difference of its
starting weights would be blamed on the mode; allow_unpaired=True judges it anyway, said per row.

Per row and error metric (clean_error, pgd_error, autoattack_error), with the seeds each side has:

    diff    = mean(mode) - mean(reference)
    sigma^2 = se(p, n_ref)^2 + se(p, n_mode)^2 + sd^2 * (1/k_ref + 1/k_mode)

- se: the binomial standard error at the pooled rate p (both sides estimate one rate if the mode
  changes nothing; a band at the measured rates would be judged by the measurement) and the side's
  image count. Not divided by k: every seed is evaluated on the same test images, so averaging seeds
  does not average that sampling away. Counting the two sides' image samples as independent is
  conservative, since they are the same images.
- sd: the seed-to-seed SD, MEASURED from the reference's per-seed values when it has at least
  MIN_REFERENCE_SEEDS of the row ("measured over k seeds"), else the row kind's prior from
  expected_results.json ("prior"; PGD and AutoAttack errors take the robust_error prior). A
  k-seed mean carries sd^2 / k of it on each side.
- Paired fine-tuning rows use the same formula: pairing removes the NORMAL's part of the spread,
  which the prior and the measured SD both still contain, so their sigma is conservative.

The family, at alpha = expected["error_model"]["family_wise_false_alarm_rate"] (the false-alarm rate the
paper comparison already accepts, so a mode is judged as strictly as a reproduction):

(a) each metric: z = diff / sigma, two-sided p; Holm's step-down over all m metrics compared (the i-th
    smallest p, from i = 0, is flagged while p <= alpha / (m - i)). It holds the family-wise rate at
    alpha however the metrics depend on each other, and is uniformly more powerful than Bonferroni.
(b) a systematic shift: per metric kind, over the metrics (a) did not flag, Stouffer's Z = sum of the
    rows' z / sqrt(rows), Bonferroni over the kinds compared (|Z| > Phi^-1(1 - alpha / (2 * kinds))). A
    mode that moves EVERY row by a moderate amount, which no single metric shows, adds up here; a row
    (a) flagged is left to (a), so that one large move on one seed asks for a second seed instead of
    passing for a shift of all rows. It treats the rows' z as independent
    under no change: each row is its own training run (paired fine-tuning rows share only the
    reference's NORMAL, whose part cancels in each difference).

Outcome:
- "refused": the shift test fires (the metric kind, Z and its threshold are named), or Holm flags a
  row with >= 2 seeds in the mode: a move that repeats over seeds is the mode's, not a seed's.
- "needs a second seed": Holm flags only rows with one mode seed. One seed cannot tell a mode's
  effect from an unlucky run; a second seed of each such row in the mode settles it.
- "approved" otherwise.
Every entry carries the row, metric, both means, diff, sigma's terms, z, p and its Holm threshold.

Pure functions; no I/O. The numbers come from expected_results.json ("error_model", "table2").
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from dataclasses import dataclass

from repro.paper.configs import CONFIGURATIONS, FROM_NORMAL
from repro.paper.expected import ERROR_RATES
from repro.verdicts.error_model import SeedSpread, Separation, binomial_se, seed_spread
from repro.verdicts.like_for_like import training_setting

APPROVED, REFUSED, UNDECIDED = "approved", "refused", "needs a second seed"
# The file's priors are per Table 2 column; PGD and AutoAttack errors are both robust errors.
PRIOR_COLUMN = {"clean_error": "clean_error", "pgd_error": "robust_error", "autoattack_error": "robust_error"}
# Two reference seeds already measure the spread, and ignoring them for the prior is what the old band
# did wrong. Lower than the file's min_seeds_for_measured_sd (3, for the paper comparison): a 2-seed SD
# has one degree of freedom (about 71 % relative error), so a small one makes a false alarm likelier.
# Where the mode has one seed such a flag costs a second seed, not a refusal; a refusal on two mode
# seeds against a 2-seed SD rests on that SD, and the rendering says "measured over 2 seeds" beside it.
MIN_REFERENCE_SEEDS = 2


@dataclass(frozen=True)
class ModeEntry:
    """One row's error metric, reference (fp32) against the mode: the difference and all its noise terms."""

    row: str
    label: str
    metric: str
    reference_mean: float  # % over the reference's k_reference seeds
    mode_mean: float  # % over the mode's k_mode seeds
    k_reference: int
    k_mode: int
    se_reference: float  # binomial SE (points) at the pooled rate on the reference's images
    se_mode: float
    spread: SeedSpread  # seed SD (points) and its source ("measured over k seeds" or "prior")
    paired: bool | None  # fine-tuning rows: started from the same NORMAL; None for rows trained from scratch
    holm_threshold: float = 1.0  # the p this entry's Holm rank must reach to be flagged
    flagged: bool = False

    @property
    def diff(self) -> float:
        return self.mode_mean - self.reference_mean

    @property
    def sigma(self) -> float:
        seeds = self.spread.sd ** 2 * (1 / self.k_reference + 1 / self.k_mode)
        return math.sqrt(self.se_reference ** 2 + self.se_mode ** 2 + seeds)

    @property
    def z(self) -> float:
        return Separation(self.diff, self.sigma).z_score  # 0 for equal values without noise

    @property
    def p(self) -> float:
        """Two-sided p-value of z under no change."""
        return math.erfc(abs(self.z) / math.sqrt(2))


@dataclass(frozen=True)
class ShiftTest:
    """Stouffer's combination of one metric kind's z over the rows compared."""

    metric: str
    rows: int
    stouffer_z: float
    threshold: float  # |Z| beyond this fires (Bonferroni over the kinds at the family's alpha)

    @property
    def fired(self) -> bool:
        return abs(self.stouffer_z) > self.threshold


@dataclass(frozen=True)
class NotJudged:
    row: str
    reason: str


@dataclass(frozen=True)
class ModeVerdict:
    outcome: str  # APPROVED, REFUSED or UNDECIDED
    reasons: tuple[str, ...]  # why, one sentence each (empty when approved)
    alpha: float  # family-wise false-alarm rate of both tests
    entries: tuple[ModeEntry, ...]  # every metric compared, in row order
    shifts: tuple[ShiftTest, ...]
    not_judged: tuple[NotJudged, ...]

    @property
    def flagged(self) -> tuple[ModeEntry, ...]:
        return tuple(e for e in self.entries if e.flagged)

    @property
    def to_settle(self) -> tuple[str, ...]:
        """Rows whose flag rests on one mode seed: a second seed of each in the mode settles them."""
        return tuple(dict.fromkeys(e.row for e in self.flagged if e.k_mode < 2))


def _by_row(runs: dict[int, dict[str, dict]]) -> dict[str, dict[int, dict]]:
    """{seed: {row: record}} turned to {row: {seed: record}}."""
    out: dict[str, dict[int, dict]] = {}
    for seed, records in runs.items():
        for row, record in records.items():
            out.setdefault(row, {})[seed] = record
    return out


def _same_training(reference: dict[int, dict], mode: dict[int, dict]) -> str | None:
    """None when both sides trained the row under one setting (like_for_like.training_setting: schedule,
    readings, shared budget fields; the modes aside), else what differs: a mode is judged on the same
    experiment run faster, never on another reading."""
    a, b = (training_setting(next(iter(side.values()))) for side in (reference, mode))
    differing = [f"{part} {key}: {a[part].get(key)} vs {b[part].get(key)}" for part in ("shared", "schedule", "readings")
                 for key in sorted(set(a[part]) | set(b[part])) if a[part].get(key) != b[part].get(key)]
    return f"trained under other settings on the two sides ({'; '.join(differing)})" if differing else None


def _pairing(row: str, reference: dict[int, dict], mode: dict[int, dict]) -> str | None:
    """None when every mode seed of a fine-tuning row started from its reference seed's NORMAL, else why not."""
    for seed, record in sorted(mode.items()):
        if seed not in reference:
            return f"not paired: mode seed {seed} has no reference seed {seed} to pair with"
        a, b = (r["provenance"].get("initial_weights_sha256") for r in (reference[seed], record))
        if a is None or b is None:
            return f"not paired: seed {seed} records no initial_weights_sha256, so its starting NORMAL cannot be shown the same"
        if a != b:
            return (f"not paired: seed {seed} started from different NORMAL weights ({a[:12]} vs {b[:12]}); "
                    "the starting weights would be blamed on the mode")
    return None


def _entry(row: str, metric: str, reference: dict[int, dict], mode: dict[int, dict], expected: dict,
           paired: bool | None) -> ModeEntry | None:
    """`metric` of one row compared over the seeds each side has; None where a side lacks it or its n."""
    ref = [r["metrics"] for _, r in sorted(reference.items()) if metric in r["metrics"]]
    new = [r["metrics"] for _, r in sorted(mode.items()) if metric in r["metrics"]]
    n_key = ERROR_RATES[metric]
    if not ref or not new or any(not m.get(n_key) for m in ref + new):
        return None
    # The fewest images any seed was evaluated on: the largest SE, where seeds' counts differ.
    n_ref, n_mode = min(m[n_key] for m in ref), min(m[n_key] for m in new)
    ref_values, mode_values = [m[metric] for m in ref], [m[metric] for m in new]
    ref_mean, mode_mean = statistics.fmean(ref_values), statistics.fmean(mode_values)
    pooled = min(100.0, max(0.0, (ref_mean * n_ref + mode_mean * n_mode) / (n_ref + n_mode)))  # float32 100 %
    kind = expected["table2"][row]["seed_sd_kind"]
    prior = expected["error_model"]["seed_sd_priors"][kind][PRIOR_COLUMN[metric]]["value"]
    return ModeEntry(row=row, label=CONFIGURATIONS[row].label if row in CONFIGURATIONS else row, metric=metric,
                     reference_mean=ref_mean, mode_mean=mode_mean, k_reference=len(ref), k_mode=len(new),
                     se_reference=binomial_se(pooled, n_ref), se_mode=binomial_se(pooled, n_mode),
                     spread=seed_spread(ref_values, prior, MIN_REFERENCE_SEEDS), paired=paired)


def _holm(entries: list[ModeEntry], alpha: float) -> list[ModeEntry]:
    """Each entry with its Holm threshold alpha / (m - rank) and whether the step-down flags it."""
    order = sorted(range(len(entries)), key=lambda i: entries[i].p)
    out, rejecting = list(entries), True
    for rank, i in enumerate(order):
        threshold = alpha / (len(entries) - rank)
        rejecting = rejecting and entries[i].p <= threshold  # step-down: the first kept stops it
        out[i] = dataclasses.replace(entries[i], holm_threshold=threshold, flagged=rejecting)
    return out


def _shifts(entries: list[ModeEntry], alpha: float) -> list[ShiftTest]:
    kinds = [m for m in ERROR_RATES if any(e.metric == m for e in entries)]
    threshold = statistics.NormalDist().inv_cdf(1 - alpha / (2 * len(kinds))) if kinds else math.inf
    out = []
    for metric in kinds:
        zs = [e.z for e in entries if e.metric == metric]
        out.append(ShiftTest(metric, len(zs), sum(zs) / math.sqrt(len(zs)), threshold))
    return out


def _same_weights(reference: dict[int, dict], mode: dict[int, dict]) -> str | None:
    """Why not to judge a row whose every mode seed holds the very weights of its reference seed (as the
    NORMAL that --paired-normal trains once without the mode and copies beside the mode's rows): equal by
    construction, so no evidence about the mode; None otherwise."""
    hashes = [(reference.get(seed, {}).get("provenance", {}).get("weights_sha256"),
               record.get("provenance", {}).get("weights_sha256")) for seed, record in mode.items()]
    if hashes and all(a is not None and a == b for a, b in hashes):
        return "the same weights on both sides (trained once without the mode and shared): not evidence about the mode"
    return None


def mode_verdict(reference: dict[int, dict[str, dict]], mode: dict[int, dict[str, dict]], expected: dict,
                 allow_unpaired: bool = False) -> ModeVerdict:
    """Judge a mode's runs against the reference's (fp32), as a family (the rule: module docstring).

    Args:
        reference, mode: {seed: {config_id: result record}} (results/BUDGET/**/result.json).
        expected: load_expected().
        allow_unpaired: judge fine-tuning rows whose sides started from different NORMALs too.
    """
    alpha = expected["error_model"]["family_wise_false_alarm_rate"]["value"]
    ref_rows, mode_rows = _by_row(reference), _by_row(mode)
    order = [r for r in CONFIGURATIONS if r in ref_rows or r in mode_rows]
    order += sorted((set(ref_rows) | set(mode_rows)) - set(order))
    entries, not_judged = [], []
    for row in order:
        if row not in ref_rows or row not in mode_rows:
            not_judged.append(NotJudged(row, f"only in the {'reference' if row in ref_rows else 'mode'} runs"))
            continue
        unlike = _same_weights(ref_rows[row], mode_rows[row]) or _same_training(ref_rows[row], mode_rows[row])
        if unlike:
            not_judged.append(NotJudged(row, unlike))
            continue
        paired = None
        if any(r["config"]["init"] == FROM_NORMAL for r in (*ref_rows[row].values(), *mode_rows[row].values())):
            why = _pairing(row, ref_rows[row], mode_rows[row])
            paired = why is None
            if why and not allow_unpaired:
                not_judged.append(NotJudged(row, why))
                continue
        row_entries = [_entry(row, m, ref_rows[row], mode_rows[row], expected, paired) for m in ERROR_RATES]
        entries += [e for e in row_entries if e is not None]
        if None in row_entries:
            missing = [m for m, e in zip(ERROR_RATES, row_entries) if e is None]
            not_judged.append(NotJudged(row, f"{', '.join(missing)}: not recorded with its image count on both sides"))
    entries = _holm(entries, alpha)
    # The shift test reads the metrics Holm left unflagged: a flagged row is decided by its own seeds, and
    # one large move must not pass for a shift of every row (it alone can carry a Stouffer sum).
    shifts = _shifts([e for e in entries if not e.flagged], alpha)
    reasons = [f"{s.metric} shifted across {s.rows} rows: Stouffer Z = {s.stouffer_z:+.2f}, beyond ±{s.threshold:.2f}"
               for s in shifts if s.fired]
    flagged = [e for e in entries if e.flagged]
    reasons += [f"{e.label} {e.metric} moved {e.diff:+.2f} points over {e.k_mode} mode seeds (z = {e.z:+.2f})"
                for e in flagged if e.k_mode >= 2]
    if reasons:
        outcome = REFUSED
    elif flagged:
        outcome = UNDECIDED
        reasons = [f"{e.label} {e.metric} moved {e.diff:+.2f} points on one mode seed (z = {e.z:+.2f}); "
                   f"a second seed of {e.row} in the mode settles it" for e in flagged]
    else:
        outcome = APPROVED
    return ModeVerdict(outcome, tuple(reasons), alpha, tuple(entries), tuple(shifts), tuple(not_judged))


def summary(verdict: ModeVerdict) -> str:
    """The verdict's counts in one line: metrics flagged, shift tests fired, the family-wise rate, rows not judged."""
    v = verdict
    return (f"{len(v.flagged)} of {len(v.entries)} metrics flagged (Holm), {sum(s.fired for s in v.shifts)} of "
            f"{len(v.shifts)} shift tests fired, family-wise α = {v.alpha:g}, "
            f"{len(v.not_judged)} row{'' if len(v.not_judged) == 1 else 's'} not judged")


def render_mode_verdict(verdict: ModeVerdict, reference_name: str = "fp32", mode_name: str = "mode") -> str:
    """Markdown: one summary line (the outcome and its counts), the reasons, the shift tests, every metric."""
    v = verdict
    out = [f"**{v.outcome}**: {summary(v)}", ""]
    out += [f"- {r}" for r in v.reasons] + ([""] if v.reasons else [])
    out += ["| metric kind | rows | Stouffer Z | threshold | |", "|---|---:|---:|---:|---|"]
    out += [f"| {s.metric} | {s.rows} | {s.stouffer_z:+.2f} | ±{s.threshold:.2f} | {'FIRED' if s.fired else 'within'} |"
            for s in v.shifts]
    out += ["", f"| row | metric | {reference_name} (k) | {mode_name} (k) | Δ | SE {reference_name} | SE {mode_name} "
            "| seed SD (source) | σ | z | p | Holm p ≤ | |", "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for e in v.entries:
        out.append(f"| {e.label}{' (paired)' if e.paired else ''} | {e.metric} | {e.reference_mean:.2f} ({e.k_reference}) "
                   f"| {e.mode_mean:.2f} ({e.k_mode}) | {e.diff:+.2f} | {e.se_reference:.2f} | {e.se_mode:.2f} "
                   f"| {e.spread.sd:.2f} ({e.spread.source}) | {e.sigma:.2f} | {e.z:+.2f} | {e.p:.2g} "
                   f"| {e.holm_threshold:.2g} | {'FLAGGED' if e.flagged else ''} |")
    if v.not_judged:
        out += ["", "Not judged:"] + [f"- {n.row}: {n.reason}" for n in v.not_judged]
    return "\n".join(out) + "\n"
