"""A fine-tuning row against the NORMAL recorded beside it: what differs, said, and the comparison marked."""

from repro.verdicts.determinism import not_like_for_like, starting_normal_lines

HARDWARE = {"cpu_model": "Test CPU", "cpu_capability": "AVX2", "torch_threads": 2}


def result(weights: str, commit: str = "a" * 40, started_from: str | None = None) -> dict:
    """A result record carrying the hashes a comparison needs; `started_from`: a fine-tuning row's NORMAL."""
    provenance = {"git_commit": commit, "hardware": HARDWARE, "data_sha256": {"train_sha256": "d"},
                  "weights_sha256": weights}
    if started_from is not None:
        provenance["initial_weights_sha256"] = started_from
    return {"provenance": provenance, "budget": {}}


def seed0(bn_params_started_from: str, commit: str = "b" * 40) -> dict:
    """Seed 0's NORMAL (weights "normal-1", commit a...) and BN PARAMS, fine-tuned at `commit` from
    `bn_params_started_from`."""
    return {0: {"normal": result("normal-1"),
                "bn_params": result("bn-params", commit=commit, started_from=bn_params_started_from)}}


def test_a_row_from_another_normal_says_what_differs_and_that_it_is_not_like_for_like():
    lines = starting_normal_lines(seed0("normal-2"), [0])
    assert len(lines) == 1 and "different inputs (code: commit aaaaaaaaaaaa vs bbbbbbbbbbbb)" in lines[0] \
        and "not like for like" in lines[0] and "not a defect" not in lines[0], (
            f"a row that started from another NORMAL, trained at another commit: what differs, and that its "
            f"comparisons with the NORMAL beside it are not like for like: {lines}")


def test_a_row_from_another_normal_is_named_with_the_reason():
    marked = not_like_for_like(seed0("normal-2"), [0])
    assert list(marked) == ["seed0/bn_params"] and "code: commit aaaaaaaaaaaa vs bbbbbbbbbbbb" in marked["seed0/bn_params"], (
        f"the row and why, for the claims that compare it with NORMAL: {marked}")


def test_a_row_from_the_normal_beside_it_is_like_for_like():
    assert not_like_for_like(seed0("normal-1"), [0]) == {}, "BN PARAMS started from the NORMAL recorded beside it"
