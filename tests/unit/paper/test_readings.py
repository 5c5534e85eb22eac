"""Every reading of the paper's open choices does exactly what it says (repro/paper/variants.py).

Each test trains or augments under a reading selected the way the command line selects it
(apply_variants on the registry row) and observes what the model saw or kept: BN modes and
statistics inside the attack and the training forward, which examples were attacked, which
images were augmented how, which weights were selected and on which images.
"""

import numpy as np
import pytest
import torch
from torch.nn import functional as F

import repro.mechanics.train_step
import repro.runs.augmentation
import repro.runs.selection
import repro.runs.training
from repro.figures.outputs import confidence_logit_data
from repro.mechanics.attacks import PGDSettings
from repro.mechanics.freeze import apply_configuration
from repro.mechanics.model import bn_layers
from repro.mechanics.train_step import train_step
from repro.paper.configs import AUTOAUGMENT, CONFIGURATIONS, CROP_FLIP_FIRST
from repro.paper.variants import apply_variants
from repro.runs.checkpoint import load_checkpoint
from repro.runs.augmentation import augment, autoaugment, random_crop_flip
from repro.runs.data import synthetic_dataset
from repro.runs.run_state import CHECKPOINT_NAME, checkpoint_selection, load_trained_model
from repro.runs.training import train
from tests.conftest import make_micro_budget

ATTACK = PGDSettings(epsilon=8 / 255, step_size=4 / 255, steps=2)


def varied(config_id, **variants):
    return apply_variants(CONFIGURATIONS[config_id], variants)


def first_bn(model):
    return bn_layers(model)[0][1]


def record_bn_calls(layer):
    """Per forward call of `layer`: its training flag, running mean before the call, input and output."""
    calls = []

    def before(module, inputs):
        calls.append({"training": module.training, "mean": module.running_mean.clone(),
                      "input": inputs[0].detach().clone()})

    def after(module, inputs, output):
        calls[-1]["output"] = output.detach().clone()

    layer.register_forward_pre_hook(before)
    layer.register_forward_hook(after)
    return calls


def step_once(model, config, batch, attack=ATTACK):
    trainable = apply_configuration(model, config)
    optimizer = torch.optim.SGD(trainable, lr=0.1) if trainable else None
    images, labels = batch
    return train_step(model, config, optimizer, images, labels, attack, seed=0)


# --- attack_bn ------------------------------------------------------------------------------

@pytest.mark.parametrize("config_id", ["adv", "bn_params", "bn_stats_reset"])
def test_attack_bn_eval_attacks_with_running_statistics_and_leaves_them(tiny_model, batch, config_id):
    layer = first_bn(tiny_model)
    config = varied(config_id, attack_bn="eval")
    apply_configuration(tiny_model, config)
    before = layer.running_mean.clone()
    calls = record_bn_calls(layer)
    step_once(tiny_model, config, batch)
    attack, training = calls[:ATTACK.steps], calls[ATTACK.steps:]
    assert [c["training"] for c in attack] == [False] * ATTACK.steps, "the attack must see running statistics"
    assert all(torch.equal(c["mean"], before) for c in attack + training[:1]), (
        "the attack moved the running statistics before the training forward")
    assert training and training[0]["training"], f"{config_id}: the training forward itself still trains BN"


def test_attack_bn_train_attacks_with_batch_statistics(tiny_model, batch):
    calls = record_bn_calls(first_bn(tiny_model))
    step_once(tiny_model, varied("adv"), batch)
    assert [c["training"] for c in calls[:ATTACK.steps]] == [True] * ATTACK.steps, (
        "the default reading attacks with batch statistics, as ADV trains")


# --- bn_only_params_stats ---------------------------------------------------------------------

def stored_statistics(layer):
    """Give `layer` running statistics unlike any batch's (NORMAL's, say); returns its (weight, bias) now."""
    with torch.no_grad():
        layer.running_mean.fill_(0.3)
        layer.running_var.fill_(2.0)
    return layer.weight.detach().clone(), layer.bias.detach().clone()


def normalised(x, mean, var, weight, bias, eps):
    shape = (1, -1, 1, 1)
    return (x - mean.view(shape)) / torch.sqrt(var.view(shape) + eps) * weight.view(shape) + bias.view(shape)


