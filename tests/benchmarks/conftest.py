"""Benchmarks: this code beside a textbook reference, measured in the same run; ratios reported.

Run with `pytest -m bench tests/benchmarks` (excluded from the default run). Absolute times on
shared machines are noise; the ratio reference_time / our_time per group is the figure.
"""

import pytest

MEANS: dict[str, dict[str, float]] = {}  # group -> {"ours"|"reference"|mode name: mean seconds per call}


@pytest.fixture
def record(benchmark):
    """Record a finished benchmark's mean under (group, role) for the ratio summary."""

    def _record(group: str, role: str, images_per_call: int):
        if benchmark.stats is None:  # --benchmark-disable: the code ran once, untimed; nothing to report
            return
        mean = benchmark.stats.stats.mean
        MEANS.setdefault(group, {})[role] = mean
        benchmark.extra_info["images_per_second"] = images_per_call / mean
    return _record


def pytest_terminal_summary(terminalreporter):
    if not MEANS:
        return
    terminalreporter.section("speed-up over the textbook reference, and of each acceleration mode over ours (same run)")
    for group, means in sorted(MEANS.items()):
        if {"ours", "reference"} <= set(means):
            line = (f"{group:<22} reference {means['reference'] * 1e3:9.1f} ms   ours {means['ours'] * 1e3:9.1f} ms   "
                    f"ratio {means['reference'] / means['ours']:5.2f}x")
            for mode in sorted(set(means) - {"ours", "reference"}):  # the acceleration modes, each against ours
                line += f"   {mode} {means[mode] * 1e3:9.1f} ms ({means['ours'] / means[mode]:4.2f}x)"
            terminalreporter.write_line(line)
