"""Where each row was heading when training stopped: the learning curve's last epoch.

The report says, per row, how the PGD error on the curve's slice (repro/runs/curves.py) moved over the
curve's last epoch, per epoch. The two points are on the same images, so the move is judged on the
images that flipped between them (McNemar's test, see `flat_by_flips`): "flat" when the flips both ways
are in balance within noise, else "still falling by X points per epoch" (or rising). A curve shorter
than MIN_EPOCHS, or of fewer than MIN_POINTS points, is too short to judge; one recorded without
per-image outcomes has its move said and its flatness left unjudged. Over several seeds the curves
are averaged point by point, and each seed's images are paired with themselves (mean_curve).
"""

from __future__ import annotations

import math
import statistics

from repro.runs.curves import PGD_WRONG, unpack_wrong

# Two standard deviations, as within_binomial_noise (repro/verdicts/error_model.py): about 95 %.
FLIP_Z = 2.0
# A trend is judged on the last epoch; in a run of fewer epochs that epoch is half or more of all its
# training, so "flat" there would say nothing of where training was heading.
MIN_EPOCHS = 2
MIN_POINTS = 3
_EPOCH_TOLERANCE = 1e-9  # epochs are step / steps_per_epoch: compare them with room for rounding


def mean_curve(curves: list[list[dict]]) -> list[dict]:
    """The point-by-point mean of several runs' curves over the steps every run has; numbers averaged,
    per-image outcomes (PGD_WRONG) joined in the order of `curves`, so that each run's images are
    compared with themselves (paired flips summed over the runs); any other field, or one a run lacks,
    None."""
    if not curves:
        return []
    steps = sorted(set.intersection(*({p["step"] for p in curve} for curve in curves)))
    by_step = [{p["step"]: p for p in curve} for curve in curves]
    out = []
    for step in steps:
        points = [curve[step] for curve in by_step]
        mean = {}
        for key, value in points[0].items():
            values = [p.get(key) for p in points]
            numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
            mean[key] = statistics.fmean(values) if numeric else None
        wrong = [p.get(PGD_WRONG) for p in points]
        mean[PGD_WRONG] = "".join(wrong) if all(isinstance(w, str) for w in wrong) else None
        out.append({**mean, "step": step})
    return out


def paired_flips(before: str | None, after: str | None) -> tuple[int, int] | None:
    """(b, c): images PGD got wrong at `before` and right at `after`, and right then wrong, from two
    points' PGD_WRONG records; None when either lacks them or they are of other slices."""
    if not isinstance(before, str) or not isinstance(after, str) or len(before) != len(after):
        return None
    pairs = list(zip(unpack_wrong(before), unpack_wrong(after)))
    return sum(a and not b for a, b in pairs), sum(b and not a for a, b in pairs)


def flat_by_flips(b: int, c: int, z: float = FLIP_Z) -> bool:
    """Whether b images flipping wrong -> right and c right -> wrong are a change within noise:
    |c - b| <= z * sqrt(b + c), McNemar's normal approximation. Unchanged images say nothing of a
    change, so the test counts the flips alone; it is the paired test the two points call for (the
    same images, attacked twice), where two independent binomial samples would need a move several
    times larger to stand out."""
    return abs(c - b) <= z * math.sqrt(b + c)


def trend(points: list[dict], n_images: int | None = None, metric: str = "pgd_error") -> dict | None:
    """How `metric` (%) moved over the curve's last epoch: from the point one epoch before the end
    (or the nearest after it) to the end. None without points.

    Returns {"covers": epochs the curve spans, "too_few": bool} and, where not too few, "before",
    "after", "epochs" (the interval), "per_epoch" (the change per epoch, points), "flips" ((b, c),
    paired_flips; None without per-image outcomes, or for another metric than the PGD error) and
    "flat" (flat_by_flips; None where not judged). `n_images` is not needed for the judgement; it is
    kept for callers that name it.
    """
    if not points:
        return None
    covers = points[-1]["epoch"] - points[0]["epoch"]
    end = points[-1]
    start = next(p for p in points if p["epoch"] >= end["epoch"] - 1 - _EPOCH_TOLERANCE)
    if len(points) < MIN_POINTS or covers < MIN_EPOCHS - _EPOCH_TOLERANCE or start is end:
        return {"covers": covers, "too_few": True, "flat": None}
    epochs = end["epoch"] - start["epoch"]
    flips = paired_flips(start.get(PGD_WRONG), end.get(PGD_WRONG)) if metric == "pgd_error" else None
    return {"covers": covers, "too_few": False, "before": start[metric], "after": end[metric], "epochs": epochs,
            "per_epoch": (end[metric] - start[metric]) / epochs, "flips": flips,
            "flat": None if flips is None else flat_by_flips(*flips)}


def trend_text(points: list[dict], n_images: int) -> str:
    """One line: the PGD error's move over the curve's last epoch on its slice of `n_images` images (times
    the seeds averaged), as a rate per epoch, "flat", or why it cannot be judged."""
    t = trend(points, n_images)
    if t is None:
        return "no learning curve (a run that predates curves)"
    if t["too_few"]:
        return f"too few points to judge a trend (the curve covers {t['covers']:g} epoch{'' if t['covers'] == 1 else 's'})"
    moved = f"PGD error on the curve's slice {t['before']:.1f} -> {t['after']:.1f} % over the last {t['epochs']:.2g} epoch"
    rate = f"{abs(t['per_epoch']):.1f} points per epoch"
    if t["flips"] is None:
        return (f"{moved} ({'-' if t['per_epoch'] < 0 else '+'}{rate}): flatness cannot be judged without "
                "per-image outcomes (a curve recorded before them)")
    b, c = t["flips"]
    flipped = f"{b} images wrong -> right, {c} right -> wrong of {n_images}"
    if t["flat"]:
        return f"{moved}: flat ({flipped}: within McNemar's noise at z = {FLIP_Z:g})"
    direction = "still falling" if t["per_epoch"] < 0 else "rising"
    return f"{moved}: {direction} by {rate} ({flipped})"
