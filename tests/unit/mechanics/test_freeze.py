"""Applying a configuration sets exactly its trainable tensors and its BN behaviour (Table 1)."""

import dataclasses

import pytest
import torch

import repro.mechanics.train_step
from repro.mechanics.attacks import PGDSettings
from repro.mechanics.freeze import apply_configuration, bn_buffers, train_mode
from repro.mechanics.model import ResNet20, bn_layers, count_parameters
from repro.mechanics.train_step import train_step
from repro.paper.configs import (
    ADVERSARIAL,
    BN_EVAL,
    BN_TRAIN,
    CLEAN,
    CONFIGURATIONS,
    CUMULATIVE_AVERAGE,
    FORWARD_ADVERSARIAL,
    STATS_FROZEN,
    STATS_RESET,
    STATS_UPDATE,
)
from repro.paper.groups import BN, CONV1, LOGITS, REST

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
# BN statistics policy per row, from the paper rather than the registry. Table 1: statistics are
# updated from scratch (NORMAL/ADV, "+BN ONLY": "training only the BN parameters (and statistics)")
# and by BN STATS and BN PARAMS; Section 3.3: BN ONLY PARAMS is "*Not* updating the BN statistics";
# only BN STATS (reset) resets them ("resetting the statistics before forwarding adversarial examples").
EXPECTED_BN_STATS = {
    "normal": STATS_UPDATE, "normal_bn_only": STATS_UPDATE, "normal_bn_only_log_conv1": STATS_UPDATE,
    "adv": STATS_UPDATE, "adv_bn_only": STATS_UPDATE, "adv_bn_only_log_conv1": STATS_UPDATE,
    "bn_stats_no_reset": STATS_UPDATE, "bn_stats_reset": STATS_RESET, "bn_only_params": STATS_FROZEN,
    "bn_params": STATS_UPDATE, "bn_params_log_conv1": STATS_UPDATE,
}
EXPECTED_RESET = {"bn_stats_reset"}
# Objective per row. Section 3.2: NORMAL and its BN-only variants train normally; ADV is adversarial
# training [11]; "we adversarially fine-tune it by only updating the BN statistics (BN STATS) or both
# the statistics and parameters (BN PARAMS)"; Section 3.3: BN STATS statistics "are updated by simply
# forwarding adversarial examples"; BN ONLY PARAMS learns the BN parameters adversarially.
EXPECTED_OBJECTIVE = {
    "normal": CLEAN, "normal_bn_only": CLEAN, "normal_bn_only_log_conv1": CLEAN,
    "adv": ADVERSARIAL, "adv_bn_only": ADVERSARIAL, "adv_bn_only_log_conv1": ADVERSARIAL,
    "bn_stats_no_reset": FORWARD_ADVERSARIAL, "bn_stats_reset": FORWARD_ADVERSARIAL,
    "bn_only_params": ADVERSARIAL, "bn_params": ADVERSARIAL, "bn_params_log_conv1": ADVERSARIAL,
}
# BN mode while training-time PGD examples are generated, for the rows that generate them. The paper
# does not say: batch statistics (as Madry et al.'s [11] training does) wherever statistics are
# updated; running statistics for BN ONLY PARAMS, whose frozen BN normalises with them throughout.
EXPECTED_ATTACK_BN_MODE = {
    "adv": BN_TRAIN, "adv_bn_only": BN_TRAIN, "adv_bn_only_log_conv1": BN_TRAIN,
    "bn_stats_no_reset": BN_TRAIN, "bn_stats_reset": BN_TRAIN, "bn_only_params": BN_EVAL,
    "bn_params": BN_TRAIN, "bn_params_log_conv1": BN_TRAIN,
}
CHEAP_ATTACK = PGDSettings(steps=1)  # the mechanics, not the strength, are under test here


def test_expectations_cover_registry():
    tables = (EXPECTED_TRAINABLE, EXPECTED_STATS_MOVE, EXPECTED_BN_STATS, EXPECTED_OBJECTIVE)
    uncovered = {c for table in tables for c in set(CONFIGURATIONS) ^ set(table)}
    assert uncovered == set(), f"rows without written expectations (or expectations without a row): {uncovered}"


def test_attack_expectations_cover_attacking_rows():
    attacking = {c for c, objective in EXPECTED_OBJECTIVE.items() if objective != CLEAN}
    assert set(EXPECTED_ATTACK_BN_MODE) == attacking, "every row that attacks needs its BN mode written out"


@pytest.mark.parametrize("config_id", CONFIGURATIONS)
def test_bn_statistics_policy_is_papers(config_id):
    policy = CONFIGURATIONS[config_id].bn_stats
    assert policy == EXPECTED_BN_STATS[config_id], f"{config_id}: BN statistics {policy!r}, paper: {EXPECTED_BN_STATS[config_id]!r}"


def test_only_bn_stats_reset_resets():
    resetting = {c for c, policy in EXPECTED_BN_STATS.items() if policy == STATS_RESET}
    registry = {c.id for c in CONFIGURATIONS.values() if c.bn_stats == STATS_RESET}
    assert resetting == registry == EXPECTED_RESET, f"Section 3.3 resets for BN STATS (reset) only; registry: {registry}"


@pytest.mark.parametrize("config_id", CONFIGURATIONS)
def test_objective_is_papers(config_id):
    objective = CONFIGURATIONS[config_id].objective
    assert objective == EXPECTED_OBJECTIVE[config_id], f"{config_id}: objective {objective!r}, paper: {EXPECTED_OBJECTIVE[config_id]!r}"


