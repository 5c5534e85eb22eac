"""The paper's qualitative claims (expected_results.json "claims"), one test each, on seed means.

Judged by the code the command line's report uses (repro.verdicts.report.report_content), so the tier
and `repro report` reach the same verdicts: a claim reading a degenerate row, or rows not trained like
for like, is not judged here either (skipped, saying why).
"""

import pytest

from repro.paper.expected import load_expected
from repro.verdicts.claims import FAILS, HOLDS, claim_configurations
from repro.verdicts.report import report_content

pytestmark = pytest.mark.slow  # the reproduction tier: excluded from the default run

CLAIMS = load_expected()["claims"]


@pytest.mark.parametrize("claim", CLAIMS, ids=[c["id"] for c in CLAIMS])
def test_claim(per_seed_results, seeds, budget, expected, claim):
    if budget.name not in claim["budgets"]:
        pytest.skip(f"claim checked at budgets {claim['budgets']}, not {budget.name}")
    per_seed = per_seed_results(sorted(claim_configurations(claim)))
    content = report_content(expected, per_seed, seeds, budget.name, budget.table2_name)
    verdict = next(v for v in content.claims if v.id == claim["id"])
    if verdict.verdict not in (HOLDS, FAILS):
        pytest.skip(f"{claim['id']} not judged on seeds {seeds}: {verdict.reason}")
    assert verdict.verdict == HOLDS, (f"{claim['id']} fails on the mean over seeds {seeds}: {verdict.relation}. "
                                      f"Paper ({claim['source']}): {claim['sentence']}")
