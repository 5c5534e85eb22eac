"""Exit codes that gate, and verdicts.json: what `repro report` and `repro reproduce` say without a
person reading the report (0 holds, 1 fails, 2 bad input, 3 nothing judged; --no-gate explores)."""

import dataclasses
import json

import pytest

from repro.cli.main import main
from repro.paper.budgets import PAPER, SMOKE
from repro.paper.configs import CONFIGURATIONS
from repro.runs.pipeline import Pipeline
from tests.unit.paper.test_expected import EXPECTED
from tests.unit.verdicts.test_report import records


def canned(budget, **metric_changes):
    """Paper-number result records run under `budget`, with {"row.metric": value} changes; ADV buys PGD
    robustness (30 % PGD error against 50 %), so every sanity claim holds unless a change breaks one."""
    out = records()
    out["adv"]["metrics"]["pgd_error"] = 30.0
    for config_id, record in out.items():
        record["budget"] = json.loads(json.dumps(dataclasses.asdict(budget)))
        record["config"] = json.loads(json.dumps(dataclasses.asdict(CONFIGURATIONS[config_id])))
    for ref, value in metric_changes.items():
        config_id, metric = ref.split(".")
        out[config_id]["metrics"][metric] = value
    return out


def write_folder(out, budget, results, rows=None):
    """`results` as OUT/BUDGET/seed0/ROW/result.json, the folder `repro report --out OUT` reads."""
    folder = out / budget.run_name / "seed0"
    for config_id in rows or results:
        (folder / config_id).mkdir(parents=True, exist_ok=True)
        (folder / config_id / "result.json").write_text(json.dumps(results[config_id]))
    return folder


def report(tmp_path, capsys, budget, results, *extra, rows=None):
    folder = write_folder(tmp_path, budget, results, rows)
    code = main(["report", "--budget", budget.name, "--out", str(tmp_path), *extra])
    return code, capsys.readouterr(), folder


def test_report_exits_0_when_every_judged_claim_holds(tmp_path, capsys):
    code, out, _ = report(tmp_path, capsys, SMOKE, canned(SMOKE))
    assert code == 0, f"the smoke sanity claims all hold on these records:\n{out.out[:600]}"


def test_report_exits_1_when_a_judged_claim_fails(tmp_path, capsys):
    code, out, _ = report(tmp_path, capsys, SMOKE, canned(SMOKE, **{"adv.pgd_error": 60.0}))
    assert code == 1, f"adv_buys_pgd_robustness fails (ADV's PGD error above NORMAL's): exit 1, got {code}"


def test_report_exits_1_when_a_judged_table2_metric_is_inconsistent(tmp_path, capsys):
    holding, _, _ = report(tmp_path / "a", capsys, PAPER, canned(PAPER))
    code, out, _ = report(tmp_path / "b", capsys, PAPER, canned(PAPER, **{"adv.clean_error": 77.67}))
    assert (holding, code) == (0, 1), (
        f"the paper's numbers exit 0 at the paper budget ({holding}); ADV's clean error 60 points off is an "
        f"inconsistent Table 2 metric, exit 1 ({code}):\n{out.out[:400]}")


def test_report_exits_3_when_nothing_could_be_judged(tmp_path, capsys):
    code, out, _ = report(tmp_path, capsys, SMOKE, canned(SMOKE), rows=["bn_stats_reset"])
    assert code == 3, f"no claim at smoke reads BN STATS alone, Table 2 is not judged at smoke: exit 3, got {code}"


def test_no_gate_exits_0_on_a_failed_claim_and_still_says_so(tmp_path, capsys):
    code, out, folder = report(tmp_path, capsys, SMOKE, canned(SMOKE, **{"adv.pgd_error": 60.0}), "--no-gate")
    recorded = json.loads((folder / "verdicts.json").read_text())
    assert code == 0 and recorded["exit_code"] == 1 and out.out.startswith("verdict: does not hold (exit 1)"), (
        f"--no-gate exits 0 ({code}) but the verdicts still say what failed ({recorded['exit_code']})")