@pytest.mark.parametrize("config_id", EXPECTED_ATTACK_BN_MODE)
def test_attack_bn_mode_is_expected(config_id):
    mode = CONFIGURATIONS[config_id].attack_bn_mode
    assert mode == EXPECTED_ATTACK_BN_MODE[config_id], f"{config_id}: attacks with BN in {mode!r} mode"


def attack_spy(monkeypatch, model):
    """Record, for every forward pass inside the training step's PGD call, whether BN layers train."""
    real_pgd = repro.mechanics.train_step.pgd
    seen = {"calls": 0, "bn_training": set()}
    inside = [False]

    def spy(*args, **kwargs):
        seen["calls"] += 1
        inside[0] = True
        try:
            return real_pgd(*args, **kwargs)
        finally:
            inside[0] = False

    def hook(layer, _inputs):
        if inside[0]:
            seen["bn_training"].add(layer.training)

    monkeypatch.setattr(repro.mechanics.train_step, "pgd", spy)
    for _, layer in bn_layers(model):
        layer.register_forward_pre_hook(hook)
    return seen


def one_step_with_spy(config_id, batch, monkeypatch):
    config = CONFIGURATIONS[config_id]
    model, trainable = configured(config_id)
    seen = attack_spy(monkeypatch, model)
    optimizer = torch.optim.SGD(trainable, lr=0.1) if trainable else None
    train_step(model, config, optimizer, *batch, CHEAP_ATTACK, seed=0)
    return seen


@pytest.mark.parametrize("config_id", CONFIGURATIONS)
def test_attack_runs_only_for_adversarial_objectives(config_id, batch, monkeypatch):
    seen = one_step_with_spy(config_id, batch, monkeypatch)
    attacks = EXPECTED_OBJECTIVE[config_id] != CLEAN
    assert (seen["calls"] > 0) == attacks, f"{config_id}: PGD called {seen['calls']} times, expected {'some' if attacks else 'none'}"


@pytest.mark.parametrize("config_id", EXPECTED_ATTACK_BN_MODE)
def test_attack_runs_in_expected_bn_mode(config_id, batch, monkeypatch):
    seen = one_step_with_spy(config_id, batch, monkeypatch)
    expected = {EXPECTED_ATTACK_BN_MODE[config_id] == BN_TRAIN}
    assert seen["bn_training"] == expected, f"{config_id}: BN training flags during the attack {seen['bn_training']}, expected {expected}"


def configured(config_id):
    torch.manual_seed(0)
    model = ResNet20(width=2)
    trainable = apply_configuration(model, CONFIGURATIONS[config_id])
    return model, trainable


def names_by_module_type(model, groups):
    """Parameter names of `groups`, found from module types, not from the model's group mapping.

    BN: every BatchNorm's gamma and beta; logits: the Linear layer; conv1: the one convolution
    that reads the 3-channel image; rest: every other convolution.
    """
    def group(module):
        if isinstance(module, torch.nn.BatchNorm2d):
            return BN
        if isinstance(module, torch.nn.Linear):
            return LOGITS
        if isinstance(module, torch.nn.Conv2d):
            return CONV1 if module.in_channels == 3 else REST
        raise AssertionError(f"unexpected module with parameters: {module}")

    return {
        f"{name}.{p}" if name else p
        for name, module in model.named_modules()
        for p, _ in module.named_parameters(recurse=False)
        if group(module) in groups
    }


def test_stem_is_the_only_image_convolution():
    convolutions = [n for n, m in ResNet20(width=2).named_modules() if isinstance(m, torch.nn.Conv2d) and m.in_channels == 3]
    assert convolutions == ["conv1"], f"names_by_module_type takes conv1 to be the one 3-channel convolution: {convolutions}"


@pytest.mark.parametrize("config_id", CONFIGURATIONS)
def test_requires_grad_matches_table(config_id):
    model, _ = configured(config_id)
    expected = names_by_module_type(model, EXPECTED_TRAINABLE[config_id])
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
    expected = names_by_module_type(model, EXPECTED_TRAINABLE[config_id])
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


@pytest.mark.parametrize("config_id", sorted(EXPECTED_RESET))
def test_reset_sets_mean0_var1(config_id):
    model = moved_statistics_model()
    apply_configuration(model, CONFIGURATIONS[config_id])
    for name, layer in bn_layers(model):
        assert torch.all(layer.running_mean == 0), f"{name}: mean not reset to 0"
        assert torch.all(layer.running_var == 1), f"{name}: variance not reset to 1"
        assert layer.num_batches_tracked.item() == 0, f"{name}: counter not reset"


@pytest.mark.parametrize("config_id", sorted(set(CONFIGURATIONS) - EXPECTED_RESET))
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


def test_cumulative_average_is_plain_mean_of_batch_statistics():
    """The cumulative-average reading (repro/paper/choices.py) makes every BN's running mean the
    equal-weight average of the batch means it has seen, not a momentum-weighted one."""
    config = dataclasses.replace(CONFIGURATIONS["bn_stats_no_reset"], stats_average=CUMULATIVE_AVERAGE)
    torch.manual_seed(0)
    model = ResNet20(width=2)
    apply_configuration(model, config)
    train_mode(model, config)
    batch_means = {name: [] for name, _ in bn_layers(model)}
    for name, layer in bn_layers(model):
        layer.register_forward_pre_hook(lambda _, inputs, name=name: batch_means[name].append(inputs[0].mean((0, 2, 3))))
    with torch.no_grad():
        for _ in range(3):
            model(torch.rand(4, 3, 32, 32))
    for name, layer in bn_layers(model):
        expected = torch.stack(batch_means[name]).mean(0)
        assert torch.allclose(layer.running_mean, expected, atol=1e-6), (
            f"{name}: running mean {layer.running_mean} is not the plain average {expected} of the 3 batch means seen"
        )
