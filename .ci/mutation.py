"""Mutation testing of every module whose output reaches a number or a verdict, one module at a time
with only its own tests.

    python .ci/mutation.py [--resume | --recheck] [--children N] [MODULE ...]   # default: every module, in order

--resume continues an interrupted run of each named module in its .mutation/MODULE/ copy: mutmut keeps
every verdict reached so far and runs only the mutants not yet run; the copy, and the commit recorded
when it was made, stay as they were (a module's training tests take hours, more than one session).
--children N runs N mutants at once (default 1; 2 on this 2-core machine when nothing else runs).
--recheck runs the survivors of each named module's last run against the tests as they are now (in a
copy of mutmut's tree, each survivor switched on by MUTANT_UNDER_TEST) and says which the tests written
since kill (--children N of them at once); it changes no verdict of the run itself.

For each module this copies the package and tests into .mutation/MODULE/ (git-ignored), writes a
setup.cfg telling mutmut 3 to mutate only that module and to run only that module's test files,
runs `mutmut run`, and prints the module's score: killed / (killed + survived), timeouts counted
as killed, and its row of docs/mutation.md's table (killed, timed out, survived, not reached by any
test, wall time, date, commit). Survivors and unreached mutants are listed by name;
`cd .mutation/MODULE && mutmut show NAME` shows the diff.
mutmut is chosen because it forks each mutant from one warm process that has already imported
torch and collected the tests, and runs only the tests that reach the mutated function; tools
that start a fresh pytest per mutant pay torch's import (seconds) hundreds of times.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Module -> (its path under repro/, the test files that pin it: the fast tier only; the slow tier is too
# slow to rerun per mutant). Every module whose output reaches a number or a verdict (issue 26), the
# evaluation attack's first, training (the longest) last, so an interrupted session has the most done.
MODULES = {
    "attacks": ("mechanics/attacks", ["tests/unit/mechanics/test_attacks.py", "tests/unit/runs/test_attack_strength.py"]),
    "evaluate": ("runs/evaluate", ["tests/unit/runs/test_evaluate.py", "tests/unit/runs/test_attack_strength.py"]),
    "bn_analysis": ("mechanics/bn_analysis", ["tests/unit/mechanics/test_bn_analysis.py"]),
    "train_step": ("mechanics/train_step", ["tests/unit/mechanics/test_freeze.py", "tests/unit/mechanics/test_train_step.py"]),
    "freeze": ("mechanics/freeze", ["tests/unit/mechanics/test_freeze.py", "tests/unit/mechanics/test_attacks.py"]),
    "model": ("mechanics/model", ["tests/unit/mechanics/test_model.py", "tests/unit/mechanics/test_freeze.py"]),
    "expected": ("paper/expected", ["tests/unit/paper/test_expected.py"]),
    "variants": ("paper/variants", ["tests/unit/paper/test_variants.py"]),
    "error_model": ("verdicts/error_model", ["tests/unit/verdicts/test_error_model.py"]),
    "seeds": ("runs/seeds", ["tests/unit/runs/test_seeds.py"]),
    "distances": ("verdicts/distances", ["tests/unit/verdicts/test_distances.py"]),
    "history": ("verdicts/history", ["tests/unit/verdicts/test_history.py"]),
    "report": ("verdicts/report", ["tests/unit/verdicts/test_report.py", "tests/unit/verdicts/test_report_text.py"]),
    "data": ("runs/data", ["tests/unit/runs/test_data.py", "tests/unit/runs/test_evaluate.py", "tests/unit/runs/test_provenance.py"]),
    "augmentation": ("runs/augmentation", ["tests/unit/runs/test_augmentation.py"]),
    "degenerate": ("verdicts/degenerate", ["tests/unit/verdicts/test_degenerate.py"]),
    "mode_rule": ("verdicts/mode_rule", ["tests/unit/verdicts/test_mode_rule.py"]),
    "like_for_like": ("verdicts/like_for_like", ["tests/unit/verdicts/test_like_for_like.py"]),
    # short files first: --recheck runs the files in this order and stops at the first failure;
    # test_snapshots: train() saves the fine-tuning ladder's snapshots
    "training": ("runs/training", ["tests/unit/runs/test_curves.py", "tests/unit/runs/test_snapshots.py",
                                   "tests/unit/runs/test_training.py", "tests/unit/paper/test_readings.py"]),
}
# mutmut's outcomes, as the table in docs/mutation.md counts them. A timeout (the mutant made the tests
# run past mutmut's limit, e.g. a loop that no longer ends) counts as killed but is shown apart, since
# on a loaded machine a slow survivor can time out too.
# "not checked": mutmut was stopped (its process killed) before it ran that mutant; the row then
# records how far an interrupted run got.
KILLED, TIMEOUT, SURVIVED, NOT_REACHED, NOT_RUN = "killed", "timeout", "survived", "no tests", "not checked"


# The files tests read from the root, copied beside repro/ and tests/ (pyproject.toml: pytest's markers and options).
ROOT_FILES = ("pyproject.toml", "expected_results.json", "README.md")
# No shrinking (tests/conftest.py); one intra-op thread: mutmut forks every mutant from a process that has
# run torch, and a forked child waits forever on the parent's OpenMP thread pool.
TEST_ENV = {"HYPOTHESIS_PROFILE": "mutation", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
MEASURED_AT = ".measured_at"  # in a module's copy: the commit its repro/ and tests/ were copied from
SECONDS = ".seconds"  # in a module's copy: mutmut's wall time so far, summed over resumed runs


def run_module(module: str, resume: bool = False, children: int = 1) -> dict:
    """Mutate the module against its tests; returns counts per outcome, the survivors and the commit measured."""
    path, tests = MODULES[module]
    work = ROOT / ".mutation" / module
    if resume and (work / MEASURED_AT).exists():
        return mutate(work, children) | {"commit": (work / MEASURED_AT).read_text().strip()}
    if resume:
        print(f"mutation.py: {module}: no earlier run to resume in {work} (or it predates --resume); "
              "starting afresh", file=sys.stderr, flush=True)
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    (work / MEASURED_AT).write_text(commit() + "\n")
    for name in ("repro", "tests"):
        shutil.copytree(ROOT / name, work / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ROOT_FILES:
        shutil.copy(ROOT / name, work)
    (work / "setup.cfg").write_text(
        "[mutmut]\nsource_paths = repro\n"
        f"only_mutate = repro/{path}.py\n"
        "also_copy =\n    expected_results.json\n    README.md\n"
        "pytest_add_cli_args_test_selection =\n" + "".join(f"    {t}\n" for t in tests)
        + "pytest_add_cli_args =\n    -p\n    no:cacheprovider\n    -x\n"
    )
    return mutate(work, children) | {"commit": (work / MEASURED_AT).read_text().strip()}


def mutate(work: Path, children: int) -> dict:
    """Run mutmut in a module's copy (it skips mutants that already have a verdict); returns the outcomes."""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "mutmut", "run", "--max-children", str(children)], cwd=work,
                   env={**os.environ, **TEST_ENV}, check=False)
    earlier = float((work / SECONDS).read_text()) if (work / SECONDS).exists() else 0.0
    seconds = earlier + time.perf_counter() - started
    (work / SECONDS).write_text(f"{seconds:.0f}\n")
    return {"seconds": seconds, "outcomes": outcomes_of(work)}


