"""Data: CIFAR-10 (verified or explicitly unverified) and a built-in synthetic stand-in.

Images are held once as uint8 tensors (N, 3, 32, 32) on the training device and converted to
float in [0, 1] per batch (their augmentation: repro/runs/augmentation.py). Robust error uses "the
first 1000 test examples" (Section 3.2), i.e. the official test order.
"""

from __future__ import annotations

import hashlib
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from repro.paper.datasets import CIFAR10, SYNTHETIC

CIFAR_DIRNAME = "cifar-10-batches-py"


class DataError(RuntimeError):
    """Missing, corrupt or unverified data; the message says what to do."""


@dataclass
class Dataset:
    """Train and test images (uint8, (N, 3, 32, 32)) and labels (int64, (N,)), with provenance."""

    name: str
    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    checksum_status: str  # "verified", "unverified (...)", or "generated" for synthetic data

    def to(self, device: torch.device | str) -> "Dataset":
        """The same data on `device` (held there for the whole run)."""
        return Dataset(
            self.name, self.train_images.to(device), self.train_labels.to(device),
            self.test_images.to(device), self.test_labels.to(device), self.checksum_status,
        )

    def provenance(self) -> dict:
        """What a result must record about its data (also part of a result's identity)."""
        return {
            "dataset": self.name,
            "checksum_status": self.checksum_status,
            "n_train": len(self.train_labels),
            "n_test": len(self.test_labels),
        }

    def hashes(self) -> dict[str, str]:
        """SHA-256 of the arrays as loaded and used: training images and labels, test images and labels.

        Whatever the files' checksum status: two machines that unpacked the offline copy with other
        image decoders read other arrays, and this is what tells.
        """
        return {"train_sha256": array_digest(self.train_images, self.train_labels),
                "test_sha256": array_digest(self.test_images, self.test_labels)}


