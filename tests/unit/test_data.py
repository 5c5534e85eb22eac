"""Data pipeline: built-in data, CIFAR-10 loading and verification, tensor augmentation."""

import pickle

import numpy as np
import pytest
import torch

from repro.data import (
    DataError, augment, load_cifar10, random_crop_flip, robust_eval_subset, synthetic_dataset, synthetic_split,
)


def test_synthetic_is_cifar_shaped():
    images, labels = synthetic_split(64, seed=0)
    assert images.shape == (64, 3, 32, 32) and images.dtype == torch.uint8, "CIFAR-shaped uint8 images"
    assert labels.dtype == torch.int64 and set(labels.tolist()) <= set(range(10)), "10 classes"


def test_synthetic_is_deterministic_in_seed():
    assert torch.equal(synthetic_split(32, seed=3)[0], synthetic_split(32, seed=3)[0]), "same seed, same images"


def test_synthetic_seeds_differ():
    assert not torch.equal(synthetic_split(32, seed=3)[0], synthetic_split(32, seed=4)[0]), "seeds must differ"


def test_synthetic_train_and_test_are_disjoint_draws():
    data = synthetic_dataset(64, 64, seed=0)
    assert not torch.equal(data.train_images, data.test_images), "test images must not repeat training images"


def test_synthetic_uses_all_classes():
    _, labels = synthetic_split(500, seed=0)
    assert torch.bincount(labels, minlength=10).min() > 20, "every class is represented"


def test_crop_flip_keeps_shape_and_dtype():
    images = torch.randint(0, 256, (8, 3, 32, 32), dtype=torch.uint8)
    out = random_crop_flip(images, torch.Generator().manual_seed(0))
    assert out.shape == images.shape and out.dtype == images.dtype, "shape and dtype preserved"


def test_crop_flip_is_per_sample():
    image = torch.randint(1, 256, (1, 3, 32, 32), dtype=torch.uint8)
    out = random_crop_flip(image.repeat(16, 1, 1, 1), torch.Generator().manual_seed(0))
    distinct = len({o.numpy().tobytes() for o in out})
    assert distinct > 8, f"16 copies of one image got only {distinct} distinct crops/flips"


def test_crop_is_a_shifted_window_with_zero_padding():
    image = torch.arange(1, 1 + 3 * 32 * 32, dtype=torch.float32).view(1, 3, 32, 32)
    out = random_crop_flip(image.repeat(32, 1, 1, 1), torch.Generator().manual_seed(1))
    for sample in out:
        nonzero = sample[sample != 0]
        assert set(nonzero.tolist()) <= set(image.flatten().tolist()), "crop invents no values"
        rows = (sample[0] != 0).any(1).sum().item()
        assert 28 <= rows <= 32, f"a 4-pixel crop keeps 28..32 image rows, got {rows}"


def test_crop_flip_is_reproducible():
    images = torch.randint(0, 256, (8, 3, 32, 32), dtype=torch.uint8)
    a = random_crop_flip(images, torch.Generator().manual_seed(5))
    b = random_crop_flip(images, torch.Generator().manual_seed(5))
    assert torch.equal(a, b), "the same generator state gives the same augmentation"


@pytest.mark.parametrize("augmentation", ["crop_flip", "autoaugment"])
def test_augment_returns_unit_range_floats(augmentation):
    images = torch.randint(0, 256, (8, 3, 32, 32), dtype=torch.uint8)
    out = augment(images, augmentation, torch.Generator().manual_seed(0))
    assert out.dtype == torch.float32 and out.shape == (8, 3, 32, 32), "float (B, 3, 32, 32)"
    assert out.min() >= 0 and out.max() <= 1, "images in [0, 1]"


def test_autoaugment_draws_per_sample():
    torch.manual_seed(0)
    image = torch.randint(0, 256, (1, 3, 32, 32), dtype=torch.uint8).repeat(32, 1, 1, 1)
    from repro.data import autoaugment

    out = autoaugment(image)
    distinct = len({o.numpy().tobytes() for o in out})
    assert distinct > 4, f"32 copies got {distinct} distinct AutoAugment results: one op per batch?"


def test_unknown_augmentation_is_rejected():
    with pytest.raises(ValueError, match="unknown augmentation"):
        augment(torch.zeros(1, 3, 32, 32, dtype=torch.uint8), "mixup", torch.Generator())


def test_robust_subset_is_first_n_in_order():
    data = synthetic_dataset(16, 50, seed=0)
    images, labels = robust_eval_subset(data, 20)
    assert torch.equal(images, data.test_images[:20]) and torch.equal(labels, data.test_labels[:20]), "first n, in order"


# --- CIFAR-10 files (a small fake folder; the real data is never needed by tests) -------------

def write_fake_cifar(root, n=4, str_keys=True):
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for index, name in enumerate(names):
        entry = {"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), "labels": [index] * n}
        if not str_keys:
            entry = {k.encode(): v for k, v in entry.items()}
        with open(folder / name, "wb") as f:
            pickle.dump(entry, f)
    return folder


def test_missing_cifar_says_how_to_get_it(tmp_path):
    with pytest.raises(DataError, match="--download"):
        load_cifar10(tmp_path)


def test_unverified_cifar_is_refused_without_flag(tmp_path):
    write_fake_cifar(tmp_path)
    with pytest.raises(DataError, match="--allow-unverified-data"):
        load_cifar10(tmp_path)


def test_unverified_cifar_loads_with_flag_and_says_so(tmp_path):
    write_fake_cifar(tmp_path)
    data = load_cifar10(tmp_path, allow_unverified=True)
    assert data.checksum_status.startswith("unverified"), f"status must be recorded: {data.checksum_status}"
    assert data.train_images.shape == (20, 3, 32, 32) and data.test_images.shape == (4, 3, 32, 32), "all batches read"


def test_cifar_keeps_official_order(tmp_path):
    write_fake_cifar(tmp_path)
    data = load_cifar10(tmp_path, allow_unverified=True)
    assert data.train_labels.tolist() == [0] * 4 + [1] * 4 + [2] * 4 + [3] * 4 + [4] * 4, "batches in order 1..5"


def test_cifar_with_bytes_keys_loads(tmp_path):
    write_fake_cifar(tmp_path, str_keys=False)
    data = load_cifar10(tmp_path, allow_unverified=True)
    assert data.test_labels.tolist() == [5] * 4, "bytes-keyed batches (the offline copy) read as well"


def test_corrupt_cifar_batch_names_file(tmp_path):
    folder = write_fake_cifar(tmp_path)
    (folder / "test_batch").write_bytes(b"not a pickle")
    with pytest.raises(DataError, match="test_batch"):
        load_cifar10(tmp_path, allow_unverified=True)
