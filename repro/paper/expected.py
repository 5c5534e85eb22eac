"""The paper's numbers and claims (expected_results.json): the file's language, loading and validation.

The file is data: Table 1's BN share, Table 2's clean and robust errors with an allowance and its
reason per metric, the error model that turns them into tolerances (repro/verdicts/error_model.py), and
the paper's qualitative claims, each with the sentence it comes from and a relation between
measured numbers. A relation ("check") reads

    LEFT op RIGHT * times + plus       (op one of <, <=, >, >=)
    LEFT op value                       (no RIGHT)
    |LEFT - RIGHT| <= value             (op "|diff|<=")
    |LEFT - value| <= tolerance         (op "within": a paper value with a stated tolerance)

where LEFT and RIGHT are quantities measured in the results, each one of

    "CONFIG_ID.METRIC"                              a number of that row's result ("metrics")
    {"difference": ["C.METRIC", "C.METRIC"]}         the first number minus the second
    {"wasserstein1": ["C.SERIES", "C.SERIES"]}       1-Wasserstein distance between the empirical
                                                     distributions of two rows' arrays (Figure 3)
    {"fraction": ["C.SERIES", op, "C.SERIES"]}       share of positions i (e.g. BN layers) where
                                                     first[i] op second[i] holds ("in most layers")

METRIC is one of METRICS; SERIES one of SERIES, the per-row arrays results keep under "series".
Checking a claim on measured results is a verdict: repro/verdicts/claims.py.
"""

from __future__ import annotations

import json
import operator
from pathlib import Path

from repro.paper.configs import CONFIGURATIONS

EXPECTED_PATH = Path(__file__).resolve().parents[2] / "expected_results.json"  # the repository root
SCHEMA_VERSION = 1
TABLE2_METRICS = ("clean_error", "robust_error")  # Table 2's columns: test error, robust test error
METRICS = TABLE2_METRICS + ("pgd_error", "pgd_cross_entropy", "mean_normalized_weight")
# Table 2's "robust test error" is AutoAttack's; results store it under this key.
RESULT_KEY = {"robust_error": "autoattack_error"}
OPERATORS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}
# The error rates a result records, each with the key of the image count it is measured on.
ERROR_RATES = {"clean_error": "n_clean", "pgd_error": "n_robust", "autoattack_error": "n_robust"}
# Per-row arrays (result records' "series", written by repro.runs.evaluate.evaluate): per BN layer in
# forward order, and per image (logits: per image and class) on the first n_robust test images.
SERIES = ("mean_m_per_layer", "mean_abs_gamma_per_layer", "confidence_clean", "confidence_pgd",
          "logits_clean", "logits_pgd")
# Derived quantities: what each reads (METRICS or SERIES) and how many items its list holds.
DERIVED = {"difference": (METRICS, 2), "wasserstein1": (SERIES, 2), "fraction": (SERIES, 3)}


class ExpectedResultsError(ValueError):
    """expected_results.json is missing or malformed; the message says where."""


def _fail(path, where, what):
    raise ExpectedResultsError(f"{path}: {where}: {what}")


def _number(path, where, value, low=None, high=None):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        _fail(path, where, f"must be a number, got {value!r}")
    if (low is not None and value < low) or (high is not None and value > high):
        _fail(path, where, f"must lie in [{low}, {high}], got {value}")


def _reference(path, where, ref, names=METRICS):
    kind = "metric" if names is METRICS else "series"
    if not isinstance(ref, str) or ref.count(".") != 1:
        _fail(path, where, f"must read CONFIG_ID.{kind.upper()}, got {ref!r}")
    config_id, metric = ref.split(".")
    if config_id not in CONFIGURATIONS:
        _fail(path, where, f"unknown configuration {config_id!r}")
    if metric not in names:
        _fail(path, where, f"unknown {kind} {metric!r}; valid: {', '.join(names)}")


def _quantity(path, where, quantity):
    """Validate one side of a relation: a metric reference or one derived quantity."""
    if isinstance(quantity, str):
        return _reference(path, where, quantity)
    if not isinstance(quantity, dict) or len(quantity) != 1 or next(iter(quantity)) not in DERIVED:
        _fail(path, where, f"must be CONFIG_ID.METRIC or an object with one key of {list(DERIVED)}, got {quantity!r}")
    (form, items), = quantity.items()
    names, length = DERIVED[form]
    if not isinstance(items, list) or len(items) != length:
        _fail(path, f"{where}.{form}", f"must list {length} items, got {items!r}")
    if form == "fraction" and (not isinstance(items[1], str) or items[1] not in OPERATORS):
        _fail(path, f"{where}.fraction[1]", f"must be one of {list(OPERATORS)}, got {items[1]!r}")
    for index, ref in enumerate(items):
        if form != "fraction" or index != 1:  # a fraction's [1] is its operator, checked above
            _reference(path, f"{where}.{form}[{index}]", ref, names)


def _check(path, where, check):
    """Validate a claim's relation (the forms in the module docstring)."""
    if not isinstance(check, dict):
        _fail(path, where, "must be an object")
    _quantity(path, f"{where}.left", check.get("left"))
    op = check.get("op")
    if op == "|diff|<=":
        _quantity(path, f"{where}.right", check.get("right"))
        _number(path, f"{where}.value", check.get("value"), 0)
    elif op == "within":
        if "right" in check:
            _fail(path, f"{where}.right", "op 'within' compares LEFT with a value: drop right")
        _number(path, f"{where}.value", check.get("value"))
        _number(path, f"{where}.tolerance", check.get("tolerance"), 0)
    elif isinstance(op, str) and op in OPERATORS:  # a list here is no operator (and unhashable)
        if "right" in check:
            _quantity(path, f"{where}.right", check["right"])
            _number(path, f"{where}.times", check.get("times", 1.0))
            _number(path, f"{where}.plus", check.get("plus", 0.0))
        else:
            _number(path, f"{where}.value", check.get("value"))
    else:
        _fail(path, f"{where}.op", f"must be one of {[*OPERATORS, '|diff|<=', 'within']}, got {op!r}")


