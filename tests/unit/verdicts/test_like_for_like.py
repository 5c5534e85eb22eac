"""Like for like: claims compare rows of one reading and budget; commands refuse records of two protocols."""

import copy
import dataclasses
import json

from repro.cli.main import main
from repro.paper.budgets import CIFAR_CPU, SMOKE
from repro.verdicts.claims import judge_claims
from repro.verdicts.ladder import ladder_claims, results_at
from repro.verdicts.like_for_like import unlike_reason
from tests.unit.paper.test_expected import EXPECTED
from tests.unit.verdicts.test_gate import canned


OTHER_RATE = 0.05  # a fine-tuning rate other than the budget's
ACROSS = f"finetune_lr {OTHER_RATE:g} vs {CIFAR_CPU.lr_finetune:g}"  # how a reason names the two rates


def fine_tuned_at(results, row, lr):
    """`results` with `row` fine-tuned at peak rate `lr` under the finetune_lr reading."""
    out = copy.deepcopy(results)
    out[row]["config"]["lr"] = lr
    out[row]["variants"] = {"finetune_lr": str(lr)}
    return out


def test_two_fine_tuning_rows_at_different_rates_are_not_like_for_like():
    results = fine_tuned_at(canned(CIFAR_CPU), "bn_params", OTHER_RATE)
    why = unlike_reason(results, ["bn_params", "bn_only_params"])
    assert why == f"rows under different readings ({ACROSS}): bn_params and bn_only_params", why


def test_two_fine_tuning_rows_at_one_rate_are_like_for_like():
    results = fine_tuned_at(fine_tuned_at(canned(CIFAR_CPU), "bn_params", OTHER_RATE), "bn_only_params", OTHER_RATE)
    assert unlike_reason(results, {"bn_params", "bn_only_params"}) is None, "both at one rate: one reading"


def test_normal_and_a_row_fine_tuned_from_it_differ_only_by_design():
    results = fine_tuned_at(canned(CIFAR_CPU), "bn_params", OTHER_RATE)
    assert unlike_reason(results, {"normal", "bn_params"}) is None, (
        "NORMAL trains from scratch, BN PARAMS fine-tunes: their schedules differ by design, and the finetune_lr "
        "reading does not change NORMAL")


def test_rows_of_two_widths_are_not_like_for_like():
    results = canned(CIFAR_CPU)
    results["bn_params"]["budget"]["width"] = 64
    why = unlike_reason(results, ["bn_params", "normal"])
    assert why == "rows under different budgets (width 64 vs 16): bn_params and normal", why


def unlike_for(results):
    from repro.verdicts.claims import claim_rows_in_order

    return lambda claim: unlike_reason(results, claim_rows_in_order(claim))


def test_a_claim_over_two_readings_is_not_judged_and_says_which():
    results = fine_tuned_at(canned(CIFAR_CPU), "bn_params", OTHER_RATE)
    verdicts = {v.id: v for v in judge_claims(EXPECTED, results, "cifar_cpu", unlike=unlike_for(results))}
    claim = verdicts["bn_params_more_robust_than_bn_only_params"]
    assert claim.verdict == "not judged" and ACROSS in claim.relation, claim


def laddered(results, row, robust):
    """`row` with ladder points {epoch: robust error} (its end the last)."""
    base = results[row]["metrics"]
    results[row]["ladder"] = [{"epoch": e, "metrics": {**base, "autoattack_error": r}} for e, r in robust.items()]
    results[row]["metrics"] = {**base, "autoattack_error": robust[max(robust)]}
    return results


def write(folder, results, rows):
    for row in rows:
        (folder / row).mkdir(parents=True, exist_ok=True)
        (folder / row / "result.json").write_text(json.dumps(results[row]))
    return str(folder)


