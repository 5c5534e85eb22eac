"""Degenerate models are never evidence: a row whose predictions collapse reads as no result.

A model that answers (nearly) one class whatever it sees is "robust" by construction: an attack cannot
move a constant answer, so its robust error is its clean error, and any claim that reads it (BN ONLY
PARAMS "slightly robust", BN PARAMS "more robust than BN ONLY PARAMS") is hollow. The rule, on the
predictions over the clean test set (result records' metrics "predicted_classes", written by
repro/runs/evaluate.py):

- **one class takes most predictions**: its share is at least MAJORITY_SHARE (half). On a balanced
  10-class test set a classifier answers each class for about a tenth of the images; a model that
  answers one class for half of them gives that answer to at least 4 of every 9 images of the other
  classes, which is not classifying them;
- **or the clean error is within binomial noise of chance**: at least 100 (1 - 1/classes) % minus
  CHANCE_Z binomial standard errors at chance on the images evaluated, so the model is not
  distinguishable from guessing, whatever its answers look like.

The paper's own BN ONLY PARAMS (Table 2: 77.11 % clean error) is 12.9 points below chance, about 13
standard errors on its 900 images, so the chance part says it classifies; the paper gives no counts,
and 22.89 % accuracy on a balanced set allows any largest share from 10 % to 87.1 % (1.1 - accuracy),
so the share part cannot be checked on it.

Records written before the counts existed: the share is inferred from the logits they keep on the
first n_robust test images (series "logits_clean"), the chance part from the clean error; where
neither says anything the row "cannot be checked".
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from repro.paper.configs import CONFIGURATIONS

MAJORITY_SHARE = 0.5  # one class answered for at least half the images: not a classifier (see above)
CHANCE_Z = 3.0  # standard errors from chance still counted as chance: the error model's z (expected_results.json)
N_CLASSES = 10  # CIFAR-10's classes; the built-in data mirrors them
PREDICTION_SETS = {  # the predicted-class counts a result records, and what each counts
    "clean_test": "the clean test set",
    "robust_clean": "the robust subset, clean",
    "robust_pgd": "the robust subset under PGD",
    "robust_attack": "the robust subset under the robust attack",
}
DEGENERATE, CLASSIFIES, UNCHECKED = "degenerate", "classifies", "cannot be checked"


@dataclass(frozen=True)
class Degeneracy:
    """Whether one result record's model collapsed, and what the verdict rests on."""

    status: str  # DEGENERATE, CLASSIFIES or UNCHECKED
    top_class: int | None  # the class predicted most often, where counts are known
    share: float | None  # its share of the predictions (0-1)
    source: str  # which predictions: "the clean test set", or "inferred from ..." for older records
    reason: str  # why, in words
    features: str = ""  # how far the logit layer's input depends on the image, where the record measured it

    @property
    def degenerate(self) -> bool:
        return self.status == DEGENERATE

    @property
    def label(self) -> str:
        """How tables show the row: 'degenerate (predicts class 3 for 100.0 % of images)'."""
        features = f"; {self.features}" if self.features else ""
        if self.top_class is not None and self.share is not None and self.share >= MAJORITY_SHARE:
            return f"degenerate (predicts class {self.top_class} for {100 * self.share:.1f} % of images{features})"
        return f"degenerate ({self.reason}{features})"


def chance_error(n_classes: int = N_CLASSES) -> float:
    """The error (%) of guessing among `n_classes` balanced classes."""
    return 100.0 * (1 - 1 / n_classes)


def near_chance(clean_error: float, n: int, n_classes: int = N_CLASSES) -> bool:
    """Whether a clean error (%) on `n` images lies within CHANCE_Z binomial SEs of chance, or above it."""
    chance = chance_error(n_classes)
    se = 100.0 * math.sqrt((chance / 100) * (1 - chance / 100) / n)
    return clean_error >= chance - CHANCE_Z * se


def _top(counts: list[int]) -> tuple[int, float]:
    total = sum(counts)
    top = max(range(len(counts)), key=counts.__getitem__)
    return top, counts[top] / total


