"""One training routine for all eleven configurations, with per-epoch checkpoints and resume.

Section 3.2: NORMAL trains clean with AutoAugment; adversarial rows train with PGD-10 at
eps = 8/255 and crop/flip; fine-tuning rows start from the trained NORMAL model; BN STATS only
forwards adversarial examples (Section 3.3). Hyperparameters come from the budget
(repro/budgets.py). Every epoch ends in an atomic checkpoint holding model, optimiser, schedule
and RNG states, and long epochs are also checkpointed every few minutes (with the epoch's
shuffle order and the step reached), so an interrupted run resumed from it ends with the same
weights as one that was never interrupted and loses at most those minutes.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path

import torch

from repro.acceleration import accelerated
from repro.attacks import PGDSettings
from repro.budgets import Budget
from repro.checkpoint import CheckpointError, load_checkpoint, save_checkpoint, state_fingerprint
from repro.configs import FROM_NORMAL, Configuration
from repro.data import Dataset, augment
from repro.freeze import apply_configuration
from repro.model import ResNet20
from repro.train_step import train_step

CHECKPOINT_NAME = "checkpoint.pt"
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


def run_identity(config: Configuration, budget: Budget, seed: int) -> dict:
    """What a checkpoint must match to be resumed or reused."""
    return {"config_id": config.id, "budget": budget.training_fields(), "seed": seed}


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
    model.load_state_dict(state["model"])
    return model.eval(), state["train_seconds"]


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
    folder = Path(folder)
    path = folder / CHECKPOINT_NAME
    torch.manual_seed(seed)
    model = ResNet20(budget.width)
    if config.init == FROM_NORMAL:
        if initial_model is None:
            raise ValueError(f"{config.id} fine-tunes the NORMAL model: pass initial_model")
        model.load_state_dict(initial_model.state_dict())
    model.to(device)
    trainable = apply_configuration(model, config)
    net = accelerated(model, budget, device)  # the model itself on a CPU
    from_normal = config.init == FROM_NORMAL
    epochs = budget.epochs_for(config.objective, from_normal)
    if epochs < 1:
        raise ValueError(f"{config.id} has {epochs} epochs under budget {budget.name}; it needs at least 1")
    n_train = len(data.train_labels)
    steps_per_epoch = n_train // budget.batch_size
    if steps_per_epoch < 1:
        raise ValueError(f"{n_train} training images cannot fill one batch of {budget.batch_size}")
    total_steps = epochs * steps_per_epoch
    optimizer = scheduler = None
    if trainable:
        optimizer = torch.optim.SGD(
            trainable, lr=budget.lr_finetune if from_normal else budget.lr, momentum=budget.momentum,
            weight_decay=budget.weight_decay, nesterov=budget.nesterov,
        )
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: lr_factor(budget.schedule, step, total_steps)
        )
    attack = PGDSettings(budget.epsilon, budget.train_attack_step_size, budget.train_attack_steps)
    generator = torch.Generator(device=device).manual_seed(seed)  # shuffling and crop/flip
    identity = run_identity(config, budget, seed)

    start_epoch = 0
    seconds = 0.0  # training wall time, accumulated across resumes
    within_epoch = None  # (order, next step, loss sum, correct) when resuming inside an epoch
    if path.exists():
        if not resume:
            raise RunExistsError(
                f"{path} already holds a run of {config.id}; pass --resume to continue it "
                "or --restart to discard it"
            )
        state = load_checkpoint(path, expect=identity)
        model.load_state_dict(state["model"])
        if optimizer is not None:
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
        generator.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        if torch.cuda.is_available() and state.get("cuda_rng") is not None:
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        start_epoch = state["epoch"]
        seconds = state["train_seconds"]
        if state.get("step_in_epoch"):
            within_epoch = (state["order"].to(device), state["step_in_epoch"],
                            state["loss_sum"].to(device), state["correct"].to(device))

    initial_fingerprint = state_fingerprint(initial_model.state_dict()) if initial_model is not None else None

    def checkpoint(epoch_done: int, extra: dict) -> None:
        save_checkpoint(path, {
            **identity,
            "initial_fingerprint": initial_fingerprint,  # which NORMAL a fine-tuning row started from
            "epoch": epoch_done,
            "epochs": epochs,
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict() if optimizer is not None else None,
            "scheduler": scheduler.state_dict() if scheduler is not None else None,
            "generator": generator.get_state(),
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
            **extra,
        })

    last_saved = time.perf_counter()
    for epoch in range(start_epoch, epochs):
        started = time.perf_counter()
        if within_epoch is not None:
            order, first_step, loss_sum, correct = within_epoch
            within_epoch = None
        else:
            order = torch.randperm(n_train, generator=generator, device=device)
            first_step = 0
            loss_sum = torch.zeros((), device=device)
            correct = torch.zeros((), device=device, dtype=torch.long)
        for i in range(first_step, steps_per_epoch):
            index = order[i * budget.batch_size:(i + 1) * budget.batch_size]
            images = augment(data.train_images[index], config.augmentation, generator)
            step = epoch * steps_per_epoch + i
            loss, n_correct = train_step(
                net, config, optimizer, images, data.train_labels[index], attack, seed=attack_seed(seed, step)
            )
            loss_sum += loss
            correct += n_correct
            if scheduler is not None:
                scheduler.step()
            if on_step is not None:
                on_step(step)
            now = time.perf_counter()
            # Inside an epoch, on a timer; the host sync on the loss happens only then.
            if i + 1 < steps_per_epoch and now - last_saved >= checkpoint_seconds and math.isfinite(loss_sum.item()):
                checkpoint(epoch, {"step_in_epoch": i + 1, "order": order.cpu(), "loss_sum": loss_sum.cpu(),
                                   "correct": correct.cpu(), "train_seconds": seconds + now - started})
                last_saved = time.perf_counter()
        mean_loss = loss_sum.item() / steps_per_epoch  # one host sync per epoch
        seconds += time.perf_counter() - started
        if not math.isfinite(mean_loss):
            kept = f"the last good checkpoint {path}" if path.exists() else "no checkpoint"
            rate = "lr_finetune" if from_normal else "lr"
            raise TrainingDivergedError(
                f"{config.id}: training loss became {mean_loss} in epoch {epoch + 1}; stopped, kept {kept}. "
                f"Lower the learning rate (--set {rate}=...) and run again."
            )
        checkpoint(epoch + 1, {"step_in_epoch": 0, "train_seconds": seconds})
        last_saved = time.perf_counter()
        if progress is not None:
            progress({
                "epoch": epoch + 1, "epochs": epochs, "loss": mean_loss,
                "accuracy": correct.item() / (steps_per_epoch * budget.batch_size),
                "seconds": seconds,
            })
    model.eval()
    return model
