"""Data: built-in data, CIFAR-10 loading and verification, the robust-evaluation subset."""

import hashlib
import pickle

import numpy as np
import pytest
import torch

from repro.runs.data import (
    DataError,
    load_cifar10,
    robust_eval_subset,
    synthetic_dataset,
    synthetic_split,
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


def test_robust_subset_is_first_n_in_order():
    data = synthetic_dataset(16, 50, seed=0)
    images, labels = robust_eval_subset(data, 20)
    assert torch.equal(images, data.test_images[:20]) and torch.equal(labels, data.test_labels[:20]), "first n, in order"


# --- CIFAR-10 files (a small fake folder; the real data is never needed by tests) -------------

TRAIN_BATCHES = [f"data_batch_{i}" for i in range(1, 6)]


def fake_label(index):
    return index * 7 % 10  # labels vary within a batch and follow their image


def sample_index(images):
    """The index written into each fake image's first two pixels (channel 0, row 0), as a list."""
    return (images[:, 0, 0, 0].long() * 256 + images[:, 0, 0, 1].long()).tolist()


def write_fake_cifar(root, n=4, n_test=None, str_keys=True):
    """A cifar-10-batches-py folder: n images per training batch, n_test (default n) in test_batch.

    Every image carries a unique index in its first two pixels, counted through the batches in
    the official order (data_batch_1..5, then test_batch), and the label fake_label(index).
    """
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    start = 0
    for name, count in [(name, n) for name in TRAIN_BATCHES] + [("test_batch", n_test or n)]:
        data = rng.integers(0, 256, (count, 3072), dtype=np.uint8)
        indices = np.arange(start, start + count)
        data[:, 0], data[:, 1] = indices // 256, indices % 256
        entry = {"data": data, "labels": [fake_label(int(i)) for i in indices]}
        if not str_keys:
            entry = {k.encode(): v for k, v in entry.items()}
        with open(folder / name, "wb") as f:
            pickle.dump(entry, f)
        start += count
    return folder


def md5_table(folder, wrong=()):
    """torchvision's (name, md5) lists for the files in `folder`, with the names in `wrong` mismatched."""
    def md5(name):
        return "0" * 32 if name in wrong else hashlib.md5((folder / name).read_bytes()).hexdigest()
    return [[name, md5(name)] for name in TRAIN_BATCHES], [["test_batch", md5("test_batch")]]


def accept_checksums_of(monkeypatch, folder, wrong=()):
    """Make the fake files the 'official' ones by giving torchvision's table their MD5 sums."""
    from torchvision.datasets import CIFAR10

    train_list, test_list = md5_table(folder, wrong)
    monkeypatch.setattr(CIFAR10, "train_list", train_list)
    monkeypatch.setattr(CIFAR10, "test_list", test_list)


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


def test_cifar_keeps_official_training_order(tmp_path):
    write_fake_cifar(tmp_path)
    data = load_cifar10(tmp_path, allow_unverified=True)
    assert sample_index(data.train_images) == list(range(20)), "training images in file order, batches 1..5"


def test_cifar_labels_stay_with_their_images(tmp_path):
    write_fake_cifar(tmp_path)
    data = load_cifar10(tmp_path, allow_unverified=True)
    expected = [fake_label(i) for i in sample_index(data.train_images)] + [fake_label(i) for i in sample_index(data.test_images)]
    assert data.train_labels.tolist() + data.test_labels.tolist() == expected, "each label belongs to its image"


def test_robust_subset_of_cifar_is_first_1000_test_images_in_official_order(tmp_path):
    write_fake_cifar(tmp_path, n=2, n_test=1100)
    images, labels = robust_eval_subset(load_cifar10(tmp_path, allow_unverified=True), 1000)
    first_test = 5 * 2  # test_batch's indices follow the 10 training images
    assert sample_index(images) == list(range(first_test, first_test + 1000)), "Section 3.2: the first 1000 test examples, in order"


def test_cifar_with_bytes_keys_loads(tmp_path):
    write_fake_cifar(tmp_path, str_keys=False)
    data = load_cifar10(tmp_path, allow_unverified=True)
    assert sample_index(data.test_images) == [20, 21, 22, 23], "bytes-keyed batches (the offline copy) read as well"


def test_matching_checksums_load_verified_without_flag(tmp_path, monkeypatch):
    accept_checksums_of(monkeypatch, write_fake_cifar(tmp_path))
    data = load_cifar10(tmp_path)
    assert data.checksum_status == "verified", f"official checksums must be recorded as verified: {data.checksum_status}"


def test_unverified_status_names_the_mismatching_batch(tmp_path, monkeypatch):
    accept_checksums_of(monkeypatch, write_fake_cifar(tmp_path), wrong={"data_batch_3"})
    status = load_cifar10(tmp_path, allow_unverified=True).checksum_status
    assert status.startswith("unverified") and status.count("batch") == 1 and "data_batch_3" in status, status


def test_corrupt_cifar_batch_names_file(tmp_path):
    folder = write_fake_cifar(tmp_path)
    (folder / "test_batch").write_bytes(b"not a pickle")
    with pytest.raises(DataError, match="test_batch"):
        load_cifar10(tmp_path, allow_unverified=True)
