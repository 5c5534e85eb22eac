"""Augmentation: crop/flip per sample as Section 3.2's [11] crops, AutoAugment [2] per sample,
seeded AutoAugment independent of the global RNG, and its prefetch giving each batch its own images."""

import pytest
import torch
from torch.nn import functional as F

from repro.paper.configs import AUTOAUGMENT, AUTOAUGMENT_FIRST, AUTOAUGMENT_ORDERS, CROP_FLIP, CROP_FLIP_FIRST
from repro.runs import augmentation
from repro.runs.augmentation import augment, autoaugment, prefetched_autoaugment, random_crop_flip
from repro.runs.data import to_float


def test_crop_flip_keeps_shape_and_dtype():
    images = torch.randint(0, 256, (8, 3, 32, 32), dtype=torch.uint8)
    out = random_crop_flip(images, torch.Generator().manual_seed(0))
    assert out.shape == images.shape and out.dtype == images.dtype, "shape and dtype preserved"


def test_crop_flip_is_per_sample():
    image = torch.randint(1, 256, (1, 3, 32, 32), dtype=torch.uint8)
    out = random_crop_flip(image.repeat(16, 1, 1, 1), torch.Generator().manual_seed(0))
    distinct = len({o.numpy().tobytes() for o in out})
    assert distinct > 8, f"16 copies of one image got only {distinct} distinct crops/flips"


PAD = 4  # random_crop_flip's default padding (Section 3.2's crops follow [11]: 4 pixels)


def crop_or_mirror_crop(sample, image):
    """(flipped, dy, dx) such that `sample` is the 32x32 window at (dy, dx) of the zero-padded image
    (flipped=False) or of its horizontal mirror (flipped=True); None if it is neither."""
    for flipped, source in ((False, image), (True, image.flip(-1))):
        padded = F.pad(source, (PAD,) * 4)
        for dy in range(2 * PAD + 1):
            for dx in range(2 * PAD + 1):
                if torch.equal(sample, padded[:, dy:dy + 32, dx:dx + 32]):
                    return flipped, dy, dx
    return None


@pytest.fixture(scope="module")
def distinct_pixel_image():
    """One (3, 32, 32) image whose pixels are all different and non-zero, so every window is unique."""
    return torch.arange(1, 1 + 3 * 32 * 32, dtype=torch.float32).view(3, 32, 32)


def crops_of(image, n=64, seed=1):
    return random_crop_flip(image.repeat(n, 1, 1, 1), torch.Generator().manual_seed(seed))


def test_crop_flip_is_a_shifted_crop_of_image_or_mirror(distinct_pixel_image):
    out = crops_of(distinct_pixel_image)
    bad = [i for i, sample in enumerate(out) if crop_or_mirror_crop(sample, distinct_pixel_image) is None]
    assert bad == [], f"samples {bad} are neither a 4-pixel-padded crop of the image nor of its mirror"


def test_crop_flip_check_rejects_a_pixel_shuffle(distinct_pixel_image):
    sample = crops_of(distinct_pixel_image, n=1)[0]
    shuffled = sample.flatten()[torch.randperm(sample.numel(), generator=torch.Generator().manual_seed(0))].view_as(sample)
    assert crop_or_mirror_crop(shuffled, distinct_pixel_image) is None, "the crop check must reject shuffled pixels"


def test_crop_flip_flips_some_samples_and_not_others(distinct_pixel_image):
    out = crops_of(distinct_pixel_image)
    found = [crop_or_mirror_crop(sample, distinct_pixel_image) for sample in out]
    flips = {match[0] for match in found if match is not None}
    assert flips == {False, True}, f"64 samples should include flipped and unflipped ones, got flipped in {flips}"


def test_crop_flip_is_reproducible():
    images = torch.randint(0, 256, (8, 3, 32, 32), dtype=torch.uint8)
    a = random_crop_flip(images, torch.Generator().manual_seed(5))
    b = random_crop_flip(images, torch.Generator().manual_seed(5))
    assert torch.equal(a, b), "the same generator state gives the same augmentation"


def test_crop_flip_draws_and_indexes_on_the_images_device():
    # On a GPU every offset, flip and index must be made on the images' device: a CPU tensor mixed in
    # raises there, or takes the batch off the GPU. With no GPU here the meta device stands in: it
    # refuses a CPU tensor mixed with its own in the same way (and ignores the CPU generator's device).
    images = torch.empty(4, 3, 32, 32, dtype=torch.uint8, device="meta")
    try:
        out = random_crop_flip(images, torch.Generator())
    except RuntimeError as error:
        pytest.fail(f"random_crop_flip made a tensor off the images' device: {error}")
    assert (out.device.type, out.shape, out.dtype) == ("meta", images.shape, images.dtype), (
        f"crop/flip of meta images returned {out.device} {tuple(out.shape)} {out.dtype}")


