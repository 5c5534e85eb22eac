"""The paper's numbers (expected_results.json), loaded and checked."""

from __future__ import annotations

import json
from pathlib import Path

from repro.configs import CONFIGURATIONS

EXPECTED_PATH = Path(__file__).resolve().parent.parent / "expected_results.json"


class ExpectedResultsError(ValueError):
    """expected_results.json is missing or malformed; the message says where."""


def load_expected(path: Path = EXPECTED_PATH) -> dict:
    """Load and validate the expected results (Table 1, Table 2 of the paper)."""
    try:
        doc = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise ExpectedResultsError(f"cannot read {path}: {error}") from None
    table = doc.get("table2")
    if not isinstance(table, dict):
        raise ExpectedResultsError(f"{path}: 'table2' must be an object keyed by configuration id")
    missing = set(CONFIGURATIONS) - set(table)
    extra = set(table) - set(CONFIGURATIONS)
    if missing or extra:
        raise ExpectedResultsError(f"{path}: table2 rows differ from the registry (missing {sorted(missing)}, extra {sorted(extra)})")
    for config_id, row in table.items():
        for metric in ("clean_error", "robust_error"):
            value = row.get(metric)
            if not isinstance(value, (int, float)) or not 0 <= value <= 100:
                raise ExpectedResultsError(f"{path}: table2.{config_id}.{metric} must be a percentage, got {value!r}")
    return doc
