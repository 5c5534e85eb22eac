"""The history of nights drawn: each error rate over the nights, one line per series (`repro history --plot`).

The numbers and the moves flagged between nights are repro/verdicts/history.py's; this module only draws
them, so matplotlib is imported only when a plot is asked for.
"""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display on servers or in tests

import matplotlib.pyplot as plt  # noqa: E402

from repro.runs.checkpoint import atomic_write_bytes  # noqa: E402
from repro.paper.expected import ERROR_RATES  # noqa: E402
from repro.verdicts.history import HistoryError, nights, series  # noqa: E402


def history_figure(entries: list[dict], metrics: tuple[str, ...] = tuple(ERROR_RATES)):
    """A matplotlib figure: one panel per metric, one line per series (budget as run, readings, seed, row) over the nights."""
    present = [m for m in metrics if any(e["metric"] == m for e in entries)]
    if not present:
        raise HistoryError(f"the history holds none of the metrics {', '.join(metrics)}")
    order = {night["run"]: i for i, night in enumerate(nights(entries))}
    fig, axes = plt.subplots(len(present), 1, figsize=(9, 3.2 * len(present)), squeeze=False, sharex=True)
    for ax, metric in zip(axes[:, 0], present):
        for key, points in series([e for e in entries if e["metric"] == metric]).items():
            label = f"{key.row} s{key.seed}" + (f" {key.label}" if key.label != "smoke" else "")
            ax.plot([order[p["run"]] for p in points], [p["value"] for p in points], marker="o", label=label)
        ax.set_ylabel(f"{metric} (%)")
        ax.grid(alpha=0.3)
    dates = [night["date"][:16].replace("T", "\n") for night in nights(entries)]
    axes[-1, 0].set_xticks(range(len(dates)), dates, fontsize=7)
    axes[0, 0].legend(fontsize=6, ncol=2, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    return fig


def plot_history(entries: list[dict], path: Path, metrics: tuple[str, ...] = tuple(ERROR_RATES)) -> Path:
    """Draw history_figure to a PNG at `path` (written atomically); returns the path."""
    fig = history_figure(entries, metrics)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=120, bbox_inches="tight")
    plt.close(fig)
    atomic_write_bytes(Path(path), buffer.getvalue())
    return Path(path)