def test_frozen_batch_trains_on_batch_statistics_and_moves_no_running_statistic(tiny_model, batch):
    layer = first_bn(tiny_model)
    weight, bias = stored_statistics(layer)  # the forward runs with these, before the optimiser step
    buffers = {k: v.clone() for k, v in tiny_model.named_buffers()}
    calls = record_bn_calls(layer)
    step_once(tiny_model, varied("bn_only_params", bn_only_params_stats="frozen_batch"), batch)
    x = calls[-1]["input"]
    expected = normalised(x, x.mean((0, 2, 3)), x.var((0, 2, 3), unbiased=False), weight, bias, layer.eps)
    assert torch.allclose(calls[-1]["output"], expected, atol=1e-4), (
        "frozen_batch: the training forward must normalise with the batch's statistics")
    moved = [k for k, v in tiny_model.named_buffers() if not torch.equal(v, buffers[k])]
    assert moved == [], f"frozen_batch must leave every running statistic and counter: {moved} moved"


def test_eval_stats_train_on_the_stored_statistics(tiny_model, batch):
    layer = first_bn(tiny_model)
    weight, bias = stored_statistics(layer)
    calls = record_bn_calls(layer)
    step_once(tiny_model, varied("bn_only_params"), batch)
    x = calls[-1]["input"]
    expected = normalised(x, torch.full((x.shape[1],), 0.3), torch.full((x.shape[1],), 2.0), weight, bias, layer.eps)
    assert torch.allclose(calls[-1]["output"], expected, atol=1e-5), (
        "the default reading normalises BN ONLY PARAMS' training forward with NORMAL's running statistics")


# --- adv_fraction -----------------------------------------------------------------------------

def record_model_calls(model):
    calls = []
    model.register_forward_hook(lambda m, inputs, output: calls.append((inputs[0].detach().clone(), output.detach())))
    return calls


def test_half_adversarial_batch_is_half_clean_in_one_forward(tiny_model, batch):
    images, labels = batch
    calls = record_model_calls(tiny_model)
    bn_calls = record_bn_calls(first_bn(tiny_model))
    loss, _ = step_once(tiny_model, varied("adv", adv_fraction="0.5"), batch)
    attack, training = calls[:ATTACK.steps], calls[ATTACK.steps:]
    assert [len(x) for x, _ in attack] == [8] * ATTACK.steps, "the attack must see exactly half the batch"
    assert len(training) == 1, f"clean and adversarial halves go through one forward pass, got {len(training)}"
    inputs, logits = training[0]
    same = (inputs == images).flatten(1).all(1)
    assert same.tolist() == [True] * 8 + [False] * 8, f"exactly the first half must be clean: {same.tolist()}"
    assert len(bn_calls[-1]["input"]) == 16 and bn_calls[-1]["training"], (
        "BN's batch statistics must come from both halves together")
    assert torch.isclose(loss, F.cross_entropy(logits, labels)), "loss = size-weighted mean over both halves"


def test_full_adversarial_batch_attacks_every_example(tiny_model, batch):
    images, _ = batch
    calls = record_model_calls(tiny_model)
    step_once(tiny_model, varied("adv"), batch)
    inputs, _ = calls[-1]
    assert not (inputs == images).flatten(1).all(1).any(), "adv_fraction=1.0 trains on no clean example"


# --- bn_stats_update --------------------------------------------------------------------------

def forwarded_batch_statistics(model, monkeypatch, config, batches):
    """Run BN STATS steps with the attack replaced by the identity; returns per-batch (mean, var) of the first BN."""
    monkeypatch.setattr(repro.mechanics.train_step, "pgd", lambda model, images, labels, **kw: images)
    apply_configuration(model, config)
    calls = record_bn_calls(first_bn(model))
    for images, labels in batches:
        train_step(model, config, None, images, labels, ATTACK, seed=0)
    return [(c["input"].mean((0, 2, 3)), c["input"].var((0, 2, 3), unbiased=True)) for c in calls]


def random_batches(n):
    g = torch.Generator().manual_seed(1)
    return [(torch.rand(16, 3, 32, 32, generator=g) * (1 + i), torch.randint(0, 10, (16,), generator=g))
            for i in range(n)]


def test_cumulative_update_ends_with_the_plain_average(tiny_model, monkeypatch):
    stats = forwarded_batch_statistics(tiny_model, monkeypatch, varied("bn_stats_reset", bn_stats_update="cumulative"),
                                       random_batches(4))
    layer = first_bn(tiny_model)
    mean = torch.stack([m for m, _ in stats]).mean(0)
    var = torch.stack([v for _, v in stats]).mean(0)
    assert torch.allclose(layer.running_mean, mean, atol=1e-5) and torch.allclose(layer.running_var, var, atol=1e-4), (
        "cumulative: the running statistics must be the plain average of the forwarded batches'")