def outcomes_of(work: Path) -> dict[str, list[str]]:
    """mutmut's verdicts in a module's copy: outcome -> mutant names."""
    listing = subprocess.run([sys.executable, "-m", "mutmut", "results", "--all", "true"], cwd=work,
                             capture_output=True, text=True).stdout
    outcomes: dict[str, list[str]] = {}
    for line in listing.splitlines():
        if ":" in line:
            name, outcome = (part.strip() for part in line.rsplit(":", 1))
            outcomes.setdefault(outcome, []).append(name)
    return outcomes


def recheck(module: str, children: int = 1) -> None:
    """Run a finished (or stopped) run's survivors against the tests as they are now, without a new run.

    mutmut's copy holds every mutant behind the MUTANT_UNDER_TEST switch; the module's current test
    files run in a copy of it with each survivor switched on. Prints each survivor's new verdict and
    the count; the table's row stays the run's own, this says what the tests written since kill.
    """
    work = ROOT / ".mutation" / module
    if not (work / "mutants").is_dir():
        sys.exit(f"mutation.py: {module}: no run to recheck in {work}; run `python .ci/mutation.py {module}` first")
    survivors = outcomes_of(work).get(SURVIVED, [])
    checked = ROOT / ".mutation" / f"{module}-recheck"
    if checked.exists():
        shutil.rmtree(checked)
    shutil.copytree(work / "mutants", checked, ignore=shutil.ignore_patterns("tests", "__pycache__"))
    shutil.copytree(ROOT / "tests", checked / "tests", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ROOT_FILES:
        shutil.copy(ROOT / name, checked)
    env = {**os.environ, **TEST_ENV, "PYTHONPATH": str(checked)}

    def passes(mutant: str) -> bool:
        command = [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *MODULES[module][1]]
        return subprocess.run(command, cwd=checked, env={**env, "MUTANT_UNDER_TEST": mutant},
                              capture_output=True).returncode == 0

    if not passes(""):  # the tests must pass on the unmutated code, or every "kill" means nothing
        sys.exit(f"mutation.py: {module}: the current tests fail without any mutant in {checked}; fix them first")
    with ThreadPoolExecutor(max_workers=children) as pool:  # each a pytest process of its own
        still = [name for name, survives in zip(survivors, pool.map(passes, survivors)) if survives]
    for name in still:
        print(f"    still survives: {name}", flush=True)
    measured_at = (work / MEASURED_AT).read_text().strip() if (work / MEASURED_AT).exists() else "(commit not kept)"
    print(f"{module}: of {len(survivors)} survivors of the run at {measured_at}, "
          f"{len(survivors) - len(still)} killed by the tests at {commit()}, {len(still)} still survive", flush=True)


def commit() -> str:
    """The commit measured: short hash, with "+changes" when repro/ or tests/ differ from it."""
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "repro", "tests"], cwd=ROOT, capture_output=True, text=True).stdout
    return head + ("+changes" if dirty.strip() else "")


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog=".ci/mutation.py", description=__doc__.splitlines()[0])
    parser.add_argument("modules", nargs="*", metavar="MODULE", help=f"default: all of {', '.join(MODULES)}")
    parser.add_argument("--resume", action="store_true", help="continue each module's interrupted run")
    parser.add_argument("--children", type=int, default=1, help="mutants run at once (default 1)")
    parser.add_argument("--recheck", action="store_true",
                        help="run each module's survivors against the current tests instead of a new run")
    args = parser.parse_args(argv)
    unknown = set(args.modules) - set(MODULES)
    if unknown:
        parser.error(f"unknown module(s) {sorted(unknown)}; choose from {list(MODULES)}")
    if args.children < 1:
        parser.error(f"--children must be at least 1, got {args.children}")
    for module in args.modules or list(MODULES):
        if args.recheck:
            recheck(module, args.children)
            continue
        # per module: each copies repro/ and tests/ as they are when it starts (or resumes its copy)
        result = run_module(module, args.resume, args.children)
        measured_at = result["commit"]
        counts = {k: len(v) for k, v in result["outcomes"].items()}
        killed, timeout = counts.get(KILLED, 0) + counts.get("caught by type check", 0), counts.get(TIMEOUT, 0)
        survived, not_reached, not_run = counts.get(SURVIVED, 0), counts.get(NOT_REACHED, 0), counts.get(NOT_RUN, 0)
        decided = killed + timeout + survived
        score = f"{100 * (killed + timeout) / decided:.0f}%" if decided else "-"  # no mutant decided: no score
        print(f"{module}: {score} killed ({killed} killed, {timeout} timed out, {survived} survived, "
              f"{not_reached} not reached, {not_run} not run; all outcomes {counts}), {result['seconds']:.0f} s",
              flush=True)
        # the row of docs/mutation.md's table
        print(f"| {module} | {killed} | {timeout} | {survived} | {not_reached} | {not_run} | {score} | "
              f"{result['seconds'] / 60:.0f} min | {time.strftime('%Y-%m-%d')} | {measured_at} |", flush=True)
        for name in result["outcomes"].get(SURVIVED, []) + result["outcomes"].get(NOT_REACHED, []):
            print(f"    {'survived' if name in result['outcomes'].get(SURVIVED, []) else 'not reached'}: {name}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
