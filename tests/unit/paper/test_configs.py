"""The configuration registry against Table 1 and Table 2."""

import dataclasses
import re

import pytest

from repro.mechanics.model import ResNet20, count_parameters
from repro.paper.configs import (
    AUTOAUGMENT,
    CONFIGURATIONS,
    CROP_FLIP,
    FROM_NORMAL,
    RANDOM_INIT,
    STATS_FROZEN,
    UnknownConfigurationError,
    get_configuration,
)
from repro.paper.groups import PARAMETER_GROUPS
from repro.paper.table1 import table1_percent, trainable_fraction

TABLE2_LABELS = [
    "NORMAL", "NORMAL +BN ONLY", "NORMAL +BN ONLY + log + conv1", "ADV", "ADV +BN ONLY",
    "ADV +BN ONLY + log + conv1", "BN STATS (no reset)", "BN STATS (reset)", "BN ONLY PARAMS",
    "BN PARAMS", "BN PARAMS + log + conv1",
]

# Table 1: (all, BN params, BN stats, %params) per row; "(0.15)" for BN STATS is the statistics'
# share. The extracted table renders the check marks of "+BN ONLY" and "BN STATS" ambiguously;
# these follow the caption ("finetuning only the BN statistics (BN STATS) ...").
TABLE1 = {
    "NORMAL/ADV": (True, True, True, 100.00),
    "+BN ONLY": (False, True, True, 0.15),
    "BN STATS": (False, False, True, 0.15),
    "BN PARAMS": (False, True, True, 0.15),
}


def test_registry_follows_table2_order():
    assert [c.label for c in CONFIGURATIONS.values()] == TABLE2_LABELS, "one entry per Table 2 row, in order"


@pytest.mark.parametrize("config_id", CONFIGURATIONS)
def test_id_is_snake_case(config_id):
    assert re.fullmatch(r"[a-z][a-z0-9_]*", config_id), f"{config_id!r} is not snake_case"


@pytest.mark.parametrize("config", [c for c in CONFIGURATIONS.values() if c.table1_row], ids=lambda c: c.id)
def test_table1_columns(config):
    paper_model = ResNet20(width=64)
    sizes = {g: count_parameters(paper_model, (g,)) for g in PARAMETER_GROUPS}
    derived = (config.trains_all, config.trains_bn_params, config.updates_bn_stats,
               table1_percent(trainable_fraction(config, sizes)))
    assert derived == TABLE1[config.table1_row], f"{config.id} vs Table 1 row {config.table1_row}"


@pytest.mark.parametrize("config", CONFIGURATIONS.values(), ids=lambda c: c.id)
def test_fine_tuning_rows_start_from_normal(config):
    fine_tunes = config.id.startswith("bn_")
    assert config.init == (FROM_NORMAL if fine_tunes else RANDOM_INIT), f"{config.id} starts wrongly"


@pytest.mark.parametrize("config", CONFIGURATIONS.values(), ids=lambda c: c.id)
def test_only_normal_baseline_uses_autoaugment(config):
    expected = AUTOAUGMENT if config.id == "normal" else CROP_FLIP
    assert config.augmentation == expected, "Section 3.2: AutoAugment for the baseline only"


def test_only_bn_only_params_freezes_statistics():
    frozen = [c.id for c in CONFIGURATIONS.values() if c.bn_stats == STATS_FROZEN]
    assert frozen == ["bn_only_params"], "Section 3.3: only BN ONLY PARAMS keeps the statistics"


def test_unknown_configuration_lists_valid_ids():
    with pytest.raises(UnknownConfigurationError, match="bn_params_log_conv1"):
        get_configuration("bn-params")


def test_invalid_field_is_rejected():
    with pytest.raises(ValueError, match="objective"):
        dataclasses.replace(CONFIGURATIONS["adv"], objective="fgsm")


def test_configurations_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        CONFIGURATIONS["adv"].trainable = ()
