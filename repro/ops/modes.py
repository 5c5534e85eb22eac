"""The settings a selfcheck compares (fp32, bf16, compiled) and how big it is (Sizes).

A mode is the paper budget at the selfcheck's width and batch with one speed-up switched on, run
through the same acceleration.plan/wrap that training and evaluation use.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

from repro.mechanics.acceleration import plan, wrap
from repro.paper.budgets import PAPER, Budget

MODES = ("fp32", "bf16", "compiled")  # compiled = torch.compile of the fp32 network


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
    train_steps: int  # PGD-10 adversarial training steps of the model the attacks are compared on
    n_images: int  # held-out images attacked in fp32, bf16 and compiled
    pgd_steps: int  # iterations of the evaluation PGD compared
    apgd_iterations: int  # iterations of APGD-CE (timed and compared)
    determinism_steps: int  # steps of the short run trained twice


# CUDA: the paper's width and batch (Section 3.2, Frankle et al.'s batch 128); a few hundred PGD-10
# steps make the model somewhat robust; 1000 images as in the paper's robust error.
CUDA_SIZES = Sizes(width=64, batch_size=128, repeats=10, train_steps=300, n_images=1000, pgd_steps=20,
                   apgd_iterations=100, determinism_steps=20)


# CPU: a width-2 network and a handful of steps, so the fast suite runs the whole command: the
# machinery, not the numbers.
CPU_SIZES = Sizes(width=2, batch_size=8, repeats=1, train_steps=3, n_images=16, pgd_steps=2,
                  apgd_iterations=2, determinism_steps=1)


def default_sizes(device: torch.device) -> Sizes:
    """CUDA_SIZES on a GPU, CPU_SIZES elsewhere."""
    return CUDA_SIZES if torch.device(device).type == "cuda" else CPU_SIZES


def mode_budget(sizes: Sizes, mode: str) -> Budget:
    """The paper budget at `sizes`' width and batch with `mode`'s speed-up switched on."""
    return dataclasses.replace(PAPER, width=sizes.width, batch_size=sizes.batch_size,
                               bf16=mode == "bf16", compile=mode == "compiled")


def network_in_mode(model, sizes, mode, device, backend):
    """`model` as `mode` runs it (via acceleration.plan); ValueError where plan refuses."""
    return wrap(model, plan(mode_budget(sizes, mode), device, backend=backend), device.type)
