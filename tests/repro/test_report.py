"""The report renders every row and every claim from the cached runs, per seed and over seeds."""

import pytest

from repro.paper.configs import CONFIGURATIONS
from repro.verdicts.report import write_report, write_seed_report

pytestmark = pytest.mark.slow  # the reproduction tier: excluded from the default run


def test_report_renders(results, pipeline, budget, expected):
    for config_id in CONFIGURATIONS:
        results[config_id]  # make sure every row exists before rendering
    text, path, _ = write_report(pipeline.run_folder, expected, budget)
    markdown = path.read_text()
    missing = [c.label for c in CONFIGURATIONS.values() if f"| {c.label} |" not in markdown]
    assert missing == [], f"report.md lacks rows {missing}"
    assert all(claim["id"] in markdown for claim in expected["claims"]), "report.md lacks claims"
    missing_rows = [line for line in text.splitlines()
                    if line.startswith(tuple(c.label for c in CONFIGURATIONS.values())) and "missing" in line]
    assert missing_rows == [], f"terminal table reports missing rows:\n{text}"


def test_report_over_seeds_renders(per_seed_results, pipeline, seeds, budget, expected):
    per_seed_results(list(CONFIGURATIONS))  # every (row, seed) exists before rendering
    text, path, _ = write_seed_report(pipeline.budget_folder, seeds, expected, budget)
    markdown = path.read_text()
    assert path == pipeline.budget_folder / "report.md", f"the report over seeds lives in OUT/BUDGET: {path}"
    assert f"seeds: {', '.join(map(str, seeds))}" in markdown, "report.md must list every seed run"
    missing_rows = [line for line in text.splitlines()
                    if line.startswith(tuple(c.label for c in CONFIGURATIONS.values())) and "missing" in line]
    assert missing_rows == [], f"the report over seeds has missing rows:\n{text}"
