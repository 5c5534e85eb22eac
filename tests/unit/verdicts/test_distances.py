"""Distances between output distributions (Figure 3) and per-layer shares ("in most layers")."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from repro.verdicts.distances import fraction_where, wasserstein1

finite = st.floats(-10, 10, allow_nan=False, allow_infinity=False)
samples = st.lists(finite, min_size=1, max_size=30)
FEW = settings(max_examples=30)  # numpy on short lists: 30 draws find the edge cases (ties, one value)


@FEW
@given(st.integers(1, 30).flatmap(lambda n: st.tuples(st.lists(finite, min_size=n, max_size=n),
                                                      st.lists(finite, min_size=n, max_size=n))))
def test_wasserstein1_of_equal_sizes_matches_sorted_pairs(pair):
    # For two samples of one size, the optimal transport pairs the i-th smallest values.
    a, b = pair
    expected = np.mean(np.abs(np.sort(a) - np.sort(b)))
    assert wasserstein1(a, b) == pytest.approx(expected, abs=1e-9), f"W1({a}, {b})"


@FEW
@given(samples, st.floats(-5, 5, allow_nan=False))
def test_wasserstein1_of_a_shift_is_the_shift(a, shift):
    assert wasserstein1(a, [x + shift for x in a]) == pytest.approx(abs(shift), abs=1e-9), f"shift {shift} of {a}"


@pytest.mark.parametrize("a, b, distance", [
    ([0.0], [0.0, 1.0], 0.5),  # half the mass moves by 1
    ([0.0, 0.0, 1.0], [0.0, 1.0, 1.0], 1 / 3),
    ([0.2, 0.9], [0.9, 0.2], 0.0),  # the order of a sample does not matter
])
def test_wasserstein1_by_hand(a, b, distance):
    assert wasserstein1(a, b) == pytest.approx(distance), f"W1({a}, {b})"


@FEW
@given(samples, samples)
def test_wasserstein1_is_symmetric(a, b):
    assert wasserstein1(a, b) == pytest.approx(wasserstein1(b, a), abs=1e-9), f"W1 not symmetric on {a}, {b}"


@pytest.mark.parametrize("bad", [[], [0.1, float("nan")]])
def test_wasserstein1_refuses_empty_or_non_finite(bad):
    with pytest.raises(ValueError, match="empty|non-finite"):
        wasserstein1(bad, [0.5])


@pytest.mark.parametrize("op, count", [("<", 1), ("<=", 2), (">", 1), (">=", 2)])
def test_fraction_counts_positions_by_hand(op, count):
    assert fraction_where([1.0, 2.0, 3.0], op, [2.0, 2.0, 2.0]) == (count, 3), f"[1, 2, 3] {op} [2, 2, 2]"


def test_fraction_needs_the_same_positions():
    with pytest.raises(ValueError, match="same number of positions"):
        fraction_where([1.0, 2.0], "<", [1.0])


def test_wasserstein1_leaves_the_callers_arrays_in_their_order():
    a, b = np.array([0.9, 0.1, 0.5]), np.array([[0.3, 0.2], [0.8, 0.0]])
    a_before, b_before = a.copy(), b.copy()
    wasserstein1(a, b)
    assert np.array_equal(a, a_before) and np.array_equal(b, b_before), (
        f"a distance must not reorder its inputs (position i is image i or layer i for whoever reads them next): {a}, {b}")


def test_wasserstein1_of_float32_samples_equals_that_of_their_stored_values():
    # Figure 3 passes float32 confidences straight from softmax; a claim recomputes W1 from the same
    # confidences read back from JSON (Python floats). Both must give one number, not two roundings.
    # Confidences far apart, so a gap between them computed in float32 would be rounded.
    a, b = np.array([0.1, 0.95], dtype=np.float32), np.array([0.7, 0.3], dtype=np.float32)
    assert wasserstein1(a, b) == wasserstein1(a.tolist(), b.tolist()), (
        f"W1 of float32 samples {wasserstein1(a, b)!r} != W1 of their values {wasserstein1(a.tolist(), b.tolist())!r}")


@pytest.mark.parametrize("a, b, message", [
    ([], [0.5], "^first sample is empty"), ([0.5], [], "^second sample is empty"),
    ([float("nan")], [0.5], "^first sample holds non-finite"), ([0.5], [float("inf")], "^second sample holds non-finite"),
])
def test_wasserstein1_says_which_sample_is_bad(a, b, message):
    # The caller (a claim, Figure 3) passes two models' outputs: the message must say which one to look at.
    with pytest.raises(ValueError, match=message):
        wasserstein1(a, b)


@pytest.mark.parametrize("a, b, message", [
    ([], [0.5], "^first series is empty"), ([0.5], [], "^second series is empty"),
    ([float("nan")], [0.5], "^first series holds non-finite"), ([0.5], [float("inf")], "^second series holds non-finite"),
])
def test_fraction_says_which_series_is_bad(a, b, message):
    with pytest.raises(ValueError, match=message):
        fraction_where(a, "<", b)


def test_fraction_refuses_an_unknown_operator_naming_the_ones_it_knows():
    with pytest.raises(ValueError, match=r"^op must be one of \['<', '<=', '>', '>='\], got '=='$"):
        fraction_where([1.0], "==", [1.0])
