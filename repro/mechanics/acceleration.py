"""Speed-ups of the network, decided by one rule on every device and runnable on a CPU.

- channels_last memory format (budget.channels_last): on by default on CUDA (NHWC convolutions
  run faster on tensor cores), off by default on a CPU; on CPUs with AVX-512 it measured 1.2-1.3x
  faster too (results/cifar_cpu/selfcheck), so a CPU selfcheck measures it and switches it on where it passed;
- bf16 autocast of the network's forward pass (budget.bf16). The attack's perturbation, sign step
  and projection stay in fp32: they act on the images outside the network, and the logits are
  returned in fp32. Autocast exists on a CPU too, so `--set bf16=true` runs there (slowly);
- torch.compile (budget.compile), with inductor by default. On a CPU inductor generates C++, so
  without a C++ compiler `--set compile=true` is refused with one line instead of failing deep in
  the first step.

Nothing here branches on the device beyond the channels_last default and the compiler check: the
same wrapper the GPU runs is the one the fast suite checks against the eager fp32 model. The
wrapper shares the model's parameters and buffers, so freezing, checkpoints and BN statistics all
act on the original model (save `model.state_dict()`, or `unwrap(net).state_dict()`).
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from dataclasses import dataclass

import torch
from torch import nn

from repro.paper.budgets import Budget

COMPILE_BACKEND = "inductor"  # torch.compile's default; tests may pass "eager"/"aot_eager" (same guards)

# bf16 keeps 8 significant bits (rounding ~2^-9 = 0.2% per operation); through ResNet-20's 19
# convolutions and the BN layers the errors compound. Measured on the fast suite's width-4 model:
# the largest logit deviation is a few percent of the largest logit magnitude; 10% bounds it with
# margin, while a wrong wrapper (other weights, missing normalisation, fp16 overflow) is off by
# the whole logit scale.
BF16_LOGIT_RELATIVE_TOLERANCE = 0.10
# channels_last and compile change the order of floating-point sums, not the precision: fp32
# rounding (~1e-7 relative) accumulated over a few thousand terms per output.
FP32_LOGIT_RELATIVE_TOLERANCE = 1e-4


@dataclass(frozen=True)
class Acceleration:
    """What to switch on: the decision, separate from applying it, so it can be printed and tested."""

    channels_last: bool
    bf16: bool
    compile: bool
    backend: str = COMPILE_BACKEND

    def describe(self) -> str:
        """One line, e.g. 'channels_last, bf16 autocast, torch.compile (inductor)' or 'eager fp32'."""
        parts = (["channels_last"] if self.channels_last else []) + (["bf16 autocast"] if self.bf16 else [])
        parts += [f"torch.compile ({self.backend})"] if self.compile else []
        return ", ".join(parts) or "eager fp32"


class Autocast(nn.Module):
    """Runs `model` under bf16 autocast on `device_type` and returns fp32 logits."""

    def __init__(self, model: nn.Module, device_type: str):
        super().__init__()
        self.model = model
        self.device_type = device_type

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(self.device_type, dtype=torch.bfloat16):
            return self.model(x).float()


def cpp_compiler() -> str | None:
    """The C++ compiler inductor would use on a CPU (CXX, else g++/c++/clang++), or None."""
    for name in (os.environ.get("CXX"), "g++", "c++", "clang++"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


def plan(budget: Budget, device: torch.device | str, *, channels_last: bool | None = None,
         backend: str | None = None) -> Acceleration:
    """The speed-ups `budget` asks for on `device`.

    Args:
        channels_last: None = budget.channels_last, and where that is None the device's default
            (on for CUDA, off for a CPU).
        backend: torch.compile backend when budget.compile is set (None: COMPILE_BACKEND).

    Raises ValueError (one line, saying what to do) for compile with inductor on a CPU that has no
    C++ compiler.
    """
    device = torch.device(device)
    backend = backend or COMPILE_BACKEND
    if budget.compile and backend == "inductor" and device.type == "cpu" and cpp_compiler() is None:
        raise ValueError("compile=true on a CPU needs a C++ compiler for torch.compile's inductor backend "
                         "(none found: set CXX or install g++); drop --set compile=true to run eagerly")
    if channels_last is None:
        channels_last = device.type == "cuda" if budget.channels_last is None else budget.channels_last
    return Acceleration(
        channels_last=channels_last,
        bf16=budget.bf16, compile=budget.compile, backend=backend,
    )


def wrap(model: nn.Module, acceleration: Acceleration, device_type: str) -> nn.Module:
    """Apply `acceleration` to `model` (converted in place to channels_last if asked); returns the
    callable network to train and attack with, which shares `model`'s tensors."""
    if acceleration.channels_last:
        model.to(memory_format=torch.channels_last)
    net = Autocast(model, device_type) if acceleration.bf16 else model
    if acceleration.compile:
        net = torch.compile(net, backend=acceleration.backend)
    return net