@pytest.mark.parametrize("augmentation", ["crop_flip", "autoaugment"])
def test_augment_returns_unit_range_floats(augmentation):
    images = torch.randint(0, 256, (8, 3, 32, 32), dtype=torch.uint8)
    out = augment(images, augmentation, torch.Generator().manual_seed(0))
    assert out.dtype == torch.float32 and out.shape == (8, 3, 32, 32), "float (B, 3, 32, 32)"
    assert out.min() >= 0 and out.max() <= 1, "images in [0, 1]"


def test_autoaugment_draws_per_sample():
    torch.manual_seed(0)
    image = torch.randint(0, 256, (1, 3, 32, 32), dtype=torch.uint8).repeat(32, 1, 1, 1)
    out = autoaugment(image)
    distinct = len({o.numpy().tobytes() for o in out})
    assert distinct > 4, f"32 copies got {distinct} distinct AutoAugment results: one op per batch?"


def test_unknown_augmentation_is_rejected():
    with pytest.raises(ValueError, match="unknown augmentation"):
        augment(torch.zeros(1, 3, 32, 32, dtype=torch.uint8), "mixup", torch.Generator())


def test_seeded_autoaugment_draws_per_sample():
    image = torch.randint(0, 256, (1, 3, 32, 32), dtype=torch.uint8).repeat(32, 1, 1, 1)
    out = autoaugment(image, torch.Generator().manual_seed(0))
    distinct = len({o.numpy().tobytes() for o in out})
    assert distinct > 4, f"32 copies got {distinct} distinct seeded AutoAugment results: one op per batch?"


