"""The report renders every row and every claim from the cached runs."""

import pytest

from repro.configs import CONFIGURATIONS
from repro.report import write_report

pytestmark = pytest.mark.slow  # the reproduction tier: excluded from the default run


def test_report_renders(results, pipeline, budget, expected):
    for config_id in CONFIGURATIONS:
        results[config_id]  # make sure every row exists before rendering
    text, path = write_report(pipeline.run_folder, expected, budget)
    markdown = path.read_text()
    missing = [c.label for c in CONFIGURATIONS.values() if f"| {c.label} |" not in markdown]
    assert missing == [], f"report.md lacks rows {missing}"
    assert all(claim["id"] in markdown for claim in expected["claims"]), "report.md lacks claims"
    missing_rows = [line for line in text.splitlines()
                    if line.startswith(tuple(c.label for c in CONFIGURATIONS.values())) and "missing" in line]
    assert missing_rows == [], f"terminal table reports missing rows:\n{text}"
