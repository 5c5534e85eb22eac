"""The settings a selfcheck compares (modes) and how big it is (Sizes).

A mode is the paper budget at the selfcheck's width and batch with speed-ups switched on, run
through the same acceleration.plan/wrap that training and evaluation use. On CUDA the modes are
fp32, bf16 and compiled (channels_last on, the device's default); on a CPU channels_last is a mode
of its own, alone and with bf16 (on CPUs with AVX512-BF16/AMX, bf16 + channels_last ran the training
steps 1.8-2.6x faster than eager fp32: results/cifar_cpu/selfcheck), and bf16 is refused where the CPU has no native
bf16 instructions.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

from repro.mechanics.acceleration import plan, wrap
from repro.paper.budgets import PAPER, Budget
from repro.runs.provenance import BF16_CPU_FLAGS, cpu_bf16_flags

FP32 = "fp32"  # the reference every other mode is checked against; always allowed


@dataclass(frozen=True)
class Mode:
    """One setting of the acceleration switches (repro/paper/budgets.py ACCELERATION_FIELDS)."""

    name: str
    channels_last: bool | None  # None: the device's default (on for CUDA, off for a CPU)
    bf16: bool = False
    compile: bool = False

    def switches(self) -> dict:
        return {"channels_last": self.channels_last, "bf16": self.bf16, "compile": self.compile}


CUDA_MODES = (Mode(FP32, None), Mode("bf16", None, bf16=True), Mode("compiled", None, compile=True))
CPU_MODES = (Mode(FP32, False), Mode("channels_last", True), Mode("bf16", False, bf16=True),
             Mode("bf16+channels_last", True, bf16=True), Mode("compiled", False, compile=True))


def modes_for(device: torch.device | str) -> tuple[Mode, ...]:
    """The modes a selfcheck on `device` compares, FP32 first."""
    return CUDA_MODES if torch.device(device).type == "cuda" else CPU_MODES


def refusal(mode: Mode, device: torch.device | str) -> str | None:
    """Why `mode` is not measured on `device` (None: it is). bf16 on a CPU without native bf16
    instructions would run emulated, slower than fp32: not worth a check."""
    if mode.bf16 and torch.device(device).type == "cpu" and not cpu_bf16_flags():
        return (f"this CPU has none of {', '.join(BF16_CPU_FLAGS)}: bf16 would run emulated, slower than fp32, "
                "so it is neither measured nor switched on")
    return None


# On a CPU, inductor's generated C++ takes minutes to compile per graph on 2 cores; dynamo's eager
# backend traces the same graphs (same guards, same recompiles) and runs them eagerly, so the CPU
# selfcheck checks compile's tracing, not inductor's code. A GPU selfcheck uses inductor.
CPU_COMPILE_BACKEND = "eager"


@dataclass(frozen=True)
class Sizes:
    """How big a selfcheck is: width and batch of the timed steps, repeats, and the attack check's sizes."""

    width: int  # ResNet-20 first-stage channels (64: the paper's model)
    batch_size: int  # images per timed step and per training step
    repeats: int  # timed steps per measurement, after one warm-up step
    train_steps: int  # PGD adversarial training steps of the model the attacks are compared on
    n_images: int  # held-out images attacked in every mode
    pgd_steps: int  # iterations of the evaluation PGD compared
    apgd_iterations: int  # iterations of APGD-CE (timed and compared)
    determinism_steps: int  # steps of the short run trained twice
    train_attack_steps: int = 10  # PGD iterations of that training (Section 3.2: 10)


# CUDA: the paper's width and batch (Section 3.2, Frankle et al.'s batch 128); a few hundred PGD-10
# steps make the model somewhat robust; 1000 images as in the paper's robust error.
CUDA_SIZES = Sizes(width=64, batch_size=128, repeats=10, train_steps=300, n_images=1000, pgd_steps=20,
                   apgd_iterations=100, determinism_steps=20)


# CPU: a width-2 network and a handful of steps, so the fast suite runs the whole command: the
# machinery, not the numbers. `sizes_for(budget)` sizes a CPU selfcheck whose checks can fail.
CPU_SIZES = Sizes(width=2, batch_size=8, repeats=1, train_steps=3, n_images=16, pgd_steps=2,
                  apgd_iterations=2, determinism_steps=1)


def default_sizes(device: torch.device) -> Sizes:
    """CUDA_SIZES on a GPU, CPU_SIZES elsewhere."""
    return CUDA_SIZES if torch.device(device).type == "cuda" else CPU_SIZES


def sizes_for(budget: Budget) -> Sizes:
    """A selfcheck at `budget`'s width, batch and evaluation attacks, on a model whose errors lie mid-range,
    where a weaker attack or a changed clean accuracy shows: 64 PGD-2 steps (step 5/255, the smoke
    budget's training attack) on the built-in data, checked on 1000 held-out images. Measured at
    cifar_cpu (width 16, batch 128): after 64 steps clean 7 %, PGD-10 29 %, APGD-CE 31 %; after 256
    steps the model was so robust (PGD 1.6 %) that only a much weaker attack would have shown."""
    apgd = budget.autoattack_iterations if budget.autoattack_version == "custom" else 100
    return Sizes(width=budget.width, batch_size=budget.batch_size, repeats=3, train_steps=64, n_images=1000,
                 pgd_steps=budget.eval_pgd_steps, apgd_iterations=apgd, determinism_steps=2, train_attack_steps=2)


def mode_budget(sizes: Sizes, mode: Mode) -> Budget:
    """The paper budget at `sizes`' width and batch with `mode`'s speed-ups switched on."""
    return dataclasses.replace(PAPER, width=sizes.width, batch_size=sizes.batch_size, **mode.switches())


def network_in_mode(model, sizes: Sizes, mode: Mode, device: torch.device, backend: str):
    """`model` as `mode` runs it (via acceleration.plan); ValueError where plan refuses."""
    return wrap(model, plan(mode_budget(sizes, mode), device, backend=backend), device.type)
