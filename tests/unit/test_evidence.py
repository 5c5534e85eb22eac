"""The committed evidence cannot go stale: every report under results/ is what its records give now."""

from pathlib import Path

import pytest

from repro.paper.expected import load_expected
from repro.verdicts.outcome import VERDICTS_NAME
from repro.verdicts.report import REPORT_NAME, rendered

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "results"
REPORTS = sorted(RESULTS.rglob(REPORT_NAME))


@pytest.mark.parametrize("report", REPORTS, ids=[str(p.parent.relative_to(RESULTS)) for p in REPORTS])
def test_a_committed_report_is_its_records_rendered_now(report):
    markdown, verdicts = rendered(report.parent, load_expected())
    assert report.read_text() == markdown and (report.parent / VERDICTS_NAME).read_bytes() == verdicts, (
        f"{report} (or its {VERDICTS_NAME}) differs from a re-render of its records: "
        "run `repro status --refresh` and commit the result")
