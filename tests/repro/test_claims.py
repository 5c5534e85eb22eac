"""The paper's qualitative claims (expected_results.json "claims"), one test each."""

import pytest

from repro.expected import check_claim, claim_configurations, load_expected

pytestmark = pytest.mark.slow  # the reproduction tier: excluded from the default run

CLAIMS = load_expected()["claims"]


@pytest.mark.parametrize("claim", CLAIMS, ids=[c["id"] for c in CLAIMS])
def test_claim(results, budget, claim):
    if budget.name not in claim["budgets"]:
        pytest.skip(f"claim checked at budgets {claim['budgets']}, not {budget.name}")
    needed = {config_id: results[config_id] for config_id in sorted(claim_configurations(claim))}
    outcome = check_claim(claim, needed)
    assert outcome.passed, f"{claim['id']} fails: {outcome.relation}. Paper ({claim['source']}): {claim['sentence']}"
