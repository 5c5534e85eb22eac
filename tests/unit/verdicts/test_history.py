"""The history of nights (repro/verdicts/history.py, `repro history`), on synthetic result records."""

import copy
import json
import multiprocessing
import subprocess
from dataclasses import asdict, replace
from pathlib import Path

import pytest

from repro.cli.main import main
from repro.paper.budgets import SMOKE
from repro.paper.expected import load_expected
from repro.verdicts.history import (
    allowed_move,
    append_results,
    commits_between,
    entries_of,
    moves,
    new_run,
    read_history,
    render_history,
)

ENTRY_FIELDS = {"date", "run", "commit", "budget", "overrides", "readings", "seed", "row", "metric", "value", "n",
                "device", "wall_seconds"}


def record(row="adv", seed=0, clean=20.0, pgd=60.0, aa=65.0, budget=SMOKE, n_clean=512, n_robust=256):
    """A result record shaped like pipeline.Pipeline.result's, with chosen numbers."""
    return {"config": {"id": row}, "seed": seed, "budget": asdict(budget),
            "metrics": {"clean_error": clean, "pgd_error": pgd, "autoattack_error": aa, "pgd_cross_entropy": 1.5,
                        "n_clean": n_clean, "n_robust": n_robust, "autoattack_version": "custom"},
            "provenance": {"device": "cpu: test"}, "wall_seconds": {"train": 10.0, "eval_total": 2.5}}


def night(date, commit="a" * 40):
    return {"run": f"run-{date}", "date": date, "commit": commit}


def test_entries_carry_every_field_per_numeric_metric():
    entries = entries_of(record(), night("2025-01-01T00:00:00Z"), readings=("r1",))
    assert {e["metric"] for e in entries} == {"clean_error", "pgd_error", "autoattack_error", "pgd_cross_entropy"}, \
        "one entry per numeric metric (not the n_* counts nor strings)"
    assert all(set(e) == ENTRY_FIELDS for e in entries), f"fields {set(entries[0])} != {ENTRY_FIELDS}"
    n = {e["metric"]: e["n"] for e in entries}
    assert n == {"clean_error": 512, "pgd_error": 256, "autoattack_error": 256, "pgd_cross_entropy": None}, \
        f"error rates carry the examples they were measured on: {n}"
    assert entries[0]["wall_seconds"] == 12.5 and entries[0]["readings"] == ["r1"], entries[0]


def test_overrides_are_recorded_against_the_registered_budget():
    broken = replace(SMOKE, train_attack_step_size=0.0)
    (entry, *_) = entries_of(record(budget=broken), night("2025-01-01T00:00:00Z"))
    assert entry["budget"] == "smoke" and entry["overrides"] == {"train_attack_step_size": 0.0}, entry


def test_appended_nights_read_back_in_order(tmp_path):
    path = tmp_path / "history.jsonl"
    append_results(path, [record(aa=65.0)], run=night("2025-01-02T00:00:00Z"))
    append_results(path, [record(aa=66.0)], run=night("2025-01-01T00:00:00Z"))
    values = [e["value"] for e in read_history(path) if e["metric"] == "autoattack_error"]
    assert values == [65.0, 66.0], f"entries are appended, never rewritten: {values}"


def band(metric="autoattack_error", row="adv", value=50.0, n=256, model=None):
    """allowed_move between two nights that measured `value` on `n` examples each."""
    return allowed_move(metric, row, {"value": value, "n": n}, {"value": value, "n": n}, model)


def test_band_shrinks_with_more_examples():
    assert band(n=1000) < band(n=256), "an error rate measured on more examples may move less between nights"


def test_band_is_widest_at_half_error():
    assert band(value=50.0) > band(value=90.0) > band(value=100.0), "binomial noise peaks at p = 0.5"


def test_band_at_zero_noise_is_the_seed_prior_alone():
    model = load_expected()
    prior = model["error_model"]["seed_sd_priors"]["adversarial_from_scratch"]["robust_error"]["value"]
    z = model["error_model"]["z"]["value"]
    assert band(value=100.0) == pytest.approx(z * prior * 2 ** 0.5), \
        "at 100% error no binomial noise is left: z times the row kind's seed prior, once per night"


def test_band_scales_with_the_files_z():
    model = load_expected()
    doubled = copy.deepcopy(model)
    doubled["error_model"]["z"]["value"] *= 2
    assert band(model=doubled) == pytest.approx(2 * band(model=model)), "the band is z standard deviations"


def test_noisier_row_kind_gets_a_wider_band():
    # NORMAL's clean-error prior (0.2) is below the BN-only rows' (1.0), at the same rate and n
    assert band("clean_error", "normal_bn_only", value=100.0) > band("clean_error", "normal", value=100.0), \
        "the band carries the row kind's seed-to-seed prior"


def test_metrics_that_are_not_error_rates_have_no_band():
    assert band("pgd_cross_entropy") is None, "only error rates have a band"


@pytest.mark.parametrize("direction", [1, -1], ids=["up", "down"])
@pytest.mark.parametrize("delta, flagged", [(-0.01, False), (0.01, True)])
def test_move_is_flagged_just_outside_the_band(direction, delta, flagged):
    move = direction * (band(value=50.0) + delta)  # centred on 50%, so the pair's mean rate is 50% and so is its band
    entries = (entries_of(record(aa=50.0 - move / 2), night("2025-01-01T00:00:00Z"))
               + entries_of(record(aa=50.0 + move / 2), night("2025-01-02T00:00:00Z")))
    found = [(m.series[3], m.series[4]) for m in moves(entries)]
    assert found == ([("adv", "autoattack_error")] if flagged else []), f"move of ±(band{delta:+}) flagged: {found}"


