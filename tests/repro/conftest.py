"""The reproduction tier: train and evaluate every Table 2 row, through an on-disk cache.

Choose the budget with --repro-budget or REPRO_BUDGET (default: smoke, CPU, built-in data);
the paper budget needs CIFAR-10 (--repro-data-dir / REPRO_DATA_DIR) and a CUDA GPU, and skips
saying so without one. Runs are cached under --repro-cache / REPRO_CACHE (default
.repro_cache/), keyed by code version, budget, seed and configuration, so the fine-tuning rows
reuse NORMAL and a rerun after a crash resumes. Under pytest-xdist each worker takes its own GPU
(worker N -> cuda:N mod count); per-run file locks make NORMAL train once while others wait.
"""

import os
from pathlib import Path

import pytest
import torch

from repro.budgets import get_budget
from repro.cli import parse_overrides
from repro.expected import load_expected
from repro.history import append_results, history_path
from repro.pipeline import Pipeline, RunSettings
from repro.provenance import code_version


def chosen_budget(config):
    pairs = [p for p in config.getoption("--repro-set").split(",") if p.strip()]
    return get_budget(config.getoption("--repro-budget"), parse_overrides(pairs))


def pytest_collection_modifyitems(config, items):
    budget = chosen_budget(config)
    for item in items:
        if "tests/repro" in item.nodeid.replace(os.sep, "/"):
            item.add_marker(pytest.mark.slow)
            if budget.needs_gpu:
                item.add_marker(pytest.mark.gpu)


def worker_device() -> torch.device:
    """This xdist worker's GPU (gwN -> cuda:N mod count), or the CPU without CUDA."""
    if not torch.cuda.is_available():
        return torch.device("cpu")
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    return torch.device(f"cuda:{int(worker.lstrip('gw') or 0) % torch.cuda.device_count()}")


@pytest.fixture(scope="session")
def budget(request):
    budget = chosen_budget(request.config)
    if budget.needs_gpu and not torch.cuda.is_available():
        pytest.skip(f"budget {budget.name} needs a CUDA GPU (width-{budget.width} ResNet-20s for "
                    f"{budget.epochs_clean} epochs would take weeks on a CPU); none is available")
    return budget


@pytest.fixture(scope="session")
def expected():
    return load_expected()


@pytest.fixture(scope="session")
def pipeline(request, budget):
    option = request.config.getoption
    settings = RunSettings(
        budget=budget,
        seed=option("--repro-seed"),
        out=Path(option("--repro-cache")) / code_version(),
        device=worker_device(),
        data_dir=Path(option("--repro-data-dir")) if option("--repro-data-dir") else None,
        allow_unverified_data=option("--repro-allow-unverified-data"),
        resume=True,  # a rerun after a crash continues from the last epoch
    )
    return Pipeline(settings)


@pytest.fixture(scope="session")
def results(pipeline):
    """Result records, computed on first use and cached on disk; a dict-like getter."""

    class Results(dict):
        def __missing__(self, config_id):
            from repro.configs import get_configuration

            self[config_id] = pipeline.result(get_configuration(config_id))
            append_results(history_path(Path(pipeline.settings.out).parent), [self[config_id]])  # REPRO_CACHE/history.jsonl
            return self[config_id]

    return Results()
