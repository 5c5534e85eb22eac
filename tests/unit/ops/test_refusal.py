"""A mode whose rows moved a number beyond noise against the fp32 evidence is refused at that budget:
`repro compare --refuse-into` writes it, `--selfcheck` then applies the fastest mode without it; a later
approval by the mode rule lifts it."""

import copy
import json

from repro.cli.main import main
from repro.mechanics.acceleration import apply_selfcheck, approved_mode, refused_switches
from repro.ops.refusal import refusal, refuse_into
from repro.paper.budgets import CIFAR_CPU
from repro.paper.configs import CONFIGURATIONS
from tests.unit.ops.test_selfcheck import CPU_RATES, modes_record
from tests.unit.verdicts.test_report import records

ALL_PASS = {"channels_last": True, "bf16": True, "bf16+channels_last": True, "compiled": True}


def folders(tmp_path, moved: float, seeds=(0, 1)):
    """fp32 evidence and the same rows run in bf16 + channels_last from the same NORMAL (paired), over
    `seeds`, BN PARAMS' clean error moved by `moved` in every mode seed: ([fp32 folders], [mode folders])."""
    out = {"cifar_cpu": [], "cifar_cpu@bf16": []}
    for seed in seeds:
        fp32 = records(seed=seed)
        for config_id, record in fp32.items():
            record["config"] = {"id": config_id, "init": CONFIGURATIONS[config_id].init}
            record["provenance"] = {**record["provenance"], "initial_weights_sha256": f"normal-seed{seed}"}
        fast = copy.deepcopy(fp32)
        fast["bn_params"]["metrics"]["clean_error"] += moved
        for name, rows in (("cifar_cpu", fp32), ("cifar_cpu@bf16", fast)):
            for config_id, record in rows.items():
                record["budget"] = {**record["budget"], "name": "cifar_cpu"}
                if name != "cifar_cpu":
                    record["provenance"] = {**record["provenance"],
                                            "selfcheck": {"mode": "bf16+channels_last", "bf16": True, "compile": False}}
                (tmp_path / name / f"seed{seed}" / config_id).mkdir(parents=True)
                (tmp_path / name / f"seed{seed}" / config_id / "result.json").write_text(json.dumps(record))
            out[name].append(str(tmp_path / name / f"seed{seed}"))
    return out["cifar_cpu"], out["cifar_cpu@bf16"]


def compare(tmp_path, moved, path, seeds=(0, 1)):
    reference, mode = folders(tmp_path, moved, seeds)
    return main(["compare", *reference, "--mode", *mode, "--refuse-into", str(path)])


def selfcheck_file(tmp_path):
    path = tmp_path / "selfcheck.json"
    path.write_text(json.dumps(modes_record(CPU_RATES, ALL_PASS, backend="eager")))  # as a CPU selfcheck: compile unusable
    return path


def test_a_mode_that_moved_a_number_is_refused_at_that_budget_and_runs_get_the_next_without_it(tmp_path, capsys):
    path = selfcheck_file(tmp_path)
    assert compare(tmp_path, 20.0, path) == 1, "BN PARAMS moved 20 points on both seeds: the rule refuses"
    budget, applied = apply_selfcheck(CIFAR_CPU, json.loads(path.read_text()), "cpu")
    assert (budget.bf16, budget.channels_last) == (False, True), f"bf16 refused at cifar_cpu: {applied}"
    assert "BN PARAMS clean_error" in applied["refused"]["bf16"], f"the finding is kept with it: {applied['refused']}"


def test_the_refusal_holds_only_at_the_budget_compared(tmp_path, capsys):
    path = selfcheck_file(tmp_path)
    compare(tmp_path, 20.0, path)
    assert approved_mode(json.loads(path.read_text()), "paper") == "bf16+channels_last", \
        "the paper budget's rows were not compared: its approval stands"


def test_rows_within_the_band_refuse_nothing(tmp_path, capsys):
    path = selfcheck_file(tmp_path)
    assert compare(tmp_path, 0.5, path) == 0, "half a point on every seed: the rule approves"
    assert "refused" not in json.loads(path.read_text()), "nothing moved beyond noise: nothing refused"


def refused_entry(budget: str, reason: str = "bf16 moved a metric") -> dict:
    """What refusal() returns for bf16 at `budget`."""
    return {"bf16": {"budget": budget, "reason": reason, "comparison": "compare.md"}}


def test_a_refusal_at_another_budget_keeps_the_first(tmp_path):
    path = selfcheck_file(tmp_path)
    refuse_into(path, refused_entry("cifar_cpu"))
    refuse_into(path, refused_entry("paper"))
    record = json.loads(path.read_text())
    assert approved_mode(record, "cifar_cpu") == "channels_last" and approved_mode(record, "paper") == "channels_last", (
        f"bf16 refused at cifar_cpu, then at paper: both refusals hold, the second must not re-approve the first: "
        f"{record['refused']}")


def test_a_refusal_of_the_first_format_is_still_read(tmp_path):
    record = modes_record(CPU_RATES, ALL_PASS, backend="eager")
    record["refused"] = refused_entry("cifar_cpu")  # {switch: {budget, reason, comparison}}
    assert refused_switches(record, "cifar_cpu") == {"bf16": "bf16 moved a metric"}, (
        f"a selfcheck.json written before refusals were keyed by budget still refuses bf16 at cifar_cpu: "
        f"{refused_switches(record, 'cifar_cpu')}")
    assert refused_switches(record, "paper") == {}, "that refusal holds at cifar_cpu only"


