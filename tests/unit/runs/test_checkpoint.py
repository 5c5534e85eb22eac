"""Atomic writes, clear errors for damaged or mismatched checkpoints, and run locks."""

import threading

import pytest
import torch

from repro.runs.checkpoint import (
    CheckpointError,
    atomic_write_bytes,
    load_checkpoint,
    run_lock,
    save_checkpoint,
)


def test_save_then_load_round_trips(tmp_path):
    save_checkpoint(tmp_path / "c.pt", {"epoch": 3, "weights": torch.arange(4)})
    state = load_checkpoint(tmp_path / "c.pt")
    assert state["epoch"] == 3 and torch.equal(state["weights"], torch.arange(4)), "round trip"


def test_atomic_write_leaves_no_temporary_files(tmp_path):
    atomic_write_bytes(tmp_path / "f", b"data")
    assert [p.name for p in tmp_path.iterdir()] == ["f"], "temporary file left behind"


def test_failed_write_keeps_old_file(tmp_path, monkeypatch):
    target = tmp_path / "f"
    atomic_write_bytes(target, b"old")

    def crash(_fd):
        raise OSError("disk full")

    monkeypatch.setattr("repro.runs.checkpoint.os.fsync", crash)
    with pytest.raises(OSError, match="disk full"):  # the injected error itself, not some other OSError
        atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"old", "an interrupted write must not damage the previous file"
    assert [p.name for p in tmp_path.iterdir()] == ["f"], "the temporary file is cleaned up"


def test_concurrent_writers_leave_one_complete_file(tmp_path):
    target = tmp_path / "c.pt"
    payloads = {i: torch.full((20_000,), float(i)) for i in range(4)}

    def writer(i):
        for _ in range(5):
            save_checkpoint(target, {"writer": i, "data": payloads[i]})

    threads = [threading.Thread(target=writer, args=(i,)) for i in payloads]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    state = load_checkpoint(target)
    assert torch.equal(state["data"], payloads[state["writer"]]), "file mixes two writers' data"


def test_corrupt_checkpoint_names_file(tmp_path):
    path = tmp_path / "checkpoint.pt"
    path.write_bytes(b"\x00garbage" * 100)
    with pytest.raises(CheckpointError, match="checkpoint.pt is corrupt"):
        load_checkpoint(path)


def test_truncated_checkpoint_names_file(tmp_path):
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(path, {"data": torch.zeros(10_000)})
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(CheckpointError, match="checkpoint.pt"):
        load_checkpoint(path)


def test_foreign_torch_file_is_rejected(tmp_path):
    path = tmp_path / "model.pt"
    torch.save({"state_dict": {}}, path)
    with pytest.raises(CheckpointError, match="not a repro checkpoint"):
        load_checkpoint(path)


def test_mismatched_checkpoint_says_what_differs(tmp_path):
    path = tmp_path / "c.pt"
    save_checkpoint(path, {"config_id": "adv"})
    with pytest.raises(CheckpointError, match="config_id='adv'"):
        load_checkpoint(path, expect={"config_id": "normal"})


def test_missing_checkpoint_is_a_checkpoint_error(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "nothing.pt")


def test_run_lock_excludes_a_second_holder(tmp_path):
    with run_lock(tmp_path):
        with pytest.raises(CheckpointError, match="locked by another run"):
            with run_lock(tmp_path, timeout=0):
                pass
