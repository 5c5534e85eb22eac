"""Applying a configuration sets exactly its trainable tensors and its BN behaviour (Table 1)."""

import pytest
import torch

from repro.attacks import PGDSettings
from repro.configs import CONFIGURATIONS, STATS_RESET
from repro.freeze import apply_configuration, bn_buffers, train_mode
from repro.model import BN, CONV1, LOGITS, REST, ResNet20, bn_layers, count_parameters, parameters_in
from repro.train_step import train_step

ALL = {BN, LOGITS, CONV1, REST}
# Written out per Table 2 row, independently of the registry's `trainable` field.
EXPECTED_TRAINABLE = {
    "normal": ALL,
    "normal_bn_only": {BN},
    "normal_bn_only_log_conv1": {BN, LOGITS, CONV1},
    "adv": ALL,
    "adv_bn_only": {BN},
    "adv_bn_only_log_conv1": {BN, LOGITS, CONV1},
    "bn_stats_no_reset": set(),
    "bn_stats_reset": set(),
    "bn_only_params": {BN},
    "bn_params": {BN},
    "bn_params_log_conv1": {BN, LOGITS, CONV1},
}
EXPECTED_STATS_MOVE = {
    "normal": True, "normal_bn_only": True, "normal_bn_only_log_conv1": True, "adv": True,
    "adv_bn_only": True, "adv_bn_only_log_conv1": True, "bn_stats_no_reset": True,
    "bn_stats_reset": True, "bn_only_params": False, "bn_params": True, "bn_params_log_conv1": True,
}
CHEAP_ATTACK = PGDSettings(steps=1)  # the mechanics, not the strength, are under test here


def test_expectations_cover_registry():
    assert set(EXPECTED_TRAINABLE) == set(CONFIGURATIONS) == set(EXPECTED_STATS_MOVE), "a row lacks expectations"


def configured(config_id):
    torch.manual_seed(0)
    model = ResNet20(width=2)
    trainable = apply_configuration(model, CONFIGURATIONS[config_id])
    return model, trainable


@pytest.mark.parametrize("config_id", CONFIGURATIONS)
def test_requires_grad_matches_table(config_id):
    model, _ = configured(config_id)
    expected = {n for n, _ in parameters_in(model, tuple(EXPECTED_TRAINABLE[config_id]))}
    actual = {n for n, p in model.named_parameters() if p.requires_grad}
    assert actual == expected, f"{config_id}: wrong tensors require grad: {sorted(actual ^ expected)}"


@pytest.mark.parametrize("config_id", CONFIGURATIONS)
def test_two_steps_change_exactly_trainable_tensors(config_id, batch):
    config = CONFIGURATIONS[config_id]
    model, trainable = configured(config_id)
    optimizer = torch.optim.SGD(trainable, lr=0.1, momentum=0.9, weight_decay=5e-4) if trainable else None
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    for step in range(2):
        train_step(model, config, optimizer, *batch, CHEAP_ATTACK, seed=step)
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    expected = {n for n, _ in parameters_in(model, tuple(EXPECTED_TRAINABLE[config_id]))}
    assert changed == expected, f"{config_id}: changed tensors differ from trainable: {sorted(changed ^ expected)}"


@pytest.mark.parametrize("config_id", CONFIGURATIONS)
def test_bn_statistics_move_only_when_allowed(config_id, batch):
    config = CONFIGURATIONS[config_id]
    model, trainable = configured(config_id)
    optimizer = torch.optim.SGD(trainable, lr=0.1) if trainable else None
    before = bn_buffers(model)
    train_step(model, config, optimizer, *batch, CHEAP_ATTACK, seed=0)
    moved = {n for n, b in bn_buffers(model).items() if not torch.equal(b, before[n])}
    if EXPECTED_STATS_MOVE[config_id]:
        assert moved == set(before), f"{config_id}: statistics must all update, unchanged: {sorted(set(before) - moved)}"
    else:
        assert moved == set(), f"{config_id}: statistics are frozen but moved: {sorted(moved)}"


@pytest.mark.parametrize("config_id", [c for c, v in EXPECTED_STATS_MOVE.items() if not v])
def test_frozen_statistics_normalise_with_running_stats(config_id):
    model, _ = configured(config_id)
    train_mode(model, CONFIGURATIONS[config_id])
    training = [n for n, layer in bn_layers(model) if layer.training]
    assert training == [], f"{config_id}: BN layers in training mode: {training}"


def moved_statistics_model():
    torch.manual_seed(0)
    model = ResNet20(width=2).train()
    with torch.no_grad():
        model(torch.rand(8, 3, 32, 32))
    return model


@pytest.mark.parametrize("config_id", [c.id for c in CONFIGURATIONS.values() if c.bn_stats == STATS_RESET])
def test_reset_sets_mean0_var1(config_id):
    model = moved_statistics_model()
    apply_configuration(model, CONFIGURATIONS[config_id])
    for name, layer in bn_layers(model):
        assert torch.all(layer.running_mean == 0), f"{name}: mean not reset to 0"
        assert torch.all(layer.running_var == 1), f"{name}: variance not reset to 1"
        assert layer.num_batches_tracked.item() == 0, f"{name}: counter not reset"


@pytest.mark.parametrize("config_id", [c.id for c in CONFIGURATIONS.values() if c.bn_stats != STATS_RESET])
def test_no_reset_keeps_statistics(config_id):
    model = moved_statistics_model()
    before = bn_buffers(model)
    apply_configuration(model, CONFIGURATIONS[config_id])
    unchanged = all(torch.equal(b, before[n]) for n, b in bn_buffers(model).items())
    assert unchanged, f"{config_id}: applying the configuration changed BN statistics"


@pytest.mark.parametrize("config_id", [c for c, groups in EXPECTED_TRAINABLE.items() if groups == {BN}])
def test_bn_only_trains_table1_fraction(config_id):
    model = ResNet20(width=64)
    trainable = apply_configuration(model, CONFIGURATIONS[config_id])
    percent = 100 * sum(p.numel() for p in trainable) / count_parameters(model)
    assert abs(percent - 0.145) < 0.0005, f"{config_id}: trains {percent:.4f}% of parameters, Table 1: 0.15%"
