"""Like for like: a claim compares rows only when they ran under one protocol, budget and reading.

Two kinds of difference keep two records apart:

- **the evaluation protocol** (PROTOCOL_FIELDS: the threat model, the attacks and their strength, the
  images evaluated, the data read): numbers measured differently are not one quantity. Commands that
  bring records of several folders together (compare, ladder, the report over seeds) refuse them with
  one line naming both values (`check_same_protocol`).
- **how the rows trained** (`training_setting`): the budget's fields every row shares (dataset, width,
  batch, optimiser), the schedule of rows of one kind (two fine-tuning rows at different
  learning rates or epochs are two readings of the paper, not one experiment), and the readings of
  every open choice that changes both rows (repro/paper/variants.py). A claim over rows that differ
  there is not judged (`unlike_reason`), unless it says it compares across readings.

Rows of different kinds differ by design (NORMAL trains 6 epochs clean, BN PARAMS fine-tunes 1): only
what both kinds read is compared.
"""

from __future__ import annotations

import json

from repro.paper.choices import CHOICES
from repro.paper.configs import CLEAN, FROM_NORMAL
from repro.paper.variants import affected_rows

# The budget fields every row's training reads, so two rows of one comparison must share them. The
# acceleration modes (bf16, compile, channels_last) are not among them: a mode must change no number beyond
# noise, which the mode rule judges (repro/verdicts/mode_rule.py), and a mode's fine-tuning rows may start
# from the fp32 NORMAL they are compared with.
SHARED_FIELDS = ("dataset", "n_train", "width", "batch_size", "momentum", "weight_decay", "nesterov", "schedule")
# What decides how a record's numbers were measured (besides the data's hashes, compared when both have them).
PROTOCOL_FIELDS = ("dataset", "n_test", "epsilon", "eval_pgd_steps", "n_robust", "autoattack_version",
                   "autoattack_iterations")
# The fine-tuning schedule's open choices: the readings that set a fine-tuning row's peak rate and epochs.
SCHEDULE_CHOICES = {"lr": "finetune_lr", "epochs": "finetune_epochs"}


def _kind(config: dict) -> str:
    if config.get("init") == FROM_NORMAL:
        return "fine-tuned"
    return "clean from scratch" if config.get("objective") == CLEAN else "adversarial from scratch"


def training_setting(record: dict) -> dict:
    """How a result record's row trained, as far as a comparison with another row depends on it:
    {"kind", "shared": SHARED_FIELDS, "schedule": peak rate (rows with parameters to train) and epochs,
    "readings": {choice: reading} of the choices that change this row}."""
    budget, config = record.get("budget", {}), record.get("config", {})
    kind = _kind(config)
    fine = kind == "fine-tuned"
    epochs_field = "epochs_finetune" if fine else ("epochs_clean" if config.get("objective") == CLEAN
                                                   else "epochs_adversarial")
    schedule = {"epochs": config.get("epochs") or budget.get(epochs_field)}
    if config.get("trainable"):
        schedule["lr"] = config.get("lr") or budget.get("lr_finetune" if fine else "lr")
    variants = record.get("variants") or {}
    row = config.get("id")
    readings = {c.id: variants.get(c.id, c.default) for c in CHOICES.values() if row in affected_rows(c)}
    return {"kind": kind, "shared": {f: budget.get(f) for f in SHARED_FIELDS if f in budget},
            "schedule": schedule, "readings": readings}


def _pair_difference(a: dict, b: dict) -> str | None:
    """Why two rows' training settings (training_setting) are not like for like, or None."""
    for field in SHARED_FIELDS:
        if field in a["shared"] and field in b["shared"] and a["shared"][field] != b["shared"][field]:
            return f"rows under different budgets ({field} {a['shared'][field]} vs {b['shared'][field]})"
    if a["kind"] == b["kind"]:
        for key in ("lr", "epochs"):
            if key in a["schedule"] and key in b["schedule"] and a["schedule"][key] != b["schedule"][key]:
                name = SCHEDULE_CHOICES[key] if a["kind"] == "fine-tuned" else key
                return f"rows under different readings ({name} {a['schedule'][key]:g} vs {b['schedule'][key]:g})"
    for choice in sorted(set(a["readings"]) & set(b["readings"]) - set(SCHEDULE_CHOICES.values())):
        if a["readings"][choice] != b["readings"][choice]:
            return f"rows under different readings ({choice} {a['readings'][choice]} vs {b['readings'][choice]})"
    return None


def unlike_reason(records: dict[str, dict], rows) -> str | None:
    """Why the records of `rows` (config ids, in the order the reason names them; from {config_id: record})
    cannot be compared like for like, or None. Records without a budget or configuration (seed means) are
    left out of the check."""
    settings = [(row, training_setting(records[row])) for row in dict.fromkeys(rows)
                if row in records and "budget" in records[row] and "config" in records[row]]
    for i, (row_a, a) in enumerate(settings):
        for row_b, b in settings[i + 1:]:
            why = _pair_difference(a, b)
            if why:
                return f"{why}: {row_a} and {row_b}"
    return None


def protocol(record: dict) -> dict:
    """How a record's numbers were measured: PROTOCOL_FIELDS of its budget and its test data's hash."""
    budget = record.get("budget", {})
    out = {f: budget.get(f) for f in PROTOCOL_FIELDS}
    test = (record.get("provenance", {}).get("data_sha256") or {}).get("test_sha256")
    if test:
        out["test data sha256"] = test[:12]
    return out


def protocol_difference(first: dict, second: dict) -> str | None:
    """The first protocol field two records differ in, as 'FIELD A vs B', or None."""
    a, b = protocol(first), protocol(second)
    for field in a:
        if field in b and a[field] != b[field]:
            return f"{field} {json.dumps(a[field])} vs {json.dumps(b[field])}"
    return None


def check_same_protocol(named: list[tuple[str, dict]]) -> None:
    """ValueError (one line, naming both records and the differing value) unless every record of
    `named` ((name, record) pairs) was evaluated under one protocol."""
    if not named:
        return
    first_name, first = named[0]
    for name, record in named[1:]:
        why = protocol_difference(first, record)
        if why:
            raise ValueError(f"{first_name} and {name} were evaluated under different protocols ({why}); "
                             "compare records of one budget's evaluation, or evaluate both again under one "
                             "(`repro evaluate ... --set FIELD=VALUE`)")
