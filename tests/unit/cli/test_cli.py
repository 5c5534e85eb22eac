"""The `repro` command line: listing, the main job, and one-line errors that say what to do."""

import contextlib
import io
import json
import re
import subprocess
import sys

import pytest

from repro.cli.main import main
from repro.paper.budgets import get_budget
from repro.paper.configs import CONFIGURATIONS
from repro.runs.checkpoint import load_checkpoint, state_fingerprint

MICRO_SETS = {"n_train": "128", "n_test": "64", "batch_size": "64", "epochs_clean": "1", "epochs_adversarial": "1",
              "epochs_finetune": "1", "train_attack_steps": "1", "eval_pgd_steps": "1", "n_robust": "16",
              "autoattack_iterations": "1", "eval_batch_size": "64"}
MICRO = [arg for field, value in MICRO_SETS.items() for arg in ("--set", f"{field}={value}")] + ["--quiet"]


def micro_run_folder(out):
    """Where `repro ... --out OUT` with the MICRO overrides keeps its runs (overrides get their own folder)."""
    return out / get_budget("smoke", MICRO_SETS).run_name / "seed0"


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_list_names_every_configuration(capsys):
    code, out, _ = run(capsys, "list")
    missing = [c.id for c in CONFIGURATIONS.values() if c.id not in out or c.label not in out]
    assert code == 0 and missing == [], f"repro list misses {missing}"


