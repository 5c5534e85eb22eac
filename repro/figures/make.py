"""The numbers behind Figures 1-3 of the paper (Section 3.3); plotting lives in repro/figures/plots.py.

Figure 1: histograms of one BN layer's gamma and beta and of their normalized versions m and b
(Equation 1) for NORMAL, ADV and BN PARAMS. Figure 2: the mean of m per BN layer for each model;
the paper reports the average over layers of (BN PARAMS - NORMAL) as -0.177. Figure 3:
histograms of the max-softmax confidence and of the logits on clean and on PGD examples.

Every histogram of one quantity uses the same bin edges for every model compared (computed from
the union of their values), so bars line up and counts are comparable. Models are keyed by
configuration id ("normal", "adv", "bn_params"); each dict also carries the paper's labels.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from repro.mechanics.attacks import evaluation_pgd
from repro.mechanics.bn_analysis import fold_bn, mean_m_per_layer
from repro.paper.budgets import Budget
from repro.runs.checkpoint import CheckpointError, atomic_write_json
from repro.paper.configs import CONFIGURATIONS, Configuration
from repro.runs.data import Dataset, robust_eval_subset, to_float
from repro.verdicts.distances import wasserstein1
from repro.mechanics.model import bn_layers
from repro.runs.provenance import git_commit, library_versions
from repro.runs.training import CHECKPOINT_NAME, is_complete, load_trained_model

# The paper's Figure 1 shows "the BN parameters (8th layer)" without saying how layers are counted.
# We take the 8th BN layer in forward (= registration) order, index 7: `blocks.3.bn1`, the first
# BN of the second stage. Counting the network's conv layers instead (conv1 = layer 1, shortcuts
# not counted, as in "ResNet-20") gives the same layer: the 8th conv is blocks.3.conv1, whose BN
# is blocks.3.bn1. Counting shortcut BNs changes nothing either, since the first one comes later.
PAPER_LAYER_INDEX = 7
FIGURE_CONFIG_IDS = ("normal", "adv", "bn_params")  # the three models of Figures 1-3
PAPER_AVERAGE_DIFFERENCE = -0.177  # Section 3.3: mean m, BN PARAMS minus NORMAL, averaged over layers
DEFAULT_BINS = 30
FIGURE1_QUANTITIES = ("gamma", "beta", "m", "b")  # BN parameters and their Equation 1 versions
# Figure 3's logit histogram (the `figure3_logits` open choice, repro/paper/variants.py): every logit of
# every example, or each example's largest logit.
ALL_LOGITS = "all"
MAX_LOGIT = "max"
LOGIT_READINGS = (ALL_LOGITS, MAX_LOGIT)


def _label(key: str) -> str:
    """The paper's label of a configuration id, or the key itself for anything else."""
    return CONFIGURATIONS[key].label if key in CONFIGURATIONS else key


def shared_histograms(values: dict[str, np.ndarray], bins: int) -> tuple[list[float], dict[str, list[int]]]:
    """Histogram counts of each array over one set of `bins` equal-width edges spanning all arrays.

    Returns (edges (bins + 1,), {key: counts (bins,)}); each array's counts sum to its length (the
    last bin includes its right edge). A constant union gets a unit-wide range around the value.
    """
    if bins < 1:
        raise ValueError(f"bins must be >= 1, got {bins}")
    union = np.concatenate([np.asarray(v, dtype=np.float64).ravel() for v in values.values()])
    if union.size == 0:
        raise ValueError("nothing to histogram")
    if not np.all(np.isfinite(union)):
        raise ValueError("cannot histogram non-finite values (NaN or inf): is a model diverged?")
    lo, hi = float(union.min()), float(union.max())
    if lo == hi:  # numpy's convention for a single value
        lo, hi = lo - 0.5, hi + 0.5
    edges = np.linspace(lo, hi, bins + 1)
    counts = {k: np.histogram(np.asarray(v, dtype=np.float64), edges)[0].tolist() for k, v in values.items()}
    return edges.tolist(), counts


def _layer_names(model: nn.Module) -> list[str]:
    return [name for name, _ in bn_layers(model)]


def _check_same_layers(models: dict[str, nn.Module]) -> list[str]:
    """The BN layer names shared by every model; ValueError naming the models that differ."""
    if not models:
        raise ValueError("no models given")
    names = {key: _layer_names(model) for key, model in models.items()}
    first_key, first = next(iter(names.items()))
    differing = [key for key, n in names.items() if n != first]
    if differing:
        raise ValueError(f"models {differing} have different BN layers than {first_key!r} "
                         f"({len(first)} layers); per-layer comparisons need the same architecture")
    return first


