"""`repro status`: one line per report, computed from its verdicts.json, and put into the README."""

from repro.cli.main import main
from repro.paper.budgets import SMOKE
from repro.verdicts.status import STATUS_END, STATUS_START, embedded_table, status_table
from tests.unit.verdicts.test_degenerate import collapsed
from tests.unit.verdicts.test_gate import canned, report


def test_a_status_line_counts_what_its_report_judged(tmp_path, capsys):
    report(tmp_path / "results", capsys, SMOKE, collapsed(canned(SMOKE, **{"adv.pgd_error": 60.0}), row="bn_params"))
    line = status_table(tmp_path / "results").splitlines()[2]
    cells = [c.strip() for c in line.strip("|").split("|")]
    assert cells[1:8] == ["smoke", "0", "defaults", "not judged (22 shown)", "1 hold, 1 fail, 1 not judged", "BN PARAMS",
                          "does not hold (exit 1)"], cells


def test_status_puts_the_table_between_the_readmes_markers(tmp_path, capsys):
    report(tmp_path / "results", capsys, SMOKE, canned(SMOKE))
    readme = tmp_path / "README.md"
    readme.write_text(f"# title\n\n{STATUS_START}\nold table\n{STATUS_END}\n\nafter\n")
    code = main(["status", "--results", str(tmp_path / "results"), "--readme", str(readme)])
    text = readme.read_text()
    assert code == 0 and embedded_table(text) == status_table(tmp_path / "results", tmp_path) and text.endswith("\nafter\n"), text


def test_status_refuses_a_readme_without_markers(tmp_path, capsys):
    report(tmp_path / "results", capsys, SMOKE, canned(SMOKE))
    (tmp_path / "README.md").write_text("# no markers\n")
    code = main(["status", "--results", str(tmp_path / "results"), "--readme", str(tmp_path / "README.md")])
    assert code == 2 and "status markers" in capsys.readouterr().err, "a README without markers is bad input"


def test_refresh_writes_each_report_again_from_its_records(tmp_path, capsys):
    _, _, folder = report(tmp_path / "results", capsys, SMOKE, canned(SMOKE))
    (folder / "report.md").write_text("stale\n")
    main(["status", "--results", str(tmp_path / "results"), "--refresh"])
    assert (folder / "report.md").read_text().startswith("# Reproduction report"), "report.md rendered again"