def accelerated(model: nn.Module, budget: Budget, device: torch.device | str, *,
                channels_last: bool | None = None, backend: str | None = None) -> nn.Module:
    """The callable network to train and attack with, as `budget` asks on `device` (see `plan`);
    `model` itself when nothing is switched on."""
    device = torch.device(device)
    return wrap(model, plan(budget, device, channels_last=channels_last, backend=backend), device.type)


def unwrap(net: nn.Module) -> nn.Module:
    """The plain model inside an accelerated network (whose state_dict has no wrapper prefixes)."""
    net = getattr(net, "_orig_mod", net)  # torch.compile's OptimizedModule
    return net.model if isinstance(net, Autocast) else net


ARITHMETIC_SWITCHES = ("bf16", "compile")  # the modes' parts that change what is computed (channels_last: layout)


def refusals(record: dict) -> dict[str, dict[str, dict]]:
    """{budget: {switch: {"budget", "reason", "comparison"}}}: every refusal a selfcheck `record` holds.

    A refusal is one budget's and one switch's, so refusing a switch at one budget leaves its refusal
    at another standing. A record of the first format ({switch: {"budget", ...}}, one budget per
    switch) reads as the same refusals keyed by their budget.
    """
    out: dict[str, dict[str, dict]] = {}
    for key, value in record.get("refused", {}).items():
        if isinstance(value.get("budget"), str):  # first format: key is the switch
            out.setdefault(value["budget"], {})[key] = value
        else:
            out.setdefault(key, {}).update(value)
    return out


def refused_switches(record: dict, budget_name: str | None) -> dict[str, str]:
    """{switch: why} for the arithmetic switches a selfcheck `record` refuses at `budget_name`: a
    comparison of all rows in a mode with the fp32 evidence found a number moved beyond noise
    (written by `repro compare --refuse-into`)."""
    return {switch: refusal["reason"] for switch, refusal in refusals(record).get(budget_name, {}).items()}


def approved_mode(record: dict, budget_name: str | None = None) -> str:
    """The fastest mode of a selfcheck `record` (selfcheck.json) that passed its checks, by the PGD
    training step's measured rate (the step every budget spends most of its time in); "fp32" when
    none did. A compiled mode counts only if the selfcheck compiled with the backend runs use (a CPU
    selfcheck's eager-backend pass says nothing about inductor's code). A mode using a switch the
    record refuses at `budget_name` (refused_switches) does not count.
    """
    refused = refused_switches(record, budget_name)

    def usable(name: str) -> bool:
        switches, rate = record["modes"][name], record["throughput"]["pgd10_step"].get(name, {})
        compiled_as_runs = not switches["compile"] or record["compile_backend"] == COMPILE_BACKEND
        allowed = not any(switches.get(switch) for switch in refused)
        return bool(record["passes"].get(name)) and compiled_as_runs and allowed and "images_per_second" in rate

    candidates = [name for name in record["modes"] if usable(name)]
    rate = lambda name: record["throughput"]["pgd10_step"][name]["images_per_second"]  # noqa: E731
    return max(candidates, key=rate) if candidates else "fp32"


def apply_selfcheck(budget: Budget, record: dict, device: torch.device | str) -> tuple[Budget, dict]:
    """`budget` with the fastest mode the selfcheck `record` (selfcheck.json) approved on this device type
    switched on (approved_mode); returns (budget, what was applied, for result provenance).

    Never switches anything off. A record of the first format (passes of "bf16" and "compile") switches
    those on where they passed, compile only for the backend runs use. Raises ValueError when the
    selfcheck ran on another device type.
    """
    device = torch.device(device)
    if record.get("device") != device.type:
        raise ValueError(f"the selfcheck ran on {record.get('device')!r}, this run on {device.type!r}: "
                         f"run `repro selfcheck --device {device.type}` here and pass its selfcheck.json")
    passes = record["passes"]
    if "modes" in record:
        mode = approved_mode(record, budget.name)
        switches = record["modes"][mode]
    else:  # first format: bf16 and compile, channels_last the device's default
        mode = None
        switches = {"bf16": bool(passes["bf16"]), "channels_last": None,
                    "compile": bool(passes["compile"]) and record["compile_backend"] == COMPILE_BACKEND}
    bf16 = budget.bf16 or switches["bf16"]
    compile_ = budget.compile or switches["compile"]
    channels_last = budget.channels_last if budget.channels_last is not None else switches["channels_last"]
    applied = {"mode": mode, "bf16": bf16, "compile": compile_, "channels_last": channels_last, "passes": passes,
               "compile_backend": record["compile_backend"], "sizes": record["sizes"],
               "device_name": record["environment"]["device_name"], "refused": refused_switches(record, budget.name)}
    return dataclasses.replace(budget, bf16=bf16, compile=compile_, channels_last=channels_last), applied
