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
