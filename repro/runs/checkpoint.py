"""Checkpoints and result files: atomic writes, clear errors for corrupt or mismatched files.

A file is written to a unique temporary name in the same folder and renamed into place, so a
reader sees the old file or the new one, never half of one; two writers to the same path leave
one complete file. A per-run file lock (`run_lock`) keeps two processes from training the same
run at once.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import torch
from filelock import FileLock, Timeout

CHECKPOINT_FORMAT = 1  # bump when the checkpoint layout changes


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be used; the message names the file and what to do."""


def state_digest(state: dict[str, torch.Tensor]) -> str:
    """SHA-256 of a model's state dict (names, dtypes, shapes, values): which weights these are, whatever
    device or memory format (channels_last) they are held in."""
    digest = hashlib.sha256()
    for name in sorted(state):
        tensor = state[name].detach().cpu().contiguous()
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def state_fingerprint(state: dict[str, torch.Tensor]) -> str:
    """The first 16 hex digits of state_digest: the short name checkpoints and result identities use."""
    return state_digest(state)[:16]


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to `path` via a temporary file in the same folder and an atomic rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o644)  # mkstemp makes 0600: others on a shared node could not read results
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_json(path: Path, payload: dict) -> None:
    """Write `payload` as indented JSON, atomically."""
    atomic_write_bytes(path, (json.dumps(payload, indent=2, sort_keys=False) + "\n").encode())


def save_checkpoint(path: Path, state: dict) -> None:
    """Save a training state dictionary atomically (adds the format version)."""
    buffer = io.BytesIO()
    torch.save({"format": CHECKPOINT_FORMAT, **state}, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def load_checkpoint(path: Path, expect: dict | None = None) -> dict:
    """Load a checkpoint saved by `save_checkpoint`, checking `expect` (key -> value) against it.

    Raises CheckpointError naming the file when it is unreadable, not a repro checkpoint, of
    another format version, or written for another configuration/budget/seed.
    """
    path = Path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)  # tensors and plain data only: no code runs
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint {path} does not exist") from None
    except Exception as error:  # torch raises many types for a damaged file; all mean the same here
        raise CheckpointError(
            f"checkpoint {path} is corrupt or not a torch file ({type(error).__name__}); "
            "delete it (or pass --restart) and run again to retrain"
        ) from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        found = state.get("format") if isinstance(state, dict) else type(state).__name__
        raise CheckpointError(
            f"checkpoint {path} is not a repro checkpoint of format {CHECKPOINT_FORMAT} (found {found!r}); "
            "delete it and run again to retrain"
        )
    for key, value in (expect or {}).items():
        if state.get(key) != value:
            raise CheckpointError(
                f"checkpoint {path} was written for {key}={state.get(key)!r}, not {value!r}; "
                "use another --out folder or delete the file"
            )
    return state


@contextlib.contextmanager
def run_lock(folder: Path, timeout: float = -1, name: str = ".lock") -> Iterator[None]:
    """Hold an exclusive lock on a run folder (blocks until free; timeout < 0 waits forever).

    `name` picks one of the folder's locks: ".lock" guards training, ".result.lock" a whole
    train-and-evaluate (Pipeline.result), which takes ".lock" inside it; one process never takes
    the same lock twice (flock would wait on itself).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(folder / name))
    try:
        with lock.acquire(timeout=timeout):
            yield
    except Timeout:
        raise CheckpointError(f"{folder} is locked by another run; wait for it or use another --out") from None
