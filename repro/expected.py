"""The paper's numbers and claims (expected_results.json): loading, validation, checking.

The file is data: Table 1's BN share, Table 2's clean and robust errors with an allowance and its
reason per metric, the error model that turns them into tolerances (repro/error_model.py), and
the paper's qualitative claims, each with the sentence it comes from and a relation between
measured numbers. A relation reads

    LEFT op RIGHT * times + plus       (op one of <, <=, >, >=)
    LEFT op value                       (no RIGHT)
    |LEFT - RIGHT| <= value             (op "|diff|<=")

where LEFT and RIGHT name "CONFIG_ID.METRIC" in the measured results.
"""

from __future__ import annotations

import json
import operator
from dataclasses import dataclass
from pathlib import Path

from repro.configs import CONFIGURATIONS

EXPECTED_PATH = Path(__file__).resolve().parent.parent / "expected_results.json"
SCHEMA_VERSION = 1
METRICS = ("clean_error", "robust_error", "pgd_error", "pgd_cross_entropy", "mean_normalized_weight")
# Table 2's "robust test error" is AutoAttack's; results store it under this key.
RESULT_KEY = {"robust_error": "autoattack_error"}
OPERATORS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}


class ExpectedResultsError(ValueError):
    """expected_results.json is missing or malformed; the message says where."""


@dataclass(frozen=True)
class ClaimOutcome:
    """A claim checked against measured numbers."""

    id: str
    sentence: str
    relation: str  # the relation with the measured numbers filled in
    passed: bool


def _fail(path, where, what):
    raise ExpectedResultsError(f"{path}: {where}: {what}")


def _number(path, where, value, low=None, high=None):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        _fail(path, where, f"must be a number, got {value!r}")
    if (low is not None and value < low) or (high is not None and value > high):
        _fail(path, where, f"must lie in [{low}, {high}], got {value}")


def _reference(path, where, ref):
    if not isinstance(ref, str) or ref.count(".") != 1:
        _fail(path, where, f"must read CONFIG_ID.METRIC, got {ref!r}")
    config_id, metric = ref.split(".")
    if config_id not in CONFIGURATIONS:
        _fail(path, where, f"unknown configuration {config_id!r}")
    if metric not in METRICS:
        _fail(path, where, f"unknown metric {metric!r}; valid: {', '.join(METRICS)}")


def validate(doc: dict, path: Path = EXPECTED_PATH) -> dict:
    """Check the structure of an expected-results document; raises ExpectedResultsError."""
    if not isinstance(doc, dict):
        _fail(path, "top level", "must be an object")
    if doc.get("schema_version") != SCHEMA_VERSION:
        _fail(path, "schema_version", f"must be {SCHEMA_VERSION}, got {doc.get('schema_version')!r}")
    for key, kind in (("protocol", dict), ("table1", dict), ("table2", dict), ("table2_budgets", list),
                      ("claims", list)):
        if key not in doc:
            _fail(path, key, "is missing")
        if not isinstance(doc[key], kind):
            _fail(path, key, f"must be a{'n object' if kind is dict else ' list'}, got {type(doc[key]).__name__}")
    if not all(isinstance(name, str) for name in doc["table2_budgets"]):
        _fail(path, "table2_budgets", "must list budget names")
    _number(path, "table1.bn_parameter_percent", doc["table1"].get("bn_parameter_percent"), 0, 100)
    priors = _validate_error_model(path, doc)
    table = doc["table2"]
    if not isinstance(table, dict) or set(table) != set(CONFIGURATIONS):
        found = sorted(table) if isinstance(table, dict) else table
        _fail(path, "table2", f"must have exactly the registry's rows {list(CONFIGURATIONS)}, got {found}")
    for config_id, row in table.items():
        if not isinstance(row, dict):
            _fail(path, f"table2.{config_id}", "must be an object")
        for key in ("label", "source"):
            if not isinstance(row.get(key), str):
                _fail(path, f"table2.{config_id}.{key}", "must be a string")
        if row["label"] != CONFIGURATIONS[config_id].label:
            _fail(path, f"table2.{config_id}.label", f"{row['label']!r} is not the registry's {CONFIGURATIONS[config_id].label!r}")
        if row.get("seed_sd_kind") not in priors:
            _fail(path, f"table2.{config_id}.seed_sd_kind", f"must name one of error_model.seed_sd_priors {sorted(priors)}, "
                  f"got {row.get('seed_sd_kind')!r}")
        for metric in ("clean_error", "robust_error"):
            entry = row.get(metric)
            where = f"table2.{config_id}.{metric}"
            if not isinstance(entry, dict):
                _fail(path, where, "must be an object with value, allowance and reason")
            _number(path, f"{where}.value", entry.get("value"), 0, 100)
            _number(path, f"{where}.allowance", entry.get("allowance"), 0, 100)
            if not isinstance(entry.get("reason"), str) or not entry["reason"].strip():
                _fail(path, f"{where}.reason", "every allowance needs its reason")
    ids = set()
    for index, claim in enumerate(doc["claims"]):
        where = f"claims[{index}]"
        if not isinstance(claim, dict):
            _fail(path, where, "must be an object")
        for key in ("id", "sentence", "source"):
            if not isinstance(claim.get(key), str) or not claim[key]:
                _fail(path, f"{where}.{key}", "must be a non-empty string")
        if claim["id"] in ids:
            _fail(path, f"{where}.id", f"duplicate claim id {claim['id']!r}")
        ids.add(claim["id"])
        budgets = claim.get("budgets")
        if not isinstance(budgets, list) or not budgets or not all(isinstance(b, str) for b in budgets):
            _fail(path, f"{where}.budgets", "must list the budgets the claim is checked at")
        check = claim.get("check")
        if not isinstance(check, dict):
            _fail(path, f"{where}.check", "must be an object")
        _reference(path, f"{where}.check.left", check.get("left"))
        op = check.get("op")
        if op == "|diff|<=":
            _reference(path, f"{where}.check.right", check.get("right"))
            _number(path, f"{where}.check.value", check.get("value"), 0)
        elif op in OPERATORS:
            if "right" in check:
                _reference(path, f"{where}.check.right", check["right"])
                _number(path, f"{where}.check.times", check.get("times", 1.0))
                _number(path, f"{where}.check.plus", check.get("plus", 0.0))
            else:
                _number(path, f"{where}.check.value", check.get("value"))
        else:
            _fail(path, f"{where}.check.op", f"must be one of {[*OPERATORS, '|diff|<=']}, got {op!r}")
    return doc


