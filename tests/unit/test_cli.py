"""The `repro` command line: listing, the main job, and one-line errors that say what to do."""

import json
import subprocess
import sys


from repro.cli import main
from repro.configs import CONFIGURATIONS

MICRO = ["--set", "n_train=128", "--set", "n_test=64", "--set", "batch_size=64", "--set", "epochs_clean=1",
         "--set", "epochs_adversarial=1", "--set", "epochs_finetune=1", "--set", "train_attack_steps=1",
         "--set", "eval_pgd_steps=1", "--set", "n_robust=16", "--set", "autoattack_iterations=1",
         "--set", "eval_batch_size=64", "--quiet"]


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
    monkeypatch.setattr("repro.timing.measure_rates", lambda *a, **k: rates)  # this CPU at width 64, roughly
    code, _, err = run(capsys, "reproduce", "--budget", "paper", "--device", "cpu", "--out", str(tmp_path))
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


def test_corrupt_checkpoint_is_a_one_line_error(capsys, tmp_path):
    folder = tmp_path / "smoke" / "seed0" / "normal"
    folder.mkdir(parents=True)
    (folder / "checkpoint.pt").write_bytes(b"junk")
    code, _, err = run(capsys, "train", "normal", "--out", str(tmp_path), *MICRO)
    assert code == 2 and "checkpoint.pt is corrupt" in err, err


def test_reproduce_subset_prints_table_and_writes_results(capsys, tmp_path):
    code, out, err = run(capsys, "reproduce", "--configs", "bn_stats_reset", "--out", str(tmp_path), *MICRO)
    assert code == 0, err
    assert "BN STATS (reset)" in out and "NORMAL" in out, f"summary lacks rows:\n{out}"
    record = json.loads((tmp_path / "smoke" / "seed0" / "bn_stats_reset" / "result.json").read_text())
    assert record["metrics"]["n_robust"] == 16, "the --set overrides reached the evaluation"
