"""Provenance: the commit a result records is the code its process loaded (repro/runs/provenance.py)."""

import subprocess

import pytest

from repro.runs import provenance


def commit_all(repo, message):
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t"]
    (repo / "f").write_text(message)
    subprocess.run(git + ["add", "f"], check=True)
    subprocess.run(git + ["commit", "-q", "-m", message], check=True)
    return subprocess.run(git + ["rev-parse", "HEAD"], check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def fresh_commit_cache(tmp_path, monkeypatch):
    repo = tmp_path / "repo"
    repo.mkdir()
    subprocess.run(["git", "-C", str(repo), "init", "-q"], check=True)
    monkeypatch.setattr(provenance, "PACKAGE_DIR", repo)
    provenance.git_commit.cache_clear()
    yield repo
    provenance.git_commit.cache_clear()  # the rest of the suite reads this repository's commit again


def test_commit_made_during_a_run_does_not_relabel_it(fresh_commit_cache):
    repo = fresh_commit_cache
    started = commit_all(repo, "the code the run loaded")
    assert provenance.git_commit() == started, "the commit at the first call is the repository's HEAD"
    commit_all(repo, "committed while the run trains")
    (repo / "f").write_text("and an uncommitted edit")
    assert provenance.git_commit() == started, \
        "a result written later in the same process still names the code the process started with"


@pytest.fixture
def package_in_repo(tmp_path, monkeypatch):
    """A repository with one commit holding a package folder pkg/ (as repro/ in this one), PACKAGE_DIR
    pointed at it; returns (repository, package folder, the commit)."""
    repo = tmp_path / "repo"
    (repo / "pkg").mkdir(parents=True)
    subprocess.run(["git", "-C", str(repo), "init", "-q"], check=True)
    (repo / "pkg" / "module.py").write_text("x = 1\n")
    (repo / ".gitignore").write_text("*.pyc\n")
    subprocess.run(["git", "-C", str(repo), "add", "pkg", ".gitignore"], check=True)
    head = commit_all(repo, "the package")
    monkeypatch.setattr(provenance, "PACKAGE_DIR", repo / "pkg")
    return repo, repo / "pkg", head


def test_an_untracked_module_in_the_package_marks_the_commit_dirty(package_in_repo):
    _, package, head = package_in_repo
    (package / "new_module.py").write_text("y = 2\n")
    commit = provenance.git_commit.__wrapped__()
    assert commit == head + "+dirty", f"a run loading a module no commit has is not the commit's code: {commit}"


def test_an_ignored_file_in_the_package_leaves_the_commit_clean(package_in_repo):
    _, package, head = package_in_repo
    (package / "module.cpython-311.pyc").write_bytes(b"compiled")
    commit = provenance.git_commit.__wrapped__()
    assert commit == head, f"files git ignores (bytecode) are not the code: {commit}"


def test_an_untracked_file_outside_the_package_leaves_the_commit_clean(package_in_repo):
    repo, _, head = package_in_repo
    (repo / "notes.txt").write_text("results of last night")
    commit = provenance.git_commit.__wrapped__()
    assert commit == head, f"an untracked file beside the package (outputs, notes) is not code the run loads: {commit}"


# --- what a result was computed on (issue 24) ------------------------------------------------------

@pytest.fixture(scope="module")
def micro_records(tmp_path_factory):
    """NORMAL and BN PARAMS at the micro budget: their result records."""
    from repro.paper.configs import BN_PARAMS, NORMAL
    from repro.runs.pipeline import Pipeline, RunSettings
    from tests.conftest import make_micro_budget

    budget = make_micro_budget(epochs_clean=1, epochs_finetune=1, eval_pgd_steps=1, n_robust=16,
                               autoattack_iterations=1)
    pipeline = Pipeline(RunSettings(budget=budget, out=tmp_path_factory.mktemp("runs")))
    return {c.id: pipeline.result(c) for c in (NORMAL, BN_PARAMS)}, pipeline


def test_result_records_the_hardware_it_ran_on(micro_records):
    import torch

    hardware = micro_records[0]["normal"]["provenance"]["hardware"]
    assert hardware["cpu_capability"] == torch.backends.cpu.get_cpu_capability(), hardware
    assert hardware["torch_threads"] == torch.get_num_threads(), hardware
    assert hardware["cpu_model"], f"no CPU model recorded: {hardware}"


def test_result_records_the_hash_of_the_arrays_it_read(micro_records):
    records, pipeline = micro_records
    hashes = records["normal"]["provenance"]["data_sha256"]
    assert set(hashes) == {"train_sha256", "test_sha256"} and all(len(h) == 64 for h in hashes.values()), hashes
    assert records["bn_params"]["provenance"]["data_sha256"] == hashes, "one run's rows read one data set"
    changed = pipeline.data.to("cpu")
    changed.train_images[0, 0, 0, 0] ^= 1  # one bit of one pixel
    assert changed.hashes()["train_sha256"] != hashes["train_sha256"], "a changed pixel must change the data hash"
    assert changed.hashes()["test_sha256"] == hashes["test_sha256"], "the test arrays did not change"


def test_result_records_its_weights_and_a_fine_tuning_row_its_starting_normal(micro_records):
    records, _ = micro_records
    normal, bn_params = (records[c]["provenance"] for c in ("normal", "bn_params"))
    assert len(normal["weights_sha256"]) == 64, normal["weights_sha256"]
    assert normal["weights_sha256"].startswith(records["normal"]["identity"]["model"]), \
        "the weight hash and the result identity's fingerprint must name the same weights"
    assert bn_params["initial_weights_sha256"] == normal["weights_sha256"], \
        "BN PARAMS must record that it started from this NORMAL"
    assert bn_params["weights_sha256"] != normal["weights_sha256"], "fine-tuning changed the weights"
    assert "initial_weights_sha256" not in normal, "a row trained from scratch has no starting weights"


def test_a_kernel_cap_in_the_environment_makes_another_hardware_key(monkeypatch):
    """ONEDNN_MAX_CPU_ISA=AVX2 changed NORMAL's weights on this machine while torch still reported
    AVX512 (issue 24): two runs differing only in it must not count as the same hardware."""
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    plain = provenance.hardware_key(provenance.hardware("cpu"))
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    capped = provenance.hardware_key(provenance.hardware("cpu"))
    assert capped != plain and "ONEDNN_MAX_CPU_ISA=AVX2" in capped, f"{plain!r} vs {capped!r}"
