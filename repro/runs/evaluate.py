"""Evaluation: clean test error, PGD robust error and adversarial cross-entropy, AutoAttack.

Table 2 reports clean test error and robust test error "against AutoAttack, in %" for L-inf
attacks with eps = 8/255 on "the first 1000 test examples" (Section 3.2). Section 3.3 also uses
the cross-entropy on PGD examples for BN STATS, "as AutoAttack does not maximize loss".
The model is evaluated in eval mode with every parameter frozen.
"""

from __future__ import annotations

import logging
import time

import torch
from torch import nn
from torch.nn import functional as F

from repro.mechanics.acceleration import accelerated
from repro.mechanics.attacks import check_threat_model, evaluation_pgd
from repro.mechanics.bn_analysis import mean_abs_gamma_per_layer, mean_m_per_layer, mean_normalized_weight
from repro.mechanics.model import NUM_CLASSES
from repro.paper.budgets import Budget
from repro.runs.data import Dataset, robust_eval_subset, to_float

SERIES_DECIMALS = 6  # per-row arrays in result.json ("series") are rounded to this many decimals


def freeze_for_evaluation(model: nn.Module) -> nn.Module:
    """Eval mode (BN uses running statistics) and no parameter requiring gradients."""
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


@torch.no_grad()
def predict(model: nn.Module, images: torch.Tensor, batch_size: int) -> torch.Tensor:
    """Predicted classes (N,) for uint8 or float images, in batches."""
    out = []
    for start in range(0, len(images), batch_size):
        batch = images[start:start + batch_size]
        out.append(model(to_float(batch) if batch.dtype == torch.uint8 else batch).argmax(1))
    return torch.cat(out)


def error_percent(predictions: torch.Tensor, labels: torch.Tensor) -> float:
    """Percentage of wrong predictions."""
    return 100.0 * (predictions != labels).float().mean().item()


def class_counts(predictions: torch.Tensor) -> list[int]:
    """How many images each class was predicted for (NUM_CLASSES counts, class 0 first): what tells a
    model that answers one class whatever it sees from one that classifies (repro/verdicts/degenerate.py)."""
    return torch.bincount(predictions.flatten().long().cpu(), minlength=NUM_CLASSES).tolist()


@torch.no_grad()
def feature_spread(model: nn.Module, images: torch.Tensor, batch_size: int) -> dict:
    """How much the logit layer's input (the pooled features) depends on the image, on `images`:
    "sd_over_images", the SD over images of each feature channel averaged over channels, and
    "zero_share", the share of channels that are zero for every image (their ReLUs off whatever the
    input). A model whose features do not depend on the image answers one class for every image,
    its logits the logit layer's bias: this is what tells that collapse from a weak classifier."""
    layer = [m for m in model.modules() if isinstance(m, nn.Linear)][-1]
    seen = []
    hook = layer.register_forward_pre_hook(lambda module, inputs: seen.append(inputs[0].float()))
    try:
        predict(model, images, batch_size)
    finally:
        hook.remove()
    features = torch.cat(seen)
    return {"sd_over_images": features.std(0).mean().item(),
            "zero_share": (features.abs().amax(0) == 0).float().mean().item(),
            "n_images": len(features)}


def pgd_logits(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, budget: Budget, seed: int) -> torch.Tensor:
    """Logits (N, classes) on PGD examples of `images` (eval-mode BN); batch at offset i seeds seed + i."""
    out = []
    for start in range(0, len(images), budget.eval_batch_size):
        x = to_float(images[start:start + budget.eval_batch_size])
        y = labels[start:start + budget.eval_batch_size]
        adv = evaluation_pgd(model, x, y, epsilon=budget.epsilon, steps=budget.eval_pgd_steps, seed=seed + start)
        with torch.no_grad():
            out.append(model(adv))
    return torch.cat(out)


def pgd_evaluation(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, budget: Budget, seed: int,
                   logits: torch.Tensor | None = None) -> dict:
    """PGD robust error (%) and mean cross-entropy on PGD examples (eval-mode BN).

    `logits`: the model's logits on those PGD examples when already computed (pgd_logits).
    """
    logits = pgd_logits(model, images, labels, budget, seed) if logits is None else logits
    return {
        "pgd_error": 100.0 * (logits.argmax(1) != labels).float().mean().item(),
        "pgd_cross_entropy": F.cross_entropy(logits, labels, reduction="none").mean().item(),
    }


@torch.no_grad()
def clean_logits(model: nn.Module, images: torch.Tensor, batch_size: int) -> torch.Tensor:
    """Logits (N, classes) on uint8 or float images, in batches."""
    return torch.cat([model(to_float(b) if b.dtype == torch.uint8 else b) for b in images.split(batch_size)])


def max_softmax(logits: torch.Tensor) -> torch.Tensor:
    """The confidence of each prediction (N,): its largest softmax probability, in float64 (Figure 3)."""
    return F.softmax(logits.double(), 1).max(1).values


