"""A mode whose rows moved a number beyond noise against the fp32 evidence is refused at that budget
(issue 28): `repro compare --refuse-into` writes it, `--selfcheck` then applies the fastest mode without it."""

import copy
import json

from repro.cli.main import main
from repro.mechanics.acceleration import apply_selfcheck, approved_mode
from repro.paper.budgets import CIFAR_CPU
from tests.unit.ops.test_selfcheck import CPU_RATES, modes_record
from tests.unit.verdicts.test_report import records

ALL_PASS = {"channels_last": True, "bf16": True, "bf16+channels_last": True, "compiled": True}


def folders(tmp_path, moved: float):
    """fp32 evidence and the same rows run in bf16 + channels_last, BN PARAMS' clean error moved by `moved`."""
    fp32 = records()
    fast = copy.deepcopy(fp32)
    fast["bn_params"]["metrics"]["clean_error"] += moved
    out = []
    for name, rows in (("cifar_cpu", fp32), ("cifar_cpu@bf16", fast)):
        for config_id, record in rows.items():
            record["budget"] = {**record["budget"], "name": "cifar_cpu"}
            if name != "cifar_cpu":
                record["provenance"] = {**record["provenance"],
                                        "selfcheck": {"mode": "bf16+channels_last", "bf16": True, "compile": False}}
            (tmp_path / name / "seed0" / config_id).mkdir(parents=True)
            (tmp_path / name / "seed0" / config_id / "result.json").write_text(json.dumps(record))
        out.append(str(tmp_path / name / "seed0"))
    return out


def selfcheck_file(tmp_path):
    path = tmp_path / "selfcheck.json"
    path.write_text(json.dumps(modes_record(CPU_RATES, ALL_PASS, backend="eager")))  # as a CPU selfcheck: compile unusable
    return path


def test_a_mode_that_moved_a_number_is_refused_at_that_budget_and_runs_get_the_next_without_it(tmp_path, capsys):
    path = selfcheck_file(tmp_path)
    assert main(["compare", *folders(tmp_path, moved=20.0), "--refuse-into", str(path)]) == 1, "a metric outside"
    budget, applied = apply_selfcheck(CIFAR_CPU, json.loads(path.read_text()), "cpu")
    assert (budget.bf16, budget.channels_last) == (False, True), f"bf16 refused at cifar_cpu: {applied}"
    assert "BN PARAMS clean_error" in applied["refused"]["bf16"], f"the finding is kept with it: {applied['refused']}"


def test_the_refusal_holds_only_at_the_budget_compared(tmp_path, capsys):
    path = selfcheck_file(tmp_path)
    main(["compare", *folders(tmp_path, moved=20.0), "--refuse-into", str(path)])
    assert approved_mode(json.loads(path.read_text()), "paper") == "bf16+channels_last", \
        "the paper budget's rows were not compared: its approval stands"


def test_rows_within_the_band_refuse_nothing(tmp_path, capsys):
    path = selfcheck_file(tmp_path)
    assert main(["compare", *folders(tmp_path, moved=0.5), "--refuse-into", str(path)]) == 0, "all within"
    assert "refused" not in json.loads(path.read_text()), "nothing moved beyond noise: nothing refused"
