"""Drawing the README's picture from the numbers of repro/figures/status_figure.py (matplotlib only here)."""

from __future__ import annotations

import io
import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display on servers or in tests

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402

from repro.figures.plots import COLORS  # noqa: E402
from repro.paper.configs import CONFIGURATIONS  # noqa: E402
from repro.runs.checkpoint import atomic_write_bytes  # noqa: E402

DPI = 100  # the picture sits in a README: small enough to load at once (about 150 KB)
METRIC_WORDS = {"clean_error": "clean error", "robust_error": "robust error"}

# One colour and one marker per Table 2 row, in registry order; NORMAL, ADV and BN PARAMS keep Figure 2's colours.
_OTHER_COLORS = iter(("tab:orange", "tab:cyan", "tab:red", "tab:purple", "tab:brown", "tab:pink", "tab:gray", "black"))
ROW_COLORS = {c: COLORS.get(c) or next(_OTHER_COLORS) for c in CONFIGURATIONS}
ROW_MARKERS = dict(zip(CONFIGURATIONS, ("o", "s", "^", "D", "v", "P", "X", "<", ">", "*", "h")))
# Further runs of a row already drawn in the ladder (the same row under another reading) get these.
EXTRA_STYLES = (("navy", "p"), ("tab:olive", "8"), ("magenta", "d"))


def row_style(config_id: str) -> tuple[str, str]:
    """(colour, marker) of a Table 2 row, the same in every panel."""
    return ROW_COLORS[config_id], ROW_MARKERS[config_id]


def _images(n: int | None, metric: str, paper: bool = False) -> str:
    if not n:
        return "images not recorded"
    if paper and metric == "clean_error":  # the paper does not say which; its values lie on the k/900 grid
        return f"{n:,} test images (inferred from its values)"
    return f"all {n:,} test images" if metric == "clean_error" and n >= 10_000 else f"first {n:,} test images"


def _table2_panel(ax, table2: dict, metric: str, paper_attack: str) -> None:
    """Paper (x) against measured (y) for one Table 2 metric; the diagonal is agreement."""
    ax.plot([0, 100], [0, 100], color="gray", linewidth=0.8, linestyle=":", zorder=0)
    for row in table2["rows"]:
        color, marker = row_style(row["row"])
        ax.plot(row[metric]["paper"], row[metric]["measured"], linestyle="none", marker=marker, markersize=8,
                color=color, markerfacecolor="none" if row["degenerate"] else color, markeredgewidth=1.5)
    attack = "" if metric == "clean_error" else f": {table2['attack']}"
    paper = "" if metric == "clean_error" else f": {paper_attack}"
    ax.set_xlabel(f"paper's {METRIC_WORDS[metric]} (%){paper}, {_images(table2['paper_n'][metric], metric, paper=True)}",
                  fontsize="small")
    ax.set_ylabel(f"measured {METRIC_WORDS[metric]} (%){attack}, {_images(table2['n'][metric], metric)}",
                  fontsize="small")
    low = 0 if metric == "clean_error" else 50
    ax.set_xlim(low, 101)
    ax.set_ylim(low, 101)
    ax.set_aspect("equal")
    ax.grid(alpha=0.3)
    ax.set_title(f"Table 2, {METRIC_WORDS[metric]} (dotted: as the paper)", fontsize="medium")


def _ladder_panel(ax, ladder: list[dict]) -> list[Line2D]:
    """Robust error after each epoch per laddered run, each row's paper value dashed; returns the legend handles."""
    handles, drawn, extra = [], {}, iter(EXTRA_STYLES)
    for entry in ladder:
        color, marker = row_style(entry["row"]) if entry["row"] not in drawn else next(extra)
        epochs = [p["epoch"] for p in entry["points"]]
        errors = [p["robust_error"] for p in entry["points"]]
        hollow = all(p["degenerate"] for p in entry["points"])
        ax.plot(epochs, errors, color=color, marker=marker, markersize=7, linewidth=1.5,
                markerfacecolor="none" if hollow else color)
        label = entry["label"] + (" (degenerate: one class)" if hollow else "")
        handles.append(Line2D([], [], color=color, marker=marker, markerfacecolor="none" if hollow else color,
                              label=label))
        if entry["row"] not in drawn:
            drawn[entry["row"]] = color
            ax.axhline(entry["paper"], color=color, linestyle="--", linewidth=1)
            handles.append(Line2D([], [], color=color, linestyle="--",
                                  label=f"paper: {entry['label'].split(' (')[0]} {entry['paper']:g}"))
    attacks = sorted({e["attack"] for e in ladder})
    images = sorted({e["n_robust"] for e in ladder if e["n_robust"]})
    ax.set_xscale("log", base=2)
    ticks = sorted({p["epoch"] for e in ladder for p in e["points"]})
    ax.set_xticks(ticks, [str(t) for t in ticks])
    ax.set_xlabel("epochs trained (fine-tuning epochs; from scratch for ADV)", fontsize="small")
    ax.set_ylabel(f"robust error (%): {' / '.join(attacks)}, "
                  f"{_images(images[-1] if images else None, 'robust_error')}", fontsize="small")
    ax.set_ylim(50, 101)
    ax.grid(alpha=0.3)
    ax.set_title("The fine-tuning ladder (dashed: the paper's AutoAttack value)", fontsize="medium")
    return handles


def plot_status(table2: dict | None, ladder: list[dict], path: Path, paper_attack: str) -> Path:
    """The picture (Table 2's two panels where `table2`, the ladder's where `ladder`), written atomically as PNG."""
    panels = (2 if table2 else 0) + (1 if ladder else 0)
    fig, axes = plt.subplots(1, panels, figsize=(5.2 * panels, 6.2), layout="constrained", squeeze=False)
    axes = list(axes[0])
    title = []
    if table2:
        for ax, metric in zip(axes, ("clean_error", "robust_error")):
            _table2_panel(ax, table2, metric, paper_attack)
        handles = [Line2D([], [], linestyle="none", marker=row_style(r["row"])[1], color=row_style(r["row"])[0],
                          markerfacecolor="none" if r["degenerate"] else row_style(r["row"])[0],
                          label=r["label"] + (" (degenerate)" if r["degenerate"] else "")) for r in table2["rows"]]
        fig.legend(handles=handles, loc="outside lower left", ncols=3, fontsize="small", frameon=False)
        title.append(f"Table 2: {table2['folder']} (budget {table2['budget']}, seed {table2['seed']})")
    if ladder:
        handles = _ladder_panel(axes[-1], ladder)
        fig.legend(handles=handles, loc="outside lower right", ncols=1, fontsize="small", frameon=False)
        modes = sorted({m for e in ladder for m in e["modes"]})
        title.append(f"ladder: {os.path.commonpath([e['folder'] for e in ladder])}"
                     + (f" (run in {' + '.join(modes)})" if modes else ""))
    fig.suptitle("; ".join(title), fontsize="medium")
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI)
    plt.close(fig)
    atomic_write_bytes(Path(path), buffer.getvalue())
    return Path(path)
