"""Data: built-in data, CIFAR-10 loading and verification, the robust-evaluation subset."""

import hashlib
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from repro.runs.data import (
    DataError,
    check_cifar10_present,
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


def nearest_class_mean_accuracy(train, test):
    """Accuracy on `test` of labelling each image with the class whose mean `train` image is nearest."""
    (train_images, train_labels), (test_images, test_labels) = train, test
    means = torch.stack([train_images[train_labels == c].float().mean(0) for c in range(10)])
    nearest = torch.cdist(test_images.flatten(1).float(), means.flatten(1)).argmin(1)
    return (nearest == test_labels).float().mean().item()


def test_synthetic_classes_are_learnable():
    accuracy = nearest_class_mean_accuracy(synthetic_split(500, seed=1), synthetic_split(500, seed=2))
    assert accuracy > 0.9, (
        f"the class signal must dominate the distractor, nuisance and noise: the nearest class mean labels "
        f"{accuracy:.3f} of held-out images (0.996 as generated; chance is 0.1)")


def test_synthetic_images_are_mostly_unclipped():
    images, _ = synthetic_split(500, seed=1)
    clipped = ((images == 0) | (images == 255)).float().mean().item()
    assert clipped < 0.15, (
        f"{clipped:.3f} of pixels sit at 0 or 255 (0.101 as generated): a grey background plus signal and noise "
        "of moderate strength, not images washed out by clipping")


# The built-in data at seed 0 (the pipeline's SYNTHETIC_DATA_SEED), 8 train and 8 test images. The same
# on this machine under ATEN_CPU_CAPABILITY=default, avx2 and avx512, with 1 or 2 threads (torch 2.14.1).
SYNTHETIC_SEED0_8x8_SHA256 = {
    "train_sha256": "e89725703c7a28f7c73e6591958c435f7175f82c66c2c76acc284afdb77a17dc",
    "test_sha256": "77e10748789a14ab9857ca167c84738ba3a694700bf08da58e4adebf869ef61b",
}


def test_synthetic_data_is_the_same_in_every_version():
    assert synthetic_dataset(8, 8, seed=0).hashes() == SYNTHETIC_SEED0_8x8_SHA256, (
        "the built-in dataset changed: smoke results and caches made before and after would not be comparable "
        "(these hashes play the role of CIFAR-10's checksums: if the change is meant, update them and say in "
        "the commit that the built-in data changed)")


def test_synthetic_dataset_seeds_never_share_a_split():
    datasets = [synthetic_dataset(2, 2, seed=seed) for seed in range(4)]
    splits = [split for data in datasets for split in (data.train_images, data.test_images)]
    distinct = {split.numpy().tobytes() for split in splits}
    assert len(distinct) == len(splits), (
        "the train and test splits of dataset seeds 0-3 must be 8 different draws: a test split that is a "
        "training split (of this seed or another) would score memorised images")


def test_synthetic_dataset_default_seed_is_the_pipelines():
    assert synthetic_dataset(2, 2).hashes() == synthetic_dataset(2, 2, seed=0).hashes(), (
        "without a seed, synthetic_dataset must give the pipeline's data (SYNTHETIC_DATA_SEED = 0)")


def test_synthetic_dataset_records_its_provenance():
    assert synthetic_dataset(4, 3).provenance() == {
        "dataset": "synthetic", "checksum_status": "generated", "n_train": 4, "n_test": 3,
    }, "a result on the built-in data must say so, with its sizes"


# --- Dataset ---------------------------------------------------------------------------------

def test_dataset_to_moves_every_array():
    moved = synthetic_dataset(2, 2).to("meta")  # a device other than the CPU, present without a GPU
    devices = {name: getattr(moved, name).device.type
               for name in ("train_images", "train_labels", "test_images", "test_labels")}
    assert set(devices.values()) == {"meta"}, f"every array must be held on the run's device: {devices}"


def test_dataset_to_keeps_its_provenance():
    data = synthetic_dataset(2, 2)
    assert data.to("cpu").provenance() == data.provenance(), "moving the data must not change what it records"


@pytest.mark.parametrize("array, split", [("train_images", "train_sha256"), ("train_labels", "train_sha256"),
                                          ("test_images", "test_sha256"), ("test_labels", "test_sha256")])
def test_data_hashes_cover_every_array(array, split):
    data = synthetic_dataset(2, 2)
    before = data.hashes()
    getattr(data, array).view(-1)[0] ^= 1  # one bit of one label or pixel
    after = data.hashes()
    other = ({"train_sha256", "test_sha256"} - {split}).pop()
    assert after[split] != before[split], f"a change in {array} must change {split}"
    assert after[other] == before[other], f"a change in {array} must leave {other} alone"


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


class Python2Pickler(pickle._Pickler):
    """Pickles bytes as Python 2's str (opcode BINSTRING), as Python 2's cPickle wrote the official batches."""

    dispatch = pickle._Pickler.dispatch.copy()

    def save_python2_str(self, obj):
        self.write(pickle.BINSTRING + struct.pack("<i", len(obj)) + obj)
        self.memoize(obj)

    dispatch[bytes] = save_python2_str


def rewrite_batches(folder, edit=lambda entry: entry, pickler=pickle.Pickler, protocol=None):
    """Rewrite each batch in `folder` as `edit(entry)`, pickled by `pickler`."""
    for name in TRAIN_BATCHES + ["test_batch"]:
        with open(folder / name, "rb") as f:
            entry = pickle.load(f)
        with open(folder / name, "wb") as f:
            pickler(f, protocol).dump(edit(entry))


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


def test_missing_cifar_message_names_the_missing_files_and_both_fixes(tmp_path):
    folder = write_fake_cifar(tmp_path)
    (folder / "data_batch_2").unlink()
    (folder / "test_batch").unlink()
    with pytest.raises(DataError) as raised:
        check_cifar10_present(tmp_path)
    assert str(raised.value) == (
        f"CIFAR-10 not found in {folder} (missing data_batch_2, test_batch). Pass --download to fetch it, "
        "or --data-dir pointing at the folder that contains cifar-10-batches-py/."), str(raised.value)


def fake_torchvision_download(monkeypatch):
    """torchvision's CIFAR10 with a download that writes the fake batches; returns the roots it fetched into.

    Like torchvision, it fetches the whole archive (all six batches) whichever split `train` names.
    """
    from torchvision import datasets

    fetched = []

    class FakeCIFAR10(datasets.CIFAR10):
        def __init__(self, root, train=True, transform=None, target_transform=None, download=False):
            if download:
                fetched.append(root)
                write_fake_cifar(Path(root))

    monkeypatch.setattr(datasets, "CIFAR10", FakeCIFAR10)
    return fetched


def test_download_fetches_missing_cifar_into_data_dir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a download into the wrong (relative) folder stays in tmp_path
    fetched = fake_torchvision_download(monkeypatch)
    data = load_cifar10(tmp_path / "data", download=True, allow_unverified=True)
    assert fetched == [str(tmp_path / "data")], f"one fetch, into --data-dir: {fetched}"
    assert sample_index(data.test_images) == [20, 21, 22, 23], "the fetched batches are the ones loaded"


def test_download_leaves_present_cifar_alone(tmp_path, monkeypatch):
    write_fake_cifar(tmp_path)
    fetched = fake_torchvision_download(monkeypatch)
    load_cifar10(tmp_path, download=True, allow_unverified=True)
    assert fetched == [], ("with every batch present, --download must not fetch (torchvision would replace a "
                           "copy whose checksums differ, such as the offline one)")


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


def test_unverified_status_names_exactly_the_mismatching_batches(tmp_path, monkeypatch):
    accept_checksums_of(monkeypatch, write_fake_cifar(tmp_path), wrong={"data_batch_3", "test_batch"})
    status = load_cifar10(tmp_path, allow_unverified=True).checksum_status
    assert status == "unverified (checksum mismatch: data_batch_3, test_batch)", status


def test_unverified_refusal_names_the_mismatching_batches_and_both_fixes(tmp_path, monkeypatch):
    folder = write_fake_cifar(tmp_path)
    accept_checksums_of(monkeypatch, folder, wrong={"data_batch_3", "test_batch"})
    with pytest.raises(DataError) as raised:
        load_cifar10(tmp_path)
    assert str(raised.value) == (
        f"CIFAR-10 in {folder} does not match the official checksums (data_batch_3, test_batch). "
        "Re-download it with --download into an empty --data-dir, or pass --allow-unverified-data "
        "to use it anyway (recorded in every result)."), str(raised.value)


def test_cifar_records_its_provenance(tmp_path, monkeypatch):
    accept_checksums_of(monkeypatch, write_fake_cifar(tmp_path))
    assert load_cifar10(tmp_path).provenance() == {
        "dataset": "cifar10", "checksum_status": "verified", "n_train": 20, "n_test": 4,
    }, "a result on CIFAR-10 must say so, with its checksum status and sizes"


def test_python2_pickled_batches_load(tmp_path):
    folder = write_fake_cifar(tmp_path)
    rewrite_batches(folder, lambda entry: {k.encode(): v for k, v in entry.items()}, Python2Pickler, protocol=2)
    data = load_cifar10(tmp_path, allow_unverified=True)
    assert sample_index(data.test_images) == [20, 21, 22, 23], (
        "the official batches were pickled by Python 2: their str (including the pixel bytes) must be read as latin1")


def test_cifar_arrays_have_the_datasets_dtypes_whatever_the_batch_stored(tmp_path):
    folder = write_fake_cifar(tmp_path)
    rewrite_batches(folder, lambda entry: {"data": entry["data"].astype(np.int64),
                                           "labels": np.array(entry["labels"], dtype=np.uint8)})
    data = load_cifar10(tmp_path, allow_unverified=True)
    dtypes = [data.train_images.dtype, data.test_images.dtype, data.train_labels.dtype, data.test_labels.dtype]
    assert dtypes == [torch.uint8, torch.uint8, torch.int64, torch.int64], f"uint8 images, int64 labels: {dtypes}"
    assert sample_index(data.test_images) == [20, 21, 22, 23], "the same pixels"


def test_batch_with_fine_labels_key_loads_its_labels(tmp_path):
    folder = write_fake_cifar(tmp_path)
    rewrite_batches(folder, lambda entry: {"data": entry["data"], "fine_labels": entry["labels"]})
    data = load_cifar10(tmp_path, allow_unverified=True)
    assert data.test_labels.tolist() == [fake_label(i) for i in range(20, 24)], "labels read from 'fine_labels'"


def test_corrupt_cifar_batch_names_file(tmp_path):
    folder = write_fake_cifar(tmp_path)
    (folder / "test_batch").write_bytes(b"not a pickle")
    with pytest.raises(DataError, match="test_batch"):
        load_cifar10(tmp_path, allow_unverified=True)
