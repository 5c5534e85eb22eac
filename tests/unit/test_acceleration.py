"""GPU speed-ups fall back cleanly on a CPU; the bf16 wrapper changes precision, not the model."""

import dataclasses

import torch

from repro.acceleration import Autocast, accelerated
from repro.budgets import SMOKE


def test_cpu_runs_the_eager_model_even_with_gpu_options(tiny_model):
    budget = dataclasses.replace(SMOKE, bf16=True, compile=True)
    assert accelerated(tiny_model, budget, "cpu") is tiny_model, "a CPU must run the model itself, uncompiled, fp32"


def test_autocast_returns_fp32_logits(tiny_model, batch):
    logits = Autocast(tiny_model.eval(), "cpu")(batch[0])
    assert logits.dtype == torch.float32, f"the attack's loss must see fp32 logits, got {logits.dtype}"


def test_autocast_shares_the_models_parameters(tiny_model):
    wrapped = {id(p) for p in Autocast(tiny_model, "cpu").parameters()}
    assert wrapped == {id(p) for p in tiny_model.parameters()}, (
        "freezing, checkpoints and BN statistics must act on the original model's tensors")