# --- Figure 1 ------------------------------------------------------------------------------

def bn_histogram_data(models: dict[str, nn.Module], layer_index: int = PAPER_LAYER_INDEX,
                      bins: int = DEFAULT_BINS) -> dict:
    """Figure 1: gamma, beta, m and b (Equation 1) of one BN layer per model, with shared bins.

    Args:
        models: {key: model}; every model must have the same BN layers.
        layer_index: 0-based index into `bn_layers(model)` (forward order); the paper's "8th
            layer" is PAPER_LAYER_INDEX.
        bins: number of histogram bins per quantity.

    Returns {"layer_index", "layer_name", "channels", "labels", "values": {key: {q: [C floats]}},
    "edges": {q: [bins + 1]}, "counts": {key: {q: [bins ints]}}} for q in gamma, beta, m, b. The
    edges of one quantity are shared by all models.
    """
    names = _check_same_layers(models)
    if not 0 <= layer_index < len(names):
        raise ValueError(f"layer_index {layer_index} out of range: the models have {len(names)} BN layers")
    values = {}
    for key, model in models.items():
        layer = bn_layers(model)[layer_index][1]
        m, b = fold_bn(layer)
        gamma = layer.weight.detach() if layer.affine else torch.ones_like(m)
        beta = layer.bias.detach() if layer.affine else torch.zeros_like(m)
        values[key] = {q: t.double().cpu().numpy() for q, t in zip(FIGURE1_QUANTITIES, (gamma, beta, m, b))}
    edges, counts = {}, {key: {} for key in models}
    for q in FIGURE1_QUANTITIES:
        edges[q], per_model = shared_histograms({key: v[q] for key, v in values.items()}, bins)
        for key, c in per_model.items():
            counts[key][q] = c
    return {
        "layer_index": layer_index,
        "layer_name": names[layer_index],
        "channels": len(next(iter(values.values()))["m"]),
        "labels": {key: _label(key) for key in models},
        "values": {key: {q: v.tolist() for q, v in vs.items()} for key, vs in values.items()},
        "edges": edges,
        "counts": counts,
    }


# --- Figure 2 ------------------------------------------------------------------------------

def average_difference(a: nn.Module | Sequence[float], b: nn.Module | Sequence[float]) -> float:
    """Mean over layers of (mean m of `a` - mean m of `b`): Section 3.3's -0.177 for BN PARAMS - NORMAL.

    `a` and `b` are models (checked to have the same BN layers) or per-layer means of equal length.
    """
    if isinstance(a, nn.Module) and isinstance(b, nn.Module):
        _check_same_layers({"a": a, "b": b})
    per_a = mean_m_per_layer(a) if isinstance(a, nn.Module) else list(a)
    per_b = mean_m_per_layer(b) if isinstance(b, nn.Module) else list(b)
    if len(per_a) != len(per_b) or not per_a:
        raise ValueError(f"need the same, non-zero number of layers: got {len(per_a)} and {len(per_b)}")
    return float(np.mean(np.asarray(per_a, dtype=np.float64) - np.asarray(per_b, dtype=np.float64)))


def figure2_data(models: dict[str, nn.Module], pair: tuple[str, str] = ("bn_params", "normal")) -> dict:
    """Figure 2: mean m per BN layer for each model, over the same layers for every model.

    Args:
        models: {key: model}; ValueError when their BN layer names differ.
        pair: (minuend, subtrahend) of the headline average difference (paper: BN PARAMS - NORMAL).

    Returns {"layers": [names], "labels", "mean_m": {key: [floats]}, "average_difference":
    {"minuend", "subtrahend", "value", "paper"} or None when a model of `pair` is absent,
    "differences": {"a - b": value} for every ordered pair in `models`' order}.
    """
    layers = _check_same_layers(models)
    mean_m = {key: mean_m_per_layer(model) for key, model in models.items()}
    keys = list(models)
    differences = {f"{x} - {y}": average_difference(mean_m[x], mean_m[y])
                   for i, x in enumerate(keys) for y in keys[i + 1:]}
    headline = None
    if pair[0] in mean_m and pair[1] in mean_m:
        headline = {"minuend": pair[0], "subtrahend": pair[1],
                    "value": average_difference(mean_m[pair[0]], mean_m[pair[1]]),
                    "paper": PAPER_AVERAGE_DIFFERENCE}
    return {"layers": layers, "labels": {key: _label(key) for key in models}, "mean_m": mean_m,
            "average_difference": headline, "differences": differences}


