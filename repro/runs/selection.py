"""Which weights of an adversarial run are evaluated under the `adv_checkpoint=best` reading.

The run holds out part of its training images (never test images), measures PGD accuracy on them
after every epoch, and keeps the best epoch's weights in its checkpoint; those are the weights
evaluated (repro/paper/choices.py, adv_checkpoint). Runs under the default reading evaluate their
last epoch and hold out nothing.
"""

from __future__ import annotations

import torch

from repro.mechanics.freeze import preserved_state
from repro.paper.budgets import Budget
from repro.paper.configs import BEST_HELD_OUT, BN_EVAL, Configuration
from repro.runs.data import Dataset
from repro.runs.evaluate import pgd_evaluation
from repro.runs.run_state import RunState


# Rice et al. (2020) hold out 1000 of CIFAR-10's training images to select the best epoch; small
# budgets hold out a tenth of theirs instead.
HELD_OUT_IMAGES = 1000


def held_out_split(data: Dataset, config: Configuration) -> tuple[Dataset, tuple[torch.Tensor, torch.Tensor] | None]:
    """(training data, held-out (images, labels)) for `config`.

    Under adv_checkpoint=best the last min(HELD_OUT_IMAGES, n/10) training images are held out and
    not trained on; the test images are never touched. Otherwise all of `data` trains and None.
    """
    if config.checkpoint_selection != BEST_HELD_OUT:
        return data, None
    n = len(data.train_labels)
    k = min(HELD_OUT_IMAGES, n // 10)
    if k < 1:
        raise ValueError(f"{config.id}: {n} training images leave none to hold out for adv_checkpoint=best")
    kept = Dataset(data.name, data.train_images[:n - k], data.train_labels[:n - k], data.test_images,
                   data.test_labels, data.checksum_status)
    return kept, (data.train_images[n - k:], data.train_labels[n - k:])


def held_out_robust_accuracy(model: torch.nn.Module, held_out: tuple[torch.Tensor, torch.Tensor], budget: Budget,
                             seed: int) -> float:
    """PGD accuracy (%) on the held-out training images, attacked and classified with running
    statistics as at test time (evaluate.pgd_evaluation); the model is left as found."""
    with preserved_state(model, BN_EVAL):
        return 100.0 - pgd_evaluation(model, *held_out, budget, seed)["pgd_error"]


def select_best(run: RunState, robust_accuracy: float, epoch: int, held_out_images: int) -> None:
    """Record epoch `epoch`'s held-out PGD accuracy; keep its weights if no earlier epoch was better."""
    history = (run.selection or {}).get("history", []) + [robust_accuracy]
    if run.selection is None or robust_accuracy > run.selection["robust_accuracy"]:
        weights = {k: v.detach().clone() for k, v in run.model.state_dict().items()}
        run.selection = {"epoch": epoch, "robust_accuracy": robust_accuracy, "model": weights}
    run.selection.update(history=history, held_out_images=held_out_images)
