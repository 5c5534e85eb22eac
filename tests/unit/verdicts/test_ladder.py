"""The fine-tuning ladder: each claim judged at each point, rows taken at the epoch asked for."""

import copy

from repro.verdicts.ladder import ladder_claims, render_ladder, results_at
from tests.unit.paper.test_expected import EXPECTED
from tests.unit.verdicts.test_report import records


def laddered():
    """Paper-number records with BN PARAMS' robust error falling along a ladder of 1, 2, 4, 8 epochs."""
    out = copy.deepcopy(records())
    robust = {1: 97.0, 2: 95.0, 4: 90.0, 8: 80.0}
    base = out["bn_params"]["metrics"]
    out["bn_params"]["ladder"] = [{"epoch": e, "metrics": {**base, "autoattack_error": r}} for e, r in robust.items()]
    out["bn_params"]["metrics"] = {**base, "autoattack_error": robust[8]}
    out["adv"]["ladder"] = [{"epoch": e, "metrics": out["adv"]["metrics"]} for e in (1, 2, 4)]
    return out


def test_a_row_is_taken_at_the_epoch_asked_for_or_its_last_before():
    results, taken = results_at(laddered(), 2)
    assert results["bn_params"]["metrics"]["autoattack_error"] == 95.0, "BN PARAMS at epoch 2"
    _, taken = results_at(laddered(), 8)
    assert taken == {"bn_params": 8, "adv": 4}, f"ADV's training ended after 4 epochs: {taken}"


def test_a_claim_can_fail_early_and_hold_later_along_the_ladder():
    outcomes = dict((c["id"], o) for c, o in ladder_claims(EXPECTED, laddered()))
    more_robust = outcomes["bn_params_more_robust_than_normal"]  # <= NORMAL's 99.8 - 15
    assert more_robust[1] == "does not hold" and more_robust[8] == "holds", more_robust


def test_claims_of_rows_without_a_ladder_are_left_out():
    ids = {c["id"] for c, _ in ladder_claims(EXPECTED, laddered())}
    assert "bn_stats_reset_same_clean_error" not in ids, "a claim on BN STATS alone says nothing about the ladder"


def with_one_point_end(records):
    """NORMAL evaluated in a ladder's folder: its end kept as a one-point ladder (epoch 6)."""
    records["normal"]["ladder"] = [{"epoch": 6, "metrics": records["normal"]["metrics"]}]
    return records


def test_a_one_point_ladder_adds_no_column():
    outcomes = dict((c["id"], o) for c, o in ladder_claims(EXPECTED, with_one_point_end(laddered())))
    epochs = sorted(outcomes["bn_params_more_robust_than_normal"])
    assert epochs == [1, 2, 4, 8], f"NORMAL's end (epoch 6) is no point of the fine-tuning ladder: {epochs}"


def test_claims_whose_rows_are_all_absent_are_named_once_not_tabled():
    records = laddered()
    del records["adv_bn_only"]
    text = render_ladder(EXPECTED, records, {}, "ladder")
    rows = [line for line in text.splitlines() if line.startswith("| adv_bn_only_no_meaningful_robustness ")]
    assert not rows, "a claim missing its row at every point has no row in the claims table"
    assert "adv_bn_only_no_meaningful_robustness (missing (adv_bn_only))" in text, "it is named as not judged"


def claim_cells(text: str, claim_id: str) -> list[str]:
    """The epoch cells of one claim's row in a ladder page's claims table."""
    row = next(line for line in text.splitlines() if line.startswith(f"| {claim_id} |"))
    return [cell.strip() for cell in row.strip("|").split("|")][1:-1]


def test_a_cell_taken_at_another_epoch_says_which_in_the_cell():
    text = render_ladder(EXPECTED, laddered(), {"adv": "ADV"}, "ladder")
    cells = claim_cells(text, "adv_far_more_robust")  # reads ADV, whose ladder ends at epoch 4
    assert cells[-1].endswith("(ADV at epoch 4)") and "epoch" not in cells[0], (
        f"at epoch 8 the claim read ADV's last point (epoch 4), and the cell must say so; at epoch 1 nothing: {cells}")


def test_repro_ladder_lists_and_draws_one_row_under_two_readings(tmp_path, capsys):
    """Two run folders with BN PARAMS under two readings: both ladders are listed (and drawn), the claims
    judge the first folder's."""
    import json

    from repro.cli.main import main

    slow, fast = laddered(), laddered()
    for point in fast["bn_params"]["ladder"]:
        point["metrics"] = {**point["metrics"], "autoattack_error": point["metrics"]["autoattack_error"] - 10}
    for record in (slow, fast):
        for row in ("bn_params", "normal"):
            record[row]["curve"] = {"points": [{"step": 0, "epoch": 0.0, "clean_error": 20.0, "pgd_error": 99.0}]}
    folders = []
    for name, rows in (("cifar_cpu+finetune_lr=0.1", fast), ("cifar_cpu", slow)):
        folder = tmp_path / name / "seed0"
        for row in ("bn_params", "normal"):
            (folder / row).mkdir(parents=True)
            (folder / row / "result.json").write_text(json.dumps(rows[row]))
        folders.append(str(folder))
    assert main(["ladder", *folders, "--out", str(tmp_path)]) == 0, capsys.readouterr().err
    text = (tmp_path / "ladder.md").read_text()
    points = [line for line in text.splitlines() if line.startswith("| BN PARAMS (")]
    assert len(points) == 8, "4 points of each reading's BN PARAMS, got:\n" + "\n".join(points)
    assert "| BN PARAMS (cifar_cpu+finetune_lr=0.1) | 8 |" in text, "the first folder's reading is named"
    assert (tmp_path / "ladder.png").stat().st_size > 0, "the figure is written"
