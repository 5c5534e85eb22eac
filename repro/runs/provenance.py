"""Provenance every result carries: code version, library versions, device."""

from __future__ import annotations

import functools
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import torch

PACKAGE_DIR = Path(__file__).resolve().parents[1]  # repro/, the package root (this file is in repro/runs/)


@functools.lru_cache(maxsize=1)
def git_commit() -> str:
    """The repository's HEAD commit, suffixed '+dirty' when the tree has changes; 'unknown' outside git.

    Read once per process, at the first call (`repro` calls it as it starts): a commit made while a
    long run trains must not relabel the code that run loaded. Measured: a two-hour cifar_cpu run
    started at one commit recorded the next commit, and "+dirty", in rows written after it.
    """
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=PACKAGE_DIR, capture_output=True,
                                text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=PACKAGE_DIR,
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return commit + ("+dirty" if dirty else "")


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


def resolve_device(name: str = "auto") -> torch.device:
    """'auto' picks CUDA when available, else the CPU; anything else is passed to torch.device."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {name} asked for CUDA, but no CUDA device is available; use --device cpu")
    return device
