"""One training routine for all eleven configurations, with per-epoch checkpoints and resume.

Section 3.2: NORMAL trains clean with AutoAugment; adversarial rows train with PGD-10 at
eps = 8/255 and crop/flip; fine-tuning rows start from the trained NORMAL model; BN STATS only
forwards adversarial examples (Section 3.3). Hyperparameters come from the budget
(repro/paper/budgets.py). Every epoch ends in an atomic checkpoint holding model, optimiser, schedule
and RNG states, and long epochs are also checkpointed every few minutes (with the epoch's
shuffle order and the step reached), so an interrupted run resumed from it ends with the same
weights as one that was never interrupted and loses at most those minutes.

Under the `adv_checkpoint=best` reading (repro/paper/variants.py) a run holds out part of its training
images, measures PGD accuracy on them after every epoch, and keeps the best epoch's weights in its
checkpoint; those are the weights evaluated.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from repro.mechanics.acceleration import accelerated
from repro.mechanics.attacks import PGDSettings
from repro.paper.budgets import Budget
from repro.runs.checkpoint import CheckpointError, load_checkpoint, save_checkpoint, state_fingerprint
from repro.paper.configs import AUTOAUGMENT, AUTOAUGMENT_FIRST, BEST_HELD_OUT, BN_EVAL, CROP_FLIP, FROM_NORMAL, Configuration
from repro.runs.data import Dataset, augment, prefetched_autoaugment
from repro.runs.evaluate import pgd_evaluation
from repro.mechanics.freeze import apply_configuration, preserved_state
from repro.mechanics.model import ResNet20
from repro.mechanics.train_step import train_step
from repro.paper.variants import config_changes

CHECKPOINT_NAME = "checkpoint.pt"
CHECKPOINT_SECONDS = 300.0  # within an epoch, checkpoint at most this much training apart
# Rice et al. (2020) hold out 1000 of CIFAR-10's training images to select the best epoch; small
# budgets hold out a tenth of theirs instead.
HELD_OUT_IMAGES = 1000


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


def run_identity(config: Configuration, budget: Budget, seed: int) -> dict:
    """What a checkpoint must match to be resumed or reused.

    "config_changes" tells readings of the open choices apart (None for the registry's rows, which
    is also what checkpoints written before it existed give).
    """
    return {"config_id": config.id, "budget": budget.training_fields(), "seed": seed,
            "config_changes": config_changes(config)}


def is_complete(folder: Path, config: Configuration, budget: Budget, seed: int,
                initial_fingerprint: str | None = None) -> bool:
    """Whether `folder` holds a finished training run of this configuration.

    With `initial_fingerprint` (a fine-tuning row's NORMAL, see state_fingerprint), a run that
    started from other weights (NORMAL retrained since) raises CheckpointError.
    """
    path = Path(folder) / CHECKPOINT_NAME
    if not path.exists():
        return False
    state = load_checkpoint(path, expect=run_identity(config, budget, seed))
    if initial_fingerprint is not None and state.get("initial_fingerprint") != initial_fingerprint:
        raise CheckpointError(
            f"{path} was fine-tuned from another NORMAL model than the one in the run folder now "
            f"(retrained since); run `repro train {config.id} --restart` to fine-tune it again"
        )
    return state["epoch"] == state["epochs"]


def load_trained_model(folder: Path, config: Configuration, budget: Budget, seed: int) -> tuple[ResNet20, float]:
    """The finished model of a run folder (on the CPU) and its training seconds.

    Raises CheckpointError saying how to train it when the folder holds no finished run.
    """
    path = Path(folder) / CHECKPOINT_NAME
    if not path.exists():
        raise CheckpointError(f"no trained {config.id} model in {folder}; run `repro train {config.id}` first")
    state = load_checkpoint(path, expect=run_identity(config, budget, seed))
    if state["epoch"] != state["epochs"]:
        raise CheckpointError(
            f"{path} holds an unfinished run ({state['epoch']}/{state['epochs']} epochs); "
            f"run `repro train {config.id} --resume` to finish it"
        )
    model = ResNet20(budget.width)
    selected = config.checkpoint_selection == BEST_HELD_OUT
    model.load_state_dict(state["selection"]["model"] if selected else state["model"])
    return model.eval(), state["train_seconds"]


def checkpoint_selection(folder: Path) -> dict | None:
    """How a finished run's evaluated weights were selected: {"epoch", "robust_accuracy", "history",
    "held_out_images"} under adv_checkpoint=best, None for runs that evaluate their last epoch."""
    selection = load_checkpoint(Path(folder) / CHECKPOINT_NAME).get("selection")
    return None if selection is None else {k: v for k, v in selection.items() if k != "model"}


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


@dataclass
class EpochProgress:
    """Where a run stands inside an epoch: its shuffle order, the next step, loss sum and correct count."""

    order: torch.Tensor
    next_step: int
    loss_sum: torch.Tensor
    correct: torch.Tensor


@dataclass
class RunState:
    """Everything a run carries from step to step and keeps in its checkpoint.

    `epoch` counts finished epochs; `seconds` is training wall time, accumulated across resumes;
    `within_epoch` is set when a resumed checkpoint was written inside an epoch.
    """

    path: Path
    identity: dict
    initial_fingerprint: str | None  # which NORMAL a fine-tuning row started from
    epochs: int
    model: ResNet20
    optimizer: torch.optim.Optimizer | None
    scheduler: torch.optim.lr_scheduler.LRScheduler | None
    generator: torch.Generator  # shuffling and crop/flip
    epoch: int = 0
    seconds: float = 0.0
    within_epoch: EpochProgress | None = None
    last_saved: float = field(default_factory=time.perf_counter)
    selection: dict | None = None  # adv_checkpoint=best: the best epoch so far, its weights, the history

    def resume(self, device: torch.device | str) -> None:
        """Restore model, optimiser, schedule, RNG states and progress from the checkpoint at `path`."""
        state = load_checkpoint(self.path, expect=self.identity)
        self.model.load_state_dict(state["model"])
        if self.optimizer is not None:
            self.optimizer.load_state_dict(state["optimizer"])
            self.scheduler.load_state_dict(state["scheduler"])
        self.generator.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        if torch.cuda.is_available() and state.get("cuda_rng") is not None:
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        self.epoch = state["epoch"]
        self.seconds = state["train_seconds"]
        self.selection = state.get("selection")
        if state.get("step_in_epoch"):
            self.within_epoch = EpochProgress(state["order"].to(device), state["step_in_epoch"],
                                              state["loss_sum"].to(device), state["correct"].to(device))

    def checkpoint(self, epoch_done: int, extra: dict) -> None:
        """Write the run atomically as of `epoch_done` finished epochs; `extra` adds progress fields."""
        save_checkpoint(self.path, {
            **self.identity,
            "initial_fingerprint": self.initial_fingerprint,
            "epoch": epoch_done,
            "epochs": self.epochs,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict() if self.optimizer is not None else None,
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "generator": self.generator.get_state(),
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
            "selection": self.selection,
            **extra,
        })
        self.last_saved = time.perf_counter()


def optimizer_and_schedule(
    trainable: list[torch.nn.Parameter], budget: Budget, from_normal: bool, total_steps: int,
) -> tuple[torch.optim.Optimizer | None, torch.optim.lr_scheduler.LRScheduler | None]:
    """SGD over `trainable` with the budget's schedule over `total_steps`; (None, None) when nothing trains."""
    if not trainable:
        return None, None
    optimizer = torch.optim.SGD(
        trainable, lr=budget.lr_finetune if from_normal else budget.lr, momentum=budget.momentum,
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
            now = time.perf_counter()
            # Inside an epoch, on a timer; the host sync on the loss happens only then.
            if (i + 1 < self.steps_per_epoch and now - run.last_saved >= self.checkpoint_seconds
                    and math.isfinite(loss_sum.item())):
                run.checkpoint(epoch, {"step_in_epoch": i + 1, "order": order.cpu(), "loss_sum": loss_sum.cpu(),
                                       "correct": correct.cpu(), "train_seconds": run.seconds + now - started})
        mean_loss = loss_sum.item() / self.steps_per_epoch  # one host sync per epoch
        run.seconds += time.perf_counter() - started
        return mean_loss, correct.item()


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
    epochs = budget.epochs_for(config.objective, from_normal)
    if epochs < 1:
        raise ValueError(f"{config.id} has {epochs} epochs under budget {budget.name}; it needs at least 1")
    n_train = len(data.train_labels)
    steps_per_epoch = n_train // budget.batch_size
    if steps_per_epoch < 1:
        raise ValueError(f"{n_train} training images cannot fill one batch of {budget.batch_size}")
    optimizer, scheduler = optimizer_and_schedule(trainable, budget, from_normal, epochs * steps_per_epoch)
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
    loop = EpochLoop(
        net, config, data, budget.batch_size, steps_per_epoch,
        PGDSettings(budget.epsilon, budget.train_attack_step_size, budget.train_attack_steps),
        seed, device, on_step, checkpoint_seconds,
    )
    run.last_saved = time.perf_counter()
    for epoch in range(run.epoch, epochs):
        mean_loss, correct = loop.run(run, epoch)
        if not math.isfinite(mean_loss):
            kept = f"the last good checkpoint {path}" if path.exists() else "no checkpoint"
            rate = "lr_finetune" if from_normal else "lr"
            raise TrainingDivergedError(
                f"{config.id}: training loss became {mean_loss} in epoch {epoch + 1}; stopped, kept {kept}. "
                f"Lower the learning rate (--set {rate}=...) and run again."
            )
        if held_out is not None:
            select_best(run, held_out_robust_accuracy(net, held_out, budget, seed), epoch + 1, len(held_out[1]))
        run.checkpoint(epoch + 1, {"step_in_epoch": 0, "train_seconds": run.seconds})
        if progress is not None:
            progress({
                "epoch": epoch + 1, "epochs": epochs, "loss": mean_loss,
                "accuracy": correct / (steps_per_epoch * budget.batch_size),
                "seconds": run.seconds,
            })
    model.eval()
    return model


def select_best(run: RunState, robust_accuracy: float, epoch: int, held_out_images: int) -> None:
    """Record epoch `epoch`'s held-out PGD accuracy; keep its weights if no earlier epoch was better."""
    history = (run.selection or {}).get("history", []) + [robust_accuracy]
    if run.selection is None or robust_accuracy > run.selection["robust_accuracy"]:
        weights = {k: v.detach().clone() for k, v in run.model.state_dict().items()}
        run.selection = {"epoch": epoch, "robust_accuracy": robust_accuracy, "model": weights}
    run.selection.update(history=history, held_out_images=held_out_images)
