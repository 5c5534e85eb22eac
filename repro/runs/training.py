"""One training routine for all eleven configurations, with per-epoch checkpoints and resume.

Section 3.2: NORMAL trains clean with AutoAugment; adversarial rows train with PGD-10 at
eps = 8/255 and crop/flip; fine-tuning rows start from the trained NORMAL model; BN STATS only
forwards adversarial examples (Section 3.3). Hyperparameters come from the budget
(repro/paper/budgets.py). The run's state and checkpoints (every epoch and every few minutes
within one, so an interrupted run resumes to the same weights) are repro/runs/run_state.py's;
the held-out selection of the `adv_checkpoint=best` reading is repro/runs/selection.py's.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from repro.mechanics.acceleration import accelerated
from repro.mechanics.attacks import PGDSettings
from repro.mechanics.freeze import apply_configuration
from repro.mechanics.model import ResNet20
from repro.mechanics.train_step import train_step
from repro.paper.budgets import Budget
from repro.paper.configs import AUTOAUGMENT, AUTOAUGMENT_FIRST, CROP_FLIP, FROM_NORMAL, Configuration
from repro.runs.checkpoint import state_fingerprint
from repro.runs.curves import Curve
from repro.runs.augmentation import augment, prefetched_autoaugment
from repro.runs.data import Dataset
from repro.runs.run_state import CHECKPOINT_NAME, EpochProgress, RunState, run_identity, save_snapshot
from repro.runs.selection import held_out_robust_accuracy, held_out_split, select_best

CHECKPOINT_SECONDS = 300.0  # within an epoch, checkpoint at most this much training apart


class TrainingDivergedError(RuntimeError):
    """The training loss became NaN or infinite; the last good checkpoint is kept."""


class RunExistsError(RuntimeError):
    """An interrupted run exists where a new one would start."""


def lr_factor(schedule: str, step: int, total_steps: int) -> float:
    """Multiplier of the peak learning rate at `step` of `total_steps`."""
    progress = step / max(total_steps, 1)
    if schedule == "linear":
        return max(0.0, 1.0 - progress)
    # "step": x0.1 at 50% and 75% (Frankle et al.'s 80 and 120 of 160 epochs).
    return 0.1 ** ((progress >= 0.5) + (progress >= 0.75))


def attack_seed(seed: int, step: int) -> int:
    """A distinct, reproducible random-start seed for every training step of a run."""
    return (seed * 1_000_003 + step) % (2**62)


def augmentation_seed(seed: int, step: int) -> int:
    """The seed of AutoAugment's draws for one training step (independent of the attack's)."""
    return (seed * 1_000_033 + step + 7_919) % (2**62)


def optimizer_and_schedule(
    trainable: list[torch.nn.Parameter], budget: Budget, lr: float, total_steps: int,
) -> tuple[torch.optim.Optimizer | None, torch.optim.lr_scheduler.LRScheduler | None]:
    """SGD over `trainable` at peak rate `lr` with the budget's schedule over `total_steps`; (None, None)
    when nothing trains."""
    if not trainable:
        return None, None
    optimizer = torch.optim.SGD(
        trainable, lr=lr, momentum=budget.momentum,
        weight_decay=budget.weight_decay, nesterov=budget.nesterov,
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(budget.schedule, step, total_steps)
    )
    return optimizer, scheduler


@dataclass
class EpochLoop:
    """The step loop of one run: what trains, on which data, under which attack."""

    net: torch.nn.Module  # the model, or its accelerated wrapper sharing its parameters
    config: Configuration
    data: Dataset
    batch_size: int
    steps_per_epoch: int
    attack: PGDSettings
    seed: int
    device: torch.device | str
    on_step: Callable[[int], None] | None
    checkpoint_seconds: float
    curve: Curve | None = None

    def take_point(self, run: RunState, step: int, loss_sum: float | None, correct: int | None,
                   steps_in_epoch: int) -> None:
        """A learning-curve point after global step `step`, if one is due there."""
        if self.curve is not None and self.curve.due(step):
            lr = run.scheduler.get_last_lr()[0] if run.scheduler is not None else None
            self.curve.take(self.net, step, lr, loss_sum, correct, steps_in_epoch)

    def run(self, run: RunState, epoch: int) -> tuple[float, int]:
        """Train epoch `epoch` (from where `run` stands in it); returns (mean loss, number correct).

        Writes a timed checkpoint inside the epoch, not the one that ends it.
        """
        started = time.perf_counter()
        if run.within_epoch is not None:
            progress, run.within_epoch = run.within_epoch, None
        else:
            progress = EpochProgress(
                torch.randperm(len(self.data.train_labels), generator=run.generator, device=self.device), 0,
                torch.zeros((), device=self.device), torch.zeros((), device=self.device, dtype=torch.long),
            )
        order, loss_sum, correct = progress.order, progress.loss_sum, progress.correct
        steps = range(progress.next_step, self.steps_per_epoch)
        autoaugmented = None
        if self.config.augmentation == AUTOAUGMENT and self.config.autoaugment_order == AUTOAUGMENT_FIRST:
            # Per-sample host work, overlapped with the steps. The other order (a non-default reading)
            # crops on the device first and runs AutoAugment inline in augment().
            host_order = order.cpu()
            autoaugmented = prefetched_autoaugment(
                self.data.train_images.cpu(),
                [host_order[i * self.batch_size:(i + 1) * self.batch_size] for i in steps],
                [augmentation_seed(self.seed, epoch * self.steps_per_epoch + i) for i in steps])
        try:
            return self._steps(run, epoch, steps, order, loss_sum, correct, autoaugmented, started)
        finally:
            if autoaugmented is not None:
                autoaugmented.close()

    def _steps(self, run, epoch, steps, order, loss_sum, correct, autoaugmented, started) -> tuple[float, int]:
        for i in steps:
            index = order[i * self.batch_size:(i + 1) * self.batch_size]
            if autoaugmented is not None:
                images = augment(next(autoaugmented).to(self.device), CROP_FLIP, run.generator)
            else:
                images = augment(self.data.train_images[index], self.config.augmentation, run.generator,
                                 order=self.config.autoaugment_order)
            step = epoch * self.steps_per_epoch + i
            loss, n_correct = train_step(
                self.net, self.config, run.optimizer, images, self.data.train_labels[index], self.attack,
                seed=attack_seed(self.seed, step),
            )
            loss_sum += loss
            correct += n_correct
            if run.scheduler is not None:
                run.scheduler.step()
            if self.on_step is not None:
                self.on_step(step)
            if i + 1 < self.steps_per_epoch:  # inside the epoch; the epoch's last point is train()'s
                self.take_point(run, step + 1, *_host(loss_sum, correct, self.curve, step + 1), i + 1)
            now = time.perf_counter()
            # Inside an epoch, on a timer; the host sync on the loss happens only then.
            if (i + 1 < self.steps_per_epoch and now - run.last_saved >= self.checkpoint_seconds
                    and math.isfinite(loss_sum.item())):
                run.checkpoint(epoch, {"step_in_epoch": i + 1, "order": order.cpu(), "loss_sum": loss_sum.cpu(),
                                       "correct": correct.cpu(), "train_seconds": run.seconds + now - started})
        mean_loss = loss_sum.item() / self.steps_per_epoch  # one host sync per epoch
        run.seconds += time.perf_counter() - started
        return mean_loss, correct.item()


def _host(loss_sum: torch.Tensor, correct: torch.Tensor, curve: Curve | None, step: int) -> tuple:
    """The epoch's loss sum and correct count as numbers where a curve point is due (a host sync only
    then), else (None, None)."""
    if curve is None or not curve.due(step):
        return None, None
    return loss_sum.item(), int(correct.item())


def train(
    config: Configuration,
    budget: Budget,
    data: Dataset,
    folder: Path,
    *,
    seed: int,
    device: torch.device | str = "cpu",
    initial_model: ResNet20 | None = None,
    resume: bool = False,
    on_step: Callable[[int], None] | None = None,
    progress: Callable[[dict], None] | None = None,
    checkpoint_seconds: float = CHECKPOINT_SECONDS,
) -> ResNet20:
    """Train `config` under `budget` on `data`, checkpointing into `folder` every epoch.

    Args:
        data: already on `device`.
        seed: seeds initialisation, shuffling, augmentation and attack starts.
        initial_model: the trained NORMAL model, required when config.init == FROM_NORMAL.
        resume: continue from `folder`'s checkpoint; without it an existing checkpoint is an error.
        on_step: called with the global step after every step (used to test interruption).
        progress: called after every epoch with {"epoch", "epochs", "loss", "accuracy"}.
        checkpoint_seconds: within an epoch, write a checkpoint once this many seconds passed since
            the last one (0: after every step); epochs always end in one.

    Returns the trained model (on `device`).
    """
    run, loop, held_out = start_run(config, budget, data, folder, seed=seed, device=device,
                                    initial_model=initial_model, resume=resume, on_step=on_step,
                                    checkpoint_seconds=checkpoint_seconds)
    if run.epoch == 0 and run.within_epoch is None:  # not on resume: these are not the starting weights
        loop.take_point(run, 0, None, None, 0)  # where the run starts (a fine-tuning row: its NORMAL)
    for epoch in range(run.epoch, run.epochs):
        mean_loss, correct = loop.run(run, epoch)
        loop.take_point(run, (epoch + 1) * loop.steps_per_epoch, mean_loss * loop.steps_per_epoch, correct,
                        loop.steps_per_epoch)
        if not math.isfinite(mean_loss):
            kept = f"the last good checkpoint {run.path}" if run.path.exists() else "no checkpoint"
            rate = "lr_finetune" if config.init == FROM_NORMAL else "lr"
            raise TrainingDivergedError(
                f"{config.id}: training loss became {mean_loss} in epoch {epoch + 1}; stopped, kept {kept}. "
                f"Lower the learning rate (--set {rate}=...) and run again."
            )
        if held_out is not None:
            select_best(run, held_out_robust_accuracy(loop.net, held_out, budget, seed), epoch + 1, len(held_out[1]))
        run.checkpoint(epoch + 1, {"step_in_epoch": 0, "train_seconds": run.seconds})
        if epoch + 1 in budget.ladder_epochs and epoch + 1 < run.epochs:  # the end is the checkpoint itself
            save_snapshot(run, epoch + 1)
        if progress is not None:
            progress({
                "epoch": epoch + 1, "epochs": run.epochs, "loss": mean_loss,
                "accuracy": correct / (loop.steps_per_epoch * budget.batch_size),
                "seconds": run.seconds,
            })
    run.model.eval()
    return run.model


def start_run(config: Configuration, budget: Budget, data: Dataset, folder: Path, *, seed: int,
              device: torch.device | str, initial_model: ResNet20 | None, resume: bool,
              on_step: Callable[[int], None] | None, checkpoint_seconds: float,
              ) -> tuple[RunState, EpochLoop, tuple[torch.Tensor, torch.Tensor] | None]:
    """The run `train` continues: its state (fresh, or resumed from `folder`'s checkpoint), its
    step loop, and the held-out images of the adv_checkpoint=best reading (None otherwise)."""
    path = Path(folder) / CHECKPOINT_NAME
    from_normal = config.init == FROM_NORMAL
    torch.manual_seed(seed)
    model = ResNet20(budget.width)
    if from_normal:
        if initial_model is None:
            raise ValueError(f"{config.id} fine-tunes the NORMAL model: pass initial_model")
        model.load_state_dict(initial_model.state_dict())
    model.to(device)
    data, held_out = held_out_split(data, config)
    trainable = apply_configuration(model, config)
    net = accelerated(model, budget, device)  # the model itself on a CPU
    epochs = budget.epochs_of(config)
    if epochs < 1:
        raise ValueError(f"{config.id} has {epochs} epochs under budget {budget.name}; it needs at least 1")
    n_train = len(data.train_labels)
    steps_per_epoch = n_train // budget.batch_size
    if steps_per_epoch < 1:
        raise ValueError(f"{n_train} training images cannot fill one batch of {budget.batch_size}")
    optimizer, scheduler = optimizer_and_schedule(trainable, budget, budget.lr_of(config), epochs * steps_per_epoch)
    run = RunState(
        path, run_identity(config, budget, seed),
        state_fingerprint(initial_model.state_dict()) if initial_model is not None else None,
        epochs, model, optimizer, scheduler, torch.Generator(device=device).manual_seed(seed),
    )
    if path.exists():
        if not resume:
            raise RunExistsError(
                f"{path} already holds a run of {config.id}; pass --resume to continue it "
                "or --restart to discard it"
            )
        run.resume(device)
    curve = Curve(budget, data, steps_per_epoch, epochs, points=run.curve)
    run.curve = curve.points  # one list: checkpoints hold every point taken so far
    loop = EpochLoop(
        net, config, data, budget.batch_size, steps_per_epoch,
        PGDSettings(budget.epsilon, budget.train_attack_step_size, budget.train_attack_steps),
        seed, device, on_step, checkpoint_seconds, curve,
    )
    run.last_saved = time.perf_counter()
    return run, loop, held_out


