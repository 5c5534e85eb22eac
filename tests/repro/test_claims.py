"""The paper's qualitative claims (expected_results.json "claims"), one test each, on seed means."""

import pytest

from repro.paper.expected import load_expected
from repro.verdicts.claims import check_claim, claim_configurations

pytestmark = pytest.mark.slow  # the reproduction tier: excluded from the default run

CLAIMS = load_expected()["claims"]


@pytest.mark.parametrize("claim", CLAIMS, ids=[c["id"] for c in CLAIMS])
def test_claim(mean_results, seeds, budget, claim):
    if budget.name not in claim["budgets"]:
        pytest.skip(f"claim checked at budgets {claim['budgets']}, not {budget.name}")
    outcome = check_claim(claim, mean_results(sorted(claim_configurations(claim))))
    assert outcome.passed, (f"{claim['id']} fails on the mean over seeds {seeds}: {outcome.relation}. "
                            f"Paper ({claim['source']}): {claim['sentence']}")
