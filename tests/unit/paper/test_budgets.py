"""Budgets are data: the paper budget pins the paper's protocol; overrides are parsed and checked."""

import pytest

from repro.paper.budgets import BUDGETS, PAPER, get_budget
from repro.paper.datasets import CIFAR10, SYNTHETIC


def test_paper_budget_is_the_papers_protocol():
    protocol = (PAPER.dataset, PAPER.width, PAPER.epsilon, PAPER.train_attack_steps, PAPER.n_robust,
                PAPER.autoattack_version, PAPER.n_test)
    # Section 3.2: CIFAR-10, ResNet-20 (width 64 for Table 1), PGD-10 at 8/255, AutoAttack on the
    # first 1000 test images; Table 2's clean error on the whole test set.
    assert protocol == (CIFAR10, 64, 8 / 255, 10, 1000, "standard", None), f"paper budget drifted: {protocol}"


def test_smoke_budget_needs_no_download():
    assert BUDGETS["smoke"].dataset == SYNTHETIC, "the default budget must run offline"


def test_override_parses_fractions_and_none():
    budget = get_budget("smoke", {"epsilon": "4/255", "n_train": "None", "nesterov": "false"})
    assert (budget.epsilon, budget.n_train, budget.nesterov) == (4 / 255, None, False), budget


def test_override_rejects_bad_value():
    with pytest.raises(ValueError, match="expects int"):
        get_budget("smoke", {"width": "wide"})


def test_unknown_budget_lists_valid():
    with pytest.raises(ValueError, match="smoke"):
        get_budget("huge")


@pytest.mark.parametrize("field, value", [("epsilon", "-0.1"), ("width", "0"), ("schedule", "cosine")])
def test_invalid_budget_is_refused(field, value):
    with pytest.raises(ValueError, match=field):
        get_budget("smoke", {field: value})


def test_registered_budget_runs_under_its_name():
    assert get_budget("paper").run_name == "paper", "an unmodified budget's runs live in a folder named after it"


def test_training_override_gets_its_own_run_folder():
    changed = get_budget("paper", {"epsilon": "4/255"})
    assert changed.run_name.startswith("paper-") and changed.run_name != "paper", (
        f"a training override must not reuse (or collide with) the paper budget's checkpoints: {changed.run_name}")


def test_evaluation_override_reuses_trained_models():
    changed = get_budget("paper", {"n_robust": "100"})
    assert changed.run_name == "paper", "an evaluation-only override evaluates the same trained models"


def test_override_is_not_judged_by_table2():
    changed = get_budget("paper", {"autoattack_version": "custom"})
    assert changed.table2_name not in ("paper",), "a weakened protocol must not be judged against Table 2"
