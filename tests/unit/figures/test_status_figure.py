"""`repro status --figure`: the README's picture, drawn from the records under results/ (here a tiny fixture)."""

import copy
import json

import pytest

from repro.cli.main import main
from repro.paper.budgets import SMOKE
from repro.paper.configs import CONFIGURATIONS
from repro.figures.status_figure import ladder_evidence, table2_evidence
from repro.figures.status_plot import row_style
from repro.verdicts.ladder import LADDER_METRICS
from tests.unit.paper.test_expected import EXPECTED
from tests.unit.verdicts.test_degenerate import collapsed
from tests.unit.verdicts.test_gate import canned, report

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def laddered(record, errors):
    """`record` with a ladder: the full evaluation after each epoch of `errors` ({epoch: robust error})."""
    out = copy.deepcopy(record)
    out["ladder"] = [{"epoch": e, "metrics": {**out["metrics"], LADDER_METRICS[2]: v}} for e, v in errors.items()]
    out["variants"] = {"finetune_epochs": "4"}
    return out


@pytest.fixture
def evidence(tmp_path, capsys):
    """results/: a smoke report of every row (BN ONLY PARAMS collapsed) and one laddered BN PARAMS run."""
    results = tmp_path / "results"
    records = collapsed(canned(SMOKE, **{f"bn_params.{LADDER_METRICS[2]}": 80.0}))
    report(results, capsys, SMOKE, records)
    ladder = results / "ladder" / "smoke+finetune_epochs=4" / "seed0" / "bn_params"
    ladder.mkdir(parents=True)
    (ladder / "result.json").write_text(json.dumps(laddered(records["bn_params"], {1: 90.0, 2: 85.0, 4: 80.0})))
    return results


def test_status_writes_the_figure_as_a_png(evidence, tmp_path, capsys):
    figure = tmp_path / "docs" / "status.png"
    code = main(["status", "--results", str(evidence), "--figure", str(figure)])
    out = capsys.readouterr().out
    assert code == 0 and figure.read_bytes().startswith(PNG_MAGIC) and f"figure: {figure}" in out, (code, out[-300:])
    assert figure.stat().st_size < 200_000, f"a README picture stays small: {figure.stat().st_size} bytes"


def test_table2_panel_reads_the_one_seed_report_of_the_registered_budget(evidence):
    table2 = table2_evidence(evidence, EXPECTED)
    rows = {r["row"]: r for r in table2["rows"]}
    assert (table2["folder"], table2["seed"], len(rows)) == ("results/smoke/seed0", 0, len(CONFIGURATIONS)), table2
    assert rows["bn_params"]["robust_error"] == {"paper": 70.5, "measured": 80.0}, rows["bn_params"]
    assert [r for r, v in rows.items() if v["degenerate"]] == ["bn_only_params"], "the collapsed row is drawn hollow"


def test_ladder_panel_has_one_series_per_laddered_run_with_the_papers_value(evidence):
    (series,) = ladder_evidence(evidence, EXPECTED)
    assert (series["row"], series["label"], series["paper"]) == ("bn_params", "BN PARAMS (finetune_epochs=4)", 70.5), series
    assert [(p["epoch"], p["robust_error"]) for p in series["points"]] == [(1, 90.0), (2, 85.0), (4, 80.0)], series


def test_every_row_has_its_own_colour_and_marker():
    styles = [row_style(c) for c in CONFIGURATIONS]
    assert len({c for c, _ in styles}) == len({m for _, m in styles}) == len(CONFIGURATIONS), styles


def test_a_results_folder_with_nothing_to_draw_is_bad_input(tmp_path, capsys):
    (tmp_path / "results").mkdir()
    code = main(["status", "--results", str(tmp_path / "results"), "--figure", str(tmp_path / "status.png")])
    err = capsys.readouterr().err
    assert code == 2 and "no one-seed report" in err and not (tmp_path / "status.png").exists(), (
        f"exit 2 with one line naming what is missing, no PNG: {code} {err!r}")
