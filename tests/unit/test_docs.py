"""The README and docs/ say what the code and the evidence say: the status table is computed from results/,
the exit codes are the CLI's, the commands are CI's, links resolve, and product text speaks to users (no
issue numbers, no development log)."""

import math
import re
from pathlib import Path

import pytest

from repro.verdicts.degenerate import CHANCE_Z, chance_error, near_chance
from repro.verdicts.outcome import EXIT_CODES_TEXT
from repro.verdicts.status import embedded_table, status_table

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
PRODUCT = [README, *DOCS, *sorted((ROOT / "repro").rglob("*.py"))]
# Where product text speaks of its own development instead of to a user.
DEVELOPMENT = {
    "an issue number": re.compile(r"\bissues? #?\d+", re.IGNORECASE),
    "an issue reference": re.compile(r"(?<![\w&/])#\d+\b"),
    "the issue": re.compile(r"\bthe issue(?:'s)?\b", re.IGNORECASE),
    "a session": re.compile(r"\b(?:this|that|another|previous|next|a later) session\b", re.IGNORECASE),
    "an hour-by-hour log": re.compile(r"\b\d{1,2}:\d{2}(?:-\d{1,2}:\d{2})? UTC\b"),
}
MAX_README_LINES = 250
FIRST_SCREEN = 40  # lines: the verdict at CPU scale and the picture must be there


def development_references(path: Path, text: str) -> list[str]:
    """'file:line: what (the match)' for every line of `text` matching a DEVELOPMENT pattern."""
    found = []
    for number, line in enumerate(text.splitlines(), 1):
        for what, pattern in DEVELOPMENT.items():
            for match in pattern.finditer(line):
                found.append(f"{path.relative_to(ROOT)}:{number}: {what} ({match.group(0)!r})")
    return found


def test_the_readmes_status_table_is_what_repro_status_renders_from_results():
    table = embedded_table(README.read_text())
    assert table is not None, "README.md needs the status markers <!-- status:start --> and <!-- status:end -->"
    assert table == status_table(ROOT / "results", ROOT), (
        "README.md's status table differs from the evidence: run `repro status --readme README.md` and commit")


def test_the_readme_gives_the_exit_codes_of_repro_help():
    assert f"```text\n{EXIT_CODES_TEXT}\n```" in README.read_text(), (
        "README.md must quote repro/verdicts/outcome.py EXIT_CODES_TEXT (the epilog of `repro --help`) verbatim")


def test_the_readme_is_short_and_opens_with_the_verdict_and_the_picture():
    lines = README.read_text().splitlines()
    first = "\n".join(lines[:FIRST_SCREEN])
    assert len(lines) <= MAX_README_LINES, f"README.md has {len(lines)} lines; the rest belongs under docs/"
    assert "At CPU scale" in first and "![" in first and "docs/status.png" in first, (
        f"the verdict at CPU scale and the picture belong in the first {FIRST_SCREEN} lines")


@pytest.mark.parametrize("command", ["pip install -e '.[test]'", "pytest -n auto --dist loadfile"])
def test_the_readmes_install_and_test_commands_are_the_ones_ci_runs(command):
    ci = (ROOT / ".ci" / "run").read_text()
    assert command in ci and command in README.read_text(), f"`{command}`: in .ci/run and in README.md"


def test_the_readme_says_what_the_degenerate_rule_makes_of_the_papers_bn_only_params():
    """77.11 % clean error on the paper's 900 images: 12.9 SEs below chance, so it classifies."""
    se = 100 * math.sqrt(chance_error() / 100 * (1 - chance_error() / 100) / 900)
    threshold = chance_error() - CHANCE_Z * se
    below = (chance_error() - 77.11) / se
    text = README.read_text()
    assert not near_chance(77.11, 900) and not near_chance(77.11, 10_000), "the paper's BN ONLY PARAMS classifies"
    assert f"{threshold:.1f} %" in text and f"{below:.1f} SEs" in text, (
        f"README.md quotes the rule's threshold {threshold:.1f} % and {below:.1f} SEs below chance")


def local_links(path: Path) -> list[str]:
    """The relative link targets of a Markdown file (no URL, no pure anchor), anchors dropped."""
    targets = re.findall(r"\]\(([^)\s]+)\)", path.read_text())
    return [t.split("#")[0] for t in targets if not re.match(r"[a-z]+://", t) and not t.startswith("#")]


@pytest.mark.parametrize("page", [README, *DOCS], ids=lambda p: p.name)
def test_every_local_link_resolves(page):
    missing = [t for t in local_links(page) if not (page.parent / t).exists()]
    assert not missing, f"{page.relative_to(ROOT)} links to files that do not exist: {missing}"


def test_product_text_has_no_issue_numbers_or_development_log():
    found = [ref for path in PRODUCT for ref in development_references(path, path.read_text())]
    assert not found, "product text speaks of its development; say what the evidence is instead:\n" + "\n".join(found)


@pytest.mark.parametrize("line, caught", [
    ("measured (issue 24): NORMAL", True), ("issues 13 and 28", True), ("see #12 for why", True),
    ("over the issue's two hours", True), ("slower this session", True), ("2026-11-25 22:11-22:37 UTC", True),
    ("color '#8c564b'", False), ("(testing.md#mutation-testing)", False), ("issues a warning", False),
    ("the xdist session if set", False),
])
def test_the_development_patterns_catch_references_and_spare_ordinary_words(line, caught):
    assert bool(development_references(README, line)) is caught, f"{line!r}: caught should be {caught}"
