"""Shared fixtures: small models and random CIFAR-shaped batches, all made in the test."""

import os

# Under pytest-xdist the workers share the cores, and test_acceleration.py runs 2 intra-op threads
# (the count its tolerances were measured with) beside the other worker's thread. OpenMP's default
# waiting threads spin, so each spinning thread steals a core the other process needs: measured on
# this 2-core machine, test_acceleration.py took 42.7 s inside the suite and 8.6 s with passive
# waiting (the whole suite 105.5 s -> 98.8 s). Read by OpenMP when torch loads it, so set first.
if "PYTEST_XDIST_WORKER_COUNT" in os.environ:
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import pytest  # noqa: E402
import torch  # noqa: E402
from hypothesis import Phase, settings  # noqa: E402

# Property tests draw the same examples on every run (CI failures reproduce, nothing flickers);
# HYPOTHESIS_PROFILE=explore draws fresh ones when hunting for counterexamples.
settings.register_profile("repeatable", derandomize=True)
settings.register_profile("explore", derandomize=False)
# Mutation testing (.ci/mutation.py): a failing example is enough to kill a mutant; shrinking it
# would take longer than mutmut's time limit and be reported as a timeout.
settings.register_profile("mutation", derandomize=True, phases=[Phase.explicit, Phase.reuse, Phase.generate])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "repeatable"))

from repro.mechanics.model import ResNet20

# Under pytest-xdist (the fast suite runs `-n auto`: one worker per core) each worker gets its share of
# the cores for torch's intra-op threads; by default every worker would start one thread per core and
# the workers' threads would contend for the same cores.
if "PYTEST_XDIST_WORKER_COUNT" in os.environ:
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // int(os.environ["PYTEST_XDIST_WORKER_COUNT"])))


# Options of the reproduction tier (tests/repro); registered here because pytest reads
# command-line options only from the root conftest.
def pytest_addoption(parser):
    group = parser.getgroup("repro", "reproduction tier")
    group.addoption("--repro-budget", default=os.environ.get("REPRO_BUDGET", "smoke"),
                    help="budget for tests/repro (env REPRO_BUDGET; default smoke)")
    group.addoption("--repro-set", default=os.environ.get("REPRO_SET", ""),
                    help="budget overrides FIELD=VALUE[,FIELD=VALUE] (env REPRO_SET), e.g. to break a run on purpose")
    group.addoption("--repro-variant", default=os.environ.get("REPRO_VARIANT", ""),
                    help="readings of the paper's open choices CHOICE=READING[,CHOICE=READING] (env REPRO_VARIANT; "
                         "list: repro variants); runs get their own cache folder")
    group.addoption("--repro-seed", type=int, default=int(os.environ.get("REPRO_SEED", "0")))
    group.addoption("--repro-seeds", default=os.environ.get("REPRO_SEEDS", ""),
                    help="several seeds S[,S...] (env REPRO_SEEDS, e.g. 0,1,2); default: --repro-seed alone")
    group.addoption("--repro-cache", default=os.environ.get("REPRO_CACHE", ".repro_cache"),
                    help="run cache folder (env REPRO_CACHE)")
    group.addoption("--repro-data-dir", default=os.environ.get("REPRO_DATA_DIR"),
                    help="folder with cifar-10-batches-py/ (env REPRO_DATA_DIR)")
    group.addoption("--repro-allow-unverified-data", action="store_true",
                    default=os.environ.get("REPRO_ALLOW_UNVERIFIED_DATA") == "1")


TEST_WIDTH = 4  # small enough for fast CPU tests; the architecture is the paper's


@pytest.fixture
def tiny_model() -> ResNet20:
    torch.manual_seed(0)
    return ResNet20(width=TEST_WIDTH)


@pytest.fixture
def batch() -> tuple[torch.Tensor, torch.Tensor]:
    """A random batch of 16 CIFAR-shaped images in [0, 1] with labels."""
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(16, 3, 32, 32, generator=generator)
    labels = torch.randint(0, 10, (16,), generator=generator)
    return images, labels


@pytest.fixture(scope="session")
def trained_tiny_model(tmp_path_factory, worker_id):
    """A width-4 ResNet-20 trained normally on the built-in data, with held-out data.

    Deterministic (fixed seeds, fixed data); about 6 s on a 2-core CPU, where it reaches ~88%
    clean accuracy (PGD-10 at 8/255: ~12%). Under pytest-xdist the first worker to ask trains it and
    saves it beside the workers' temporary folders; the others load it (pytest-xdist's documented
    pattern for a session fixture made once), so its three test files get one model, trained once.
    """
    if worker_id == "master":
        return _train_tiny_model()
    from filelock import FileLock

    path = tmp_path_factory.getbasetemp().parent / "trained_tiny_model.pt"
    with FileLock(str(path) + ".lock"):
        if not path.is_file():
            model, images, labels = _train_tiny_model()
            torch.save({"state": model.state_dict(), "images": images, "labels": labels}, path)
        saved = torch.load(path)
    model = ResNet20(width=4)
    model.load_state_dict(saved["state"])
    return model.eval(), saved["images"], saved["labels"]


def _train_tiny_model():
    from repro.mechanics.attacks import PGDSettings
    from repro.mechanics.freeze import apply_configuration
    from repro.mechanics.train_step import train_step
    from repro.paper.configs import NORMAL
    from repro.runs.data import synthetic_dataset, to_float

    torch.manual_seed(0)
    data = synthetic_dataset(n_train=2048, n_test=128, seed=0)
    model = ResNet20(width=4)
    optimizer = torch.optim.SGD(apply_configuration(model, NORMAL), lr=0.1, momentum=0.9, nesterov=True)
    epochs, batch_size = 3, 128
    total_steps = epochs * len(data.train_labels) // batch_size
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1 - step / total_steps)
    images = to_float(data.train_images)
    for _epoch in range(epochs):
        for start in range(0, len(images), batch_size):
            train_step(model, NORMAL, optimizer, images[start:start + batch_size],
                       data.train_labels[start:start + batch_size], PGDSettings())
            schedule.step()
    model.eval()
    return model, to_float(data.test_images), data.test_labels


def make_micro_budget(**changes):
    """The smoke budget shrunk to seconds: the machinery, not the numbers, is under test."""
    import dataclasses

    from repro.paper.budgets import SMOKE

    micro = dict(
        name="micro", n_train=256, n_test=64, width=4, batch_size=64, epochs_clean=2, epochs_adversarial=2,
        epochs_finetune=2, train_attack_steps=1, eval_pgd_steps=2, n_robust=32, autoattack_iterations=2,
        eval_batch_size=64,
        curve_images=16, curve_pgd_steps=1,  # the curve's machinery, at a cost that keeps the suite fast
    )
    return dataclasses.replace(SMOKE, **{**micro, **changes})


@pytest.fixture
def micro_budget():
    return make_micro_budget()


def installed_command(name: str, package: str) -> str:
    """The path of console script `name` installed beside this Python (the venv's bin) or on PATH."""
    import shutil
    import sys
    import sysconfig
    from pathlib import Path

    path = shutil.which(name, path=os.pathsep.join([sysconfig.get_path("scripts"), str(Path(sys.executable).parent),
                                                    os.environ["PATH"]]))
    assert path, f"{name} not found: pip install -e '.[test]' installs it ({package})"
    return path
