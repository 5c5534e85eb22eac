"""The paper's training configurations (Table 1, Table 2) as data.

One frozen dataclass per row of Table 2, keyed by a stable snake_case id and carrying the
paper's own label. Rows are written as differences from the base rows (NORMAL, ADV, and the
fine-tuning base), so the registry reads like the table. Every choice the paper leaves open is
a field with a comment citing the sentence it interprets.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from repro.paper.groups import BN, CONV1, LOGITS, PARAMETER_GROUPS

# Where a configuration starts.
RANDOM_INIT = "random_init"
FROM_NORMAL = "normal"  # the trained NORMAL model of the same budget and seed

# Objectives.
CLEAN = "clean"  # standard cross-entropy training
ADVERSARIAL = "adversarial"  # PGD adversarial training, Madry et al. [11] (Section 3.2)
FORWARD_ADVERSARIAL = "forward_adversarial"  # forward PGD examples, no optimiser step (BN STATS)
OBJECTIVES = (CLEAN, ADVERSARIAL, FORWARD_ADVERSARIAL)

# BN statistics policies.
STATS_UPDATE = "update"  # running statistics follow the training batches
STATS_FROZEN = "frozen"  # BN normalises with its stored running statistics throughout
STATS_RESET = "reset_then_update"  # mean 0, variance 1, counter 0, then updated
# Training forwards normalise with batch statistics, yet the running statistics never move (momentum
# 0): a reading of BN ONLY PARAMS' "*Not* updating the BN statistics" (repro/paper/variants.py).
STATS_FROZEN_BATCH = "frozen_batch"
STATS_POLICIES = (STATS_UPDATE, STATS_FROZEN, STATS_RESET, STATS_FROZEN_BATCH)

# How updated BN statistics average the batches (PyTorch's `momentum`).
MOMENTUM_AVERAGE = "momentum"  # exponential average, momentum 0.1 (PyTorch's default)
CUMULATIVE_AVERAGE = "cumulative"  # momentum None: the plain average of every batch since the counter's start
STATS_AVERAGES = (MOMENTUM_AVERAGE, CUMULATIVE_AVERAGE)

# Augmentations.
AUTOAUGMENT = "autoaugment"  # torchvision's CIFAR-10 AutoAugment policy, plus crop and flip
CROP_FLIP = "crop_flip"  # random 4-pixel-padded crop and horizontal flip
AUGMENTATIONS = (AUTOAUGMENT, CROP_FLIP)

# BatchNorm mode while an attack is generated.
BN_TRAIN = "train"  # batch statistics (running statistics restored afterwards)
BN_EVAL = "eval"  # stored running statistics
BN_MODES = (BN_TRAIN, BN_EVAL)

# Order of the AutoAugment pipeline (rows with augmentation AUTOAUGMENT).
AUTOAUGMENT_FIRST = "autoaugment_then_crop_flip"
CROP_FLIP_FIRST = "crop_flip_then_autoaugment"  # Cubuk et al.'s [2] CIFAR-10 order
AUTOAUGMENT_ORDERS = (AUTOAUGMENT_FIRST, CROP_FLIP_FIRST)

# Which weights of a run are evaluated.
LAST_EPOCH = "last"
BEST_HELD_OUT = "best"  # highest PGD accuracy on held-out training images, checked every epoch
CHECKPOINT_SELECTIONS = (LAST_EPOCH, BEST_HELD_OUT)


@dataclass(frozen=True)
class Configuration:
    """One row of Table 2.

    Attributes:
        id: stable snake_case key.
        label: the paper's row label in Table 2.
        init: RANDOM_INIT, or FROM_NORMAL for the fine-tuning rows.
        objective: CLEAN, ADVERSARIAL or FORWARD_ADVERSARIAL.
        trainable: parameter groups (repro.mechanics.model.PARAMETER_GROUPS) the optimiser updates.
        bn_stats: STATS_UPDATE, STATS_FROZEN or STATS_RESET.
        augmentation: AUTOAUGMENT or CROP_FLIP.
        attack_bn_mode: BN mode while training-time PGD examples are generated.
        table1_row: the Table 1 row this configuration belongs to, or None.
        adv_fraction: share of each training batch that is adversarial (ADVERSARIAL objective);
            the rest is clean and goes through the same forward pass.
        stats_average: MOMENTUM_AVERAGE or CUMULATIVE_AVERAGE, how updated statistics average.
        autoaugment_order: AUTOAUGMENT_FIRST or CROP_FLIP_FIRST (rows with AUTOAUGMENT).
        checkpoint_selection: LAST_EPOCH or BEST_HELD_OUT, which weights are evaluated.
        epochs, lr: None = the budget's (Budget.epochs_of, Budget.lr_of); the finetune_epochs and
            finetune_lr readings set them for the rows fine-tuned from NORMAL.

    The last six default to the registry's reading; repro/paper/variants.py selects the others.
    """

    id: str
    label: str
    init: str
    objective: str
    trainable: tuple[str, ...]
    bn_stats: str
    augmentation: str
    attack_bn_mode: str
    table1_row: str | None
    adv_fraction: float = 1.0  # Madry et al. [11]: every training example is adversarial
    stats_average: str = MOMENTUM_AVERAGE
    autoaugment_order: str = AUTOAUGMENT_FIRST
    checkpoint_selection: str = LAST_EPOCH
    epochs: int | None = None  # the paper gives no epochs (Section 3.2): the budget's, unless a reading says
    lr: float | None = None  # nor a learning rate: the budget's peak rate, unless a reading says

    def __post_init__(self):
        checks = {
            "init": (self.init, (RANDOM_INIT, FROM_NORMAL)),
            "objective": (self.objective, OBJECTIVES),
            "bn_stats": (self.bn_stats, STATS_POLICIES),
            "augmentation": (self.augmentation, AUGMENTATIONS),
            "attack_bn_mode": (self.attack_bn_mode, BN_MODES),
            "stats_average": (self.stats_average, STATS_AVERAGES),
            "autoaugment_order": (self.autoaugment_order, AUTOAUGMENT_ORDERS),
            "checkpoint_selection": (self.checkpoint_selection, CHECKPOINT_SELECTIONS),
        }
        for field, (value, allowed) in checks.items():
            if value not in allowed:
                raise ValueError(f"{self.id}: {field}={value!r} is not one of {allowed}")
        if self.epochs is not None and self.epochs < 1 or self.lr is not None and not self.lr > 0:
            raise ValueError(f"{self.id}: epochs must be >= 1 and lr > 0 where given, got {self.epochs}, {self.lr}")
        if not 0 < self.adv_fraction <= 1:
            raise ValueError(f"{self.id}: adv_fraction must be in (0, 1], got {self.adv_fraction}")
        unknown = set(self.trainable) - set(PARAMETER_GROUPS)
        if unknown:
            raise ValueError(f"{self.id}: unknown trainable group(s) {sorted(unknown)}")

    # Table 1 columns, derived from the fields.
    @property
    def trains_all(self) -> bool:
        """Table 1 'all': every parameter is trained."""
        return set(self.trainable) == set(PARAMETER_GROUPS)

    @property
    def trains_bn_params(self) -> bool:
        """Table 1 'BN params': BN gamma/beta are trained."""
        return BN in self.trainable

    @property
    def updates_bn_stats(self) -> bool:
        """Table 1 'BN stats': BN running statistics are updated."""
        return self.bn_stats not in (STATS_FROZEN, STATS_FROZEN_BATCH)

    @property
    def uses_attack(self) -> bool:
        """Whether training generates PGD examples."""
        return self.objective in (ADVERSARIAL, FORWARD_ADVERSARIAL)


ALL_GROUPS = PARAMETER_GROUPS

NORMAL = Configuration(
    id="normal",
    label="NORMAL",
    init=RANDOM_INIT,
    objective=CLEAN,
    trainable=ALL_GROUPS,
    bn_stats=STATS_UPDATE,
    # Section 3.2: "For the (normally trained) baseline model, we also employ AutoAugment".
    augmentation=AUTOAUGMENT,
    # No attack during clean training; eval is the inert value.
    attack_bn_mode=BN_EVAL,
    table1_row="NORMAL/ADV",
)

NORMAL_BN_ONLY = dataclasses.replace(
    NORMAL,
    id="normal_bn_only",
    label="NORMAL +BN ONLY",
    # Section 3: "training only the BN parameters (and statistics)", following Frankle et al. [3].
    trainable=(BN,),
    # Section 3.2 names AutoAugment for "the (normally trained) baseline" only; Frankle et al. [3]
    # trained BN-only with crop and flip, so the BN-only rows use crop and flip.
    augmentation=CROP_FLIP,
    table1_row="+BN ONLY",
)

NORMAL_BN_ONLY_LOG_CONV1 = dataclasses.replace(
    NORMAL_BN_ONLY,
    id="normal_bn_only_log_conv1",
    label="NORMAL +BN ONLY + log + conv1",
    trainable=(BN, LOGITS, CONV1),
    table1_row=None,
)

ADV = Configuration(
    id="adv",
    label="ADV",
    init=RANDOM_INIT,
    objective=ADVERSARIAL,
    trainable=ALL_GROUPS,
    bn_stats=STATS_UPDATE,
    # Section 3.2: "we do not use AutoAugment, but rather follow related work and employ random
    # crops and flips only [11]".
    augmentation=CROP_FLIP,
    # The paper does not say. Madry et al.'s [11] reference training generates the attack with
    # the same (batch-statistics) BN mode as the training forward pass; we follow it whenever
    # statistics are updated.
    attack_bn_mode=BN_TRAIN,
    table1_row="NORMAL/ADV",
)

ADV_BN_ONLY = dataclasses.replace(
    ADV,
    id="adv_bn_only",
    label="ADV +BN ONLY",
    # Section 3.3: "only training the BN layers from scratch, but adversarially".
    trainable=(BN,),
    table1_row="+BN ONLY",
)

ADV_BN_ONLY_LOG_CONV1 = dataclasses.replace(
    ADV_BN_ONLY,
    id="adv_bn_only_log_conv1",
    label="ADV +BN ONLY + log + conv1",
    trainable=(BN, LOGITS, CONV1),
    table1_row=None,
)

BN_STATS_NO_RESET = Configuration(
    id="bn_stats_no_reset",
    label="BN STATS (no reset)",
    # Section 3.2: "Given a normally trained baseline model (NORMAL), we adversarially fine-tune it".
    init=FROM_NORMAL,
    # Section 3.3: "The statistics are updated by simply forwarding adversarial examples."
    objective=FORWARD_ADVERSARIAL,
    trainable=(),
    bn_stats=STATS_UPDATE,
    # Section 3.2: adversarial fine-tuning uses "random crops and flips only".
    augmentation=CROP_FLIP,
    # The paper does not say; the examples are forwarded in train mode to move the statistics,
    # and are generated against that same batch-statistics model, as for the other rows.
    attack_bn_mode=BN_TRAIN,
    table1_row="BN STATS",
)

BN_STATS_RESET = dataclasses.replace(
    BN_STATS_NO_RESET,
    id="bn_stats_reset",
    label="BN STATS (reset)",
    # Section 3.3: "results do not change when resetting the statistics before forwarding
    # adversarial examples". Reset = PyTorch's reset_running_stats (mean 0, var 1, counter 0);
    # the update afterwards keeps the usual momentum.
    bn_stats=STATS_RESET,
)

BN_ONLY_PARAMS = dataclasses.replace(
    BN_STATS_NO_RESET,
    id="bn_only_params",
    label="BN ONLY PARAMS",
    # Section 3.3: "*Not* updating the BN statistics and just learning the BN parameters".
    objective=ADVERSARIAL,
    trainable=(BN,),
    bn_stats=STATS_FROZEN,
    # Frozen statistics: BN normalises with running statistics, also while attacking.
    attack_bn_mode=BN_EVAL,
    table1_row=None,
)

BN_PARAMS = dataclasses.replace(
    BN_STATS_NO_RESET,
    id="bn_params",
    label="BN PARAMS",
    # Section 3.3: "adversarially fine-tune BN statistics and parameters".
    objective=ADVERSARIAL,
    trainable=(BN,),
    table1_row="BN PARAMS",
)

BN_PARAMS_LOG_CONV1 = dataclasses.replace(
    BN_PARAMS,
    id="bn_params_log_conv1",
    label="BN PARAMS + log + conv1",
    # Section 3.2: "we might also learn the logit or first convolutional layer".
    trainable=(BN, LOGITS, CONV1),
    table1_row=None,
)

# Table 2 order.
CONFIGURATIONS: dict[str, Configuration] = {
    c.id: c
    for c in (
        NORMAL,
        NORMAL_BN_ONLY,
        NORMAL_BN_ONLY_LOG_CONV1,
        ADV,
        ADV_BN_ONLY,
        ADV_BN_ONLY_LOG_CONV1,
        BN_STATS_NO_RESET,
        BN_STATS_RESET,
        BN_ONLY_PARAMS,
        BN_PARAMS,
        BN_PARAMS_LOG_CONV1,
    )
}


class UnknownConfigurationError(ValueError):
    """Raised for a configuration id that is not in the registry."""


def get_configuration(config_id: str) -> Configuration:
    """The registry entry for `config_id`; a clear error listing the valid ids otherwise."""
    try:
        return CONFIGURATIONS[config_id]
    except KeyError:
        raise UnknownConfigurationError(
            f"unknown configuration {config_id!r}; valid ids: {', '.join(CONFIGURATIONS)} "
            "(see `repro list`)"
        ) from None


