"""Figure 3 (Section 3.3): confidence and logit histograms of NORMAL, ADV and BN PARAMS, clean and under PGD.

The caption says BN PARAMS "is able to follow the behavior of ADV to a large extent, both on clean
and adversarial examples"; besides the histograms, the 1-Wasserstein distance from each model's
distribution to ADV's states that as numbers.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from repro.figures.histograms import DEFAULT_BINS, label_of, shared_histograms
from repro.mechanics.attacks import evaluation_pgd
from repro.runs.data import to_float
from repro.verdicts.distances import wasserstein1

# Figure 3's logit histogram (the `figure3_logits` open choice, repro/paper/variants.py): every logit of
# every example, or each example's largest logit.
ALL_LOGITS = "all"


MAX_LOGIT = "max"


LOGIT_READINGS = (ALL_LOGITS, MAX_LOGIT)


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
            "labels": {key: label_of(key) for key in models}, "confidence_edges": confidence_edges.tolist(),
            "logit_edges": logit_edges, "logits": logits, "models": result, "wasserstein1": distances}
