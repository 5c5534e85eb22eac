"""Augmentation on uint8 image tensors, per sample and reproducible from a seed.

Section 3.2: the NORMAL baseline uses AutoAugment [2] (torchvision's CIFAR-10 policy); adversarial
training uses "random crops and flips only [11]". AutoAugment's per-sample host work can run on a
background thread ahead of the training step (prefetched_autoaugment), each batch from its own seed,
so the images do not depend on timing and a resumed run gets the same batches.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import torch
from torch.nn import functional as F

from repro.paper.configs import AUTOAUGMENT, AUTOAUGMENT_FIRST, AUTOAUGMENT_ORDERS, CROP_FLIP, CROP_FLIP_FIRST
from repro.runs.data import to_float


def random_crop_flip(images: torch.Tensor, generator: torch.Generator, padding: int = 4) -> torch.Tensor:
    """Per-sample random crop (zero padding of `padding` pixels) and horizontal flip.

    images: (B, C, H, W) of any dtype; returns the same shape and dtype. Every sample draws its
    own offsets and flip from `generator` (which must live on the images' device).
    """
    b, _, h, w = images.shape
    padded = F.pad(images, (padding,) * 4)
    dy = torch.randint(0, 2 * padding + 1, (b, 1), generator=generator, device=images.device)
    dx = torch.randint(0, 2 * padding + 1, (b, 1), generator=generator, device=images.device)
    rows = (dy + torch.arange(h, device=images.device)).view(b, 1, h, 1)
    cols = (dx + torch.arange(w, device=images.device)).view(b, 1, 1, w)
    flip = torch.rand(b, generator=generator, device=images.device) < 0.5
    cols = torch.where(flip.view(b, 1, 1, 1), cols.flip(-1), cols)
    batch = torch.arange(b, device=images.device).view(b, 1, 1, 1)
    channels = torch.arange(images.shape[1], device=images.device).view(1, -1, 1, 1)
    return padded[batch, channels, rows, cols]


_AUTOAUGMENT = None


def _autoaugment_transform():
    global _AUTOAUGMENT
    if _AUTOAUGMENT is None:
        from torchvision.transforms import v2

        _AUTOAUGMENT = v2.AutoAugment(v2.AutoAugmentPolicy.CIFAR10)
    return _AUTOAUGMENT


def autoaugment(images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """torchvision's CIFAR-10 AutoAugment policy [2], one random sub-policy per sample.

    images: uint8 (B, 3, H, W) on the CPU. torchvision's transform draws one operation per call, so
    it is applied sample by sample (a batched call would give the whole batch the same operation).
    Without `generator` the draws come from torch's global RNG (torchvision's own forward); with a
    CPU `generator` they come from it alone, so a background thread gives the same images as the
    main thread would, whatever else draws random numbers meanwhile.
    """
    transform = _autoaugment_transform()
    if generator is None:
        return torch.stack([transform(image) for image in images])
    return torch.stack([_autoaugment_sample(transform, image, generator) for image in images])


def _autoaugment_sample(transform, image: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """torchvision's AutoAugment.forward for one image, its draws taken from `generator`: the same
    sub-policy choice, application probabilities, magnitudes and signs, and torchvision's operations."""
    height, width = image.shape[-2:]
    policy = transform._policies[int(torch.randint(len(transform._policies), (), generator=generator))]
    for operation, probability, magnitude_index in policy:
        if not torch.rand((), generator=generator) <= probability:
            continue
        magnitudes_of, signed = transform._AUGMENTATION_SPACE[operation]
        magnitudes = magnitudes_of(10, height, width)
        magnitude = 0.0 if magnitudes is None else float(magnitudes[magnitude_index])
        if magnitudes is not None and signed and torch.rand((), generator=generator) <= 0.5:
            magnitude = -magnitude
        image = transform._apply_image_or_video_transform(
            image, operation, magnitude, interpolation=transform.interpolation, fill=transform._fill)
    return image


def prefetched_autoaugment(images: torch.Tensor, batches: list[torch.Tensor], seeds: list[int],
                           lookahead: int = 2) -> Iterator[torch.Tensor]:
    """AutoAugmented uint8 batches `images[batches[k]]`, each drawn from its own seed `seeds[k]`,
    computed on a background thread up to `lookahead` batches ahead of the consumer.

    The per-sample host work then overlaps the training step instead of stalling the device; each
    batch depends only on its indices and seed, so the images are the same whatever the timing, and
    a run resumed mid-epoch gets the same batches from its step on.
    """
    def work(index: torch.Tensor, seed: int) -> torch.Tensor:
        return autoaugment(images[index], torch.Generator().manual_seed(seed))

    pending = deque()
    jobs = iter(zip(batches, seeds))
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="autoaugment") as pool:
        try:
            for index, seed in itertools.islice(jobs, lookahead):
                pending.append(pool.submit(work, index, seed))
            while pending:
                batch = pending.popleft().result()
                for index, seed in itertools.islice(jobs, 1):
                    pending.append(pool.submit(work, index, seed))
                yield batch
        finally:  # the consumer stopped early (interrupt, divergence): drop what was not started
            for future in pending:
                future.cancel()


def augment(images: torch.Tensor, augmentation: str, generator: torch.Generator,
            order: str = AUTOAUGMENT_FIRST) -> torch.Tensor:
    """Apply a configuration's augmentation to uint8 images; returns float images in [0, 1].

    `order` places AutoAugment before crop/flip (AUTOAUGMENT_FIRST) or after it (CROP_FLIP_FIRST,
    Cubuk et al.'s [2] CIFAR-10 order); it is the `autoaugment_order` open choice (repro/paper/variants.py).
    """
    if augmentation not in (AUTOAUGMENT, CROP_FLIP):
        raise ValueError(f"unknown augmentation {augmentation!r}")
    if order not in AUTOAUGMENT_ORDERS:
        raise ValueError(f"unknown AutoAugment order {order!r}; valid: {', '.join(AUTOAUGMENT_ORDERS)}")
    if augmentation == AUTOAUGMENT and order == CROP_FLIP_FIRST:
        cropped = random_crop_flip(images, generator)
        return to_float(autoaugment(cropped.cpu()).to(images.device))
    if augmentation == AUTOAUGMENT:
        images = autoaugment(images.cpu()).to(images.device)
    return to_float(random_crop_flip(images, generator))
