"""Where a row was heading: the learning curve's last epoch as a rate per epoch, judged flat or moving on
the images that flipped (paired), never on too short a curve."""

import pytest

from repro.verdicts.trends import mean_curve, trend, trend_text

N = 500  # the slice's images


def mask(wrong: set[int], n: int = N) -> str:
    """The curve's per-image record (repro/runs/curves.py pgd_wrong), written independently: image i is
    bit i % 4 of hex digit i // 4."""
    return "".join(f"{sum(1 << j for j in range(4) if i + j in wrong):x}" for i in range(0, n, 4))


def point(epoch: float, wrong: set[int] | None, n: int = N, pgd: float | None = None) -> dict:
    out = {"step": round(4 * epoch), "epoch": epoch, "clean_error": 20.0, "lr": None,
           "pgd_error": 100 * len(wrong) / n if pgd is None else pgd}
    if wrong is not None:
        out["pgd_wrong"] = mask(wrong, n)
    return out


BASE = set(range(250))  # half the slice wrong


def two_epochs(last: set[int], before_last: set[int] = BASE) -> list[dict]:
    """A curve over two epochs, a point every quarter epoch, BASE wrong up to epoch 1, `before_last` at
    1.75 and `last` at the end."""
    return ([point(e / 4, BASE) for e in range(5)] + [point(1.25, BASE), point(1.5, BASE), point(1.75, before_last)]
            + [point(2.0, last)])


def test_a_curve_of_one_epoch_has_too_few_points_to_judge():
    curve = [point(e / 4, BASE) for e in range(5)]  # 1-epoch ADV: points at 0, 1/4, 1/2, 3/4 and 1
    text = trend_text(curve, N)
    assert text == "too few points to judge a trend (the curve covers 1 epoch)", (
        f"the last quarter of a one-epoch run says nothing of where training was heading; never 'flat': {text}")


def test_a_curve_of_two_points_has_too_few_points_to_judge():
    text = trend_text([point(0, BASE), point(10, BASE)], N)
    assert text.startswith("too few points to judge a trend"), f"two points (before training, the end): {text}"


def test_ten_images_flipped_one_way_is_a_move_though_within_two_independent_samples_noise():
    # 250 -> 260 of 500 wrong: 2 points, within the ~31-image noise of two independent error rates, but
    # all 10 flips go one way (right -> wrong, none back): beyond McNemar's |c - b| > 2 sqrt(b + c).
    t = trend(two_epochs(BASE | set(range(250, 260))), N)
    assert t["flat"] is False and t["flips"] == (0, 10), f"10 images flipped right -> wrong, none back: {t}"


def test_a_rising_move_is_said_with_its_rate_per_epoch():
    text = trend_text(two_epochs(BASE | set(range(250, 260))), N)
    assert "50.0 -> 52.0 % over the last 1 epoch: rising by 2.0 points per epoch" in text, text


def test_flips_both_ways_within_noise_are_flat():
    # 12 right -> wrong, 10 wrong -> right: |12 - 10| = 2 <= 2 sqrt(22).
    last = (BASE - set(range(10))) | set(range(250, 262))
    t = trend(two_epochs(last), N)
    assert t["flat"] is True and t["flips"] == (10, 12), f"flips both ways in balance are noise: {t}"


def test_the_last_epoch_is_judged_not_the_last_interval():
    # Falling over the last epoch (30 images wrong -> right by 1.75), unchanged over the last quarter.
    fell = BASE - set(range(30))
    t = trend(two_epochs(fell, before_last=fell), N)
    assert t["epochs"] == pytest.approx(1.0) and t["flips"] == (30, 0) and t["flat"] is False, (
        f"the change from the point one epoch before the end to the end, not the last quarter epoch's: {t}")
    assert t["per_epoch"] == pytest.approx(-6.0), f"30 of 500 images over one epoch: -6 points per epoch: {t}"


def test_without_per_image_outcomes_the_move_is_said_and_flatness_not_judged():
    curve = [point(e, None, pgd=p) for e, p in zip((0, 1, 2), (90.0, 80.0, 79.0))]  # a curve of older records
    text = trend_text(curve, N)
    assert "80.0 -> 79.0 %" in text and "cannot be judged" in text and "flat" not in text.replace("flatness", ""), (
        f"no per-image outcomes: the move is said, flatness not judged: {text}")


def test_seeds_are_averaged_point_by_point():
    mean = mean_curve([[point(0, None, pgd=90.0), point(1, None, pgd=80.0)],
                       [point(0, None, pgd=94.0), point(1, None, pgd=70.0)]])
    assert [p["pgd_error"] for p in mean] == [92.0, 75.0] and mean[0]["lr"] is None, mean


def test_over_seeds_each_seeds_images_are_paired_with_themselves():
    # Seed 0 flips 10 images right -> wrong, seed 1 the same 10 wrong -> right: over seeds, 10 each way.
    rising = two_epochs(BASE | set(range(250, 260)))
    falling = [{**p, "pgd_wrong": mask(BASE | set(range(250, 260)))} for p in two_epochs(BASE)[:-1]] + [two_epochs(BASE)[-1]]
    t = trend(mean_curve([rising, falling]), 2 * N)
    assert t["flips"] == (10, 10) and t["flat"] is True, (
        f"the seeds' per-image outcomes pooled, each image paired within its seed: {t}")