def _scale_expectations(path, where, claim, scale_budgets):
    """Each small budget's stated expectation: judged there (in `budgets`) exactly when expected to hold.

    At a budget far below the paper's, whether a claim should hold is decided, with a
    reason, before the run, so an outcome cannot be explained away afterwards.
    """
    stated = claim.get("scale_expectations", {})
    if not isinstance(stated, dict):
        _fail(path, f"{where}.scale_expectations", "must be an object keyed by budget")
    for budget in scale_budgets:
        entry = stated.get(budget)
        at = f"{where}.scale_expectations.{budget}"
        if not isinstance(entry, dict) or not isinstance(entry.get("holds"), bool):
            _fail(path, at, "must say whether the claim is expected to hold at this budget: "
                            '{"holds": true|false, "reason": "..."}')
        if not isinstance(entry.get("reason"), str) or not entry["reason"].strip():
            _fail(path, f"{at}.reason", "every expectation needs its one-sentence reason")
        if entry["holds"] != (budget in claim["budgets"]):
            _fail(path, f"{where}.budgets", f"must include {budget} exactly when the claim is expected to hold there "
                                            f"(scale_expectations says holds={entry['holds']})")


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
    scale_section = doc.get("scale_budgets", {})
    if not isinstance(scale_section, dict):
        _fail(path, "scale_budgets", f"must be an object with budgets, got {type(scale_section).__name__}")
    scale_budgets = scale_section.get("budgets", [])
    if not isinstance(scale_budgets, list) or not all(isinstance(name, str) for name in scale_budgets):
        _fail(path, "scale_budgets.budgets", "must list budget names")
    _number(path, "table1.bn_parameter_percent", doc["table1"].get("bn_parameter_percent"), 0, 100)
    priors = _validate_error_model(path, doc)
    _validate_table2(path, doc["table2"], priors)
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
        _check(path, f"{where}.check", claim.get("check"))
        _scale_expectations(path, where, claim, scale_budgets)
        if "judges_collapse" in claim and (not isinstance(claim["judges_collapse"], str)
                                           or not claim["judges_collapse"].strip()):
            _fail(path, f"{where}.judges_collapse", "must say why a degenerate row is evidence for this claim")
        reason = claim.get("tolerance_reason")
        if ("tolerance_reason" in claim or claim["check"]["op"] == "within") and (
                not isinstance(reason, str) or not reason.strip()):
            _fail(path, f"{where}.tolerance_reason", "must say why the margin or tolerance is this wide")
    return doc


def _validate_table2(path, table, priors) -> None:
    """Check the "table2" section: exactly the registry's rows, each with its label, source, seed-SD
    kind (one of `priors`) and both metrics' value, allowance and reason."""
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
        if not isinstance(row.get("seed_sd_kind"), str) or row["seed_sd_kind"] not in priors:
            _fail(path, f"table2.{config_id}.seed_sd_kind", f"must name one of error_model.seed_sd_priors {sorted(priors)}, "
                  f"got {row.get('seed_sd_kind')!r}")
        for metric in TABLE2_METRICS:
            entry = row.get(metric)
            where = f"table2.{config_id}.{metric}"
            if not isinstance(entry, dict):
                _fail(path, where, "must be an object with value, allowance and reason")
            _number(path, f"{where}.value", entry.get("value"), 0, 100)
            _number(path, f"{where}.allowance", entry.get("allowance"), 0, 100)
            if not isinstance(entry.get("reason"), str) or not entry["reason"].strip():
                _fail(path, f"{where}.reason", "every allowance needs its reason")


def _reasoned_number(path, where, entry, low=None, high=None):
    """An object {"value": number, "reason": text}: a stated number and why."""
    if not isinstance(entry, dict):
        _fail(path, where, "must be an object with value and reason")
    _number(path, f"{where}.value", entry.get("value"), low, high)
    if not isinstance(entry.get("reason"), str) or not entry["reason"].strip():
        _fail(path, f"{where}.reason", "every stated number needs its reason")


def _validate_error_model(path, doc) -> dict:
    """Check the "error_model" section (repro/verdicts/error_model.py reads it); returns its seed_sd_priors."""
    model = doc.get("error_model")
    if not isinstance(model, dict):
        _fail(path, "error_model", "must be an object (z, paper_evaluation_sets, seed_sd_priors, ...)")
    sets = model.get("paper_evaluation_sets")
    if not isinstance(sets, dict):
        _fail(path, "error_model.paper_evaluation_sets", "must be an object with clean_error and robust_error")
    for metric in TABLE2_METRICS:
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
        for metric in TABLE2_METRICS:
            _reasoned_number(path, f"error_model.seed_sd_priors.{kind}.{metric}", prior.get(metric), 0)
    return priors


def load_expected(path: Path = EXPECTED_PATH) -> dict:
    """Load and validate expected_results.json."""
    try:
        doc = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise ExpectedResultsError(f"cannot read {path}: {error}") from None
    return validate(doc, path)