# --- Figure 3 ------------------------------------------------------------------------------

@torch.no_grad()
def _outputs(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, epsilon: float, steps: int,
             seed: int, batch_size: int) -> dict[str, torch.Tensor]:
    """Logits (N, classes) on clean and on PGD images; eval-mode BN throughout (as in evaluate.py)."""
    model.eval()
    device = next(model.parameters()).device
    clean, adversarial = [], []
    for start in range(0, len(images), batch_size):
        x = images[start:start + batch_size].to(device)
        x = to_float(x) if x.dtype == torch.uint8 else x
        y = labels[start:start + batch_size].to(device)
        adv = evaluation_pgd(model, x, y, epsilon=epsilon, steps=steps, seed=seed + start)  # as evaluate.py
        clean.append(model(x).double().cpu())
        adversarial.append(model(adv).double().cpu())
    return {"clean": torch.cat(clean), "adversarial": torch.cat(adversarial)}


def confidence_logit_data(models: dict[str, nn.Module], images: torch.Tensor, labels: torch.Tensor,
                          epsilon: float, steps: int, seed: int, bins: int = DEFAULT_BINS,
                          batch_size: int = 256, logits: str = ALL_LOGITS, reference: str = "adv") -> dict:
    """Figure 3: histograms of max-softmax confidence and of logits, clean and under PGD.

    Args:
        models: {key: model}; put in eval mode, BN uses running statistics during the attack.
        images: (N, 3, H, W), uint8 or float in [0, 1]; labels: (N,) int64.
        epsilon: L-inf radius in [0, 1] (paper: 8/255); steps: PGD iterations (step size eps/4).
        seed: seeds PGD's random start (batch at offset i uses seed + i).
        bins: bins per histogram. Confidence bins span [0, 1]; logit bins span every logit of
            every model, clean and adversarial, so all panels of one quantity share edges.
        logits: ALL_LOGITS (the N x classes logits) or MAX_LOGIT (each example's largest logit).

    Returns {"epsilon", "steps", "n_images", "labels", "confidence_edges", "logit_edges",
    "models": {key: {"clean"|"adversarial": {"confidence_counts", "logit_counts", "accuracy",
    "mean_confidence", "confidences"}}}, "logits", "wasserstein1"}. Logit counts cover all N x classes
    logits, or the N maxima (`logits`). "wasserstein1" (None without `reference` among the models)
    holds the caption's "BN PARAMS follows ADV" as numbers: {"reference", "confidence"|"logits":
    {key: {condition: distance}}}, the 1-Wasserstein distance from each model's distribution to the
    reference's, computed from the per-image confidences given (its inputs) and from the logits
    histogrammed.
    """
    if logits not in LOGIT_READINGS:
        raise ValueError(f"logits must be one of {LOGIT_READINGS}, got {logits!r}")
    outputs = {key: _outputs(model, images, labels, epsilon, steps, seed, batch_size) for key, model in models.items()}
    conditions = ("clean", "adversarial")
    y = labels.cpu()
    confidences = {(k, c): F.softmax(o[c], 1).max(1).values.numpy() for k, o in outputs.items() for c in conditions}
    confidence_edges = np.linspace(0.0, 1.0, bins + 1)
    histogrammed = {(k, c): (o[c].max(1).values if logits == MAX_LOGIT else o[c]).numpy()
                    for k, o in outputs.items() for c in conditions}
    logit_edges, logit_counts = shared_histograms(histogrammed, bins)
    result = {key: {} for key in models}
    for (key, c), conf in confidences.items():
        result[key][c] = {
            "confidence_counts": np.histogram(conf, confidence_edges)[0].tolist(),
            "logit_counts": logit_counts[(key, c)],
            "accuracy": (outputs[key][c].argmax(1) == y).double().mean().item(),
            "mean_confidence": float(conf.mean()),
            "confidences": conf.tolist(),
        }
    distances = None
    if reference in models:
        distances = {"reference": reference}
        for quantity, values in (("confidence", confidences), ("logits", histogrammed)):
            distances[quantity] = {key: {c: wasserstein1(values[(key, c)], values[(reference, c)]) for c in conditions}
                                   for key in models}
    return {"epsilon": epsilon, "steps": steps, "step_size": epsilon / 4, "seed": seed, "n_images": len(labels),
            "labels": {key: _label(key) for key in models}, "confidence_edges": confidence_edges.tolist(),
            "logit_edges": logit_edges, "logits": logits, "models": result, "wasserstein1": distances}