def test_the_ladder_judges_no_claim_across_fine_tuning_readings(tmp_path, capsys):
    fast = laddered(fine_tuned_at(canned(CIFAR_CPU), "bn_params", OTHER_RATE), "bn_params", {1: 90.0, 2: 80.0})
    slow = laddered(canned(CIFAR_CPU), "bn_only_params", {1: 99.0, 2: 99.0})
    folders = [write(tmp_path / "cifar_cpu+finetune_lr=0.1" / "seed0", fast, ["normal", "bn_params"]),
               write(tmp_path / "cifar_cpu" / "seed0", slow, ["bn_only_params"])]
    main(["ladder", *folders, "--out", str(tmp_path), "--no-gate"])
    row = next(line for line in (tmp_path / "ladder.md").read_text().splitlines()
               if line.startswith("| bn_params_more_robust_than_bn_only_params |"))
    cells = [cell.strip() for cell in row.strip("|").split("|")][1:3]
    assert all(c.startswith(f"not judged (rows under different readings ({ACROSS})") for c in cells), cells


def test_the_ladder_lists_only_the_claims_judged_at_its_budget():
    results = laddered(canned(CIFAR_CPU), "bn_params", {1: 90.0, 2: 80.0})
    ids = {c["id"] for c, _ in ladder_claims(EXPECTED, results)}
    paper_only = {c["id"] for c in EXPECTED["claims"] if "cifar_cpu" not in c["budgets"]}
    assert "bn_params_less_robust_than_adv" in paper_only and not ids & paper_only, sorted(ids & paper_only)


def test_a_row_without_a_point_yet_is_not_taken_at_a_later_one():
    results = laddered(canned(CIFAR_CPU), "bn_params", {1: 90.0, 2: 80.0})
    results = laddered(results, "adv", {2: 70.0, 4: 60.0})  # ADV's first point is at epoch 2
    found, taken = results_at(results, 1)
    assert "adv" not in found and taken == {"bn_params": 1}, (
        f"at epoch 1 ADV has no point yet; taking its epoch-2 point would judge epoch 1 on later weights: {taken}")


def test_compare_refuses_folders_of_two_protocols_in_one_line(tmp_path, capsys):
    smoke, cpu = canned(SMOKE), canned(CIFAR_CPU)
    first = write(tmp_path / "smoke" / "seed0", smoke, ["normal"])
    second = write(tmp_path / "cifar_cpu" / "seed0", cpu, ["normal"])
    code = main(["compare", first, second])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and '"synthetic" vs "cifar10"' in err, (code, err)


def test_the_ladder_refuses_rows_evaluated_under_two_protocols(tmp_path, capsys):
    fast = laddered(canned(CIFAR_CPU), "bn_params", {1: 90.0, 2: 80.0})
    other = copy.deepcopy(fast)
    other["normal"]["budget"] = json.loads(json.dumps(dataclasses.asdict(dataclasses.replace(CIFAR_CPU, n_robust=500))))
    folders = [write(tmp_path / "a" / "seed0", fast, ["bn_params"]), write(tmp_path / "b" / "seed0", other, ["normal"])]
    code = main(["ladder", *folders, "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and "n_robust 1000 vs 500" in err and err.count("\n") == 1, (code, err)


def test_a_claim_on_normal_and_a_row_fine_tuned_from_another_normal_is_not_judged():
    from repro.verdicts.report import report_content

    results = canned(CIFAR_CPU)
    hashes = {"git_commit": "a" * 40, "hardware": {"cpu_model": "Test CPU", "cpu_capability": "AVX2", "torch_threads": 2},
              "data_sha256": {"train_sha256": "d"}}
    results["normal"]["provenance"] = {**results["normal"]["provenance"], **hashes, "weights_sha256": "normal-1"}
    results["bn_params"]["provenance"] = {**results["bn_params"]["provenance"], **hashes, "git_commit": "b" * 40,
                                          "weights_sha256": "bn", "initial_weights_sha256": "normal-2"}
    content = report_content(EXPECTED, {0: results}, [0], "cifar_cpu", "cifar_cpu")
    verdicts = {v.id: v for v in content.claims}
    against_normal, other = verdicts["bn_params_more_robust_than_normal"], verdicts["bn_params_more_robust_than_bn_only_params"]
    assert against_normal.verdict == "not judged" and "seed0/bn_params did not start from the NORMAL beside it" in \
        against_normal.reason and other.verdict != "not judged", (against_normal.reason, other.verdict)
