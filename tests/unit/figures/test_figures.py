"""Figures 1-3 (Section 3.3): Equation 1 per layer, shared bins, Figure 2's average difference."""

import dataclasses
import json

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from repro.figures.bn_figures import (
    FIGURE1_QUANTITIES,
    PAPER_LAYER_INDEX,
    average_difference,
    bn_histogram_data,
    figure2_data,
)
from repro.figures.histograms import shared_histograms
from repro.figures.make import load_figure_models, make_figures
from repro.figures.outputs import confidence_logit_data
from repro.mechanics.bn_analysis import mean_m_per_layer, mean_normalized_weight
from repro.mechanics.model import ResNet20, bn_layers
from repro.paper.configs import CONFIGURATIONS
from repro.runs.checkpoint import CheckpointError, save_checkpoint
from repro.runs.data import synthetic_dataset
from repro.runs.run_state import CHECKPOINT_NAME, run_identity

N_BN_LAYERS = 21  # conv1's BN, 9 blocks x 2, and 2 projection shortcuts


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Width-2 models gain nothing from intra-op threads, and on a busy 2-core machine two threads
    wait on each other (a 1-step PGD took 1.3 s with two, 0.03 s with one); restored afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def small_model(seed: int) -> ResNet20:
    """A width-2 ResNet-20 whose BN parameters and statistics are random but reproducible."""
    torch.manual_seed(seed)
    model = ResNet20(width=2).eval()
    with torch.no_grad():
        for _, layer in bn_layers(model):
            layer.weight.normal_(1.0, 0.3)
            layer.bias.normal_(0.0, 0.3)
            layer.running_mean.normal_(0.0, 1.0)
            layer.running_var.uniform_(0.5, 2.0)
    return model


def constant_m_model(m: float) -> ResNet20:
    """A model whose normalized weight is `m` in every channel of every BN layer."""
    model = ResNet20(width=2).eval()
    with torch.no_grad():
        for _, layer in bn_layers(model):
            layer.running_var.fill_(3.0)
            layer.eps = 1.0  # sqrt(var + eps) = 2 exactly, so gamma = 2m gives m
            layer.weight.fill_(2 * m)
    return model


@pytest.fixture(scope="module")
def models():
    return {"normal": small_model(0), "adv": small_model(1), "bn_params": small_model(2)}


def test_paper_layer_is_first_bn_of_second_stage(models):
    data = bn_histogram_data(models, PAPER_LAYER_INDEX, bins=5)
    assert data["layer_name"] == "blocks.3.bn1", f"the paper's 8th layer resolved to {data['layer_name']}"


def test_figure1_values_follow_equation1_by_hand():
    model = ResNet20(width=2).eval()
    layer = bn_layers(model)[PAPER_LAYER_INDEX][1]  # 4 channels at width 2
    with torch.no_grad():
        layer.eps = 1.0
        layer.weight.copy_(torch.tensor([2.0, -3.0, 1.0, 0.0]))
        layer.bias.copy_(torch.tensor([0.5, 1.0, 0.0, -1.0]))
        layer.running_mean.copy_(torch.tensor([1.0, -2.0, 5.0, 7.0]))
        layer.running_var.copy_(torch.tensor([3.0, 8.0, 0.0, 15.0]))
    values = bn_histogram_data({"normal": model}, PAPER_LAYER_INDEX, bins=4)["values"]["normal"]
    # sqrt(var + eps) = 2, 3, 1, 4; m = gamma / that; b = beta - m * mu.
    expected = {"gamma": [2, -3, 1, 0], "beta": [0.5, 1, 0, -1], "m": [1, -1, 1, 0], "b": [-0.5, -1, -5, -1]}
    for q, want in expected.items():
        assert np.allclose(values[q], want), f"{q}: got {values[q]}, Equation 1 by hand gives {want}"


@pytest.mark.parametrize("quantity", FIGURE1_QUANTITIES)
def test_figure1_counts_sum_to_channels(models, quantity):
    data = bn_histogram_data(models, PAPER_LAYER_INDEX, bins=7)
    channels = bn_layers(models["normal"])[PAPER_LAYER_INDEX][1].num_features
    sums = {key: sum(c[quantity]) for key, c in data["counts"].items()}
    assert sums == {key: channels for key in models}, f"{quantity} counts {sums}, expected {channels} each"


