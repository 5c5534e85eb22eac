"""A record's readings say what it ran beyond the registered budget: the verdicts of rows that ran under
an earlier budget's defaults must not read "defaults" once the registered budget changed."""

import dataclasses
import json

from repro.paper.budgets import CIFAR_CPU, as_run
from repro.paper.configs import BN_PARAMS, NORMAL
from repro.verdicts.outcome import reading_of


def record(config, budget=CIFAR_CPU, variants=None) -> dict:
    """The parts of a result record reading_of reads, as the pipeline writes them."""
    return {"config": {"id": config.id}, "budget": json.loads(json.dumps(as_run(budget, config))),
            "variants": variants or {}}


def test_a_row_of_the_registered_budget_reads_defaults():
    assert reading_of(record(BN_PARAMS)) == "defaults", "nothing beyond the registered budget ran"


def test_a_fine_tuning_row_of_another_rate_names_the_field_and_its_value():
    earlier = dataclasses.replace(CIFAR_CPU, lr_finetune=0.01, epochs_finetune=1)
    assert reading_of(record(BN_PARAMS, earlier)) == "set epochs_finetune=1; set lr_finetune=0.01", (
        "a row fine-tuned under other fine-tuning fields than the budget's now says which")


def test_normal_is_not_marked_by_a_fine_tuning_field_it_never_read():
    earlier = dataclasses.replace(CIFAR_CPU, lr_finetune=0.01, epochs_finetune=1)
    assert reading_of(record(NORMAL, earlier)) == "defaults", "NORMAL's training reads neither fine-tuning field"


def test_an_evaluation_field_marks_every_row():
    fewer = dataclasses.replace(CIFAR_CPU, n_robust=500)
    assert reading_of(record(NORMAL, fewer)) == "set n_robust=500", "every row's numbers depend on the evaluation"


def test_a_schedule_reading_is_named_once_not_again_as_the_field_it_set():
    earlier = dataclasses.replace(CIFAR_CPU, lr_finetune=0.01)
    old_style = record(BN_PARAMS, earlier, variants={"finetune_lr": "0.1"})
    old_style["budget"].pop("set_by_readings", None)  # records written before the budget block said what ran
    assert reading_of(old_style) == "finetune_lr=0.1", "the reading, not the rate it replaced, says what ran"
