"""Several workers sharing one run cache: NORMAL is trained once, the fine-tuning rows wait for it, and
two workers asking for the same row train and evaluate it once (the second waits and reuses the result).

This is the CPU test of what `pytest -m slow -n N` does on a multi-GPU node.
"""

import multiprocessing

import pytest

FINE_TUNING = ["bn_params", "bn_only_params"]  # two rows waiting on one NORMAL (a third cost a process)
WORKERS = FINE_TUNING + ["bn_params"]  # two workers on one row, as when two tests of the tier read it
# Seconds before a hung pool counts as a deadlock (a lock never released, a worker waiting on a
# NORMAL nobody trains). The micro budget finishes in well under a minute on 2 shared cores.
DEADLOCK_TIMEOUT = 300


def worker(out, config_id):
    import torch

    torch.set_num_threads(1)  # several processes on two cores: no oversubscription
    from repro.paper.configs import get_configuration
    from repro.runs.pipeline import Pipeline, RunSettings
    from tests.conftest import make_micro_budget

    budget = make_micro_budget(epochs_adversarial=1, epochs_finetune=1, eval_pgd_steps=1, n_robust=16,
                               autoattack_iterations=1)
    pipeline = Pipeline(RunSettings(budget=budget, out=out))
    pipeline.result(get_configuration(config_id))
    return pipeline.trained_here, pipeline.evaluated_here


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory):
    out = tmp_path_factory.mktemp("shared_cache")
    with multiprocessing.get_context("spawn").Pool(len(WORKERS)) as pool:
        pending = pool.starmap_async(worker, [(out, config_id) for config_id in WORKERS], chunksize=1)
        # A bare starmap waits forever: a deadlock would hang CI instead of failing here.
        return pending.get(timeout=DEADLOCK_TIMEOUT)


def test_normal_trained_exactly_once(outcomes):
    trainers = [trained for trained, _ in outcomes if "normal" in trained]
    assert len(trainers) == 1, f"NORMAL must be trained by exactly one worker, got {[t for t, _ in outcomes]}"


def test_every_row_is_trained_exactly_once(outcomes):
    trained = sorted(row for done, _ in outcomes for row in done if row != "normal")
    assert trained == sorted(FINE_TUNING), f"each fine-tuning row is trained by one worker: {[t for t, _ in outcomes]}"


def test_every_row_is_evaluated_exactly_once(outcomes):
    evaluated = sorted(row for _, done in outcomes for row in done)
    assert evaluated == sorted(FINE_TUNING), \
        f"two workers on one row must evaluate it once (the second reuses the result): {[e for _, e in outcomes]}"
