"""Images per second of the steps a nightly spends its time in, per mode, and of two rows at once.

Each workload is the project's own code path: NORMAL's clean step with its prefetched AutoAugment,
ADV's PGD-10 step, ADV BN ONLY's step, and APGD-CE (pyautoattack) on every image.
"""

from __future__ import annotations

import threading
import time

import torch

from repro.mechanics.attacks import PGDSettings
from repro.mechanics.freeze import apply_configuration
from repro.mechanics.model import ResNet20
from repro.mechanics.train_step import train_step
from repro.ops.modes import Mode, Sizes, network_in_mode, refusal
from repro.paper.budgets import PAPER
from repro.paper.configs import ADV, ADV_BN_ONLY, CROP_FLIP, NORMAL
from repro.runs.data import augment, prefetched_autoaugment, to_float
from repro.runs.evaluate import freeze_for_evaluation
from repro.runs.timing import _rate as images_per_second  # the one timer of `repro bench` (warm-up, device sync)

WORKLOADS = ("clean_autoaugment", "pgd10_step", "bn_only_step", "apgd_ce")


def _workload(name: str, sizes: Sizes, mode: Mode, device: torch.device, backend: str, seed: int = 0):
    """A callable doing one step of workload `name` on random CIFAR-shaped data."""
    generator = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (sizes.batch_size, 3, 32, 32), dtype=torch.uint8, generator=generator)
    labels = torch.randint(0, 10, (sizes.batch_size,), generator=generator).to(device)
    config = {"clean_autoaugment": NORMAL, "pgd10_step": ADV, "bn_only_step": ADV_BN_ONLY}.get(name)
    model = ResNet20(sizes.width).to(device)
    if config is None:  # APGD-CE on every image (attack_single_run: no early exit on misclassified ones)
        from pyautoattack.autopgd_base import APGDAttack

        net = network_in_mode(freeze_for_evaluation(model), sizes, mode, device, backend)
        attack = APGDAttack(net, n_iter=sizes.apgd_iterations, eps=PAPER.epsilon, seed=seed, device=device)
        x = to_float(images).to(device)
        attack.init_hyperparam(x)
        return lambda: attack.attack_single_run(x, labels)
    trainable = apply_configuration(model, config)
    net = network_in_mode(model, sizes, mode, device, backend)
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


def measure_throughput(sizes: Sizes, modes: tuple[Mode, ...], device: torch.device, backend: str) -> dict:
    """{workload: {mode name: {"images_per_second": r} or {"skipped": reason}}}, plus two concurrent rows
    (in the first mode, fp32)."""
    out = workload_rates(sizes, modes, device, backend)
    out["two_rows_concurrently"] = measure_concurrent(sizes, modes[0], device, backend)
    return out


def workload_rates(sizes: Sizes, modes: tuple[Mode, ...], device: torch.device, backend: str) -> dict:
    """{workload: {mode name: {"images_per_second": r} or {"skipped": reason}}}: a mode refused on this
    device (modes.refusal) or by acceleration.plan is skipped with the reason."""
    out = {}
    for name in WORKLOADS:
        out[name] = {}
        for mode in modes:
            reason = refusal(mode, device)
            try:
                if reason is not None:
                    raise ValueError(reason)
                step = _workload(name, sizes, mode, device, backend)
            except ValueError as refused:  # plan() refuses, e.g. compile without a compiler
                out[name][mode.name] = {"skipped": str(refused)}
                continue
            rate = images_per_second(step, sizes.batch_size, device, sizes.repeats)
            out[name][mode.name] = {"images_per_second": rate}
    return out


def measure_concurrent(sizes: Sizes, mode: Mode, device: torch.device, backend: str) -> dict:
    """Images/s of two PGD-10 rows stepping at once on the one device, against one row alone.

    Two threads, each with its own model (and on CUDA its own stream). The nightly runs rows as
    separate processes (pytest-xdist workers), whose kernels the GPU time-slices unless MPS is on:
    threads on streams are the optimistic case of that.
    """
    single = images_per_second(_workload("pgd10_step", sizes, mode, device, backend), sizes.batch_size,
                               device, sizes.repeats)
    steps = [_workload("pgd10_step", sizes, mode, device, backend, seed=s) for s in (1, 2)]
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
            "speedup": together / single, "workload": f"pgd10_step {mode.name}",
            "method": "two threads" + (", one CUDA stream each" if device.type == "cuda" else "")}


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False
