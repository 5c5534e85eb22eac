"""Throughput measurement (repro/runs/timing.py): what the CPU refusal's estimate rests on."""

import time

import torch

from repro.runs.timing import _rate


def test_rate_is_set_by_the_fastest_call_not_slowed_by_one_interrupted_call():
    durations = iter([0.0, 0.01, 0.25, 0.01])  # warm-up, then one call slowed by something else

    def run():
        time.sleep(next(durations))

    rate = _rate(run, batch_size=16, device=torch.device("cpu"), repeats=3)
    assert rate > 16 / 0.03, (f"{rate:.0f} images/s: one interrupted call dragged the rate toward the mean's "
                              f"{16 / 0.09:.0f}; the fastest call's is about {16 / 0.01:.0f}")