@pytest.mark.parametrize("quantity", FIGURE1_QUANTITIES)
def test_figure1_edges_span_every_model(models, quantity):
    data = bn_histogram_data(models, PAPER_LAYER_INDEX, bins=7)
    union = [v for key in models for v in data["values"][key][quantity]]
    edges = data["edges"][quantity]
    assert (edges[0], edges[-1]) == pytest.approx((min(union), max(union))), \
        f"{quantity} edges {edges[0]}..{edges[-1]} must span all models' values {min(union)}..{max(union)}"
    assert all(len(c[quantity]) == 7 for c in data["counts"].values()), "every model counts over the same 7 bins"


@settings(max_examples=40, deadline=None)
@given(st.dictionaries(st.sampled_from("abc"), st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=20), min_size=1),
       st.integers(1, 12))
def test_shared_histogram_counts_every_value_once(values, bins):
    edges, counts = shared_histograms({k: np.array(v) for k, v in values.items()}, bins)
    assert {k: sum(c) for k, c in counts.items()} == {k: len(v) for k, v in values.items()}, \
        f"counts over edges {edges[0]}..{edges[-1]} lose or double-count values"


def test_mean_m_per_layer_is_per_bn_layer_mean(models):
    model = models["adv"]
    by_hand = [(layer.weight / torch.sqrt(layer.running_var + layer.eps)).mean().item()
               for _, layer in bn_layers(model)]
    assert mean_m_per_layer(model) == pytest.approx(by_hand, rel=1e-6), "per-layer mean m differs from Equation 1"


def test_figure2_difference_of_constant_m_models():
    data = figure2_data({"normal": constant_m_model(1.0), "bn_params": constant_m_model(0.5)})
    assert data["average_difference"]["value"] == pytest.approx(-0.5), \
        f"m = 0.5 everywhere minus m = 1 everywhere must give -0.5, got {data['average_difference']}"


def test_figure2_uses_every_bn_layer_for_every_model(models):
    data = figure2_data(models)
    lengths = {key: len(v) for key, v in data["mean_m"].items()}
    assert data["layers"] == [n for n, _ in bn_layers(models["normal"])] and set(lengths.values()) == {N_BN_LAYERS}, \
        f"expected the {N_BN_LAYERS} BN layers for every model, got {lengths}"


def test_average_difference_agrees_with_mean_normalized_weight(models):
    # An independent route: bn_analysis averages per-layer means of m over layers, per model.
    expected = mean_normalized_weight(models["bn_params"]) - mean_normalized_weight(models["normal"])
    got = average_difference(models["bn_params"], models["normal"])
    assert got == pytest.approx(expected, abs=1e-6), f"average difference {got} != {expected}"


class OtherNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.norm = nn.BatchNorm2d(4)


@pytest.mark.parametrize("compute", [
    lambda a, b: figure2_data({"normal": a, "bn_params": b}),
    lambda a, b: bn_histogram_data({"normal": a, "bn_params": b}, 0, 5),
    average_difference,
], ids=["figure2_data", "bn_histogram_data", "average_difference"])
def test_mismatched_layers_raise(compute):
    with pytest.raises(ValueError, match="different BN layers"):
        compute(ResNet20(width=2), OtherNet())


def test_missing_models_are_all_named_with_train_command(tmp_path, micro_budget):
    with pytest.raises(CheckpointError) as error:
        load_figure_models(tmp_path / "micro" / "seed0", micro_budget, 0)
    assert "repro train normal adv bn_params --budget micro --seed 0" in str(error.value), \
        f"the error must name every missing model and the train command: {error.value}"


def save_finished(folder, config_id, budget, seed=0, epoch=1):
    state = {**run_identity(CONFIGURATIONS[config_id], budget, seed), "epoch": epoch, "epochs": 1,
             "model": ResNet20(budget.width).state_dict(), "train_seconds": 0.0}
    save_checkpoint(folder / config_id / CHECKPOINT_NAME, state)


def test_only_missing_models_are_named(tmp_path, micro_budget):
    save_finished(tmp_path, "normal", micro_budget)
    with pytest.raises(CheckpointError) as error:
        load_figure_models(tmp_path, micro_budget, 0)
    assert "repro train adv bn_params --budget micro" in str(error.value), f"got: {error.value}"