def test_seeded_autoaugment_ignores_the_global_rng():
    images = torch.randint(0, 256, (16, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    torch.manual_seed(0)
    a = autoaugment(images, torch.Generator().manual_seed(3))
    torch.manual_seed(99)  # another thread drawing meanwhile must not change the images
    b = autoaugment(images, torch.Generator().manual_seed(3))
    assert torch.equal(a, b), "the same seed must give the same augmented images whatever the global RNG does"
    assert not torch.equal(a, autoaugment(images, torch.Generator().manual_seed(4))), "another seed, other images"


def test_prefetched_autoaugment_gives_each_batch_its_seeded_images_in_order():
    images = torch.randint(0, 256, (40, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(2))
    batches = [torch.arange(k * 8, (k + 1) * 8).flip(0) for k in range(5)]
    seeds = [11, 12, 13, 14, 15]
    got = list(prefetched_autoaugment(images, batches, seeds))
    expected = [autoaugment(images[b], torch.Generator().manual_seed(s)) for b, s in zip(batches, seeds)]
    assert len(got) == 5 and all(torch.equal(g, e) for g, e in zip(got, expected)), (
        "prefetched batches must be the seeded AutoAugment of their own indices, in order")


def test_crop_flip_offsets_cover_the_whole_4_pixel_padding(distinct_pixel_image):
    found = [crop_or_mirror_crop(sample, distinct_pixel_image) for sample in crops_of(distinct_pixel_image, n=256)]
    for flipped in (False, True):  # a mirrored crop at dx matches the mirror's window at 2 * PAD - dx: count each apart
        dys = {match[1] for match in found if match is not None and match[0] == flipped}
        dxs = {match[2] for match in found if match is not None and match[0] == flipped}
        assert dys == dxs == set(range(2 * PAD + 1)), (
            f"crops (flipped={flipped}) must shift by every offset 0..{2 * PAD} of the 4-pixel padding in both "
            f"axes, got dy {dys}, dx {dxs}")


def test_augment_crop_flip_is_the_seeded_crop_flip_in_either_order():
    images = torch.randint(0, 256, (8, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(4))
    expected = to_float(random_crop_flip(images, torch.Generator().manual_seed(6)))
    for order in AUTOAUGMENT_ORDERS:
        torch.manual_seed(order == CROP_FLIP_FIRST)  # the global RNG must not enter the crop_flip rows' images
        out = augment(images, CROP_FLIP, torch.Generator().manual_seed(6), order)
        assert torch.equal(out, expected), (
            f"crop_flip rows get crops and flips only, drawn from their generator, whatever the order ({order})")


@pytest.mark.parametrize("order", AUTOAUGMENT_ORDERS)
def test_augment_autoaugment_applies_autoaugment_and_crop_flip_in_its_order(order):
    images = torch.randint(0, 256, (8, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(4))
    torch.manual_seed(7)  # AutoAugment (unseeded in augment) draws from the global RNG
    out = augment(images, AUTOAUGMENT, torch.Generator().manual_seed(6), order)
    torch.manual_seed(7)
    if order == AUTOAUGMENT_FIRST:
        expected = random_crop_flip(autoaugment(images), torch.Generator().manual_seed(6))
    else:
        expected = autoaugment(random_crop_flip(images, torch.Generator().manual_seed(6)))
    assert torch.equal(out, to_float(expected)), (
        f"NORMAL's batches get AutoAugment and the seeded crop/flip, composed in the order {order} names")


def test_unknown_autoaugment_order_is_rejected_listing_the_valid_ones():
    with pytest.raises(ValueError, match="unknown AutoAugment order") as error:
        augment(torch.zeros(1, 3, 32, 32, dtype=torch.uint8), AUTOAUGMENT, torch.Generator(), "sideways")
    assert ", ".join(AUTOAUGMENT_ORDERS) in str(error.value), "the error must name the valid orders"


def test_seeded_autoaugment_is_torchvisions_autoaugment_under_the_same_seed():
    images = torch.randint(0, 256, (48, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(8))
    torch.manual_seed(21)
    reference = autoaugment(images)  # torchvision's own forward, its draws from the global RNG seeded 21
    seeded = autoaugment(images, torch.Generator().manual_seed(21))
    same = [torch.equal(a, b) for a, b in zip(seeded, reference)]
    assert all(same), (
        "a generator seeded s must give torchvision's AutoAugment under torch.manual_seed(s): the same sub-policies, "
        f"application probabilities, magnitudes and signs; samples {[i for i, ok in enumerate(same) if not ok]} differ")


def test_autoaugment_is_the_cifar10_policy_built_on_first_use(monkeypatch):
    # Section 3.2: NORMAL trains with AutoAugment [2], the policy Cubuk et al. learned on CIFAR-10. The
    # transform is built on first use and kept; the cache is emptied here so this test builds it, as a fresh
    # run does (mutmut forks every mutant from a process whose tests have built it already).
    from torchvision.transforms import v2

    monkeypatch.setattr(augmentation, "_AUTOAUGMENT", None)
    images = torch.randint(0, 256, (16, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(9))
    torch.manual_seed(13)
    out = autoaugment(images)
    policy = v2.AutoAugment(v2.AutoAugmentPolicy.CIFAR10)
    torch.manual_seed(13)
    expected = torch.stack([policy(image) for image in images])
    assert torch.equal(out, expected), "autoaugment must apply torchvision's CIFAR-10 AutoAugment policy"


class CountingSeeds:
    """An iterable of seeds that records how many the prefetcher has taken (each one a batch it started)."""

    def __init__(self, seeds):
        self.seeds, self.taken = seeds, 0

    def __iter__(self):
        for seed in self.seeds:
            self.taken += 1
            yield seed


@pytest.mark.parametrize("lookahead", [None, 1, 3])
def test_prefetched_autoaugment_starts_at_most_lookahead_batches_ahead(lookahead):
    images = torch.randint(0, 256, (16, 3, 8, 8), dtype=torch.uint8, generator=torch.Generator().manual_seed(2))
    seeds = CountingSeeds(list(range(8)))
    kwargs = {} if lookahead is None else {"lookahead": lookahead}
    ahead = 2 if lookahead is None else lookahead  # the default keeps two batches in hand
    batches = prefetched_autoaugment(images, [torch.arange(k * 2, k * 2 + 2) for k in range(8)], seeds, **kwargs)
    for consumed in (1, 2, 3):
        next(batches)
        assert seeds.taken == consumed + ahead, (
            f"after {consumed} batches taken, {consumed + ahead} may have been started (lookahead {ahead}), "
            f"not {seeds.taken}: the prefetch must bound its work and memory ahead of the consumer")
    batches.close()


def test_prefetched_autoaugment_runs_on_one_named_background_thread(monkeypatch):
    import threading
    import time

    from repro.runs import augmentation

    threads = []

    def recording_autoaugment(images, generator=None):
        threads.append(threading.current_thread().name)
        time.sleep(0.005)  # long enough that a second worker, if allowed, would be started
        return images

    monkeypatch.setattr(augmentation, "autoaugment", recording_autoaugment)
    images = torch.zeros(12, 3, 8, 8, dtype=torch.uint8)
    list(prefetched_autoaugment(images, [torch.arange(k * 2, k * 2 + 2) for k in range(6)], list(range(6))))
    assert len(set(threads)) == 1 and threads[0].startswith("autoaugment"), (
        f"AutoAugment must run on one background thread named 'autoaugment…' (one core beside the training step, "
        f"findable in a profile), got threads {sorted(set(threads))}")
