"""The evaluation attacks' strength, pinned by what they do to models whose best attack is known.

Every robust error in the report comes from these attacks; one that got weaker (a smaller step,
fewer steps, no random start, a smaller radius) would make every row look more robust than it is,
and no tolerance downstream could tell. So the attacks are run, as evaluate() runs them, on models
whose strongest L-inf attack is known in closed form:

- `Boundary`: a linear classifier whose decision boundary is the hyperplane s.(x - grey) = 0 with
  s in {-1, +1}^D. An image grey + k/255 * s lies at L-inf distance exactly k/255 from it, and the
  loss-maximising perturbation in the eps-ball is the corner -eps * sign of that image's side.
- `FlatAtClean`: a model whose loss has zero gradient at the clean image and rises away from it,
  the gradient masking a random start exists to get past (Madry et al. [11]).

The budgets are the smoke and paper budgets with only the knob under test changed.
"""

import dataclasses

import pyautoattack
import pytest
import torch
from torch import nn
from torch.nn import functional as F

from repro.mechanics.attacks import pgd
from repro.paper.budgets import PAPER, SMOKE
from repro.paper.configs import BN_EVAL
from repro.runs.evaluate import autoattack_evaluation, pgd_evaluation, pgd_logits

EPS = SMOKE.epsilon
GREY = 128  # uint8 centre of the images; grey +- 15 +- eps stays inside [0, 255]: no clipping at the range
CLASSES = 10  # CIFAR-10's output shape; classes 2-9 sit far below, so the attack is a two-class problem
REACH = 4.0  # logit margin the optimal attack removes (eps * ||w||_1); keeps every gradient far from underflow
# 8 steps of eps/4 (the evaluation step) travel 2 eps: just enough from any random start to the far
# corner, so a single step fewer, or a shorter step, falls short of the optimum.
EXACT_STEPS = 8