# --- loading and writing -------------------------------------------------------------------

def load_figure_models(run_folder: Path, budget: Budget, seed: int, device: torch.device | str = "cpu",
                       configure=None) -> dict[str, nn.Module]:
    """NORMAL, ADV and BN PARAMS from `run_folder` (OUT/BUDGET/seedSEED), in eval mode on `device`.

    `configure` maps a registry row to the configuration it was trained as (the run's readings of
    the open choices, Pipeline.configuration); default: the registry row itself.

    Raises CheckpointError naming every missing or unusable model and the command that trains them.
    """
    run_folder = Path(run_folder)
    models, problems, fixes = {}, {}, {"": [], " --resume": [], " --restart": []}
    for config_id in FIGURE_CONFIG_IDS:
        config, folder = CONFIGURATIONS[config_id], run_folder / config_id
        config = configure(config) if configure is not None else config
        try:
            model, _ = load_trained_model(folder, config, budget, seed)
        except CheckpointError as error:
            problems[config_id] = str(error)
            fixes[_fix_flag(folder, config, budget, seed)].append(config_id)
            continue
        models[config_id] = model.to(device).eval()
    if problems:
        out = run_folder.parent.parent  # run folders are OUT/BUDGET/seedSEED
        commands = [f"`repro train {' '.join(ids)} --budget {budget.name} --seed {seed} --out {out}{flag}`"
                    for flag, ids in fixes.items() if ids]
        details = "\n".join(f"  {_label(k)} ({k}): {why}" for k, why in problems.items())
        raise CheckpointError(
            f"Figures 1-3 need NORMAL, ADV and BN PARAMS; missing or unusable in {run_folder}: "
            f"{', '.join(problems)}\n{details}\nTrain them with: {' and '.join(commands)}"
        )
    return models


def _fix_flag(folder: Path, config: Configuration, budget: Budget, seed: int) -> str:
    """The `repro train` flag that repairs an unusable run: none (no checkpoint), --resume
    (unfinished) or --restart (a checkpoint of another budget, seed or code version)."""
    if not (folder / CHECKPOINT_NAME).exists():
        return ""
    try:
        return " --resume" if not is_complete(folder, config, budget, seed) else ""
    except CheckpointError:
        return " --restart"


def make_figures(run_folder: Path, budget: Budget, seed: int, device: torch.device | str, data: Dataset,
                 out_dir: Path | None = None, bins: int = DEFAULT_BINS,
                 models: dict[str, nn.Module] | None = None, figure3_logits: str = ALL_LOGITS) -> list[Path]:
    """Compute Figures 1-3 for a run folder; write figureN.json (numbers) and figureN.png (plots).

    Args:
        run_folder: OUT/BUDGET/seedSEED holding the normal, adv and bn_params runs.
        data: the run's dataset; Figure 3 uses its first budget.n_robust test images (Section 3.2),
            attacked with budget.eval_pgd_steps PGD steps at budget.epsilon.
        out_dir: where to write (default run_folder / "figures", which the report links).
        models: already loaded models (default: load_figure_models).
        figure3_logits: ALL_LOGITS or MAX_LOGIT, what Figure 3's logit histogram counts.

    Returns the written paths: figure1.json, figure1.png, figure2.json, ... figure3.png.
    """
    from repro.figures import plots  # matplotlib only when drawing

    out_dir = Path(run_folder) / "figures" if out_dir is None else Path(out_dir)
    if models is None:
        models = load_figure_models(run_folder, budget, seed, device)
    images, labels = robust_eval_subset(data, budget.n_robust)
    provenance = {"budget": budget.name, "seed": seed, "run_folder": str(run_folder),
                  "git_commit": git_commit(), "versions": library_versions()}
    figures = {
        1: (bn_histogram_data(models, PAPER_LAYER_INDEX, bins), plots.plot_figure1),
        2: (figure2_data(models), plots.plot_figure2),
        3: (confidence_logit_data(models, images, labels, budget.epsilon, budget.eval_pgd_steps, seed, bins,
                                  batch_size=budget.eval_batch_size, logits=figure3_logits), plots.plot_figure3),
    }
    written = []
    for number, (numbers, plot) in figures.items():
        json_path = out_dir / f"figure{number}.json"
        atomic_write_json(json_path, {**numbers, "provenance": provenance})
        written += [json_path, plot(numbers, out_dir / f"figure{number}.png")]
    return written