def test_module_entry_point_runs():
    result = subprocess.run([sys.executable, "-m", "repro", "list"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "bn_params_log_conv1" in result.stdout, result.stderr


def test_unknown_configuration_lists_valid_ids(capsys, tmp_path):
    code, _, err = run(capsys, "train", "bn-params", "--out", str(tmp_path))
    assert code == 2 and "valid ids" in err and "bn_params" in err, err
    assert err.count("\n") == 1, f"one-line error expected, got: {err!r}"


def test_missing_cifar_says_how_to_download(capsys, tmp_path):
    code, _, err = run(capsys, "train", "normal", "--budget", "cifar_cpu", "--data-dir", str(tmp_path),
                       "--out", str(tmp_path), "--allow-slow")
    assert code == 2 and "--download" in err, err


def test_cifar_budget_without_data_dir_says_what_to_pass(capsys, tmp_path):
    code, _, err = run(capsys, "train", "normal", "--budget", "cifar_cpu", "--out", str(tmp_path), "--allow-slow")
    assert code == 2 and "--data-dir" in err, err


def test_paper_budget_on_cpu_gives_estimate(capsys, tmp_path, monkeypatch):
    rates = {"clean_step": 20.0, "adversarial_step": 2.0, "forward_adversarial": 2.0, "pgd_eval": 2.0}
    monkeypatch.setattr("repro.runs.timing.measure_rates", lambda *a, **k: rates)  # this CPU at width 64, roughly
    code, _, err = run(capsys, "reproduce", "--budget", "paper", "--device", "cpu", "--out", str(tmp_path),
                       "--data-dir", str(tmp_path), "--download")  # data is checked first; --download defers it
    assert code == 2 and "hours" in err and "--allow-slow" in err, err


def test_out_of_range_epsilon_is_refused(capsys, tmp_path):
    code, _, err = run(capsys, "train", "normal", "--set", "epsilon=2", "--out", str(tmp_path))
    assert code == 2 and "epsilon" in err, err


def test_unknown_budget_field_is_refused(capsys, tmp_path):
    code, _, err = run(capsys, "train", "normal", "--set", "epochz=2", "--out", str(tmp_path))
    assert code == 2 and "unknown budget field" in err, err


def test_evaluate_untrained_says_how_to_train(capsys, tmp_path):
    code, _, err = run(capsys, "evaluate", "adv", "--out", str(tmp_path), *MICRO)
    assert code == 2 and "repro train adv" in err, err


def test_evaluate_refuses_restart(capsys, tmp_path):
    code, _, err = run(capsys, "evaluate", "normal", "--restart", "--out", str(tmp_path), *MICRO)
    assert code == 2 and "repro train normal --restart" in err, (
        f"evaluate --restart must refuse (it used to delete the trained model): {err}")


def test_corrupt_checkpoint_is_a_one_line_error(capsys, tmp_path):
    folder = micro_run_folder(tmp_path) / "normal"
    folder.mkdir(parents=True)
    (folder / "checkpoint.pt").write_bytes(b"junk")
    code, _, err = run(capsys, "train", "normal", "--out", str(tmp_path), *MICRO)
    assert code == 2 and "checkpoint.pt is corrupt" in err, err


RUN = "bn_stats_reset"  # reproduce one fine-tuning row: NORMAL is trained first as its dependency
RAN = {"normal", RUN}


@pytest.fixture(scope="module")
def reproduced(tmp_path_factory):
    """`repro reproduce --configs bn_stats_reset` at micro scale, once: (exit code, stdout, stderr, run folder)."""
    out = tmp_path_factory.mktemp("reproduce")
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = main(["reproduce", "--configs", RUN, "--out", str(out), *MICRO])
    return code, stdout.getvalue(), stderr.getvalue(), micro_run_folder(out)


def summary_cells(out, label):
    """The terminal summary's cells after `label` (label column 30 wide), one line per metric:
    {"clean": [...], "robust": [...]}, each metric, paper, measured, Δ, tol, z, interval, verdict (words); the
    robust metric's cell "robust: ATTACK (...)" read as "robust"."""
    lines = [re.sub(r"^(robust): [^)]*\)", r"\1", line[30:].strip()) for line in out.splitlines()
             if line[:30].rstrip() == label]
    cells = {line.split()[0]: line.split() for line in lines}
    assert len(lines) == 2 and set(cells) == {"clean", "robust"}, f"expected a clean and a robust line for {label!r}, got {lines}\n{out}"
    return cells


def test_reproduce_exits_with_the_code_its_verdicts_give(reproduced):
    code, _, err, folder = reproduced
    recorded = json.loads((folder / "verdicts.json").read_text())["exit_code"]
    assert code == recorded and code in (0, 1, 3), (
        f"repro reproduce --configs {RUN} exited {code}, its verdicts.json says {recorded}: {err}")


@pytest.mark.parametrize("config_id", sorted(RAN))
def test_summary_shows_measured_numbers_of_rows_run(reproduced, config_id):
    _, out, _, folder = reproduced
    metrics = json.loads((folder / config_id / "result.json").read_text())["metrics"]
    cells = summary_cells(out, CONFIGURATIONS[config_id].label)
    shown = (cells["clean"][2], cells["robust"][2])  # measured clean error, measured robust (AutoAttack) error
    expected = (f"{metrics['clean_error']:.2f}", f"{metrics['autoattack_error']:.2f}")
    verdicts = {" ".join(cells[m][8:]) for m in cells}  # after metric, paper, measured, Δ, tol, z, interval
    assert shown == expected and all(v == "not judged" or v.startswith("degenerate (") for v in verdicts), (
        f"{config_id} ran: summary shows {cells}, measured {expected}; smoke numbers are shown, not judged")


def test_summary_says_missing_for_rows_not_run(reproduced):
    _, out, _, _ = reproduced
    cells = {c.id: summary_cells(out, c.label) for c in CONFIGURATIONS.values() if c.id not in RAN}
    wrong = {config_id: metrics for config_id, metrics in cells.items()
             if any(m[2] != "—" or m[-1] != "missing" for m in metrics.values())}
    assert wrong == {}, f"rows that were not run must show no number and say missing: {wrong}"


def test_reproduce_writes_results_with_overrides(reproduced):
    _, _, _, folder = reproduced
    record = json.loads((folder / RUN / "result.json").read_text())
    assert record["metrics"]["n_robust"] == 16, "the --set overrides reached the evaluation"


def test_history_keeps_the_commit_that_produced_a_reused_result(reproduced, tmp_path, capsys):
    # Issue 27 item 3: reproduce reuses a finished result.json (its identity holds no code version); the
    # history must name the commit that computed those numbers, not the one the night ran at.
    import shutil

    from repro.verdicts.history import read_history

    _, _, _, folder = reproduced
    out = tmp_path / "copy"
    shutil.copytree(folder.parent.parent, out)
    result = micro_run_folder(out) / RUN / "result.json"
    record = json.loads(result.read_text())
    record["provenance"]["git_commit"] = earlier = "e" * 40
    result.write_text(json.dumps(record))
    code, _, err = run(capsys, "reproduce", "--configs", RUN, "--out", str(out), "--no-gate", *MICRO)
    latest = [e for e in read_history(out / "history.jsonl") if e["row"] == RUN][-1]
    assert code == 0 and latest["commit"] == earlier and latest["run_commit"] != earlier, (
        f"a reused result keeps the commit that produced it: {latest['commit']}, night at {latest['run_commit']}; {err}")


def test_debug_env_shows_the_traceback(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("REPRO_DEBUG", "1")
    with pytest.raises(ValueError, match="epsilon"):
        main(["train", "normal", "--set", "epsilon=2", "--out", str(tmp_path)])


# --- several seeds ------------------------------------------------------------------------------------

def test_report_over_seeds_names_the_seed_not_run(reproduced, capsys):
    _, _, _, folder = reproduced  # seed 0 only
    code, out, err = run(capsys, "report", "--seeds", "0", "1", "--out", str(folder.parent.parent), "--no-gate", *MICRO)
    markdown = (folder.parent / "report.md").read_text()
    assert code == 0, err
    assert "- normal: no result for seed 1" in markdown and "— (no seed 1)" in out, (
        f"a seed without runs must be reported missing, not averaged over the others:\n{out}")


@pytest.fixture(scope="module")
def trained_two_seeds(tmp_path_factory):
    """`repro train bn_stats_reset --seeds 0 1` at micro scale: the seeds' run folders (OUT/BUDGET/seedS)."""
    out = tmp_path_factory.mktemp("seeds")
    one_step = ["--set", "n_train=64"]  # one batch per epoch: the seeds' runs are what is checked, not learning
    with contextlib.redirect_stdout(io.StringIO()):
        code = main(["train", RUN, "--seeds", "0", "1", "--out", str(out), "--allow-slow", *MICRO, *one_step])
    assert code == 0, "repro train --seeds 0 1 failed"
    budget = get_budget("smoke", {**MICRO_SETS, "n_train": "64"})
    return {seed: out / budget.run_name / f"seed{seed}" for seed in (0, 1)}


def test_each_seed_fine_tunes_its_own_normal(trained_two_seeds):
    states = {(seed, row): load_checkpoint(folder / row / "checkpoint.pt")
              for seed, folder in trained_two_seeds.items() for row in ("normal", RUN)}
    normals = {seed: state_fingerprint(states[(seed, "normal")]["model"]) for seed in (0, 1)}
    started_from = {seed: states[(seed, RUN)]["initial_fingerprint"] for seed in (0, 1)}
    assert normals[0] != normals[1], "seeds 0 and 1 must train different NORMAL models"
    assert started_from == normals, f"{RUN} of each seed must start from that seed's NORMAL: {started_from} vs {normals}"


def test_seed_and_seeds_together_are_refused(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["report", "--seed", "1", "--seeds", "0", "1"])
    assert exit_info.value.code == 2 and "not allowed with" in capsys.readouterr().err, "--seed and --seeds conflict"


SLOW_RATES = {"clean_step": 2.0, "adversarial_step": 0.2, "forward_adversarial": 0.2, "pgd_eval": 0.2}


def test_missing_data_is_reported_before_measuring_throughput(capsys, tmp_path, monkeypatch):
    def measured(*args, **kwargs):
        raise AssertionError("throughput measured before the data was checked")
    monkeypatch.setattr("repro.runs.timing.measure_rates", measured)
    code, _, err = run(capsys, "reproduce", "--budget", "cifar_cpu", "--data-dir", str(tmp_path / "nonexistent"),
                       "--device", "cpu", "--out", str(tmp_path))
    assert code == 2 and "--download" in err and "throughput" not in err, err


def test_refusal_never_suggests_the_budget_asked_for(capsys, tmp_path, monkeypatch):
    monkeypatch.setattr("repro.runs.timing.measure_rates", lambda *a, **k: SLOW_RATES)
    code, _, err = run(capsys, "reproduce", "--budget", "cifar_cpu", "--data-dir", str(tmp_path), "--download",
                       "--device", "cpu", "--out", str(tmp_path))
    assert code == 2 and "--allow-slow" in err, err
    assert "--budget cifar_cpu" not in err and "--budget smoke" in err, f"suggests the budget asked for: {err}"


def test_refusal_under_load_says_the_estimate_is_an_upper_bound(capsys, tmp_path, monkeypatch):
    monkeypatch.setattr("repro.runs.timing.measure_rates", lambda *a, **k: SLOW_RATES)
    monkeypatch.setattr("os.getloadavg", lambda: (64.0, 64.0, 64.0))
    code, _, err = run(capsys, "reproduce", "--budget", "paper", "--device", "cpu", "--data-dir", str(tmp_path),
                       "--download", "--out", str(tmp_path))
    assert code == 2 and "upper bound" in err and "load average 64.0" in err, err
