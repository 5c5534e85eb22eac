"""The package's layers as a checked contract (issue 22): import-linter's contracts in pyproject.toml.

Each subpackage of repro/ is a layer (its __init__ says what lives there); a module may import only
from its own layer and the layers below: paper < mechanics < runs < verdicts < figures < ops < cli.
No two sibling modules or packages may import each other, directly or in a circle.
"""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import installed_command

ROOT = Path(__file__).resolve().parents[2]
LAYERS = ("paper", "mechanics", "runs", "verdicts", "figures", "ops", "cli")  # lowest first


@pytest.fixture(scope="module")
def lint_imports():
    """The `lint-imports` command of import-linter (the test extra)."""
    return installed_command("lint-imports", "import-linter")


def check(lint_imports, root: Path) -> subprocess.CompletedProcess:
    """Run the contracts of `root`/pyproject.toml on the package `root`/repro."""
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run([lint_imports, "--no-cache", "--config", str(root / "pyproject.toml")], cwd=root, env=env,
                          capture_output=True, text=True, timeout=120)


def copy_of_package(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "repro", tmp_path / "repro", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    return tmp_path


def test_the_package_keeps_its_layers_and_has_no_circle(lint_imports):
    result = check(lint_imports, ROOT)
    assert result.returncode == 0, f"an import breaks the layer contract:\n{result.stdout}\n{result.stderr}"


def test_every_package_is_a_layer_of_the_contract():
    packages = sorted(p.parent.name for p in (ROOT / "repro").glob("*/__init__.py"))
    assert packages == sorted(LAYERS), f"packages {packages} differ from the contract's layers {sorted(LAYERS)}"
    text = (ROOT / "pyproject.toml").read_text()
    listed = [line.strip().strip('",').removeprefix("repro.") for line in text.split("layers = [")[1].split("]")[0].splitlines()
              if line.strip()]
    assert listed == list(reversed(LAYERS)), f"pyproject.toml lists the layers as {listed}, not highest first"


def test_every_package_says_what_lives_there_and_what_it_may_import():
    for layer in LAYERS:
        doc = (ROOT / "repro" / layer / "__init__.py").read_text()
        assert "May import" in doc, f"repro/{layer}/__init__.py does not say what it may import"
        assert 3 <= len(doc.strip().splitlines()) <= 10, f"repro/{layer}/__init__.py: say it in 3-6 lines"


@pytest.mark.parametrize("importer, imported", [
    ("repro/paper/groups.py", "repro.cli.main"),  # the lowest layer importing the highest
    ("repro/mechanics/attacks.py", "repro.runs.training"),  # one layer up, inside a function
])
def test_an_import_from_a_higher_layer_breaks_the_contract(lint_imports, tmp_path, importer, imported):
    root = copy_of_package(tmp_path)
    path = root / importer
    path.write_text(path.read_text() + f"\n\ndef _planted():\n    import {imported}  # noqa: F401\n")
    result = check(lint_imports, root)
    assert result.returncode != 0, f"planted `import {imported}` in {importer} and the contract still held"
    assert imported in result.stdout, f"the failure does not name the planted import:\n{result.stdout}"


def test_a_circle_between_siblings_breaks_the_contract(lint_imports, tmp_path):
    root = copy_of_package(tmp_path)
    path = root / "repro/runs/checkpoint.py"  # runs.pipeline imports runs.checkpoint; plant the way back
    path.write_text(path.read_text() + "\n\ndef _planted():\n    import repro.runs.pipeline  # noqa: F401\n")
    result = check(lint_imports, root)
    assert result.returncode != 0, "planted a circle runs.checkpoint <-> runs.pipeline and the contract still held"
    assert ".checkpoint -> .pipeline" in result.stdout, f"the failure does not name the circle:\n{result.stdout}"
