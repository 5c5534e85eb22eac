"""The reproduction tier: train and evaluate every Table 2 row, through an on-disk cache.

Choose the budget with --repro-budget or REPRO_BUDGET (default: smoke, CPU, built-in data) and
the seeds with --repro-seeds or REPRO_SEEDS (e.g. 0,1,2; default: REPRO_SEED alone): tests that
train take a `seed` parameter, so pytest-xdist spreads (row, seed) pairs over its workers, and
Table 2 and the claims are judged on seed means;
the paper budget needs CIFAR-10 (--repro-data-dir / REPRO_DATA_DIR) and a CUDA GPU, and skips
saying so without one. --repro-variant / REPRO_VARIANT="CHOICE=READING,..." runs the rows under
readings of the paper's open choices (repro/paper/variants.py; default: none, the registry's rows).
Runs are cached under --repro-cache / REPRO_CACHE (default .repro_cache/), keyed by code
version, budget, seed, readings and configuration, so the fine-tuning rows reuse NORMAL and a
rerun after a crash resumes. Under pytest-xdist each worker takes its own GPU
(worker N -> cuda:N mod count); per-run file locks make NORMAL train once while others wait.
"""

import dataclasses
import os
from pathlib import Path

import pytest
import torch

from repro.cli.options import parse_overrides
from repro.paper.budgets import get_budget
from repro.paper.expected import load_expected
from repro.paper.variants import parse_variant_list
from repro.runs.pipeline import Pipeline, RunSettings
from repro.runs.provenance import code_version, git_commit
from repro.runs.seeds import mean_records, parse_seeds
from repro.verdicts.history import append_results, history_path


def chosen_budget(config):
    pairs = [p for p in config.getoption("--repro-set").split(",") if p.strip()]
    return get_budget(config.getoption("--repro-budget"), parse_overrides(pairs))


def chosen_seeds(config) -> list[int]:
    text = config.getoption("--repro-seeds")
    return parse_seeds(text) if text.strip() else [config.getoption("--repro-seed")]


def pytest_generate_tests(metafunc):
    # One test per (row, seed) where a test asks for `seed`: xdist then spreads the pairs over workers.
    if "seed" in metafunc.fixturenames:
        metafunc.parametrize("seed", chosen_seeds(metafunc.config), ids=lambda s: f"seed{s}")


def chosen_variants(config):
    """REPRO_VARIANT's readings; a bad one stops the session with the valid ones listed."""
    try:
        return parse_variant_list(config.getoption("--repro-variant"))
    except ValueError as error:
        raise pytest.UsageError(f"REPRO_VARIANT / --repro-variant: {error}") from None


def pytest_collection_modifyitems(config, items):
    budget = chosen_budget(config)
    chosen_variants(config)
    for item in items:
        # The paper_path tier has its own marker and CI step: it is not part of `pytest -m slow`.
        if "tests/repro" in item.nodeid.replace(os.sep, "/") and item.get_closest_marker("paper_path") is None:
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
def seeds(request) -> list[int]:
    return chosen_seeds(request.config)


@pytest.fixture(scope="session")
def pipelines(request, budget, seeds):
    """One Pipeline per seed, all caching into .repro_cache/<code version>/BUDGET/seedS/."""
    option = request.config.getoption
    git_commit()  # recorded as the session starts: a commit made during a long nightly must not relabel it
    settings = RunSettings(
        budget=budget,
        seed=seeds[0],
        out=Path(option("--repro-cache")) / code_version(),
        device=worker_device(),
        data_dir=Path(option("--repro-data-dir")) if option("--repro-data-dir") else None,
        allow_unverified_data=option("--repro-allow-unverified-data"),
        resume=True,  # a rerun after a crash continues from the last epoch
        variants=chosen_variants(request.config),
    )
    return {seed: Pipeline(dataclasses.replace(settings, seed=seed)) for seed in seeds}


@pytest.fixture(scope="session")
def pipeline(pipelines, seeds):
    """The first seed's Pipeline."""
    return pipelines[seeds[0]]


@pytest.fixture(scope="session")
def seed_results(pipelines):
    """Result records keyed (config_id, seed), computed on first use and cached on disk.

    Another worker may be computing the same run: the run lock makes this one wait and reuse it.
    """

    class Results(dict):
        def __missing__(self, key):
            from repro.paper.configs import get_configuration

            config_id, seed = key
            self[key] = pipelines[seed].result(get_configuration(config_id))
            # REPRO_CACHE/history.jsonl: every row and seed the tier computes (repro history)
            append_results(history_path(Path(pipelines[seed].settings.out).parent), [self[key]])
            return self[key]

    return Results()


@pytest.fixture(scope="session")
def results(seed_results, seeds):
    """The first seed's result records keyed by configuration id (dict-like getter)."""

    class Results(dict):
        def __missing__(self, config_id):
            self[config_id] = seed_results[(config_id, seeds[0])]
            return self[config_id]

    return Results()


@pytest.fixture(scope="session")
def per_seed_results(seed_results, seeds):
    """getter(config_ids) -> {seed: {config_id: record}} over every seed (what the report reads)."""

    def get(config_ids):
        return {seed: {c: seed_results[(c, seed)] for c in config_ids} for seed in seeds}

    return get


@pytest.fixture(scope="session")
def mean_results(per_seed_results, seeds):
    """getter(config_ids) -> seed-mean records of those rows (repro.runs.seeds.mean_records)."""
    return lambda config_ids: mean_records(per_seed_results(config_ids), seeds)
