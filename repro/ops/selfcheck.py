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
import math
import os
import platform
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from repro.mechanics.acceleration import COMPILE_BACKEND, plan, wrap
from repro.mechanics.attacks import PGDSettings, evaluation_pgd
from repro.paper.budgets import PAPER, SMOKE, Budget
from repro.paper.configs import ADV, ADV_BN_ONLY, CROP_FLIP, NORMAL
from repro.runs.data import augment, prefetched_autoaugment, synthetic_dataset, to_float
from repro.runs.evaluate import error_percent, freeze_for_evaluation, predict
from repro.mechanics.freeze import apply_configuration
from repro.mechanics.model import ResNet20
from repro.runs.provenance import library_versions
from repro.ops.projection import projection
from repro.runs.timing import _rate as images_per_second  # the one timer of `repro bench` (warm-up, device sync)
from repro.mechanics.train_step import train_step
from repro.runs.training import train

MODES = ("fp32", "bf16", "compiled")  # compiled = torch.compile of the fp32 network
WORKLOADS = ("clean_autoaugment", "pgd10_step", "bn_only_step", "apgd_ce")
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


def binomial_noise_threshold(error: float, n: int) -> float:
    """The largest |difference| of two robust errors (fractions) at `error` on `n` images that
    `within_binomial_noise` accepts: 2 * sqrt(2 p (1 - p) / n), at least one image (1 / n).

    Why: each robust error is a binomial proportion over n images with SD sqrt(p (1 - p) / n); two
    independent ones differ by at most 2 SD of their difference, sqrt(2 p (1 - p) / n), about 95%
    of the time. On the same images and seeds bf16 and fp32 differ only where an image flips, so a
    difference within that bound is one the evaluation's own sampling of images already carries;
    a larger one is a weaker (or stronger) attack. One image is the finest a difference can be, so
    at p = 0 or 1 a single flip is not a failure.
    """
    return max(2 * math.sqrt(2 * error * (1 - error) / n), 1 / n)


def within_binomial_noise(error_a: float, error_b: float, n: int) -> bool:
    """Whether robust errors `error_a` and `error_b` (fractions in [0, 1]) of two attack variants
    on the same `n` images differ by no more than binomial noise (at their mean, see above)."""
    return abs(error_a - error_b) <= binomial_noise_threshold((error_a + error_b) / 2, n)


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
        "driver": _nvidia_driver() if cuda else "none",
        "cuda": torch.version.cuda if cuda else "none", "cudnn": torch.backends.cudnn.version() if cuda else "none",
        "versions": library_versions(),
        "tf32": {"matmul": torch.backends.cuda.matmul.allow_tf32, "cudnn": torch.backends.cudnn.allow_tf32,
                 "float32_matmul_precision": torch.get_float32_matmul_precision()},
        "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
        "load_average": round(os.getloadavg()[0], 2),
    }


def _nvidia_driver() -> str:
    try:
        return subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                              capture_output=True, text=True, timeout=10, check=True).stdout.split("\n")[0].strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown (nvidia-smi not found)"


def mode_budget(sizes: Sizes, mode: str) -> Budget:
    """The paper budget at `sizes`' width and batch with `mode`'s speed-up switched on."""
    return dataclasses.replace(PAPER, width=sizes.width, batch_size=sizes.batch_size,
                               bf16=mode == "bf16", compile=mode == "compiled")


def _net(model, sizes, mode, device, backend):
    """`model` as `mode` runs it (via acceleration.plan); ValueError where plan refuses."""
    return wrap(model, plan(mode_budget(sizes, mode), device, backend=backend), device.type)


def _workload(name: str, sizes: Sizes, mode: str, device: torch.device, backend: str, seed: int = 0):
    """A callable doing one step of workload `name` on random CIFAR-shaped data."""
    generator = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (sizes.batch_size, 3, 32, 32), dtype=torch.uint8, generator=generator)
    labels = torch.randint(0, 10, (sizes.batch_size,), generator=generator).to(device)
    config = {"clean_autoaugment": NORMAL, "pgd10_step": ADV, "bn_only_step": ADV_BN_ONLY}.get(name)
    model = ResNet20(sizes.width).to(device)
    if config is None:  # APGD-CE on every image (attack_single_run: no early exit on misclassified ones)
        from pyautoattack.autopgd_base import APGDAttack

        net = _net(freeze_for_evaluation(model), sizes, mode, device, backend)
        attack = APGDAttack(net, n_iter=sizes.apgd_iterations, eps=PAPER.epsilon, seed=seed, device=device)
        x = to_float(images).to(device)
        attack.init_hyperparam(x)
        return lambda: attack.attack_single_run(x, labels)
    trainable = apply_configuration(model, config)
    net = _net(model, sizes, mode, device, backend)
    optimizer = torch.optim.SGD(trainable, lr=1e-3, momentum=0.9)
    pgd10 = PGDSettings()  # Section 3.2: PGD-10 at 8/255
    if name == "clean_autoaugment":  # as EpochLoop runs NORMAL: AutoAugment on a thread ahead of the step
        batches = prefetched_autoaugment(images, [torch.arange(sizes.batch_size)] * (sizes.repeats + 1),
                                         list(range(sizes.repeats + 1)))
        crop = torch.Generator(device=device).manual_seed(seed)
        return lambda: train_step(net, config, optimizer, augment(next(batches).to(device), CROP_FLIP, crop),
                                  labels, pgd10, seed=seed)
    x = to_float(images).to(device)
    return lambda: train_step(net, config, optimizer, x, labels, pgd10, seed=seed)


