"""`repro selfcheck`: is this device ready for the paper budget, and which speed-ups has it earned?

One command, run before a nightly (issue 13): the environment; measured images/s of NORMAL's clean
step with its AutoAugment, ADV's PGD-10 step, ADV BN ONLY's step and APGD-CE, each in fp32, bf16
and compiled, and of two rows at once on the one device; whether bf16 and compile leave PGD and
APGD-CE as strong as fp32 eager on a briefly adversarially trained model (the rule:
`within_binomial_noise`); whether the same short run twice gives the same weights; and the paper
budget's projected wall time for 1, 4 and 8 GPUs in the fastest setting that passed.

Sizes are parameters (`Sizes`): the paper's width and batch on CUDA, a tiny size on a CPU so that
the fast suite runs the whole command. The paper budget turns bf16/compile on only from a passing
selfcheck of the same device type (`apply_selfcheck`, `repro reproduce --selfcheck selfcheck.json`).
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import time
from pathlib import Path

import torch

from repro.mechanics.acceleration import COMPILE_BACKEND
from repro.ops.attack_check import attack_strength, determinism
from repro.ops.modes import CPU_COMPILE_BACKEND, MODES, Sizes, default_sizes
from repro.ops.projection import projection
from repro.ops.throughput import WORKLOADS, measure_throughput
from repro.paper.budgets import PAPER
from repro.runs.provenance import library_versions, nvidia_driver


def environment(device: torch.device) -> dict:
    """Device name and memory, driver/CUDA/cuDNN versions (or "none"), library versions, TF32, CPU."""
    cuda = device.type == "cuda"
    if cuda:
        properties = torch.cuda.get_device_properties(device)
        name, memory = properties.name, properties.total_memory
    else:
        name = platform.processor() or platform.machine()
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return {
        "device": str(device), "device_name": name, "memory_gib": round(memory / 2**30, 1),
        "driver": nvidia_driver() if cuda else "none",
        "cuda": torch.version.cuda if cuda else "none", "cudnn": torch.backends.cudnn.version() if cuda else "none",
        "versions": library_versions(),
        "tf32": {"matmul": torch.backends.cuda.matmul.allow_tf32, "cudnn": torch.backends.cudnn.allow_tf32,
                 "float32_matmul_precision": torch.get_float32_matmul_precision()},
        "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
        "load_average": round(os.getloadavg()[0], 2),
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
    with torch._dynamo.config.patch(recompile_limit=64):
        record["throughput"] = measure_throughput(sizes, device, backend)
        record["attack_strength"] = attack_strength(sizes, device, backend)
    record["determinism"] = determinism(sizes, device)
    record["passes"] = {"bf16": record["attack_strength"]["bf16_passes"],
                        "compile": record["attack_strength"]["compiled_passes"]}
    record["projection"] = projection(record["throughput"], record["passes"], PAPER, sizes)
    record["seconds"] = time.perf_counter() - started
    return record


def _cell(value: dict) -> str:
    return f"{value['images_per_second']:10.1f}" if "images_per_second" in value else f"{'skipped':>10}"


def render(record: dict) -> str:
    """The short table printed by `repro selfcheck`."""
    env, sizes = record["environment"], record["sizes"]
    lines = [f"device: {env['device_name']} ({env['device']}, {env['memory_gib']} GiB); driver {env['driver']}, "
             f"CUDA {env['cuda']}, cuDNN {env['cudnn']}; torch {env['versions']['torch']}, torchvision "
             f"{env['versions']['torchvision']}, pyautoattack {env['versions']['pyautoattack']}",
             f"TF32 matmul {env['tf32']['matmul']}, cudnn {env['tf32']['cudnn']}; {env['cpu_count']} CPUs, "
             f"{env['torch_threads']} torch threads, load {env['load_average']}",
             f"sizes: width {sizes['width']}, batch {sizes['batch_size']}; compile backend {record['compile_backend']}",
             "", f"{'images/s':<20}" + "".join(f"{m:>10}" for m in MODES)]
    for name in WORKLOADS:
        lines.append(f"{name:<20}" + "".join(_cell(record["throughput"][name][m]) for m in MODES))
    both = record["throughput"]["two_rows_concurrently"]
    lines.append(f"two rows at once: {both['two_rows_images_per_second']:.1f} images/s vs one row "
                 f"{both['one_row_images_per_second']:.1f} (x{both['speedup']:.2f}; {both['method']})")
    strength = record["attack_strength"]
    lines += ["", f"robust error % ({strength['n_images']} images, model after {strength['train_steps']} ADV steps)"
              f"{'PGD':>8}{'APGD-CE':>9}"]
    for mode in MODES:
        errors = strength[mode]
        lines.append(f"  {mode:<10}" + (f"{errors['pgd_error']:8.2f}{errors['apgd_ce_error']:9.2f}"
                                        if "pgd_error" in errors else "  skipped"))
    lines.append(f"bf16 passes: {record['passes']['bf16']}; compile passes: {record['passes']['compile']} "
                 f"(rule: {strength['rule']})")
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
    """Write `record` as JSON to `path` (folders created)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    return path