def test_adding_a_refusal_to_the_first_format_keeps_the_old_one(tmp_path):
    record = modes_record(CPU_RATES, ALL_PASS, backend="eager")
    record["refused"] = refused_entry("cifar_cpu")
    path = tmp_path / "selfcheck.json"
    path.write_text(json.dumps(record))
    refuse_into(path, {"compile": {"budget": "paper", "reason": "compile moved a metric", "comparison": "c.md"}})
    kept = json.loads(path.read_text())
    assert refused_switches(kept, "cifar_cpu") == {"bf16": "bf16 moved a metric"} \
        and refused_switches(kept, "paper") == {"compile": "compile moved a metric"}, (
            f"the old refusal at cifar_cpu and the new one at paper both hold: {kept['refused']}")


def with_hardware(rows: dict, cpu_capability: str | None) -> dict:
    """`rows` with every record's provenance.hardware on a CPU of `cpu_capability` (None: not recorded)."""
    out = copy.deepcopy(rows)
    for record in out.values():
        record["provenance"] = {k: v for k, v in record["provenance"].items() if k != "hardware"}
        if cpu_capability is not None:
            record["provenance"]["hardware"] = {"cpu_model": "Test CPU", "cpu_capability": cpu_capability,
                                                "torch_threads": 2}
    return out


def bf16_rows(moved: float) -> tuple[dict, dict]:
    """fp32 evidence and the same rows in bf16, BN PARAMS' clean error moved by `moved`."""
    fp32 = records()
    fast = copy.deepcopy(fp32)
    fast["bn_params"]["metrics"]["clean_error"] += moved
    for record in fast.values():
        record["provenance"] = {**record["provenance"], "selfcheck": {"mode": "bf16", "bf16": True, "compile": False}}
    return fp32, fast


def test_the_refusal_names_the_hardware_of_both_sides():
    fp32, fast = bf16_rows(moved=20.0)
    fp32, fast = with_hardware(fp32, "AVX2"), with_hardware(fast, "AVX512")
    reason = refusal(fast, "BN PARAMS clean_error moved", "compare.md", reference=fp32)["bf16"]["reason"]
    assert "Test CPU | AVX2 | 2" in reason and "Test CPU | AVX512 | 2" in reason, (
        f"a move between runs on other hardware must say so, not blame the switch silently: {reason}")


def test_the_refusal_says_when_the_hardware_was_not_recorded():
    fp32, fast = bf16_rows(moved=20.0)
    fp32, fast = with_hardware(fp32, None), with_hardware(fast, "AVX512")
    reason = refusal(fast, "BN PARAMS clean_error moved", "compare.md", reference=fp32)["bf16"]["reason"]
    assert "not recorded" in reason and "Test CPU | AVX512 | 2" in reason, (
        f"the fp32 evidence's hardware is unknown: the reason must say so beside the mode's: {reason}")


def test_render_lists_refusals_at_every_budget(tmp_path):
    from repro.ops.selfcheck import refusal_lines

    path = selfcheck_file(tmp_path)
    refuse_into(path, refused_entry("cifar_cpu", "moved at cifar_cpu"))
    refuse_into(path, refused_entry("paper", "moved at paper"))
    lines = refusal_lines(json.loads(path.read_text()))
    assert len(lines) == 2 and "refused at cifar_cpu: bf16 (moved at cifar_cpu" in lines[0] \
        and "refused at paper: bf16 (moved at paper" in lines[1], f"one line per budget and switch: {lines}"


def test_one_mode_seed_that_moved_asks_for_a_second_and_refuses_nothing(tmp_path, capsys):
    path = selfcheck_file(tmp_path)
    assert compare(tmp_path, 20.0, path, seeds=(0,)) == 3, "one seed cannot tell the mode from an unlucky run"
    assert "refused" not in json.loads(path.read_text()) and "a second seed of bn_params" in capsys.readouterr().out


def test_the_refusal_names_the_switches_a_budget_set_by_hand():
    fp32, fast = bf16_rows(moved=20.0)
    for record in fast.values():
        record["provenance"].pop("selfcheck")
        record["budget"] = {**record["budget"], "bf16": True}
    assert list(refusal(fast, "moved", "compare.md", reference=fp32)) == ["bf16"], "--set bf16=true is the bf16 switch"


def test_an_approval_lifts_an_earlier_refusal_and_keeps_it_with_the_approving_comparison(tmp_path, capsys):
    path = selfcheck_file(tmp_path)
    refuse_into(path, refused_entry("cifar_cpu", "two of 33 metrics beyond a two-run band"))
    assert compare(tmp_path, 0.5, path) == 0, "half a point on every seed: the rule approves"
    record = json.loads(path.read_text())
    budget, applied = apply_selfcheck(CIFAR_CPU, record, "cpu")
    assert (budget.bf16, budget.channels_last) == (True, True), f"bf16 used again at cifar_cpu: {applied}"
    kept = record["lifted"]["cifar_cpu"]["bf16"]
    assert kept["refusal"]["reason"] == "two of 33 metrics beyond a two-run band" and "compare" in kept["comparison"], (
        f"the lifted refusal and what lifted it stay in the record: {kept}")


def test_an_approval_at_one_budget_leaves_a_refusal_at_another(tmp_path, capsys):
    path = selfcheck_file(tmp_path)
    refuse_into(path, refused_entry("paper", "moved at paper"))
    compare(tmp_path, 0.5, path)
    assert list(refused_switches(json.loads(path.read_text()), "paper")) == ["bf16"], "only cifar_cpu's rows were compared"