def test_momentum_update_is_the_exponential_average(tiny_model, monkeypatch):
    stats = forwarded_batch_statistics(tiny_model, monkeypatch, varied("bn_stats_reset"), random_batches(4))
    mean, var = torch.zeros_like(stats[0][0]), torch.ones_like(stats[0][1])  # the reset
    for m, v in stats:
        mean, var = 0.9 * mean + 0.1 * m, 0.9 * var + 0.1 * v
    layer = first_bn(tiny_model)
    assert torch.allclose(layer.running_mean, mean, atol=1e-5) and torch.allclose(layer.running_var, var, atol=1e-4), (
        "momentum: PyTorch's exponential average with momentum 0.1 after the reset")


# --- augmentation readings --------------------------------------------------------------------

@pytest.fixture
def images():
    return synthetic_dataset(8, 1, seed=3).train_images


def test_crop_flip_then_autoaugment_composes_in_that_order(images):
    torch.manual_seed(5)  # AutoAugment draws from the global RNG, crop/flip from the generator
    got = augment(images, AUTOAUGMENT, torch.Generator().manual_seed(5), order=CROP_FLIP_FIRST)
    torch.manual_seed(5)
    cropped = random_crop_flip(images, torch.Generator().manual_seed(5))
    expected = autoaugment(cropped).float() / 255
    torch.manual_seed(5)
    default = augment(images, AUTOAUGMENT, torch.Generator().manual_seed(5))
    assert torch.equal(got, expected), "crop_flip_then_autoaugment = AutoAugment(crop/flip(x))"
    assert not torch.equal(default, expected), "the default order must differ (AutoAugment first)"


def autoaugment_inputs(monkeypatch):
    seen = []
    real = repro.runs.augmentation.autoaugment

    def spy(batch, generator=None):  # the training loop passes a per-step generator (prefetched thread)
        seen.append(batch.clone())
        return real(batch, generator)

    monkeypatch.setattr(repro.runs.augmentation, "autoaugment", spy)
    return seen


def train_micro(tmp_path, config, **budget_changes):
    """Train `config` for a few steps of 32 images on the built-in data: (model, budget, data)."""
    budget = make_micro_budget(**{"n_train": 64, "batch_size": 32, "epochs_clean": 1, "epochs_adversarial": 1,
                                  **budget_changes})
    data = synthetic_dataset(budget.n_train, budget.n_test, seed=0)
    return train(config, budget, data, tmp_path, seed=0), budget, data


def rows(batch):
    return {bytes(image.numpy().tobytes()) for image in batch}


@pytest.mark.parametrize("reading, augmented", [("crop_flip", False), ("autoaugment", True)])
def test_normal_bn_only_augmentation(tmp_path, monkeypatch, reading, augmented):
    seen = autoaugment_inputs(monkeypatch)
    _, budget, _ = train_micro(tmp_path, varied("normal_bn_only", bn_only_augmentation=reading))
    steps = budget.n_train // budget.batch_size
    assert [len(b) for b in seen] == ([budget.batch_size] * steps if augmented else []), (
        f"bn_only_augmentation={reading}: AutoAugment calls per step {[len(b) for b in seen]}")


@pytest.mark.parametrize("reading, raw", [("autoaugment_then_crop_flip", True), ("crop_flip_then_autoaugment", False)])
def test_normal_autoaugment_order_in_training(tmp_path, monkeypatch, reading, raw):
    seen = autoaugment_inputs(monkeypatch)
    _, _, data = train_micro(tmp_path, varied("normal", autoaugment_order=reading))
    originals = rows(data.train_images)
    fed = [image in originals for batch in seen for image in rows(batch)]
    # A crop is the image itself only at the centre offset unflipped (1 in 162): a few at most.
    share = sum(fed) / max(len(fed), 1)
    assert fed and (share == 1.0 if raw else share < 0.1), (
        f"autoaugment_order={reading}: AutoAugment must see {'raw' if raw else 'cropped'} training images "
        f"(raw share {share:.2f} of {len(fed)})")


@pytest.mark.parametrize("reading", ["autoaugment_then_crop_flip", "crop_flip_then_autoaugment"])
def test_normal_trains_on_the_autoaugmented_images(tmp_path, monkeypatch, reading):
    # AutoAugment made to return white images: whichever the order, the centre of every image a NORMAL
    # training step gets (inside any crop of the 4-pixel padding) must be white, i.e. AutoAugment's output
    # reached the step; running AutoAugment and training on the raw images would leave the centre raw.
    monkeypatch.setattr(repro.runs.augmentation, "autoaugment", lambda batch, generator=None: torch.full_like(batch, 255))
    stepped = []
    real_step = repro.runs.training.train_step
    monkeypatch.setattr(repro.runs.training, "train_step",
                        lambda net, config, optimizer, images, *a, **k: stepped.append(images.clone())
                        or real_step(net, config, optimizer, images, *a, **k))
    train_micro(tmp_path, varied("normal", autoaugment_order=reading))
    centres = torch.cat(stepped)[..., 4:-4, 4:-4]
    assert stepped and bool((centres == 1).all()), (
        f"autoaugment_order={reading}: NORMAL's training steps got images AutoAugment did not make "
        f"({len(stepped)} steps, centre minimum {centres.min().item() if stepped else None})")


