"""Two runs of the same rows: each error metric within the two-run band of the history, or not."""

import copy

from repro.verdicts.agreement import agreement, render_agreement
from tests.unit.paper.test_expected import EXPECTED
from tests.unit.verdicts.test_report import records


def test_identical_runs_agree_everywhere():
    entries = agreement(records(), records(), EXPECTED)
    assert entries and all(e["within"] and e["delta"] == 0 for e in entries), entries[:2]


def test_a_move_beyond_the_band_is_named():
    moved = copy.deepcopy(records())
    moved["bn_params"]["metrics"]["autoattack_error"] -= 30.0  # far beyond two seeds' spread on 1000 images
    entries = agreement(records(), moved, EXPECTED)
    outside = [(e["row"], e["metric"]) for e in entries if not e["within"]]
    assert outside == [("bn_params", "autoattack_error")], outside
    assert "outside: BN PARAMS autoattack_error" in render_agreement(entries, "a", "b"), "the summary names it"


def test_a_move_within_two_seeds_spread_agrees():
    moved = copy.deepcopy(records())
    moved["normal"]["metrics"]["clean_error"] += 0.3  # NORMAL's clean error on 10,000 images: well within
    assert all(e["within"] for e in agreement(records(), moved, EXPECTED)), "a 0.3 point move is noise here"