def _reasoned_number(path, where, entry, low=None, high=None):
    """An object {"value": number, "reason": text}: a stated number and why."""
    if not isinstance(entry, dict):
        _fail(path, where, "must be an object with value and reason")
    _number(path, f"{where}.value", entry.get("value"), low, high)
    if not isinstance(entry.get("reason"), str) or not entry["reason"].strip():
        _fail(path, f"{where}.reason", "every stated number needs its reason")


def _validate_error_model(path, doc) -> dict:
    """Check the "error_model" section (repro/error_model.py reads it); returns its seed_sd_priors."""
    model = doc.get("error_model")
    if not isinstance(model, dict):
        _fail(path, "error_model", "must be an object (z, paper_evaluation_sets, seed_sd_priors, ...)")
    sets = model.get("paper_evaluation_sets")
    if not isinstance(sets, dict):
        _fail(path, "error_model.paper_evaluation_sets", "must be an object with clean_error and robust_error")
    for metric in ("clean_error", "robust_error"):
        entry = sets.get(metric)
        where = f"error_model.paper_evaluation_sets.{metric}"
        if not isinstance(entry, dict) or isinstance(entry.get("n"), bool) or not isinstance(entry.get("n"), int) or entry["n"] < 1:
            _fail(path, where, "must give the paper's evaluation-set size n (a positive integer)")
        if not any(isinstance(entry.get(key), str) and entry[key].strip() for key in ("argument", "source")):
            _fail(path, where, "must say where n comes from (argument or source)")
    _reasoned_number(path, "error_model.z", model.get("z"), 0)
    _reasoned_number(path, "error_model.family_wise_false_alarm_rate", model.get("family_wise_false_alarm_rate"), 0, 1)
    _reasoned_number(path, "error_model.min_seeds_for_measured_sd", model.get("min_seeds_for_measured_sd"), 2)
    priors = model.get("seed_sd_priors")
    if not isinstance(priors, dict) or not priors:
        _fail(path, "error_model.seed_sd_priors", "must be an object of row kinds")
    for kind, prior in priors.items():
        if not isinstance(prior, dict):
            _fail(path, f"error_model.seed_sd_priors.{kind}", "must be an object with clean_error and robust_error")
        for metric in ("clean_error", "robust_error"):
            _reasoned_number(path, f"error_model.seed_sd_priors.{kind}.{metric}", prior.get(metric), 0)
    return priors


def load_expected(path: Path = EXPECTED_PATH) -> dict:
    """Load and validate expected_results.json."""
    try:
        doc = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise ExpectedResultsError(f"cannot read {path}: {error}") from None
    return validate(doc, path)


def measured(results: dict[str, dict], ref: str) -> float:
    """The measured number CONFIG_ID.METRIC from result records keyed by configuration id."""
    config_id, metric = ref.split(".")
    if config_id not in results:
        raise KeyError(f"no result for {config_id} (needed by {ref})")
    return results[config_id]["metrics"][RESULT_KEY.get(metric, metric)]


def claim_configurations(claim: dict) -> set[str]:
    """The configuration ids a claim's relation reads."""
    check = claim["check"]
    return {check[side].split(".")[0] for side in ("left", "right") if side in check}


def check_claim(claim: dict, results: dict[str, dict]) -> ClaimOutcome:
    """Evaluate one claim's relation on measured results."""
    check = claim["check"]
    left = measured(results, check["left"])
    op = check["op"]
    if op == "|diff|<=":
        right = measured(results, check["right"])
        passed = abs(left - right) <= check["value"]
        relation = f"|{check['left']} - {check['right']}| = |{left:.3f} - {right:.3f}| <= {check['value']}"
    elif "right" in check:
        right = measured(results, check["right"])
        times, plus = check.get("times", 1.0), check.get("plus", 0.0)
        bound = right * times + plus
        passed = OPERATORS[op](left, bound)
        scaled = check["right"] if times == 1 else f"{times:g}*{check['right']}"
        offset = f" {'+' if plus >= 0 else '-'} {abs(plus):g}" if plus else ""
        relation = f"{check['left']} {op} {scaled}{offset}: {left:.3f} {op} {bound:.3f}"
    else:
        passed = OPERATORS[op](left, check["value"])
        relation = f"{check['left']} {op} {check['value']}: {left:.3f} {op} {check['value']}"
    return ClaimOutcome(claim["id"], claim["sentence"], relation, bool(passed))

