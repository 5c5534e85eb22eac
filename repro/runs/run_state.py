"""A training run's state and its checkpoint: what identifies a run, what it carries, how it resumes.

Every epoch ends in an atomic checkpoint holding model, optimiser, schedule and RNG states, and long
epochs are also checkpointed every few minutes (with the epoch's shuffle order and the step reached),
so an interrupted run resumed from it ends with the same weights as one that was never interrupted.
A checkpoint records the run's identity (configuration, the training fields it reads, seed, readings), and
is reused or resumed only by a run of that identity.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from repro.mechanics.model import ResNet20
from repro.paper.budgets import Budget
from repro.paper.configs import BEST_HELD_OUT, Configuration
from repro.paper.variants import config_changes
from repro.runs.checkpoint import CheckpointError, load_checkpoint, save_checkpoint


CHECKPOINT_NAME = "checkpoint.pt"


def run_identity(config: Configuration, budget: Budget, seed: int) -> dict:
    """What a checkpoint records of its run, and must match to be resumed or reused.

    "budget" holds the training fields this row reads (Budget.training_fields_of): a change of a field
    it does not read (NORMAL and the fine-tuning rate) leaves its checkpoint reusable. "config_changes"
    tells readings of the open choices apart (None for the registry's rows, which is also what
    checkpoints written before it existed give).
    """
    return {"config_id": config.id, "budget": budget.training_fields_of(config), "seed": seed,
            "config_changes": config_changes(config)}


def load_run(path: Path, config: Configuration, budget: Budget, seed: int, **expect) -> dict:
    """The checkpoint at `path`, checked against the run's identity (and `expect`); CheckpointError otherwise."""
    return load_identified(path, {**run_identity(config, budget, seed), **expect})


def load_identified(path: Path, identity: dict) -> dict:
    """The checkpoint at `path` if it records `identity` (run_identity): the budget compared on the fields
    `identity` holds only, so a checkpoint that recorded every training field (as earlier versions wrote)
    is still this row's when those fields match; CheckpointError naming the fields otherwise."""
    identity = dict(identity)
    wanted = identity.pop("budget")
    state = load_checkpoint(path, expect=identity)
    recorded = state.get("budget") if isinstance(state.get("budget"), dict) else {}
    differing = [k for k in wanted if recorded.get(k) != wanted[k]]
    if differing:
        raise CheckpointError(
            f"checkpoint {path} was trained under other budget fields ("
            + ", ".join(f"{k} {recorded.get(k)!r}, not {wanted[k]!r}" for k in differing)
            + "); use another --out folder or delete the file")
    return state


def is_complete(folder: Path, config: Configuration, budget: Budget, seed: int,
                initial_fingerprint: str | None = None) -> bool:
    """Whether `folder` holds a finished training run of this configuration.

    With `initial_fingerprint` (a fine-tuning row's NORMAL, see state_fingerprint), a run that
    started from other weights (NORMAL retrained since) raises CheckpointError.
    """
    path = Path(folder) / CHECKPOINT_NAME
    if not path.exists():
        return False
    state = load_run(path, config, budget, seed)
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
    state = load_run(path, config, budget, seed)
    if state["epoch"] != state["epochs"]:
        raise CheckpointError(
            f"{path} holds an unfinished run ({state['epoch']}/{state['epochs']} epochs); "
            f"run `repro train {config.id} --resume` to finish it"
        )
    model = ResNet20(budget.width)
    selected = config.checkpoint_selection == BEST_HELD_OUT
    model.load_state_dict(state["selection"]["model"] if selected else state["model"])
    return model.eval(), state["train_seconds"]


def snapshot_path(folder: Path, epoch: int) -> Path:
    """Where a run keeps its weights after `epoch` epochs (Budget.ladder_epochs)."""
    return Path(folder) / f"snapshot-epoch{epoch}.pt"


def save_snapshot(run: RunState, epoch: int) -> None:
    """Keep the weights of `run` after `epoch` epochs beside its checkpoint, under the run's identity."""
    save_checkpoint(snapshot_path(run.path.parent, epoch),
                    {**run.identity, "epoch": epoch, "epochs": run.epochs, "model": run.model.state_dict()})


def load_snapshot(folder: Path, config: Configuration, budget: Budget, seed: int, epoch: int) -> ResNet20 | None:
    """The model a run kept after `epoch` epochs (on the CPU, eval mode); None when it kept none there."""
    path = snapshot_path(folder, epoch)
    if not path.exists():
        return None
    state = load_run(path, config, budget, seed, epoch=epoch)
    model = ResNet20(budget.width)
    model.load_state_dict(state["model"])
    return model.eval()


def training_curve(folder: Path) -> list[dict] | None:
    """The learning curve's points of a run folder's checkpoint; None when it predates curves."""
    return load_checkpoint(Path(folder) / CHECKPOINT_NAME).get("curve")


def checkpoint_selection(folder: Path) -> dict | None:
    """How a finished run's evaluated weights were selected: {"epoch", "robust_accuracy", "history",
    "held_out_images"} under adv_checkpoint=best, None for runs that evaluate their last epoch."""
    selection = load_checkpoint(Path(folder) / CHECKPOINT_NAME).get("selection")
    return None if selection is None else {k: v for k, v in selection.items() if k != "model"}


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
    curve: list[dict] = field(default_factory=list)  # the learning curve's points so far (repro/runs/curves.py)

    def resume(self, device: torch.device | str) -> None:
        """Restore model, optimiser, schedule, RNG states and progress from the checkpoint at `path`."""
        state = load_identified(self.path, self.identity)
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
        self.curve = list(state.get("curve") or [])  # checkpoints written before curves existed hold none
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
            "curve": self.curve,
            **extra,
        })
        self.last_saved = time.perf_counter()