def test_unfinished_run_gets_resume_command(tmp_path, micro_budget):
    for config_id in ("normal", "adv"):
        save_finished(tmp_path, config_id, micro_budget)
    save_finished(tmp_path, "bn_params", micro_budget, epoch=0)
    with pytest.raises(CheckpointError) as error:
        load_figure_models(tmp_path, micro_budget, 0)
    assert "repro train bn_params --budget micro --seed 0" in str(error.value) and "--resume`" in str(error.value), \
        f"an unfinished run must be resumed, not retrained: {error.value}"


def test_finished_runs_load_in_figure_order(tmp_path, micro_budget):
    for config_id in ("bn_params", "normal", "adv"):
        save_finished(tmp_path, config_id, micro_budget)
    loaded = load_figure_models(tmp_path, micro_budget, 0)
    assert list(loaded) == ["normal", "adv", "bn_params"], f"loaded {list(loaded)}"


@pytest.fixture(scope="module")
def figure3(models):
    data = synthetic_dataset(n_train=64, n_test=32)
    return confidence_logit_data(models, data.test_images[:12], data.test_labels[:12], epsilon=8 / 255,
                                 steps=1, seed=0, bins=6, batch_size=8)


@pytest.mark.parametrize("condition", ["clean", "adversarial"])
def test_figure3_counts_every_image_and_logit(figure3, condition):
    sums = {key: (sum(v[condition]["confidence_counts"]), sum(v[condition]["logit_counts"]))
            for key, v in figure3["models"].items()}
    assert set(sums.values()) == {(12, 12 * 10)}, f"{condition}: (confidence, logit) counts {sums}"


def test_figure3_bins_are_shared(figure3):
    lengths = {(key, c, q): len(v[c][q]) for key, v in figure3["models"].items() for c in v
               for q in ("confidence_counts", "logit_counts")}
    assert set(lengths.values()) == {6} and len(figure3["logit_edges"]) == len(figure3["confidence_edges"]) == 7, \
        f"one set of 6 bins per quantity for every model and condition: {lengths}"


@pytest.fixture(scope="module")
def written(models, tmp_path_factory):
    from repro.paper.budgets import SMOKE

    budget = dataclasses.replace(SMOKE, width=2, n_robust=8, eval_pgd_steps=1)
    run_folder = tmp_path_factory.mktemp("run")
    paths = make_figures(run_folder, budget, 0, "cpu", synthetic_dataset(n_train=64, n_test=32), bins=5,
                         models=models)
    return run_folder, paths


def test_make_figures_writes_into_run_folder_figures(written):
    run_folder, paths = written
    names = sorted(p.relative_to(run_folder).as_posix() for p in paths)
    expected = sorted(f"figures/figure{n}.{ext}" for n in (1, 2, 3) for ext in ("json", "png"))
    assert names == expected, f"wrote {names}"


@pytest.mark.parametrize("number", [1, 2, 3])
def test_make_figures_png_is_a_png(written, number):
    head = (written[0] / "figures" / f"figure{number}.png").read_bytes()[:8]
    assert head == b"\x89PNG\r\n\x1a\n", f"figure{number}.png starts with {head!r}"


@pytest.mark.parametrize("number, key", [(1, "counts"), (2, "mean_m"), (3, "models")])
def test_make_figures_json_holds_the_numbers(written, number, key):
    payload = json.loads((written[0] / "figures" / f"figure{number}.json").read_text())
    assert key in payload and payload["provenance"]["seed"] == 0, f"figure{number}.json keys: {sorted(payload)}"


def test_figure3_distances_to_adv_are_computed_from_the_stored_confidences(figure3):
    from repro.verdicts.distances import wasserstein1

    stored = figure3["models"]
    distances = figure3["wasserstein1"]["confidence"]
    expected = {key: {c: wasserstein1(stored[key][c]["confidences"], stored["adv"][c]["confidences"])
                      for c in ("clean", "adversarial")} for key in stored}
    assert distances == expected and distances["adv"] == {"clean": 0.0, "adversarial": 0.0} and \
        distances["normal"]["clean"] > 0, f"figure3.json's W1 to ADV must follow from its inputs: {distances}"


def test_figure3_stores_one_confidence_per_image(figure3):
    lengths = {(key, c): len(v[c]["confidences"]) for key, v in figure3["models"].items() for c in v}
    assert set(lengths.values()) == {12}, f"one confidence per image and condition: {lengths}"