def array_digest(*tensors: torch.Tensor) -> str:
    """SHA-256 over the tensors' dtypes, shapes and bytes, in order (on the CPU, contiguous)."""
    digest = hashlib.sha256()
    for tensor in tensors:
        tensor = tensor.detach().cpu().contiguous()
        digest.update(f"{tensor.dtype}:{tuple(tensor.shape)}".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


# --- the built-in synthetic dataset ----------------------------------------------------------

SYNTHETIC_TASK_SEED = 1234  # fixes the class prototypes: every split draws from the same task


def synthetic_split(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """`n` CIFAR-shaped uint8 images and labels of the built-in task, deterministic in `seed`.

    Each class has a smooth colour prototype (a random 4x4x3 field, upsampled). An image is a
    grey background plus its class prototype at a random strength, a weaker prototype of a random
    other class (so classes overlap), smooth nuisance, pixel noise, and a random translation.
    A small ResNet-20 learns it to far above chance in a minute on a CPU, PGD at 8/255 removes
    most of that accuracy, and adversarial training keeps much of it: measured in the repository's
    tests (tests/unit/runs/test_data.py; the smoke tier's sanity claims), not assumed.
    """
    task = torch.Generator().manual_seed(SYNTHETIC_TASK_SEED)
    prototypes = F.interpolate(torch.randn(10, 3, 4, 4, generator=task), size=32, mode="bicubic")
    prototypes = prototypes / prototypes.flatten(1).std(1).view(-1, 1, 1, 1)
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 10, (n,), generator=g)
    distractors = torch.randint(0, 10, (n,), generator=g)
    strength = 0.25 * (0.5 + torch.rand(n, 1, 1, 1, generator=g))
    distractor_strength = 0.5 * strength * torch.rand(n, 1, 1, 1, generator=g)
    nuisance = F.interpolate(torch.randn(n, 3, 8, 8, generator=g), size=32, mode="bilinear")
    images = (
        0.5
        + strength * prototypes[labels]
        + distractor_strength * prototypes[distractors]
        + 0.15 * nuisance
        + 0.06 * torch.randn(n, 3, 32, 32, generator=g)
    )
    shifts = torch.randint(-4, 5, (n, 2), generator=g)
    images = torch.stack([torch.roll(im, (int(dy), int(dx)), (1, 2)) for im, (dy, dx) in zip(images, shifts)])
    return (images.clamp(0, 1) * 255).round().to(torch.uint8), labels


def synthetic_dataset(n_train: int, n_test: int, seed: int = 0) -> Dataset:
    """The built-in offline dataset: no files, no download, generated in seconds."""
    train = synthetic_split(n_train, seed=2 * seed + 1)
    test = synthetic_split(n_test, seed=2 * seed + 2)
    return Dataset(SYNTHETIC, *train, *test, checksum_status="generated")


# --- CIFAR-10 --------------------------------------------------------------------------------

def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def _read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        with open(path, "rb") as f:
            entry = pickle.load(f, encoding="latin1")
        # The official batches have str keys under latin1; other writers use bytes keys.
        entry = {k.decode() if isinstance(k, bytes) else k: v for k, v in entry.items()}
        images = np.asarray(entry["data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
        labels = np.asarray(entry.get("labels", entry.get("fine_labels")), dtype=np.int64)
    except Exception as error:  # any unreadable batch is the same user-facing problem
        raise DataError(f"{path} is not a readable CIFAR-10 batch ({error}); delete it and download again") from None
    return images, labels


def check_cifar10_present(data_dir: str | Path) -> None:
    """Raise DataError saying what to pass when `data_dir` lacks any CIFAR-10 batch file (cheap:
    no file is read, so commands check it before anything slow)."""
    from torchvision.datasets import CIFAR10 as TorchvisionCIFAR10

    folder = Path(data_dir) / CIFAR_DIRNAME
    expected = TorchvisionCIFAR10.train_list + TorchvisionCIFAR10.test_list
    missing = [name for name, _ in expected if not (folder / name).exists()]
    if missing:
        raise DataError(
            f"CIFAR-10 not found in {folder} (missing {', '.join(missing)}). Pass --download to fetch it, "
            "or --data-dir pointing at the folder that contains cifar-10-batches-py/."
        )


def load_cifar10(data_dir: str | Path, download: bool = False, allow_unverified: bool = False) -> Dataset:
    """CIFAR-10 from `data_dir`/cifar-10-batches-py, in the official order.

    Args:
        data_dir: folder holding (or to receive) cifar-10-batches-py.
        download: fetch the official archive through torchvision if it is missing.
        allow_unverified: accept batch files whose MD5 checksums differ from the official ones
            (for example the JPEG re-encoded offline copy); recorded in `checksum_status`.
    """
    from torchvision.datasets import CIFAR10 as TorchvisionCIFAR10

    root = Path(data_dir)
    folder = root / CIFAR_DIRNAME
    expected = TorchvisionCIFAR10.train_list + TorchvisionCIFAR10.test_list
    if download and not all((folder / name).exists() for name, _ in expected):
        TorchvisionCIFAR10(str(root), train=True, download=True)
    check_cifar10_present(root)
    mismatched = [name for name, md5 in expected if _md5(folder / name) != md5]
    if mismatched and not allow_unverified:
        raise DataError(
            f"CIFAR-10 in {folder} does not match the official checksums ({', '.join(mismatched)}). "
            "Re-download it with --download into an empty --data-dir, or pass --allow-unverified-data "
            "to use it anyway (recorded in every result)."
        )
    status = "verified" if not mismatched else f"unverified (checksum mismatch: {', '.join(mismatched)})"
    train = [_read_batch(folder / name) for name, _ in TorchvisionCIFAR10.train_list]
    test_images, test_labels = _read_batch(folder / TorchvisionCIFAR10.test_list[0][0])
    return Dataset(
        CIFAR10,
        torch.from_numpy(np.concatenate([im for im, _ in train])),
        torch.from_numpy(np.concatenate([lb for _, lb in train])),
        torch.from_numpy(test_images),
        torch.from_numpy(test_labels),
        checksum_status=status,
    )


def to_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 (B, C, H, W) -> float32 in [0, 1]."""
    return images.float().div_(255)


def robust_eval_subset(dataset: Dataset, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The first `n` test images in the dataset's order (Section 3.2: "the first 1000")."""
    return dataset.test_images[:n], dataset.test_labels[:n]
