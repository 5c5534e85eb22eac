"""The register of the paper's open choices: each choice, the sentences it interprets, its readings.

The paper leaves several choices open that can move Table 2 by more than its tolerances. Each
`Choice` quotes the sentence(s) it interprets, lists its readings (the first is the default,
which is what repro/paper/configs.py encodes), the evidence for each, and the rows it affects. A
reading that changes training is a set of Configuration field changes per row (a
`dataclasses.replace` of the registry row), so checkpoints and results, which record the
configuration, tell readings apart; a reading of a figure changes only that figure. Selecting and
applying readings: repro/paper/variants.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from repro.paper.configs import (
    ADVERSARIAL,
    AUTOAUGMENT,
    BEST_HELD_OUT,
    BN_EVAL,
    BN_TRAIN,
    CONFIGURATIONS,
    CROP_FLIP_FIRST,
    CUMULATIVE_AVERAGE,
    FROM_NORMAL,
    STATS_FROZEN_BATCH,
)

TRAINING = "training"  # the reading changes how rows train: its runs get their own folder


FIGURES = "figures"  # the reading changes a figure only: trained models are shared


PUBLIC_CODE = ("the senior author's public adversarial-training code (davidstutz/confidence-calibrated-"
               "adversarial-training, common/train/adversarial_training.py)")


@dataclass(frozen=True)
class Reading:
    """One way to read a choice.

    Attributes:
        id: the name used on the command line (CHOICE=ID).
        meaning: what the reading does, in one sentence.
        evidence: why it is defensible (sources).
        changes: {row id: {Configuration field: value}} applied to those rows (training readings).
        when: apply the changes only to rows whose configuration (after earlier readings) has these
            field values; rows where the reading would be inert keep the registry's configuration.
    """

    id: str
    meaning: str
    evidence: str
    changes: dict[str, dict[str, object]] = field(default_factory=dict)
    when: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class Choice:
    """A choice the paper leaves open.

    Attributes:
        id: the name used on the command line.
        question: what is open, in one line.
        sentences: (quoted sentence, where in the paper) pairs the choice interprets.
        readings: the readings; the first is the default (the registry's behaviour).
        rows: configuration ids whose training the choice may change directly (its readings change no
            others); the rows it does move are derived from the readings (variants.affected_rows).
        scope: TRAINING or FIGURES.
        figures: the figures it changes (FIGURES scope).
    """

    id: str
    question: str
    sentences: tuple[tuple[str, str], ...]
    readings: tuple[Reading, ...]
    rows: tuple[str, ...]
    scope: str = TRAINING
    figures: tuple[str, ...] = ()

    @property
    def default(self) -> str:
        """The default reading's id: today's behaviour."""
        return self.readings[0].id

    def reading(self, reading_id: str) -> Reading:
        """The reading `reading_id`; UnknownVariantError listing the valid readings otherwise."""
        for reading in self.readings:
            if reading.id == reading_id:
                return reading
        raise UnknownVariantError(
            f"open choice {self.id} has no reading {reading_id!r}; valid readings: "
            f"{', '.join(r.id for r in self.readings)} (see `repro variants`)"
        )


class UnknownVariantError(ValueError):
    """An unknown open choice or reading, or a malformed CHOICE=READING; the message lists the valid ones."""


def _rows(predicate) -> tuple[str, ...]:
    return tuple(c.id for c in CONFIGURATIONS.values() if predicate(c))


ATTACKED_ROWS = _rows(lambda c: c.uses_attack)


ADVERSARIAL_ROWS = _rows(lambda c: c.objective == ADVERSARIAL)


ADV_FAMILY = ("adv", "adv_bn_only", "adv_bn_only_log_conv1")  # adversarial training from scratch


BN_STATS_ROWS = ("bn_stats_no_reset", "bn_stats_reset")


NORMAL_BN_ONLY_ROWS = ("normal_bn_only", "normal_bn_only_log_conv1")


AUTOAUGMENT_ROWS = ("normal",) + NORMAL_BN_ONLY_ROWS  # rows that use AutoAugment under some reading
FINE_TUNING_ROWS = _rows(lambda c: c.init == FROM_NORMAL)
FINE_TUNED_PARAMETER_ROWS = _rows(lambda c: c.init == FROM_NORMAL and c.trainable)  # BN STATS has no optimiser


def _each(rows: tuple[str, ...], **fields) -> dict[str, dict[str, object]]:
    return {row: dict(fields) for row in rows}


# Readings are applied in this order; attack_bn comes after bn_only_params_stats, whose
# frozen_batch reading attacks with batch statistics like its training forward pass unless
# attack_bn=eval says otherwise.
CHOICES: dict[str, Choice] = {c.id: c for c in (
    Choice(
        id="bn_only_params_stats",
        question="What 'Not updating the BN statistics' means for BN ONLY PARAMS",
        sentences=(("*Not* updating the BN statistics and just learning the BN parameters, in contrast, improves "
                    "adversarial robustness slightly, from 99.8 to 85.3% robust test error. However, clean test "
                    "error is nearly as high.", "Section 3.3"),),
        readings=(
            Reading("eval", "BN normalises with NORMAL's running statistics throughout, in training and attack "
                    "forwards alike (BN layers in eval mode)",
                    "the literal reading: statistics that are not updated are the stored ones, and the network "
                    "then computes the same function in training and at test time"),
            Reading("frozen_batch", "training forwards normalise with batch statistics while the running statistics "
                    "stay NORMAL's (momentum 0); the attack uses batch statistics too unless attack_bn=eval",
                    "a train-mode network whose statistics update is switched off; test time then normalises with "
                    "statistics that no longer match what training saw, which fits Table 2's 77.11% clean error "
                    "(the eval reading keeps the test-time function the trained one)",
                    changes={"bn_only_params": {"bn_stats": STATS_FROZEN_BATCH, "attack_bn_mode": BN_TRAIN}}),
        ),
        rows=("bn_only_params",),
    ),
    Choice(
        id="bn_stats_update",
        question="How BN STATS averages the statistics of the forwarded adversarial batches",
        sentences=(("The statistics are updated by simply forwarding adversarial examples.", "Section 3.3"),
                   ("results do not change when resetting the statistics before forwarding adversarial examples",
                    "Section 3.3")),
        readings=(
            Reading("momentum", "PyTorch's exponential average with momentum 0.1",
                    "PyTorch's default; note that it forgets the start within ~50 steps, so 'reset' and "
                    "'no reset' become nearly the same experiment"),
            Reading("cumulative", "momentum None: the plain average of every batch since the counter's start "
                    "(after the reset, exactly the average over all forwarded batches; without reset PyTorch "
                    "continues NORMAL's batch counter, so NORMAL's statistics keep that many batches' weight)",
                    "makes 'reset' an exact re-estimate on adversarial examples, the experiment the sentence "
                    "about resetting is most informative for",
                    changes=_each(BN_STATS_ROWS, stats_average=CUMULATIVE_AVERAGE)),
        ),
        rows=BN_STATS_ROWS,
    ),
    Choice(
        id="attack_bn",
        question="BN mode while training-time PGD examples are generated",
        sentences=(("For adversarial fine-tuning, we use 10 iterations of PGD with a L-infinity perturbation "
                    "budget of eps = 8/255.", "Section 3.2"),
                   ("The statistics are updated by simply forwarding adversarial examples.", "Section 3.3")),
        readings=(
            Reading("train", "batch statistics, as the training forward pass normalises (running statistics "
                    "restored afterwards); BN ONLY PARAMS under bn_only_params_stats=eval attacks with its "
                    "frozen running statistics, as it trains",
                    "Madry et al.'s [11] reference training code attacks the model in training mode"),
            Reading("eval", "running statistics; the attack leaves them unchanged",
                    f"{PUBLIC_CODE} calls model.eval() before the attack and model.train() after",
                    changes=_each(ATTACKED_ROWS, attack_bn_mode=BN_EVAL)),
        ),
        rows=ATTACKED_ROWS,
    ),
    Choice(
        id="adv_fraction",
        question="Share of each adversarial training batch that is adversarial",
        sentences=(("We fine-tune a normally trained model using adversarial training [11]", "Section 3.1"),
                   ("For adversarial fine-tuning, we use 10 iterations of PGD", "Section 3.2")),
        readings=(
            Reading("1.0", "every training example is a PGD example",
                    "Madry et al.'s [11] adversarial training, which the paper cites"),
            Reading("0.5", "the first half of each batch stays clean, the second half is attacked; both halves go "
                    "through one train-mode forward pass (BN's batch statistics mix them) and the loss is the "
                    "size-weighted sum of the halves' cross-entropies",
                    f"the default fraction=0.5 of {PUBLIC_CODE}",
                    changes=_each(ADVERSARIAL_ROWS, adv_fraction=0.5)),
        ),
        rows=ADVERSARIAL_ROWS,
    ),
    Choice(
        id="bn_only_augmentation",
        question="Augmentation of the NORMAL +BN ONLY rows (clean BN-only training from scratch)",
        sentences=(("For the (normally trained) baseline model, we also employ AutoAugment [2] to improve "
                    "accuracy.", "Section 3.2"),
                   ("Finally, we follow [3] and consider adversarially training only the BN layers", "Section 3.2")),
        readings=(
            Reading("crop_flip", "random crops and flips",
                    "Frankle et al. [3], whose BN-only setup the paper follows, train with crops and flips; the "
                    "sentence names the baseline model only"),
            Reading("autoaugment", "AutoAugment, then crops and flips, as NORMAL",
                    "the sentence read as a rule for all clean training",
                    changes=_each(NORMAL_BN_ONLY_ROWS, augmentation=AUTOAUGMENT)),
        ),
        rows=NORMAL_BN_ONLY_ROWS,
    ),
    Choice(
        id="autoaugment_order",
        question="Order of AutoAugment and crop/flip in NORMAL's pipeline",
        sentences=(("For the (normally trained) baseline model, we also employ AutoAugment [2] to improve "
                    "accuracy.", "Section 3.2"),),
        readings=(
            Reading("autoaugment_then_crop_flip", "AutoAugment on the 32x32 image, then a padded crop and a flip",
                    "torchvision's usual composition (AutoAugment before the tensor crop)"),
            Reading("crop_flip_then_autoaugment", "a padded crop and a flip first, then AutoAugment",
                    "Cubuk et al.'s [2] CIFAR-10 pipeline applies the policy after the standard crop and flip",
                    changes=_each(AUTOAUGMENT_ROWS, autoaugment_order=CROP_FLIP_FIRST),
                    when={"augmentation": AUTOAUGMENT}),
        ),
        rows=AUTOAUGMENT_ROWS,
    ),
    Choice(
        id="adv_checkpoint",
        question="Which weights of an adversarial run from scratch are evaluated",
        sentences=(("The adversarially trained baseline (ADV) achieves 17.67% clean error and improves robustness "
                    "with 58.4% robust error.", "Section 3.3"),),
        readings=(
            Reading("last", "the weights after the last epoch", "the paper mentions no model selection"),
            Reading("best", "the epoch with the highest PGD accuracy on a held-out part of the training set "
                    "(never test images), checked after every epoch; the held-out images are not trained on",
                    "robust overfitting (Rice et al. 2020) is strongest right after the learning-rate decays, "
                    "and early stopping on held-out training images is the usual remedy",
                    changes=_each(ADV_FAMILY, checkpoint_selection=BEST_HELD_OUT)),
        ),
        rows=ADV_FAMILY,
    ),
    Choice(
        id="finetune_epochs",
        question="How many epochs the rows fine-tuned from NORMAL train (the paper gives none)",
        sentences=(("Given a normally trained baseline model (NORMAL), we adversarially fine-tune it by only updating "
                    "the BN statistics (BN STATS) or both the statistics and parameters (BN PARAMS).", "Section 3.2"),),
        readings=(
            Reading("budget", "the budget's epochs_finetune (paper 40, cifar_cpu 4, smoke 1)",
                    "the paper gives no fine-tuning epochs; the paper budget takes a quarter of the from-scratch "
                    "schedule; cifar_cpu the fewest after which BN PARAMS at lr 0.1 can meet the central claim "
                    "(APGD-CE error 87.7 / 85.8 / 80.8 % after 1 / 2 / 4 epochs, results/cifar_cpu/paired)"),
            Reading("8", "eight epochs, the learning rate decaying over all eight",
                    "whether BN PARAMS' missing robustness at cifar_cpu is the one-epoch budget; measured "
                    "there (seed 0, full evaluations after 1, 2, 4 and 8 epochs, results/cifar_cpu/ladder): at lr "
                    "0.01 BN PARAMS' APGD-CE error goes 94.0 -> 92.4 -> 90.0 -> 88.4 %, its curve flat from epoch 5",
                    changes=_each(FINE_TUNING_ROWS, epochs=8)),
        ),
        rows=FINE_TUNING_ROWS,
    ),
    Choice(
        id="finetune_lr",
        question="The peak learning rate of the rows fine-tuned from NORMAL that train parameters (the paper gives none)",
        sentences=(("Again, the statistics are automatically updated through forward passes, while the parameters are "
                    "trained using stochastic gradient descent.", "Section 3.3"),),
        readings=(
            Reading("budget", "the budget's lr_finetune (paper and cifar_cpu 0.1, smoke 0.05)",
                    "the paper gives no rate; 0.1 is the from-scratch peak, and at cifar_cpu the rate under which "
                    "BN PARAMS gains robustness (results/cifar_cpu/paired and ladder)"),
            Reading("0.01", "0.01, the from-scratch rate after its first decay, decaying as the budget's schedule says",
                    "the budgets' rate before the CPU evidence; measured at cifar_cpu (seed 0): BN PARAMS' APGD-CE "
                    "error 97.3 % after one epoch, 94.0 -> 92.4 -> 90.0 -> 88.4 % after 1, 2, 4, 8 of an "
                    "8-epoch schedule (results/cifar_cpu/ladder), against 87.7 % after one epoch at 0.1",
                    changes=_each(FINE_TUNED_PARAMETER_ROWS, lr=0.01)),
            Reading("0.1", "0.1, the from-scratch peak rate, decaying as the budget's schedule says",
                    "the budgets' rate; BN parameters are few (0.15%, Table 1) and may need larger steps; measured at "
                    "cifar_cpu with finetune_epochs=8 (seed 0, results/cifar_cpu/ladder): BN PARAMS' APGD-CE error "
                    "84.1 -> 83.3 -> 79.1 -> 78.0 % after 1, 2, 4, 8 epochs (lr 0.01: 94.0 -> 88.4)",
                    changes=_each(FINE_TUNED_PARAMETER_ROWS, lr=0.1)),
            Reading("0.05", "0.05, decaying as the budget's schedule says",
                    "the rate of the same group's public adversarial-training code (davidstutz/robust-generalization-"
                    "flatness, experiments/iccv/common.py: SGD at lr 0.05 with Nesterov momentum, batch 128)",
                    changes=_each(FINE_TUNED_PARAMETER_ROWS, lr=0.05)),
        ),
        rows=FINE_TUNED_PARAMETER_ROWS,
    ),
    Choice(
        id="figure3_logits",
        question="What Figure 3's logit histogram counts",
        sentences=(("We plot confidence and logit histograms for NORMAL, ADV and BN PARAMS", "Figure 3"),),
        readings=(
            Reading("all", "all N x 10 logits", "a 'logit histogram' of a model read literally"),
            Reading("max", "each example's largest logit", f"what {PUBLIC_CODE} writes to its logit histograms"),
        ),
        rows=(),
        scope=FIGURES,
        figures=("Figure 3",),
    ),
)}
