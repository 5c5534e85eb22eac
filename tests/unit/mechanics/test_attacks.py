"""PGD under the L-infinity threat model (Section 3.2: eps = 8/255, 10 iterations)."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.nn import functional as F

from repro.mechanics.attacks import PGDSettings, check_images, evaluation_pgd, pgd
from repro.mechanics.freeze import bn_buffers, bn_layers
from repro.mechanics.model import ResNet20
from repro.paper.configs import BN_EVAL, BN_MODES, BN_TRAIN

EPS = 8 / 255


@pytest.fixture(scope="module")
def small_model():
    torch.manual_seed(0)
    return ResNet20(width=2).eval()


def random_batch(seed: int, n: int = 4):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, 32, 32, generator=g), torch.randint(0, 10, (n,), generator=g)


class Linear(nn.Module):
    """Two-class logits (B, 2) = (0, s.(x - 1/2) - margin) on (B, 3, 2, 2) images, s in {-1, +1}:
    a model of a dozen multiplications, for tests that attack many times or in several dtypes."""

    def __init__(self, margin: float = 0.0):
        super().__init__()
        self.register_buffer("s", torch.tensor([1.0, -1.0]).repeat(6).view(3, 2, 2))
        self.margin = margin

    def forward(self, x):
        z = ((x - 0.5) * self.s).flatten(1).sum(1) - self.margin
        return torch.stack([torch.zeros_like(z), z], 1)


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**31),
    epsilon=st.floats(0, 32 / 255),
    step_size=st.floats(0, 8 / 255),
    steps=st.integers(1, 4),
    random_start=st.booleans(),
)
def test_stays_in_eps_ball(small_model, seed, epsilon, step_size, steps, random_start):
    images, labels = random_batch(seed)
    adv = pgd(small_model, images, labels, epsilon=epsilon, step_size=step_size, steps=steps,
              random_start=random_start, seed=seed)
    distance = (adv - images).abs().max().item()
    assert distance <= epsilon + 1e-7, f"||x_adv - x||_inf = {distance} > eps = {epsilon}"


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31), epsilon=st.floats(0, 1), step_size=st.floats(0, 1), steps=st.integers(1, 3))
def test_stays_in_image_range(small_model, seed, epsilon, step_size, steps):
    images, labels = random_batch(seed)
    adv = pgd(small_model, images, labels, epsilon=epsilon, step_size=step_size, steps=steps, seed=seed)
    assert adv.min() >= 0 and adv.max() <= 1, f"x_adv left [0, 1]: [{adv.min()}, {adv.max()}]"


def test_zero_epsilon_returns_input(small_model):
    images, labels = random_batch(0)
    adv = pgd(small_model, images, labels, epsilon=0.0, step_size=2 / 255, steps=3)
    assert torch.equal(adv, images), "eps = 0 must return x unchanged"


def test_same_seed_same_result(small_model):
    images, labels = random_batch(1)
    first = pgd(small_model, images, labels, epsilon=EPS, steps=2, seed=7)
    second = pgd(small_model, images, labels, epsilon=EPS, steps=2, seed=7)
    assert torch.equal(first, second), "the same seed must reproduce the attack"


def random_start(model, images, labels, seed):
    """The perturbation PGD starts from (step size 0 keeps it), in units of eps."""
    return (pgd(model, images, labels, epsilon=EPS, step_size=0.0, steps=1, seed=seed) - images) / EPS


def test_unseeded_attacks_draw_fresh_random_starts(small_model):
    images = torch.full((2, 3, 32, 32), 0.5)
    labels = torch.zeros(2, dtype=torch.long)
    first, second = random_start(small_model, images, labels, None), random_start(small_model, images, labels, None)
    assert not torch.equal(first, second), "seed=None must draw a new random start on every call"


def test_seed_controls_random_start(small_model):
    images = torch.full((8, 3, 32, 32), 0.5)  # mid-grey: no clipping at the image range
    labels = torch.zeros(8, dtype=torch.long)
    first, second = random_start(small_model, images, labels, 7), random_start(small_model, images, labels, 8)
    correlation = torch.corrcoef(torch.stack([first.flatten(), second.flatten()]))[0, 1].item()
    assert abs(correlation) < 0.05, f"seeds 7 and 8 must give independent starts, correlation {correlation:.3f}"


def test_random_start_is_uniform_in_the_ball(small_model):
    images = torch.full((8, 3, 32, 32), 0.5)  # mid-grey: no clipping at the image range
    start = random_start(small_model, images, torch.zeros(8, dtype=torch.long), 7).flatten()
    # U(-1, 1) per coordinate (Madry et al. [11]): mean 0, mean |.| 1/2, filling the ball to its edge.
    summary = (start.mean().item(), start.abs().mean().item(), start.min().item(), start.max().item())
    assert abs(summary[0]) < 0.02 and abs(summary[1] - 0.5) < 0.02, f"start is not U(-eps, eps): mean, mean|.| {summary[:2]}"
    assert summary[2] < -0.99 and summary[3] > 0.99, f"start does not fill the ball: range {summary[2:]} eps"


def test_unseeded_random_starts_do_not_repeat():
    # An unseeded attack seeds its start from torch's generator, out of 2**62 seeds; 200 calls must
    # give 200 different starts (from a space of fewer than 200 seeds, some two would coincide).
    images, labels = torch.full((1, 3, 2, 2), 0.5), torch.zeros(1, dtype=torch.long)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        starts = {tuple(random_start(Linear(), images, labels, None).flatten().tolist()) for _ in range(200)}
    assert len(starts) == 200, f"200 unseeded attacks drew only {len(starts)} different random starts"


def test_seed_gives_a_fixed_random_start():
    # Results stored with a seed (run cache, report) are reproduced by later code only if a seed's start
    # never changes: x + eps * (2u - 1), u = torch.rand(x.shape) from a CPU generator seeded with the seed.
    images, labels = torch.full((8, 3, 2, 2), 0.5), torch.zeros(8, dtype=torch.long)
    u = torch.rand(images.shape, generator=torch.Generator().manual_seed(7))
    start = random_start(Linear(), images, labels, 7)
    assert torch.allclose(start, 2 * u - 1, atol=1e-5), "seed 7's random start is not x + eps * (2u - 1)"


def test_zero_epsilon_draws_no_random_numbers():
    # eps = 0 is no attack: it must not move torch's global generator (an unseeded start draws its
    # seed there), so a run with eps = 0 keeps the random stream of a run without an attack.
    images, labels = torch.full((2, 3, 2, 2), 0.5), torch.zeros(2, dtype=torch.long)
    before = torch.get_rng_state()
    pgd(Linear(), images, labels, epsilon=0.0, steps=1)
    assert torch.equal(torch.get_rng_state(), before), "pgd with eps = 0 drew from torch's global generator"


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64], ids=str)
def test_adversarial_examples_keep_the_images_dtype(dtype):
    # Half- or double-precision images give examples of that precision (a model in that dtype needs them).
    images, labels = torch.full((2, 3, 2, 2), 0.5, dtype=dtype), torch.zeros(2, dtype=torch.long)
    adv = pgd(Linear(), images, labels, epsilon=EPS, steps=1, seed=0)
    assert adv.dtype == dtype, f"pgd turned {dtype} images into {adv.dtype} examples"


def test_an_examples_attack_does_not_depend_on_its_batch():
    # With BN in eval mode each example is attacked on its own: the same image gives the same example
    # alone or among 63 copies (an evaluation's last batch is smaller). Here the image's loss gradient is
    # ~4e-44 (a logit margin of 100): scaled by 1/64, as a batch-mean loss would, it underflows to zero.
    image, label = torch.full((1, 3, 2, 2), 0.5), torch.zeros(1, dtype=torch.long)
    model, kwargs = Linear(margin=100.0), {"epsilon": EPS, "steps": 1, "random_start": False}
    alone = pgd(model, image, label, **kwargs)
    in_batch = pgd(model, image.repeat(64, 1, 1, 1), label.repeat(64), **kwargs)
    assert not torch.equal(alone, image), "fixture: the attack must move the image alone"
    assert torch.equal(in_batch, alone.repeat(64, 1, 1, 1)), (
        "the image's adversarial example differs between a batch of 1 and a batch of 64")


def test_evaluation_pgd_is_reproducible_from_its_seed():
    # Every PGD error in the report must come out the same when its evaluation is rerun with its seed.
    images, labels = torch.full((4, 3, 2, 2), 0.5), torch.zeros(4, dtype=torch.long)
    first, again, other = (evaluation_pgd(Linear(), images, labels, epsilon=EPS, steps=1, seed=seed)
                           for seed in (3, 3, 4))
    assert torch.equal(first, again), "evaluation PGD gave other examples when rerun with the same seed"
    assert not torch.equal(first, other), "evaluation PGD gave the same examples for seeds 3 and 4"


def recording_model(model):
    """`model`, and the list every input it receives is appended to."""
    seen = []
    model.register_forward_pre_hook(lambda _m, inputs: seen.append(inputs[0].detach().clone()))
    return model, seen


@settings(max_examples=10, deadline=None)
@given(
    seed=st.integers(0, 2**31),
    epsilon=st.floats(0, 64 / 255),
    step_size=st.floats(0, 16 / 255),
    steps=st.integers(1, 3),
    random_start=st.booleans(),
)
def test_every_input_the_model_sees_is_in_the_ball_and_range(seed, epsilon, step_size, steps, random_start):
    # Not only the returned examples: the random start and every iterate are model inputs too.
    torch.manual_seed(0)
    model, seen = recording_model(ResNet20(width=2).eval())
    images, labels = random_batch(seed)
    images[0] = 0.0  # corners of the image range, where the ball must be clipped
    images[1] = 1.0
    pgd(model, images, labels, epsilon=epsilon, step_size=step_size, steps=steps, random_start=random_start, seed=seed)
    assert len(seen) == steps, f"{steps} PGD iterations made {len(seen)} forward passes"
    for i, x in enumerate(seen):
        distance = (x - images).abs().max().item()
        assert distance <= epsilon + 1e-6, f"input {i} of the attack is {distance} from x, outside eps = {epsilon}"
        assert x.min() >= 0 and x.max() <= 1, f"input {i} of the attack left [0, 1]: [{x.min()}, {x.max()}]"


@pytest.mark.parametrize("mode", ["train", "eval"])
@pytest.mark.parametrize("bn_mode", [None, "train", "eval"])
def test_leaves_model_as_found(mode, bn_mode):
    torch.manual_seed(0)
    model = ResNet20(width=2).train(mode == "train")
    model.fc.weight.requires_grad_(False)  # a mixed frozen/trainable state must survive too
    images, labels = random_batch(2)
    params = {n: p.detach().clone() for n, p in model.named_parameters()}
    flags = {n: p.requires_grad for n, p in model.named_parameters()}
    modes = {n: m.training for n, m in model.named_modules()}
    buffers = bn_buffers(model)
    pgd(model, images, labels, epsilon=EPS, steps=2, seed=0, bn_mode=bn_mode)
    assert all(torch.equal(p, params[n]) for n, p in model.named_parameters()), "parameters changed"
    assert {n: p.requires_grad for n, p in model.named_parameters()} == flags, "requires_grad changed"
    assert {n: m.training for n, m in model.named_modules()} == modes, "train/eval modes changed"
    assert all(torch.equal(b, buffers[n]) for n, b in bn_buffers(model).items()), "BN statistics changed"


def bn_modes_seen(model):
    """`model`, and the list of BN train flags (one tuple per forward pass) the model ran with."""
    seen = []
    model.register_forward_pre_hook(lambda m, _i: seen.append(tuple(layer.training for _, layer in bn_layers(m))))
    return model, seen


@pytest.mark.parametrize("bn_mode", BN_MODES)
def test_attack_runs_bn_in_the_mode_asked(bn_mode):
    # Handed a model in the other mode: "eval" attacks with running statistics, "train" with batch ones.
    torch.manual_seed(0)
    model, seen = bn_modes_seen(ResNet20(width=2).train(bn_mode == BN_EVAL))
    images, labels = random_batch(4)
    pgd(model, images, labels, epsilon=EPS, steps=2, seed=0, bn_mode=bn_mode)
    assert {flag for flags in seen for flag in flags} == {bn_mode == BN_TRAIN}, (
        f"bn_mode={bn_mode}: BN layers ran with training flags {set(f for flags in seen for f in flags)}")


def test_evaluation_pgd_attacks_with_running_statistics():
    # Evaluation attacks the model as it is tested, even where it is handed over in train mode
    # (the learning curve measures models in the middle of training).
    torch.manual_seed(0)
    model, seen = bn_modes_seen(ResNet20(width=2).train())
    images, labels = random_batch(4)
    evaluation_pgd(model, images, labels, epsilon=EPS, steps=2, seed=0)
    assert {flag for flags in seen for flag in flags} == {False}, "evaluation PGD must run BN in eval mode"


def test_accumulates_no_parameter_gradient(small_model):
    images, labels = random_batch(3)
    pgd(small_model, images, labels, epsilon=EPS, steps=2, seed=0)
    grads = [n for n, p in small_model.named_parameters() if p.grad is not None]
    assert grads == [], f"the attack left gradients on {grads}"


def test_keeps_existing_parameter_gradients():
    model = ResNet20(width=2)
    images, labels = random_batch(3)
    F.cross_entropy(model(images), labels).backward()
    before = {n: p.grad.clone() for n, p in model.named_parameters()}
    pgd(model, images, labels, epsilon=EPS, steps=2, seed=0)
    assert all(torch.equal(p.grad, before[n]) for n, p in model.named_parameters()), ".grad was modified"


@pytest.fixture(scope="module")
def attacked(trained_tiny_model):
    """Clean and PGD-10 (eps = 8/255) loss and accuracy of the trained fixture model."""
    model, images, labels = trained_tiny_model
    adv = pgd(model, images, labels, epsilon=EPS, steps=10, seed=0)
    with torch.no_grad():
        clean_logits, adv_logits = model(images), model(adv)
    return {
        "clean_loss": F.cross_entropy(clean_logits, labels).item(),
        "adv_loss": F.cross_entropy(adv_logits, labels).item(),
        "clean_acc": (clean_logits.argmax(1) == labels).float().mean().item(),
        "adv_acc": (adv_logits.argmax(1) == labels).float().mean().item(),
    }


def test_fixture_model_has_learned(attacked):
    assert attacked["clean_acc"] > 0.5, f"the trained fixture must be far above chance: {attacked}"


def test_raises_loss_on_trained_model(attacked):
    assert attacked["adv_loss"] > attacked["clean_loss"], f"PGD did not raise the loss: {attacked}"


def test_lowers_accuracy_on_trained_model(attacked):
    assert attacked["adv_acc"] < attacked["clean_acc"] - 0.2, f"PGD did not lower accuracy: {attacked}"


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"epsilon": -0.1}, "epsilon"),
        ({"epsilon": float("nan")}, "epsilon"),
        ({"epsilon": 1.5}, "epsilon"),
        ({"steps": 0}, "steps"),
        ({"step_size": -1.0}, "step_size"),
    ],
)
def test_bad_threat_model_raises(small_model, kwargs, message):
    images, labels = random_batch(0)
    with pytest.raises(ValueError, match=message):
        pgd(small_model, images, labels, **kwargs)


@pytest.mark.parametrize(
    "kwargs",
    [{"epsilon": 0.0}, {"epsilon": 1.0}, {"step_size": 0.0}, {"steps": 1}],
    ids=["epsilon 0", "epsilon 1", "step_size 0", "steps 1"],
)
def test_threat_model_edges_are_accepted(kwargs):
    # The documented ranges are closed: eps in [0, 1] (1: the whole image range), step_size >= 0, steps >= 1.
    images, labels = torch.full((2, 3, 2, 2), 0.5), torch.zeros(2, dtype=torch.long)
    adv = pgd(Linear(), images, labels, **{"epsilon": EPS, "steps": 1, "seed": 0, **kwargs})
    assert adv.shape == images.shape, f"pgd with {kwargs}, an edge of the documented ranges, must attack"


@pytest.mark.parametrize("outside", ["0-255 scale", "just above 1", "just below 0"])
def test_images_outside_unit_range_raise(small_model, outside):
    images, labels = random_batch(0)
    images = {"0-255 scale": images * 255, "just above 1": images.clamp(max=0.99) + 0.02,
              "just below 0": images.clamp(min=0.01) - 0.02}[outside]
    # says what is wrong and what to pass instead
    with pytest.raises(ValueError, match=r"\[0, 1\].*; pass unnormalised images \(the model normalises internally\)$"):
        pgd(small_model, images, labels)


def test_check_images_checks_the_range_by_default():
    # check_images is public; only a caller that passes check_range=False skips the range (docstring).
    images, labels = random_batch(0)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        check_images(images * 255, labels)


def test_unchecked_range_is_not_checked(small_model):
    # Training passes check_range=False: its batches are in [0, 1] by construction, and the check
    # would cost two host synchronisations per step.
    images, labels = random_batch(0)
    adv = pgd(small_model, images * 255, labels, epsilon=EPS, steps=1, seed=0, check_range=False)
    assert adv.shape == images.shape, "check_range=False must skip the range check"


def test_three_dimensional_images_raise(small_model):
    images, labels = random_batch(0)
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        pgd(small_model, images[0], labels)


def test_mismatched_batch_sizes_raise(small_model):
    images, labels = random_batch(0)
    # names both sizes: 4 images, labels of shape (2,)
    with pytest.raises(ValueError, match=r"batch sizes differ: 4 images but labels of shape \(2,\)"):
        pgd(small_model, images, labels[:2])


def test_settings_validate():
    with pytest.raises(ValueError, match="steps"):
        PGDSettings(steps=0)
