"""Mutation testing of the mechanism modules, one module at a time with only its own tests.

    python .ci/mutation.py [MODULE ...]      # default: every module below, smallest first

For each module this copies the package and tests into .mutation/MODULE/ (git-ignored), writes a
setup.cfg telling mutmut 3 to mutate only that module and to run only that module's test files,
runs `mutmut run`, and prints the module's score: killed / (killed + survived), timeouts counted
as killed. Survivors are listed by name; `cd .mutation/MODULE && mutmut show NAME` shows the diff.
mutmut is chosen because it forks each mutant from one warm process that has already imported
torch and collected the tests, and runs only the tests that reach the mutated function; tools
that start a fresh pytest per mutant pay torch's import (seconds) hundreds of times.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Module -> (its path under repro/, the test files that pin it: the fast tier only; the slow tier is too
# slow to rerun per mutant). Ordered smallest module first, so an interrupted session has the most done.
MODULES = {
    "bn_analysis": ("mechanics/bn_analysis", ["tests/unit/mechanics/test_bn_analysis.py"]),
    "train_step": ("mechanics/train_step", ["tests/unit/mechanics/test_freeze.py"]),
    "freeze": ("mechanics/freeze", ["tests/unit/mechanics/test_freeze.py", "tests/unit/mechanics/test_attacks.py"]),
    "evaluate": ("runs/evaluate", ["tests/unit/runs/test_evaluate.py"]),
    "attacks": ("mechanics/attacks", ["tests/unit/mechanics/test_attacks.py"]),
    "model": ("mechanics/model", ["tests/unit/mechanics/test_model.py", "tests/unit/mechanics/test_freeze.py"]),
    "expected": ("paper/expected", ["tests/unit/paper/test_expected.py"]),
    "augmentation": ("runs/augmentation", ["tests/unit/runs/test_augmentation.py"]),
    "training": ("runs/training", ["tests/unit/runs/test_training.py"]),
}
def run_module(module: str) -> dict:
    """Mutate the module against its tests; returns counts per outcome and the survivors."""
    path, tests = MODULES[module]
    work = ROOT / ".mutation" / module
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    for name in ("repro", "tests"):
        shutil.copytree(ROOT / name, work / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", work)  # pytest's markers and options; mutmut reads setup.cfg
    (work / "setup.cfg").write_text(
        "[mutmut]\nsource_paths = repro\n"
        f"only_mutate = repro/{path}.py\n"
        "pytest_add_cli_args_test_selection =\n" + "".join(f"    {t}\n" for t in tests)
        + "pytest_add_cli_args =\n    -p\n    no:cacheprovider\n    -x\n"
    )
    started = time.perf_counter()
    # No shrinking (tests/conftest.py); one intra-op thread: mutmut forks every mutant from a process
    # that has run torch, and a forked child waits forever on the parent's OpenMP thread pool.
    env = {**os.environ, "HYPOTHESIS_PROFILE": "mutation", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    subprocess.run([sys.executable, "-m", "mutmut", "run", "--max-children", "1"], cwd=work, env=env,
                   check=False)
    seconds = time.perf_counter() - started
    listing = subprocess.run([sys.executable, "-m", "mutmut", "results", "--all", "true"], cwd=work,
                             capture_output=True, text=True).stdout
    outcomes: dict[str, list[str]] = {}
    for line in listing.splitlines():
        if ":" in line:
            name, outcome = (part.strip() for part in line.rsplit(":", 1))
            outcomes.setdefault(outcome, []).append(name)
    return {"module": module, "seconds": seconds, "outcomes": outcomes}


def main(modules: list[str]) -> None:
    unknown = set(modules) - set(MODULES)
    if unknown:
        raise SystemExit(f"mutation.py: error: unknown module(s) {sorted(unknown)}; choose from {list(MODULES)}")
    for module in modules or list(MODULES):
        result = run_module(module)
        counts = {k: len(v) for k, v in result["outcomes"].items()}
        killed = counts.get("killed", 0) + counts.get("timeout", 0)
        survived = counts.get("survived", 0)
        score = 100 * killed / max(killed + survived, 1)
        print(f"{module}: {score:.0f}% killed ({killed} killed, {survived} survived, other {counts}), "
              f"{result['seconds']:.0f} s", flush=True)
        for name in result["outcomes"].get("survived", []):
            print(f"    survived: {name}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