def measure_throughput(sizes: Sizes, device: torch.device, backend: str) -> dict:
    """{workload: {mode: {"images_per_second": r} or {"skipped": reason}}}, plus two concurrent rows."""
    out = {}
    for name in WORKLOADS:
        out[name] = {}
        for mode in MODES:
            try:
                step = _workload(name, sizes, mode, device, backend)
            except ValueError as refused:  # plan() refuses, e.g. compile without a compiler
                out[name][mode] = {"skipped": str(refused)}
                continue
            out[name][mode] = {"images_per_second": images_per_second(step, sizes.batch_size, device, sizes.repeats)}
    out["two_rows_concurrently"] = measure_concurrent(sizes, device, backend)
    return out


def measure_concurrent(sizes: Sizes, device: torch.device, backend: str) -> dict:
    """Images/s of two PGD-10 rows stepping at once on the one device, against one row alone.

    Two threads, each with its own model (and on CUDA its own stream). The nightly runs rows as
    separate processes (pytest-xdist workers), whose kernels the GPU time-slices unless MPS is on:
    threads on streams are the optimistic case of that.
    """
    single = images_per_second(_workload("pgd10_step", sizes, "fp32", device, backend), sizes.batch_size,
                               device, sizes.repeats)
    steps = [_workload("pgd10_step", sizes, "fp32", device, backend, seed=s) for s in (1, 2)]
    for step in steps:
        step()  # warm-up

    def run(step):
        stream = torch.cuda.Stream(device) if device.type == "cuda" else None
        with torch.cuda.stream(stream) if stream is not None else _nothing():
            for _ in range(sizes.repeats):
                step()
            if stream is not None:
                stream.synchronize()

    threads = [threading.Thread(target=run, args=(step,)) for step in steps]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    together = 2 * sizes.repeats * sizes.batch_size / (time.perf_counter() - started)
    return {"one_row_images_per_second": single, "two_rows_images_per_second": together,
            "speedup": together / single, "workload": "pgd10_step fp32",
            "method": "two threads" + (", one CUDA stream each" if device.type == "cuda" else "")}


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def _training_budget(sizes: Sizes, steps: int) -> Budget:
    """A one-epoch ADV run of `steps` PGD-10 steps at `sizes` on the built-in data (offline)."""
    return dataclasses.replace(SMOKE, name="selfcheck", n_train=steps * sizes.batch_size, width=sizes.width,
                               batch_size=sizes.batch_size, epochs_adversarial=1, train_attack_steps=10,
                               train_attack_step_size=2 / 255, epsilon=PAPER.epsilon)


def _train_adv(sizes: Sizes, steps: int, device: torch.device, seed: int = 0) -> ResNet20:
    budget = _training_budget(sizes, steps)
    data = synthetic_dataset(budget.n_train, sizes.n_images, seed=0).to(device)
    with tempfile.TemporaryDirectory(prefix="repro-selfcheck-") as folder:
        return train(ADV, budget, data, Path(folder), seed=seed, device=device)


def robust_errors(model: ResNet20, sizes: Sizes, mode: str, device: torch.device, backend: str,
                  images: torch.Tensor, labels: torch.Tensor, seed: int = 0) -> dict:
    """PGD and APGD-CE robust error (%) of `model` run as `mode` on `images` (fixed seeds)."""
    from pyautoattack.autopgd_base import APGDAttack

    net = _net(freeze_for_evaluation(model), sizes, mode, device, backend)
    pgd = evaluation_pgd(net, images, labels, epsilon=PAPER.epsilon, steps=sizes.pgd_steps, seed=seed)
    apgd = APGDAttack(net, n_iter=sizes.apgd_iterations, eps=PAPER.epsilon, seed=seed, device=device)
    adversarial = apgd.perturb(images, labels)
    return {"pgd_error": error_percent(predict(net, pgd, sizes.batch_size), labels),
            "apgd_ce_error": error_percent(predict(net, adversarial, sizes.batch_size), labels)}


def attack_strength(sizes: Sizes, device: torch.device, backend: str) -> dict:
    """Robust errors of one briefly ADV-trained model in every mode, and bf16's and compile's verdicts."""
    model = _train_adv(sizes, sizes.train_steps, device)
    data = synthetic_dataset(sizes.batch_size, sizes.n_images, seed=0)  # held out: the test split
    images, labels = to_float(data.test_images).to(device), data.test_labels.to(device)
    out = {"n_images": sizes.n_images, "train_steps": sizes.train_steps, "pgd_steps": sizes.pgd_steps,
           "apgd_iterations": sizes.apgd_iterations,
           "rule": "|error - fp32 error| <= max(2 sqrt(2 p (1 - p) / n), 1 / n), p their mean, for PGD and APGD-CE"}
    for mode in MODES:
        try:
            out[mode] = robust_errors(model, sizes, mode, device, backend, images, labels)
        except ValueError as refused:
            out[mode] = {"skipped": str(refused)}
    for mode in MODES[1:]:
        if "skipped" in out[mode]:
            out[f"{mode}_passes"] = False
            continue
        checks = {attack: within_binomial_noise(out["fp32"][attack] / 100, out[mode][attack] / 100, sizes.n_images)
                  for attack in ("pgd_error", "apgd_ce_error")}
        out[f"{mode}_checks"] = checks
        out[f"{mode}_passes"] = all(checks.values())
    return out


def determinism(sizes: Sizes, device: torch.device) -> dict:
    """The same short ADV run twice: whether the weights are identical, and their largest difference."""
    first, second = (_train_adv(sizes, sizes.determinism_steps, device).state_dict() for _ in range(2))
    difference = max((first[k].double() - second[k].double()).abs().max().item() for k in first)
    return {"steps": sizes.determinism_steps, "identical": difference == 0.0, "max_abs_difference": difference}


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
