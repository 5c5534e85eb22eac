"""Figures 1-3 for a run folder: load NORMAL, ADV and BN PARAMS, compute each figure's numbers, write
figureN.json (the numbers) and figureN.png (repro/figures/plots.py draws them).

The numbers: Figures 1 and 2 in repro/figures/bn_figures.py, Figure 3 in repro/figures/outputs.py.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from repro.figures.bn_figures import PAPER_LAYER_INDEX, bn_histogram_data, figure2_data
from repro.figures.histograms import DEFAULT_BINS, FIGURE_CONFIG_IDS, label_of
from repro.figures.outputs import ALL_LOGITS, confidence_logit_data
from repro.paper.budgets import Budget
from repro.paper.configs import CONFIGURATIONS, Configuration
from repro.paper.expected import load_expected
from repro.runs.checkpoint import CheckpointError, atomic_write_json
from repro.runs.data import Dataset, robust_eval_subset
from repro.runs.provenance import git_commit, library_versions
from repro.runs.run_state import CHECKPOINT_NAME, is_complete, load_trained_model
from repro.verdicts.report import collect_results

# --- Figure 1 ------------------------------------------------------------------------------


# --- Figure 2 ------------------------------------------------------------------------------


# --- Figure 3 ------------------------------------------------------------------------------


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
        details = "\n".join(f"  {label_of(k)} ({k}): {why}" for k, why in problems.items())
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

    Returns the written paths: figure1.json, figure1.png, figure2.json, ... figure3.png, and the
    learning curves of every row with a result (curves.json, curves.png).
    """
    from repro.figures import plots  # matplotlib only when drawing
    from repro.figures.curves import curve_series, write_curves

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
    records = collect_results(run_folder, budget)
    return written + write_curves(curve_series(records, load_expected()), out_dir,
                                  title=f"Learning curves, {budget.run_name} seed {seed}")