def test_only_consecutive_nights_are_compared():
    # 60 -> 70 -> 80: each step inside its band (about ±12-13 points at n = 256), the 20-point drift over two nights is not a flagged step
    entries = [e for i, aa in enumerate([60.0, 70.0, 80.0])
               for e in entries_of(record(aa=aa), night(f"2025-01-0{i + 1}T00:00:00Z"))]
    assert moves(entries) == [], "moves compare each night with the one before"


def test_seeds_and_rows_are_separate_series():
    entries = (entries_of(record(seed=0, aa=60.0), night("2025-01-01T00:00:00Z"))
               + entries_of(record(seed=1, aa=95.0), night("2025-01-02T00:00:00Z")))
    assert moves(entries) == [], "seed 1 tonight is not compared with seed 0 last night"


@pytest.fixture
def git_repo(tmp_path):
    """A repository with three commits; returns their hashes, oldest first."""
    repo = tmp_path / "repo"
    repo.mkdir()
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(git + ["init", "-q"], check=True)
    hashes = []
    for message in ("first", "second", "third"):
        (repo / "f").write_text(message)
        subprocess.run(git + ["add", "f"], check=True)
        subprocess.run(git + ["commit", "-q", "-m", message], check=True)
        hashes.append(subprocess.run(git + ["rev-parse", "HEAD"], check=True, capture_output=True,
                                     text=True).stdout.strip())
    return repo, hashes


def test_commits_between_names_the_later_commits(git_repo):
    repo, (first, second, third) = git_repo
    names = [line.split(" ", 1)[1] for line in commits_between(first, third + "+dirty", repo=repo)]
    assert names == ["third", "second"], f"commits after the earlier night up to the later one: {names}"


def test_render_names_the_moved_row_and_the_commits_between(git_repo, monkeypatch):
    repo, (first, _, third) = git_repo
    monkeypatch.setattr("repro.verdicts.history.PACKAGE_DIR", repo)
    entries = (entries_of(record(aa=60.0), night("2025-01-01T00:00:00Z", first))
               + entries_of(record(row="normal", clean=10.0), night("2025-01-01T00:00:00Z", first))
               + entries_of(record(aa=90.0), night("2025-01-02T00:00:00Z", third))
               + entries_of(record(row="normal", clean=10.0), night("2025-01-02T00:00:00Z", third)))
    text = render_history(entries)
    moved = [line for line in text.splitlines() if line.startswith("MOVED")]
    assert len(moved) == 1 and "adv autoattack_error" in moved[0] and "60.00 -> 90.00" in moved[0], text
    assert "third" in text and "second" in text, f"commits in between are listed:\n{text}"
    assert "#1" in text and "#2" in text, f"both nights shown:\n{text}"


def _append_batches(path, worker, batches, barrier):
    barrier.wait()  # both processes start appending at the same moment
    for b in range(batches):
        run = {"run": f"w{worker}-b{b}", "date": "2025-01-01T00:00:00Z", "commit": "c"}
        append_results(path, [record(row=f"row{worker}", seed=s) for s in range(12)], run=run)


def test_two_processes_appending_at_once_keep_every_batch_whole(tmp_path):
    # A batch of 12 records is ~10 KB: more than one buffered write, so without the lock the
    # writers' chunks interleave mid-line.
    path, batches = tmp_path / "history.jsonl", 15
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(2)
    workers = [context.Process(target=_append_batches, args=(path, w, batches, barrier)) for w in (0, 1)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=60)
    assert all(w.exitcode == 0 for w in workers), f"writers failed: {[w.exitcode for w in workers]}"
    lines = path.read_text().splitlines()
    runs = [json.loads(line)["run"] for line in lines]  # a torn line fails to parse here
    blocks = [r for i, r in enumerate(runs) if i == 0 or runs[i - 1] != r]
    assert len(runs) == 2 * batches * 12 * 4, f"{len(runs)} entries, expected {2 * batches * 12 * 4}"
    assert len(blocks) == len(set(blocks)) == 2 * batches, "each batch's lines must be contiguous"


def test_malformed_line_is_named(tmp_path):
    path = tmp_path / "history.jsonl"
    append_results(path, [record()], run=night("2025-01-01T00:00:00Z"))
    with open(path, "a") as f:
        f.write('{"run": "torn\n')
    with pytest.raises(ValueError, match=r"history.jsonl:5 is not a JSON line"):
        read_history(path)


def test_cli_history_shows_both_nights_flags_and_plots(tmp_path, capsys):
    path = tmp_path / "history.jsonl"
    append_results(path, [record(aa=60.0)], run=new_run("night-1") | {"date": "2025-01-01T00:00:00Z"})
    append_results(path, [record(aa=95.0, budget=replace(SMOKE, train_attack_step_size=0.0))],
                   run=new_run("night-2") | {"date": "2025-01-02T00:00:00Z"})
    code = main(["history", "--out", str(tmp_path), "--plot", "--check"])
    out = capsys.readouterr().out
    assert code == 1, "--check exits 1 when a move is flagged"
    assert "MOVED adv autoattack_error" in out and "overrides: train_attack_step_size=0.0" in out, out
    assert Path(tmp_path / "history.png").stat().st_size > 0, "--plot writes beside the history file"


def test_cli_history_without_a_store_is_one_line(tmp_path, capsys):
    code = main(["history", "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and "no history at" in err and err.count("\n") == 1, err
