"""Learning curves: where a run is heading, measured while it trains, never used to select weights.

A point is taken before the first step, after every epoch, and, in runs of at most two epochs, at
three more evenly spaced steps inside each epoch (so every epoch has four points). Each point
records the global step, the epoch reached (a fraction inside an epoch), the learning rate of the
next step, the training loss and accuracy averaged over the epoch's steps so far, and the clean and
PGD error on a fixed slice: the first `budget.curve_images` test images, attacked with the
evaluation PGD (eps/4 steps, eval-mode BN, as repro/mechanics/attacks.py evaluation_pgd) but
`budget.curve_pgd_steps` iterations only, to keep the cost down. Each point also records which of the
slice's images the attack got wrong (PGD_WRONG, packed by pack_wrong: 500 images in 125 hex digits),
so that two points can be compared image by image (repro/verdicts/trends.py). The model is left exactly as
found (modes, gradients, BN statistics), and the attack draws only from its own seeded generator,
so a run's weights are the same with or without its curve. Points are kept in the run's checkpoint,
so a resumed run keeps the points taken before the interruption and takes none twice.
"""

from __future__ import annotations

import time

import torch
from torch import nn

from repro.mechanics.attacks import evaluation_pgd
from repro.mechanics.freeze import preserved_state
from repro.paper.budgets import Budget
from repro.paper.configs import BN_EVAL
from repro.runs.data import Dataset, to_float

INNER_POINTS_UP_TO_EPOCHS = 2  # runs of at most this many epochs get points inside each epoch
POINTS_PER_EPOCH = 4  # inside such a run: at 1/4, 1/2, 3/4 and the end of every epoch
CURVE_SEED = 4242  # the curve's PGD random starts: one fixed draw for every point, independent of training's
PGD_WRONG = "pgd_wrong"  # a point's key: the slice's images PGD got wrong (pack_wrong)


def pack_wrong(wrong: list[bool]) -> str:
    """The images marked True as hex digits: image i is bit i % 4 of digit i // 4 (the last digit padded
    with zeros), so joining two slices' strings joins their images, each slice padded to 4."""
    return "".join(f"{sum(1 << j for j, w in enumerate(wrong[i:i + 4]) if w):x}" for i in range(0, len(wrong), 4))


def unpack_wrong(text: str) -> list[bool]:
    """pack_wrong's images back, 4 per hex digit (padding included, never marked)."""
    return [bool(int(digit, 16) >> j & 1) for digit in text for j in range(4)]


def curve_steps(steps_per_epoch: int, epochs: int) -> list[int]:
    """The global steps after which a point is taken (0: before the first step), in order."""
    per_epoch = POINTS_PER_EPOCH if epochs <= INNER_POINTS_UP_TO_EPOCHS else 1
    inside = sorted({round(steps_per_epoch * k / per_epoch) for k in range(1, per_epoch + 1)} - {0})
    return [0] + [epoch * steps_per_epoch + s for epoch in range(epochs) for s in inside]


class Curve:
    """The points of one run, and how to take the next one."""

    def __init__(self, budget: Budget, data: Dataset, steps_per_epoch: int, epochs: int,
                 points: list[dict] | None = None):
        n = min(budget.curve_images, len(data.test_labels))
        self.images, self.labels = data.test_images[:n], data.test_labels[:n]
        self.budget = budget
        self.steps_per_epoch = steps_per_epoch
        self.at = set(curve_steps(steps_per_epoch, epochs)) if n else set()
        self.points: list[dict] = list(points or [])

    def due(self, step: int) -> bool:
        """Whether a point is taken after global step `step` (0: before training) and not yet taken."""
        return step in self.at and (not self.points or step > self.points[-1]["step"])

    def take(self, net: nn.Module, step: int, lr: float | None, loss_sum: float | None, correct: int | None,
             steps_in_epoch: int) -> None:
        """Measure and keep the point after global step `step`; `loss_sum` and `correct` are the current
        epoch's over its first `steps_in_epoch` steps (None before the first step)."""
        started = time.perf_counter()
        clean, robust, wrong = self.errors(net)
        seen = steps_in_epoch * self.budget.batch_size
        self.points.append({
            "step": step, "epoch": step / self.steps_per_epoch, "lr": lr,
            "train_loss": None if loss_sum is None or not steps_in_epoch else loss_sum / steps_in_epoch,
            "train_accuracy": None if correct is None or not steps_in_epoch else correct / seen,
            "clean_error": clean, "pgd_error": robust, PGD_WRONG: wrong, "seconds": time.perf_counter() - started,
        })

    @torch.no_grad()
    def _predictions(self, net: nn.Module, images: torch.Tensor) -> torch.Tensor:
        return torch.cat([net(batch).argmax(1) for batch in images.split(self.budget.eval_batch_size)])

    def errors(self, net: nn.Module) -> tuple[float, float, str]:
        """(clean error %, PGD error %, which images PGD got wrong as pack_wrong writes them) of `net` on
        the slice, BN in eval mode; `net` left as found."""
        with preserved_state(net, BN_EVAL):
            clean_wrong, robust_wrong = 0, []
            for start in range(0, len(self.labels), self.budget.eval_batch_size):
                x = to_float(self.images[start:start + self.budget.eval_batch_size])
                y = self.labels[start:start + self.budget.eval_batch_size]
                clean_wrong += (self._predictions(net, x) != y).sum().item()
                adversarial = evaluation_pgd(net, x, y, epsilon=self.budget.epsilon,
                                             steps=self.budget.curve_pgd_steps, seed=CURVE_SEED + start)
                robust_wrong += (self._predictions(net, adversarial) != y).tolist()  # one host copy, as .sum().item()
        return (100.0 * clean_wrong / len(self.labels), 100.0 * sum(robust_wrong) / len(self.labels),
                pack_wrong(robust_wrong))


def curve_record(points: list[dict], budget: Budget, n_images: int) -> dict:
    """What result.json keeps under "curve": the points and what they were measured on."""
    return {"points": points, "n_images": n_images, "images": f"the first {n_images} test images",
            "attack": f"evaluation PGD (eps {budget.epsilon:.5f}, step eps/4, eval-mode BN), "
                      f"{budget.curve_pgd_steps} iterations",
            "seconds": sum(p["seconds"] for p in points)}