def _inferred_counts(record: dict) -> tuple[list[int], str] | None:
    """Predicted-class counts of a record written before they were kept, from its clean logits."""
    logits = record.get("series", {}).get("logits_clean")
    if not logits or len(logits) % N_CLASSES:
        return None
    rows = [logits[i:i + N_CLASSES] for i in range(0, len(logits), N_CLASSES)]
    counts = [0] * N_CLASSES
    for row in rows:
        counts[max(range(N_CLASSES), key=row.__getitem__)] += 1
    return counts, f"inferred from the clean logits kept on the first {len(rows)} test images"


def features_text(metrics: dict) -> str:
    """What the record measured of the logit layer's input (repro/runs/evaluate.py feature_spread), in
    words; "" where it did not. A collapse whose features do not depend on the image (SD near 0, channels
    zero for every image: the ReLUs before the pooling off whatever the input) answers the logit layer's
    bias for every image, which no attack can move."""
    spread = metrics.get("features")
    if not isinstance(spread, dict) or not all(isinstance(spread.get(k), (int, float))
                                               for k in ("sd_over_images", "zero_share", "n_images")):
        return ""
    return (f"features over the first {spread['n_images']:.0f} test images: SD {spread['sd_over_images']:.4f}, "
            f"{100 * spread['zero_share']:.0f} % of channels zero for every image")


def degeneracy(record: dict, metrics: dict | None = None) -> Degeneracy:
    """The rule above applied to one result record (`metrics`: a ladder point's, else the record's)."""
    metrics = record.get("metrics", {}) if metrics is None else metrics
    found = _degeneracy(record, metrics)
    if found.degenerate and features_text(metrics):
        return dataclasses.replace(found, features=features_text(metrics))
    return found


def _degeneracy(record: dict, metrics: dict) -> Degeneracy:
    counted = (metrics.get("predicted_classes") or {}).get("clean_test")
    if counted and sum(counted):
        counts, source = counted, PREDICTION_SETS["clean_test"]
    elif metrics is record.get("metrics") and _inferred_counts(record):
        counts, source = _inferred_counts(record)  # the logits are the end's: a ladder point has none
    else:
        counts, source = None, "no predicted-class counts recorded"
    clean, n = metrics.get("clean_error"), metrics.get("n_clean")
    chance = isinstance(clean, (int, float)) and bool(n) and near_chance(clean, n)
    top, share = _top(counts) if counts else (None, None)
    if share is not None and share >= MAJORITY_SHARE:
        return Degeneracy(DEGENERATE, top, share, source,
                          f"class {top} takes {100 * share:.1f} % of predictions on {source}")
    if chance:
        return Degeneracy(DEGENERATE, top, share, source,
                          f"clean error {clean:.2f} % within {CHANCE_Z:g} binomial SEs of chance "
                          f"({chance_error():.0f} %) on {n} images")
    if counts is None:
        return Degeneracy(UNCHECKED, None, None, source,
                          f"clean error {clean:.2f} % is not at chance, and no predicted-class counts were recorded"
                          if isinstance(clean, (int, float)) else "no clean error or class counts recorded")
    return Degeneracy(CLASSIFIES, top, share, source,
                      f"largest class share {100 * share:.1f} % on {source}, clean error not at chance")


def degenerate_rows(per_seed: dict[int, dict[str, dict]], seeds: list[int]) -> dict[str, Degeneracy]:
    """{config_id: its Degeneracy} for every row degenerate in any of `seeds` (a seed mean over a
    collapsed seed is no evidence either); the first degenerate seed's finding, naming the seed when
    several were asked for."""
    out = {}
    for config_id in CONFIGURATIONS:
        for seed in seeds:
            record = per_seed.get(seed, {}).get(config_id)
            found = degeneracy(record) if record is not None else None
            if found is not None and found.degenerate:
                if len(seeds) > 1:
                    found = dataclasses.replace(found, reason=f"seed {seed}: {found.reason}")
                out[config_id] = found
                break
    return out
