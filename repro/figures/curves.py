"""Learning curves drawn: robust and clean error against training progress, the paper's value dashed.

One line per row (and per run folder, where several are compared, e.g. the fine-tuning ladder's
readings); the y values are the curve's slice errors (repro/runs/curves.py: the first few hundred
test images, a short evaluation PGD), the dashed lines Table 2's values, which are AutoAttack's on
the first 1000 and clean on the whole test set: the curve shows where a row is heading, the table
what it reached.
"""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display on servers or in tests

import matplotlib.pyplot as plt  # noqa: E402

from repro.figures.plots import COLORS, FALLBACK_COLORS  # noqa: E402
from repro.paper.configs import CONFIGURATIONS  # noqa: E402
from repro.paper.expected import TABLE2_METRICS  # noqa: E402
from repro.runs.checkpoint import atomic_write_bytes, atomic_write_json  # noqa: E402

PANELS = (("pgd_error", "robust_error", "PGD error on the curve's slice (%)"),
          ("clean_error", "clean_error", "clean error on the curve's slice (%)"))


def curve_series(records: dict[str, dict], expected: dict, name: str = "") -> list[dict]:
    """One series per row of `records` ({config_id: result record}) that has a curve: its label (with
    `name`, e.g. the run folder's readings, appended), points, and Table 2's values."""
    out = []
    for config_id, record in records.items():
        points = record.get("curve", {}).get("points")
        if not points:
            continue
        label = CONFIGURATIONS[config_id].label + (f" ({name})" if name else "")
        paper = {metric: expected["table2"][config_id][metric]["value"] for metric in TABLE2_METRICS}
        out.append({"row": config_id, "label": label, "points": points, "paper": paper,
                    "images": record["curve"].get("images"), "attack": record["curve"].get("attack")})
    return out


def plot_curves(series: list[dict], path: Path, title: str = "Learning curves") -> Path:
    """Both panels (PGD and clean error against epochs) for every series; a row's paper value as a dashed
    line in its colour. Written atomically as PNG; returns the path."""
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.8), layout="constrained")
    colors = {}
    for i, entry in enumerate(series):
        colors[entry["label"]] = COLORS.get(entry["row"]) if entry["row"] not in {e["row"] for e in series[:i]} else None
        colors[entry["label"]] = colors[entry["label"]] or FALLBACK_COLORS[i % len(FALLBACK_COLORS)]
    for ax, (metric, paper_metric, ylabel) in zip(axes, PANELS):
        for entry in series:
            color = colors[entry["label"]]
            ax.plot([p["epoch"] for p in entry["points"]], [p[metric] for p in entry["points"]], marker="o",
                    markersize=3, color=color, label=entry["label"])
            ax.axhline(entry["paper"][paper_metric], color=color, linestyle="--", linewidth=1)
        ax.set_xlabel("epochs trained")
        ax.set_ylabel(ylabel)
        ax.set_ylim(0, 100)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize="small", loc="lower left")
    fig.suptitle(f"{title} (dashed: the paper's Table 2 value of the row of that colour)")
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=120)
    plt.close(fig)
    atomic_write_bytes(Path(path), buffer.getvalue())
    return Path(path)


def write_curves(series: list[dict], out_dir: Path, name: str = "curves", title: str = "Learning curves") -> list[Path]:
    """NAME.json (the series) and NAME.png (their plot) in `out_dir`; nothing when no series has a curve."""
    if not series:
        return []
    json_path = Path(out_dir) / f"{name}.json"
    atomic_write_json(json_path, {"series": series})
    return [json_path, plot_curves(series, Path(out_dir) / f"{name}.png", title)]