class Boundary(nn.Module):
    """Logits (B, 10) of a linear classifier: class 0 iff s.(x - grey) > 0, on (B, 3, 8, 8) images."""

    def __init__(self, seed: int = 0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.register_buffer("s", torch.randint(0, 2, (3, 8, 8), generator=g).float() * 2 - 1)
        self.scale = REACH / (EPS * self.s.numel())  # so that eps * ||w||_1 = REACH

    def forward(self, x):
        margin = self.scale * ((x - GREY / 255) * self.s).flatten(1).sum(1)
        far_below = torch.full((len(x), CLASSES - 2), -1000.0)
        return torch.cat([margin[:, None] / 2, -margin[:, None] / 2, far_below], 1)


def images_at(distances: list[int], model: Boundary) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 images at L-inf distance k/255 from the boundary, for each k on both sides, and their labels."""
    k = torch.tensor(distances + [-d for d in distances])
    return (GREY + k.view(-1, 1, 1, 1) * model.s).to(torch.uint8), (k < 0).long()


def optimum(distances: torch.Tensor, epsilon: float) -> tuple[float, float]:
    """Closed-form robust error (%) and mean cross-entropy of the loss-maximising L-inf attack on
    images at L-inf distances `distances` (in 1/255) from Boundary's hyperplane."""
    margin = (distances.double() / 255 - epsilon) / EPS * REACH  # after moving eps towards the boundary
    return 100.0 * (margin < 0).double().mean().item(), F.softplus(-margin).mean().item()


# Radii the PGD tests run at: the paper's, and one where a default step of 2/255 would not be eps/4.
EPSILONS = {"8/255": 8 / 255, "12/255": 12 / 255}
DISTANCES = [k for k in range(1, 16) if k not in (4, 8, 12)]  # these would tie at eps/2 or at a radius exactly
REACHABLE = [k for k in DISTANCES if k < 8]  # every image flipped at 8/255, none left for the slower attacks


@pytest.fixture(scope="module")
def boundary():
    return Boundary().eval()


# --- the evaluation PGD (pgd_logits: the PGD error, the adversarial cross-entropy, Figure 3) -------

@pytest.mark.parametrize("epsilon", EPSILONS.values(), ids=EPSILONS.keys())
def test_evaluation_pgd_reaches_the_optimal_cross_entropy(boundary, epsilon):
    # The loss PGD maximises, at its maximum over the ball: a shorter step or a step fewer falls short.
    images, labels = images_at(DISTANCES, boundary)
    budget = dataclasses.replace(SMOKE, epsilon=epsilon, eval_pgd_steps=EXACT_STEPS)
    measured = pgd_evaluation(boundary, images, labels, budget, seed=0)["pgd_cross_entropy"]
    _, best = optimum(torch.tensor(DISTANCES * 2), epsilon)
    assert measured == pytest.approx(best, rel=1e-4), (
        f"{EXACT_STEPS}-step evaluation PGD reached cross-entropy {measured:.4f}; the optimal L-inf attack at "
        f"eps={epsilon:.4f} reaches {best:.4f}: the evaluation attack is weaker than its budget")


@pytest.mark.parametrize("epsilon", EPSILONS.values(), ids=EPSILONS.keys())
def test_evaluation_pgd_error_is_the_optimal_attacks(boundary, epsilon):
    images, labels = images_at(DISTANCES, boundary)
    measured = pgd_evaluation(boundary, images, labels, dataclasses.replace(SMOKE, epsilon=epsilon), seed=0)["pgd_error"]
    best, _ = optimum(torch.tensor(DISTANCES * 2), epsilon)
    assert measured == pytest.approx(best), (
        f"evaluation PGD error {measured:.1f}%; every image nearer the boundary than eps={epsilon:.4f} "
        f"({best:.1f}%) must be misclassified, and none farther")


def test_evaluation_pgd_steps_a_quarter_of_epsilon(boundary):
    # Each iterate moves every coordinate by the step, or less where the ball's edge clips it.
    images, labels = images_at(REACHABLE, boundary)
    epsilon = EPSILONS["12/255"]
    seen = []
    handle = boundary.register_forward_pre_hook(lambda _m, i: seen.append(i[0].detach().clone()))
    pgd_logits(boundary, images, labels, dataclasses.replace(SMOKE, epsilon=epsilon, eval_pgd_steps=3), seed=0)
    handle.remove()
    moves = [(after - before).abs().max().item() for before, after in zip(seen[:3], seen[1:3])]
    assert moves == pytest.approx([epsilon / 4] * 2, rel=1e-4), (
        f"the evaluation PGD's iterates moved by {moves} per coordinate, its step is eps/4 = {epsilon / 4:.5f}")


def test_fixture_tells_a_step_fewer(boundary):
    # The closed-form test above can fail: one step short of EXACT_STEPS leaves the optimum unreached.
    images, labels = images_at(DISTANCES, boundary)
    x = images.float() / 255
    adv = pgd(boundary, x, labels, epsilon=EPS, step_size=EPS / 4, steps=EXACT_STEPS - 1, seed=0)
    with torch.no_grad():
        short = F.cross_entropy(boundary(adv), labels).item()
    _, best = optimum(torch.tensor(DISTANCES * 2), EPS)
    assert short < best * (1 - 1e-3), f"PGD-{EXACT_STEPS - 1} at eps/4 reached {short:.4f} of {best:.4f}"


def test_evaluation_pgd_spends_the_paper_budgets_iterations(boundary):
    # One gradient of the model per iteration per batch: the paper budget's 20, not fewer.
    images, labels = images_at(REACHABLE, boundary)
    calls = []
    handle = boundary.register_forward_pre_hook(lambda _m, _i: calls.append(1) if torch.is_grad_enabled() else None)
    pgd_logits(boundary, images, labels, PAPER, seed=0)
    handle.remove()
    assert len(calls) == PAPER.eval_pgd_steps, (
        f"the evaluation PGD took {len(calls)} gradients of the model, the paper budget asks {PAPER.eval_pgd_steps}")


class FlatAtClean(nn.Module):
    """Class-0 margin 1 - 2 * mean|x - x0| / eps: zero gradient at x0, misclassified at the ball's corners."""

    def __init__(self, clean: torch.Tensor):
        super().__init__()
        self.register_buffer("x0", clean.float() / 255)

    def forward(self, x):
        margin = 1 - 2 / EPS * (x - self.x0).abs().flatten(1).mean(1)  # d|t|/dt = 0 at t = 0 in torch
        return torch.cat([margin[:, None], torch.zeros(len(x), CLASSES - 1)], 1)


def test_evaluation_pgd_gets_past_a_flat_clean_point():
    # Started at the clean image, PGD sees a zero gradient and never moves; from a random start it
    # climbs to the corners, where every copy is misclassified.
    clean = torch.randint(16, 240, (1, 3, 8, 8), generator=torch.Generator().manual_seed(0)).to(torch.uint8)
    images, labels = clean.repeat(32, 1, 1, 1), torch.zeros(32, dtype=torch.long)
    measured = pgd_evaluation(FlatAtClean(clean), images, labels, SMOKE, seed=0)["pgd_error"]
    assert measured == 100.0, (
        f"evaluation PGD error {measured:.1f}% on a model flat at its clean images (100% from a random start): "
        "the evaluation attack does not start at random inside the ball")


def test_without_random_start_pgd_stays_at_a_flat_clean_point():
    # Why the random start is there: from the clean image, a zero gradient gives a zero step.
    clean = torch.randint(16, 240, (1, 3, 8, 8), generator=torch.Generator().manual_seed(0)).to(torch.uint8)
    x = clean.float() / 255
    adv = pgd(FlatAtClean(clean), x, torch.zeros(1, dtype=torch.long), epsilon=EPS, steps=3, random_start=False)
    assert torch.equal(adv, x), f"PGD without a random start moved {(adv - x).abs().max().item():.4g} from a flat point"


def test_evaluation_pgd_stronger_than_fgsm_and_pgd2(trained_tiny_model):
    # Strength ordering on a trained ResNet-20; measured here: PGD-10 91%, FGSM 73%, PGD-2 72% error
    # on these 64 images. The margin of 5 points is far below that gap and above a few images' noise.
    model, images, labels = trained_tiny_model
    x, y = images[:64], labels[:64]
    uint8 = (x * 255).round().to(torch.uint8)
    x = uint8.float() / 255
    evaluation = pgd_evaluation(model, uint8, y, SMOKE, seed=0)["pgd_error"]
    weaker = {"FGSM": pgd(model, x, y, epsilon=EPS, step_size=EPS, steps=1, random_start=False, bn_mode=BN_EVAL),
              "PGD-2": pgd(model, x, y, epsilon=EPS, step_size=EPS / 2, steps=2, seed=0, bn_mode=BN_EVAL)}
    with torch.no_grad():
        errors = {name: 100.0 * (model(adv).argmax(1) != y).float().mean().item() for name, adv in weaker.items()}
    assert all(evaluation >= e + 5 for e in errors.values()), (
        f"evaluation PGD-{SMOKE.eval_pgd_steps} error {evaluation:.1f}% is not 5 points above {errors}")


# --- AutoAttack (Table 2's robust error) -------------------------------------------------------

# The standard ensemble runs APGD-T, FAB-T and Square (5000 queries) on what APGD-CE leaves: seconds
# here, so it gets only images APGD-CE can flip; the APGD-CE stand-in also gets images beyond reach.
VERSIONS = {"custom": DISTANCES, "standard": REACHABLE}


@pytest.mark.parametrize("version", VERSIONS)
def test_autoattack_error_is_the_optimal_attacks(boundary, version):
    distances = VERSIONS[version]
    images, labels = images_at(distances, boundary)
    budget = dataclasses.replace(SMOKE, autoattack_version=version)
    measured = autoattack_evaluation(boundary, images, labels, budget, seed=0)["autoattack_error"]
    best, _ = optimum(torch.tensor(distances * 2), budget.epsilon)
    assert measured == pytest.approx(best), (
        f"AutoAttack ({version}) error {measured:.1f}%; exactly the images nearer the boundary than "
        f"eps={budget.epsilon:.4f} ({best:.1f}%) are misclassifiable")


class SaturatedBoundary(Boundary):
    """Boundary with logits scaled 1000-fold: the cross-entropy is exactly 0, and so is its gradient,
    everywhere in the ball (float32), while the decision boundary is the same hyperplane."""

    def forward(self, x):
        logits = super().forward(x)
        return torch.cat([logits[:, :2] * 1000, logits[:, 2:]], 1)


def test_standard_autoattack_gets_past_a_saturated_cross_entropy():
    # Croce & Hein [1] add DLR-loss attacks because a cross-entropy attack stalls where the logits are
    # scaled up; the standard ensemble's APGD-T must flip what APGD-CE alone cannot move.
    model = SaturatedBoundary().eval()
    images, labels = images_at(REACHABLE, model)
    budget = dataclasses.replace(SMOKE, autoattack_version="standard")
    measured = autoattack_evaluation(model, images, labels, budget, seed=0)["autoattack_error"]
    best, _ = optimum(torch.tensor(REACHABLE * 2), budget.epsilon)
    assert measured == pytest.approx(best), (
        f"standard AutoAttack error {measured:.1f}% on a model with a saturated cross-entropy; {best:.1f}% "
        "of the images are within eps of the boundary: the standard ensemble did not run")


def test_fixture_stalls_apgd_ce_alone():
    # The test above can fail: on this model the APGD-CE stand-in flips none of the images the
    # standard ensemble must flip, so a standard run that fell back to APGD-CE alone would show.
    model = SaturatedBoundary().eval()
    images, labels = images_at(REACHABLE, model)
    budget = dataclasses.replace(SMOKE, autoattack_version="custom")
    measured = autoattack_evaluation(model, images, labels, budget, seed=0)["autoattack_error"]
    assert measured == 0.0, f"APGD-CE alone reached {measured:.1f}% on the saturated model; it must stall at 0%"


def gradient_queries(model, budget) -> int:
    """How many gradient-enabled forward passes the AutoAttack of `budget` makes on Boundary images."""
    images, labels = images_at(DISTANCES, model)
    calls = []
    handle = model.register_forward_pre_hook(lambda _m, _i: calls.append(1) if torch.is_grad_enabled() else None)
    autoattack_evaluation(model, images, labels, budget, seed=0)
    handle.remove()
    return len(calls)


def test_apgd_ce_standin_runs_the_budgets_iterations_once(boundary):
    # Ten iterations more cost ten gradient queries more: one restart, budget.autoattack_iterations long.
    budget = dataclasses.replace(SMOKE, autoattack_version="custom", autoattack_iterations=10)
    extra = gradient_queries(boundary, dataclasses.replace(budget, autoattack_iterations=20)) - gradient_queries(
        boundary, budget)
    assert extra == 10, f"10 more APGD-CE iterations made {extra} more gradient queries (one restart: 10)"


def returned_examples(monkeypatch) -> list:
    """Patch pyautoattack.AutoAttack to record (x, x_adv) of every evaluation it runs."""
    runs = []

    class Recording(pyautoattack.AutoAttack):
        def run_standard_evaluation(self, x, y, **kwargs):
            x_adv, y_adv = super().run_standard_evaluation(x, y, **kwargs)
            runs.append((x.clone(), x_adv.clone()))
            return x_adv, y_adv

    monkeypatch.setattr(pyautoattack, "AutoAttack", Recording)
    return runs


@pytest.mark.parametrize("version", VERSIONS)
def test_autoattack_examples_lie_on_the_balls_surface(boundary, version, monkeypatch):
    # The loss-maximising perturbation of a linear model is a corner of the ball: at distance eps.
    runs = returned_examples(monkeypatch)
    images, labels = images_at(REACHABLE, boundary)
    budget = dataclasses.replace(SMOKE, autoattack_version=version)
    autoattack_evaluation(boundary, images, labels, budget, seed=0)
    ((x, x_adv),) = runs
    with torch.no_grad():
        flipped = boundary(x_adv).argmax(1) != labels
    distances = (x_adv - x).abs().flatten(1).amax(1)[flipped]
    assert flipped.any() and torch.allclose(distances, torch.full_like(distances, budget.epsilon), atol=1e-6), (
        f"AutoAttack ({version}) flipped {int(flipped.sum())} images at L-inf distances {distances.tolist()}, "
        f"not on the surface of the eps={budget.epsilon:.4f} ball")
