"""`repro selfcheck`: is this device ready for the paper budget, and which speed-ups has it earned?

One command, run before a nightly: the environment; measured images/s of NORMAL's
clean step with its AutoAugment, ADV's PGD-10 step, ADV BN ONLY's step and APGD-CE in every mode
(repro/ops/modes.py: fp32, bf16, compiled; on a CPU also channels_last and bf16 + channels_last), and
of two rows at once on the one device; whether each mode leaves the clean error, PGD and APGD-CE as
fp32 eager has them on a briefly adversarially trained model (the rule: `within_binomial_noise`);
whether the same short run twice gives the same weights; the approved mode (the fastest that passed);
and the paper budget's projected wall time for 1, 4 and 8 GPUs in it.

Sizes are parameters (`Sizes`): the paper's width and batch on CUDA, a tiny size on a CPU so that
the fast suite runs the whole command, or a budget's (`--budget cifar_cpu`, repro/ops/modes.py
sizes_for). Runs switch on the approved mode only from a passing selfcheck of the same device type
(`apply_selfcheck`, `repro reproduce --selfcheck selfcheck.json`), recorded in their provenance.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from pathlib import Path

import torch

from repro.mechanics.acceleration import COMPILE_BACKEND, approved_mode, refusals
from repro.ops.attack_check import attack_strength, determinism
from repro.ops.modes import CPU_COMPILE_BACKEND, FP32, Sizes, default_sizes, modes_for
from repro.ops.projection import projection
from repro.ops.throughput import WORKLOADS, measure_throughput
from repro.paper.budgets import PAPER
from repro.runs.checkpoint import atomic_write_bytes
from repro.runs.provenance import cpu_model, hardware, library_versions, nvidia_driver


def environment(device: torch.device) -> dict:
    """Device name and memory, driver/CUDA/cuDNN versions (or "none"), library versions, TF32, CPU."""
    cuda = device.type == "cuda"
    if cuda:
        properties = torch.cuda.get_device_properties(device)
        name, memory = properties.name, properties.total_memory
    else:
        name = cpu_model()
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return {
        "device": str(device), "device_name": name, "memory_gib": round(memory / 2**30, 1),
        "driver": nvidia_driver() if cuda else "none",
        "cuda": torch.version.cuda if cuda else "none", "cudnn": torch.backends.cudnn.version() if cuda else "none",
        "versions": library_versions(),
        "tf32": {"matmul": torch.backends.cuda.matmul.allow_tf32, "cudnn": torch.backends.cudnn.allow_tf32,
                 "float32_matmul_precision": torch.get_float32_matmul_precision()},
        "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
        "load_average": round(os.getloadavg()[0], 2), "hardware": hardware(device),
    }


def selfcheck(device: torch.device, sizes: Sizes | None = None, backend: str | None = None) -> dict:
    """Run every check on `device`; returns the record `selfcheck.json` holds."""
    started = time.perf_counter()
    sizes = sizes or default_sizes(device)
    backend = backend or (COMPILE_BACKEND if device.type == "cuda" else CPU_COMPILE_BACKEND)
    record = {"device": device.type, "sizes": dataclasses.asdict(sizes), "environment": environment(device),
              "compile_backend": backend,
              "compile_backend_reason": ("torch.compile's default" if backend == COMPILE_BACKEND else
                                         "dynamo's eager backend: inductor's C++ compilation takes minutes per "
                                         "graph on a small CPU; eager traces the same graphs without generating code")}
    # Graphs of one measurement's model are reused by the next (same code); the limit is raised so
    # that no measurement silently falls back to eager after dynamo's default 8 recompiles.
    modes = modes_for(device)
    record["modes"] = {mode.name: mode.switches() for mode in modes}
    with torch._dynamo.config.patch(recompile_limit=64):
        record["throughput"] = measure_throughput(sizes, modes, device, backend)
        record["attack_strength"] = attack_strength(sizes, modes, device, backend)
    record["determinism"] = determinism(sizes, device)
    record["passes"] = {FP32: True, **{m.name: record["attack_strength"][f"{m.name}_passes"] for m in modes[1:]}}
    record["approved"] = approved_mode(record)
    record["projection"] = projection(record["throughput"], record["approved"], PAPER, sizes)
    record["seconds"] = time.perf_counter() - started
    return record


def _cell(value: dict) -> str:
    return f"{value['images_per_second']:20.1f}" if "images_per_second" in value else f"{'skipped':>20}"


def refusal_lines(record: dict) -> list[str]:
    """One line per budget and switch the record refuses (`repro compare --refuse-into`), with the mode
    approved at that budget."""
    return [f"refused at {budget}: {switch} ({refused['reason']}; {refused['comparison']}); "
            f"approved there: {approved_mode(record, budget)}"
            for budget, switches in refusals(record).items() for switch, refused in switches.items()]


def render(record: dict) -> str:
    """The short table printed by `repro selfcheck`."""
    env, sizes = record["environment"], record["sizes"]
    modes = sorted(record["modes"], key=lambda mode: (mode != FP32, len(mode), mode))  # the reference first
    lines = [f"device: {env['device_name']} ({env['device']}, {env['memory_gib']} GiB); driver {env['driver']}, "
             f"CUDA {env['cuda']}, cuDNN {env['cudnn']}; torch {env['versions']['torch']}, torchvision "
             f"{env['versions']['torchvision']}, pyautoattack {env['versions']['pyautoattack']}",
             f"TF32 matmul {env['tf32']['matmul']}, cudnn {env['tf32']['cudnn']}; {env['cpu_count']} CPUs, "
             f"{env['torch_threads']} torch threads, load {env['load_average']}; CPU capability "
             f"{env['hardware']['cpu_capability']}, bf16 instructions {', '.join(env['hardware']['cpu_bf16']) or 'none'}",
             f"sizes: width {sizes['width']}, batch {sizes['batch_size']}; compile backend {record['compile_backend']}",
             "", f"{'images/s':<20}" + "".join(f"{m:>20}" for m in modes)]
    for name in WORKLOADS:
        lines.append(f"{name:<20}" + "".join(_cell(record["throughput"][name][m]) for m in modes))
    both = record["throughput"]["two_rows_concurrently"]
    lines.append(f"two rows at once: {both['two_rows_images_per_second']:.1f} images/s vs one row "
                 f"{both['one_row_images_per_second']:.1f} (x{both['speedup']:.2f}; {both['method']})")
    strength = record["attack_strength"]
    lines += ["", f"error % ({strength['n_images']} images, model after {strength['train_steps']} ADV steps)"
                  f"{'clean':>8}{'PGD':>8}{'APGD-CE':>9}  passes"]
    for mode in modes:
        errors = strength[mode]
        cells = (f"{errors['clean_error']:8.2f}{errors['pgd_error']:8.2f}{errors['apgd_ce_error']:9.2f}"
                 if "pgd_error" in errors else f"  skipped: {errors['skipped']}")
        lines.append(f"  {mode:<20}{cells}  {'(reference)' if mode == modes[0] else record['passes'][mode]}")
    lines.append(f"approved: {record['approved']} (the fastest mode that passed; rule: {strength['rule']})")
    lines += refusal_lines(record)
    det = record["determinism"]
    lines.append(f"determinism: {det['steps']} steps twice: identical {det['identical']} "
                 f"(max |difference| {det['max_abs_difference']:.3g})")
    proj = record["projection"]
    lines += ["", f"projected {proj['budget']} budget, setting {proj['setting']}, measured at {proj['measured_at']}:"]
    lines.append("  " + ", ".join(f"{k} GPU{'s' if k != '1' else ''}: {v / 3600:.1f} h" for k, v in proj["gpus_seconds"].items())
                 + f" (rows in sequence: {proj['total_row_seconds'] / 3600:.1f} h)")
    lines.append("  per row: " + ", ".join(f"{row} {seconds / 3600:.1f} h" for row, seconds in proj["row_seconds"].items()))
    lines.append(f"selfcheck took {record['seconds']:.1f} s")
    return "\n".join(lines)


def write(record: dict, path: Path) -> Path:
    """Write `record` as JSON to `path` (folders created), atomically: an interrupted write leaves the
    previous file whole."""
    path = Path(path)
    atomic_write_bytes(path, (json.dumps(record, indent=2, sort_keys=True) + "\n").encode())
    return path
