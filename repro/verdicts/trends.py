"""Where each row was heading when training stopped: the learning curve's last interval (issue 23).

The report says, per row, how the PGD error on the curve's slice (repro/runs/curves.py) moved over
the curve's last interval, per epoch: "flat" when the move is within the binomial noise of two error
rates on that slice (within_binomial_noise, the selfcheck's rule), else "still falling by X points
per epoch" (or rising). Over several seeds the curves are averaged point by point first.
"""

from __future__ import annotations

import statistics

from repro.verdicts.error_model import within_binomial_noise


def mean_curve(curves: list[list[dict]]) -> list[dict]:
    """The point-by-point mean of several runs' curves over the steps every run has; numbers averaged,
    a field any run lacks (None) left None."""
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
        out.append({**mean, "step": step})
    return out


def trend(points: list[dict], n_images: int, metric: str = "pgd_error") -> dict | None:
    """How `metric` (%) moved over the curve's last interval: {"before", "after", "epochs", "per_epoch",
    "flat"}; None with fewer than two points. `n_images`: the images each point was measured on (times
    the seeds averaged), which sets the noise a flat curve stays within."""
    if len(points) < 2:
        return None
    before, after = points[-2], points[-1]
    epochs = after["epoch"] - before["epoch"]
    change = after[metric] - before[metric]
    flat = within_binomial_noise(before[metric] / 100, after[metric] / 100, n_images)
    return {"before": before[metric], "after": after[metric], "epochs": epochs,
            "per_epoch": change / epochs if epochs else 0.0, "flat": flat}


def trend_text(points: list[dict], n_images: int) -> str:
    """One line: the PGD error's last move on the curve's slice, as a rate per epoch, or "flat"."""
    t = trend(points, n_images)
    if t is None:
        return "no learning curve (a run that predates curves, or a curve of one point)"
    moved = f"PGD error on the curve's slice {t['before']:.1f} -> {t['after']:.1f} % over the last {t['epochs']:.2g} epoch"
    if t["flat"]:
        return f"{moved}: flat (within the binomial noise of {n_images} images)"
    direction = "still falling" if t["per_epoch"] < 0 else "rising"
    return f"{moved}: {direction} by {abs(t['per_epoch']):.1f} points per epoch"
