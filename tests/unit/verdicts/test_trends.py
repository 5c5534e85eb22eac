"""Where a row was heading: the learning curve's last interval as a rate per epoch, or flat."""

import pytest

from repro.verdicts.trends import mean_curve, trend, trend_text


def points(*pgd, epochs=None):
    epochs = epochs or list(range(len(pgd)))
    return [{"step": 10 * e, "epoch": e, "pgd_error": p, "clean_error": 20.0, "lr": None} for e, p in zip(epochs, pgd)]


def test_a_fall_beyond_noise_is_a_rate_per_epoch():
    t = trend(points(99.0, 90.0, 80.0, epochs=[0, 1, 1.5]), n_images=500)
    assert t["per_epoch"] == pytest.approx(-20.0) and not t["flat"], t
    assert "still falling by 20.0 points per epoch" in trend_text(points(99.0, 90.0, 80.0, epochs=[0, 1, 1.5]), 500)


def test_a_move_within_the_slices_noise_is_flat():
    text = trend_text(points(90.0, 91.0), n_images=500)  # 1 point on 500 images: well within 2 SD (~3.8)
    assert "flat" in text, text


def test_the_same_move_on_many_more_images_is_not_flat():
    assert not trend(points(90.0, 91.0), n_images=100_000)["flat"], "1 point on 100k images is beyond noise"


def test_seeds_are_averaged_point_by_point():
    mean = mean_curve([points(90.0, 80.0), points(94.0, 70.0)])
    assert [p["pgd_error"] for p in mean] == [92.0, 75.0] and mean[0]["lr"] is None, mean