# --- adv_checkpoint ---------------------------------------------------------------------------

def test_best_checkpoint_is_chosen_on_held_out_training_images_only(tmp_path, monkeypatch):
    evaluated, trained = [], []
    real_eval, real_augment = repro.runs.selection.pgd_evaluation, repro.runs.training.augment
    monkeypatch.setattr(repro.runs.selection, "pgd_evaluation",
                        lambda model, images, *a, **k: evaluated.append(images.clone()) or real_eval(model, images, *a, **k))
    monkeypatch.setattr(repro.runs.training, "augment",
                        lambda images, *a, **k: trained.append(images.clone()) or real_augment(images, *a, **k))
    _, budget, data = train_micro(tmp_path, varied("adv", adv_checkpoint="best"), epochs_adversarial=2)
    held_out = set().union(*(rows(b) for b in evaluated))
    assert len(evaluated) == 2 and held_out, f"held-out accuracy must be measured every epoch ({len(evaluated)} times)"
    assert held_out <= rows(data.train_images), "selection images must be training images"
    assert not held_out & rows(data.test_images), "selection must never see a test image"
    assert not held_out & set().union(*(rows(b) for b in trained)), "held-out images must not be trained on"
    # the selection record, checked on this run rather than a training of its own
    assert checkpoint_selection(tmp_path)["held_out_images"] == len(held_out), \
        f"the record must count the {len(held_out)} held-out images the selection measured"


def test_best_checkpoint_keeps_the_best_epochs_weights(tmp_path, monkeypatch):
    accuracies = iter([30.0, 70.0, 50.0])
    monkeypatch.setattr(repro.runs.training, "held_out_robust_accuracy", lambda *a, **k: next(accuracies))
    snapshots = {}
    budget = make_micro_budget(n_train=64, batch_size=32, epochs_adversarial=3)
    data = synthetic_dataset(budget.n_train, budget.n_test, seed=0)
    config = varied("adv", adv_checkpoint="best")
    path = tmp_path / CHECKPOINT_NAME
    train(config, budget, data, tmp_path, seed=0,
          progress=lambda info: snapshots.update({info["epoch"]: load_checkpoint(path)["model"]}))
    chosen, _ = load_trained_model(tmp_path, config, budget, 0)
    differs = {e: [k for k, v in chosen.state_dict().items() if not torch.equal(v, s[k])] for e, s in snapshots.items()}
    assert differs[2] == [] and differs[3], f"best must evaluate epoch 2's weights (70%), not the last: {differs}"
    assert checkpoint_selection(tmp_path)["history"] == [30.0, 70.0, 50.0], "every epoch's held-out accuracy recorded"
    # the selection record, checked on this run rather than a training of its own
    assert checkpoint_selection(tmp_path)["epoch"] == 2, "the record must name the epoch whose weights are evaluated"


def test_last_checkpoint_evaluates_the_final_weights(tmp_path):
    final, budget, _ = train_micro(tmp_path, varied("adv"))
    loaded, _ = load_trained_model(tmp_path, varied("adv"), budget, 0)
    assert all(torch.equal(v, final.state_dict()[k]) for k, v in loaded.state_dict().items()), "last = final weights"


# --- figure3_logits ---------------------------------------------------------------------------

@pytest.mark.parametrize("reading", ["all", "max"])
def test_figure3_logit_histogram_counts_what_the_reading_says(tiny_model, batch, reading):
    images, labels = batch
    data = confidence_logit_data({"normal": tiny_model}, images, labels, epsilon=8 / 255, steps=1, seed=0, bins=7,
                                 logits=reading)
    with torch.no_grad():
        clean = tiny_model.eval()(images).double()
    values = clean.max(1).values if reading == "max" else clean
    expected = np.histogram(values.numpy(), data["logit_edges"])[0].tolist()
    assert data["models"]["normal"]["clean"]["logit_counts"] == expected, (
        f"figure3_logits={reading}: the clean logit histogram must count {'each maximum' if reading == 'max' else 'every logit'}")