def _rounded(values: torch.Tensor) -> list[float]:
    # 1e-6 is far below any distance or difference a claim compares, and keeps result.json small.
    return [round(v, SERIES_DECIMALS) for v in values.double().flatten().tolist()]


def output_series(clean: torch.Tensor, adversarial: torch.Tensor) -> dict[str, list[float]]:
    """Figure 3's inputs for one model: max-softmax confidences (N,) and logits (N x classes,
    row-major) on clean and on PGD examples of the same N images."""
    return {"confidence_clean": _rounded(max_softmax(clean)), "confidence_pgd": _rounded(max_softmax(adversarial)),
            "logits_clean": _rounded(clean), "logits_pgd": _rounded(adversarial)}


def autoattack_evaluation(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, budget: Budget, seed: int) -> dict:
    """Robust error (%) under AutoAttack (L-inf, budget.epsilon), from the returned examples.

    pyautoattack reports its accuracies only at DEBUG level, so the robust accuracy is computed
    here from the adversarial examples it returns.
    """
    from pyautoattack import AutoAttack

    check_threat_model(budget.epsilon, 0.0, 1)
    device = images.device
    logging.getLogger("auto-attack").setLevel(logging.WARNING)
    if budget.autoattack_version == "standard":
        attack = AutoAttack(model, norm="Linf", eps=budget.epsilon, version="standard", seed=seed, device=device)
    else:
        attack = AutoAttack(model, norm="Linf", eps=budget.epsilon, version="custom",
                            attacks=["apgd-ce"], seed=seed, device=device)
        attack.apgd.n_iter = budget.autoattack_iterations
        attack.apgd.n_restarts = 1
    x = to_float(images)
    x_adv, _ = attack.run_standard_evaluation(x, labels, batch_size=budget.eval_batch_size)
    if (x_adv - x).abs().max().item() > budget.epsilon + 1e-5:
        raise RuntimeError("AutoAttack returned examples outside the eps-ball; refusing its result")
    predictions = predict(model, x_adv, budget.eval_batch_size)
    return {"autoattack_error": error_percent(predictions, labels), "autoattack_version": budget.autoattack_version,
            "predicted_classes": class_counts(predictions)}


def evaluate(model: nn.Module, data: Dataset, budget: Budget, seed: int) -> tuple[dict, dict, dict]:
    """All Table 2 metrics of a trained model; returns (metrics, series, seconds per phase).

    `series` holds the per-row arrays the claims compare across rows (Figures 1-3): per BN layer
    the mean m and the mean |gamma|, and on the first budget.n_robust test images the confidences
    and logits, clean and under the evaluation PGD (the same examples the PGD error counts).
    `model` and `data` must be on the same device.
    """
    freeze_for_evaluation(model)
    normalized_weight = mean_normalized_weight(model)
    spread = feature_spread(model, robust_eval_subset(data, budget.n_robust)[0], budget.eval_batch_size)
    series = {"mean_m_per_layer": mean_m_per_layer(model), "mean_abs_gamma_per_layer": mean_abs_gamma_per_layer(model)}
    model = accelerated(model, budget, data.test_images.device)  # the model itself on a CPU
    timings = {}
    started = time.perf_counter()
    n_test = len(data.test_labels) if budget.n_test is None else min(budget.n_test, len(data.test_labels))
    clean_predictions = predict(model, data.test_images[:n_test], budget.eval_batch_size)
    clean = error_percent(clean_predictions, data.test_labels[:n_test])
    timings["clean"] = time.perf_counter() - started
    images, labels = robust_eval_subset(data, budget.n_robust)
    started = time.perf_counter()
    metrics = {"clean_error": clean, "n_clean": n_test, "n_robust": len(labels),
               "mean_normalized_weight": normalized_weight, "features": spread}
    adversarial = pgd_logits(model, images, labels, budget, seed)
    metrics.update(pgd_evaluation(model, images, labels, budget, seed, logits=adversarial))
    subset_clean = clean_logits(model, images, budget.eval_batch_size)
    series.update(output_series(subset_clean, adversarial))
    timings["pgd"] = time.perf_counter() - started
    started = time.perf_counter()
    attacked = autoattack_evaluation(model, images, labels, budget, seed)
    timings["autoattack"] = time.perf_counter() - started
    metrics.update({k: v for k, v in attacked.items() if k != "predicted_classes"})
    # Predicted-class counts (PREDICTION_SETS): a collapsed model is never evidence (verdicts/degenerate.py).
    metrics["predicted_classes"] = {"clean_test": class_counts(clean_predictions),
                                    "robust_clean": class_counts(subset_clean.argmax(1)),
                                    "robust_pgd": class_counts(adversarial.argmax(1)),
                                    "robust_attack": attacked["predicted_classes"]}
    return metrics, series, timings
