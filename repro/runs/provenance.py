"""Provenance every result carries: code version, library versions, the hardware computed on.

Enough to tell "same inputs, different weights" (a defect) from "another machine" (expected): the CPU
model and the kernel set torch dispatches to on it (`torch.backends.cpu.get_cpu_capability()`), the
thread count, and on CUDA the device, compute capability, driver, CUDA and cuDNN versions. The data's
and the weights' hashes are recorded beside it (repro/runs/data.py, repro/runs/checkpoint.py).
"""

from __future__ import annotations

import functools
import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import torch

PACKAGE_DIR = Path(__file__).resolve().parents[1]  # repro/, the package root (this file is in repro/runs/)


@functools.lru_cache(maxsize=1)
def git_commit() -> str:
    """The repository's HEAD commit, suffixed '+dirty' when a tracked file has changes or the package
    folder holds a file no commit has (ignored files aside); 'unknown' outside git.

    Read once per process, at the first call (`repro` calls it as it starts): a commit made while a
    long run trains must not relabel the code that run loaded. Measured: a two-hour cifar_cpu run
    started at one commit recorded the next commit, and "+dirty", in rows written after it.
    """
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=PACKAGE_DIR, capture_output=True,
                                text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=PACKAGE_DIR,
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip()
        # Untracked files count inside the package only (a new module there is code the run may load;
        # outputs and notes beside it are not); files git ignores (bytecode) never count.
        untracked = subprocess.run(["git", "ls-files", "--others", "--exclude-standard"], cwd=PACKAGE_DIR,
                                   capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return commit + ("+dirty" if dirty or untracked else "")


def code_version() -> str:
    """A hash of the package's source files: changes with any edit, committed or not."""
    import hashlib

    digest = hashlib.sha256()
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        digest.update(path.relative_to(PACKAGE_DIR).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def library_versions() -> dict[str, str]:
    """Versions of Python and the libraries the numbers depend on."""
    versions = {"python": sys.version.split()[0]}
    for name in ("torch", "torchvision", "numpy", "pyautoattack"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def device_description(device: torch.device | str) -> str:
    """A human-readable name of the device that ran the computation."""
    device = torch.device(device)
    if device.type == "cuda":
        return f"cuda: {torch.cuda.get_device_name(device)}"
    return f"cpu: {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"


# Environment variables that cap the instruction set torch's own kernels (ATen) and oneDNN's dispatch to,
# without changing the CPU model. Measured (results/cifar_cpu/determinism/kernels.md): NORMAL at cifar_cpu, 2560 images, 2 epochs, fp32,
# same data and seed: ONEDNN_MAX_CPU_ISA=AVX2 alone, ATEN_CPU_CAPABILITY=avx2 alone, and both, each gave
# other weights than the default (AVX512); ONEDNN_MAX_CPU_ISA=AVX512_CORE gave the default's.
KERNEL_ENV = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA", "ONEDNN_DEFAULT_FPMATH_MODE")

BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")  # x86 instructions that compute in bf16 natively (oneDNN uses them)


def _cpuinfo(key: str) -> str | None:
    """The first value of `key` in /proc/cpuinfo (Linux), or None."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.split(":", 1)[0].strip() == key:
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo "model name" on Linux), else what platform reports."""
    return _cpuinfo("model name") or platform.processor() or platform.machine()


def cpu_bf16_flags() -> list[str]:
    """Which of BF16_CPU_FLAGS this CPU has (empty: bf16 runs emulated in fp32 units, slowly)."""
    flags = set((_cpuinfo("flags") or "").split())
    return [flag for flag in BF16_CPU_FLAGS if flag in flags]


def nvidia_driver() -> str:
    """The NVIDIA driver version as nvidia-smi reports it."""
    try:
        return subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                              capture_output=True, text=True, timeout=10, check=True).stdout.split("\n")[0].strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown (nvidia-smi not found)"


def hardware(device: torch.device | str) -> dict:
    """What a number was computed on, as far as it decides the arithmetic.

    CPU: model, torch's dispatch capability (e.g. AVX512: which oneDNN/ATen kernels run, hence their
    rounding), any KERNEL_ENV cap set in the environment, machine, torch's intra-op threads. CUDA adds the device name, compute capability,
    driver, CUDA and cuDNN versions.
    """
    device = torch.device(device)
    out = {"cpu_model": cpu_model(), "cpu_capability": torch.backends.cpu.get_cpu_capability(),
           "cpu_bf16": cpu_bf16_flags(), "machine": platform.machine(), "torch_threads": torch.get_num_threads(),
           "kernel_env": {name: os.environ[name] for name in KERNEL_ENV if name in os.environ}}
    if device.type == "cuda":
        major, minor = torch.cuda.get_device_capability(device)
        out.update(device_name=torch.cuda.get_device_name(device), compute_capability=f"{major}.{minor}",
                   driver=nvidia_driver(), cuda=torch.version.cuda, cudnn=torch.backends.cudnn.version())
    return out


def hardware_key(hardware_record: dict | None) -> str | None:
    """The part of `hardware` that decides the arithmetic, as one comparable string (None when a record
    predates it): two runs with equal keys ran the same kernels; the thread count counts too (reduction
    order)."""
    if not hardware_record:
        return None
    parts = [hardware_record.get(k) for k in ("cpu_model", "cpu_capability", "torch_threads", "device_name",
                                              "compute_capability", "cuda", "cudnn")]
    parts += [f"{name}={value}" for name, value in sorted(hardware_record.get("kernel_env", {}).items())]
    return " | ".join(str(p) for p in parts if p is not None)


def resolve_device(name: str = "auto") -> torch.device:
    """'auto' picks CUDA when available, else the CPU; anything else is passed to torch.device."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {name} asked for CUDA, but no CUDA device is available; use --device cpu")
    return device