def test_bad_input_exits_2_with_one_line(tmp_path, capsys):
    code = main(["report", "--budget", "smoke", "--out", str(tmp_path / "nothing")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, f"a folder without runs is bad input: exit 2, one line: {code} {err!r}"


def test_report_opens_with_the_verdict_and_its_counts(tmp_path, capsys):
    _, out, _ = report(tmp_path, capsys, SMOKE, canned(SMOKE, **{"adv.pgd_error": 60.0}))
    first = out.out.splitlines()[0]
    assert first == ("verdict: does not hold (exit 1): claims at smoke: 2 hold, 1 FAIL, 0 not judged; "
                     "Table 2 not judged at smoke"), first


def test_verdicts_json_has_one_entry_per_table2_metric_and_claim(tmp_path, capsys):
    _, _, folder = report(tmp_path, capsys, SMOKE, canned(SMOKE, **{"adv.pgd_error": 60.0}))
    recorded = json.loads((folder / "verdicts.json").read_text())
    ids = [c["id"] for c in recorded["claims"]]
    assert len(recorded["table2"]) == 22 and ids == [c["id"] for c in EXPECTED["claims"]], (
        f"22 Table 2 metrics and every claim in the file's order: {len(recorded['table2'])}, {ids[:3]}...")


def test_verdicts_json_says_which_claim_failed_and_the_numbers_it_read(tmp_path, capsys):
    _, _, folder = report(tmp_path, capsys, SMOKE, canned(SMOKE, **{"adv.pgd_error": 60.0}))
    claims = {c["id"]: c for c in json.loads((folder / "verdicts.json").read_text())["claims"]}
    failed = claims["adv_buys_pgd_robustness"]
    assert (failed["status"], failed["numbers"]) == ("fails", {"adv.pgd_error": 60.0, "normal.pgd_error": 50.0}), failed


def test_verdicts_json_gives_the_reason_a_claim_was_not_judged(tmp_path, capsys):
    _, _, folder = report(tmp_path, capsys, SMOKE, canned(SMOKE), rows=["normal", "bn_params"])
    claims = {c["id"]: c for c in json.loads((folder / "verdicts.json").read_text())["claims"]}
    entry = claims["adv_buys_pgd_robustness"]
    assert entry["status"] == "not judged" and "no result for adv" in entry["reason"], entry


def test_verdicts_json_is_written_over_seeds_too(tmp_path, capsys):
    for seed in (0, 1):
        results = canned(SMOKE)
        for record in results.values():
            record["seed"] = seed
        folder = tmp_path / SMOKE.run_name / f"seed{seed}"
        for config_id, record in results.items():
            (folder / config_id).mkdir(parents=True)
            (folder / config_id / "result.json").write_text(json.dumps(record))
    code = main(["report", "--budget", "smoke", "--seeds", "0", "1", "--out", str(tmp_path)])
    recorded = json.loads((tmp_path / SMOKE.run_name / "verdicts.json").read_text())
    assert code == 0 and recorded["seeds"] == [0, 1] and recorded["exit_code"] == 0, (code, recorded["seeds"])


def reproduce_with(monkeypatch, results):
    """`repro reproduce` (the README's main job) with each row's training and evaluation replaced by
    writing its canned record, so the gate is what is tested, in milliseconds."""
    def result(self, config, reuse=True):
        folder = self.folder(config)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "result.json").write_text(json.dumps(results[config.id]))
        return results[config.id]

    monkeypatch.setattr(Pipeline, "result", result)


@pytest.mark.parametrize("planted, code", [({}, 0), ({"normal.clean_error": 60.0}, 1)],
                         ids=["sanity-holds", "normal-does-not-learn"])
def test_the_main_job_exits_by_its_sanity_claims(tmp_path, capsys, monkeypatch, planted, code):
    reproduce_with(monkeypatch, canned(SMOKE, **planted))
    got = main(["reproduce", "--out", str(tmp_path), "--quiet", "--allow-slow"])
    assert got == code, f"repro reproduce with {planted or 'nothing planted'} must exit {code}, got {got}"


def test_help_lists_the_exit_codes(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    assert all(f"  {code}  " in text for code in (0, 1, 2, 3)) and "--no-gate" in text, text[-600:]
