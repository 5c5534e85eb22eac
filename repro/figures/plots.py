"""Drawing Figures 1-3 (Section 3.3) from the dicts of repro/figures/make.py; matplotlib lives only here.

Each function takes the numbers (already histogrammed over bins shared by the models compared)
and writes one PNG atomically, returning its path. Colours follow Figure 2's caption: NORMAL
blue, BN PARAMS yellow; ADV green.
"""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display on servers or in tests

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from repro.runs.checkpoint import atomic_write_bytes  # noqa: E402

COLORS = {"normal": "tab:blue", "adv": "tab:green", "bn_params": "goldenrod"}
FALLBACK_COLORS = ("tab:red", "tab:purple", "tab:brown", "tab:pink", "tab:gray")
QUANTITY_LABELS = {
    "gamma": r"$\gamma$ (BN weight)",
    "beta": r"$\beta$ (BN bias)",
    "m": r"$m = \gamma / \sqrt{\sigma^2 + \epsilon}$ (normalized weight)",
    "b": r"$b = \beta - \gamma\mu / \sqrt{\sigma^2 + \epsilon}$ (normalized bias)",
}
DPI = 120


def _color(key: str, index: int) -> str:
    return COLORS.get(key, FALLBACK_COLORS[index % len(FALLBACK_COLORS)])


def _save(fig, path: Path) -> Path:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI)
    plt.close(fig)
    atomic_write_bytes(Path(path), buffer.getvalue())
    return Path(path)


def plot_figure1(data: dict, path: Path) -> Path:
    """Figure 1: one row per quantity (gamma, beta, m, b), one column per model, shared bins per row.

    Panels of one row share x and y axes, so the models compare at a glance; a dashed line marks
    each panel's mean.
    """
    keys = list(data["counts"])
    quantities = list(data["edges"])
    fig, axes = plt.subplots(len(quantities), len(keys), figsize=(3.6 * len(keys), 2.4 * len(quantities)),
                             sharex="row", sharey="row", squeeze=False, layout="constrained")
    for row, q in enumerate(quantities):
        # Headroom above the tallest bar of the row, so the legend never covers a bar.
        axes[row][0].set_ylim(0, 1.35 * max(max(data["counts"][key][q]) for key in keys))
        axes[row][0].yaxis.set_major_locator(MaxNLocator(integer=True))
        for col, key in enumerate(keys):
            ax = axes[row][col]
            ax.stairs(data["counts"][key][q], data["edges"][q], fill=True, alpha=0.6, color=_color(key, col))
            values = data["values"][key][q]
            mean = sum(values) / len(values)
            ax.axvline(mean, color="black", linestyle="--", linewidth=1, label=f"mean {mean:.3g}")
            ax.legend(loc="upper right", fontsize="small", frameon=False)
            if row == 0:
                ax.set_title(data["labels"][key], fontsize="large", fontweight="bold")
            if col == 0:
                ax.set_ylabel("channels")
            ax.set_xlabel(QUANTITY_LABELS.get(q, q), fontsize="small")
            ax.tick_params(labelbottom=True, labelsize="small")  # sharex hides inner tick labels otherwise
    fig.suptitle(f"Figure 1: BN parameters and Equation 1 of BN layer {data['layer_index'] + 1} "
                 f"({data['layer_name']}, {data['channels']} channels)")
    return _save(fig, path)


def _short_layer_name(name: str) -> str:
    """'blocks.3.shortcut.1' -> 'b3.sc', 'blocks.3.bn1' -> 'b3.bn1', 'bn1' -> 'bn1'."""
    parts = name.split(".")
    if parts[0] == "blocks" and len(parts) >= 3:
        return f"b{parts[1]}." + ("sc" if parts[2] == "shortcut" else parts[2])
    return name


def plot_figure2(data: dict, path: Path) -> Path:
    """Figure 2: mean normalized weight m per BN layer, one line per model; the title gives the
    average difference (BN PARAMS - NORMAL, paper: -0.177)."""
    layers = data["layers"]
    fig, ax = plt.subplots(figsize=(max(7.0, 0.42 * len(layers)), 4.5), layout="constrained")
    x = list(range(len(layers)))
    for i, (key, values) in enumerate(data["mean_m"].items()):
        ax.plot(x, values, marker="o", markersize=4, color=_color(key, i), label=data["labels"][key])
    ax.set_xticks(x, [_short_layer_name(n) for n in layers], rotation=60, ha="right", fontsize="small")
    ax.set_xlabel("BN layer (forward order; b = residual block, sc = shortcut)")
    ax.set_ylabel("mean of normalized weight m")
    ax.axhline(0, color="gray", linewidth=0.5)
    ax.grid(alpha=0.3)
    ax.legend()
    title = "Figure 2: mean normalized weight per BN layer"
    diff = data.get("average_difference")
    if diff:
        labels = data["labels"]
        title += (f"\naverage difference {labels[diff['minuend']]} − {labels[diff['subtrahend']]} = "
                  f"{diff['value']:.3f} (paper: {diff['paper']:.3f})")
    ax.set_title(title)
    return _save(fig, path)


def plot_figure3(data: dict, path: Path) -> Path:
    """Figure 3: confidence (top) and logit (bottom) histograms, clean (left) vs PGD (right).

    Models are overlaid as outlines over the same bins in every panel of a row.
    """
    conditions = (("clean", "clean"), ("adversarial", f"PGD-{data['steps']}, ε = {data['epsilon'] * 255:.3g}/255"))
    rows = (("confidence_counts", "confidence_edges", "max softmax confidence", "images"),
            ("logit_counts", "logit_edges",
             "largest logit per image" if data.get("logits") == "max" else "logit (all classes)", "logits"))
    fig, axes = plt.subplots(2, 2, figsize=(11, 7.5), sharey="row", layout="constrained")
    for r, (counts_key, edges_key, xlabel, ylabel) in enumerate(rows):
        for c, (condition, title) in enumerate(conditions):
            ax = axes[r][c]
            for i, (key, per_condition) in enumerate(data["models"].items()):
                ax.stairs(per_condition[condition][counts_key], data[edges_key], color=_color(key, i),
                          linewidth=1.8, label=data["labels"][key])
            accuracy = ", ".join(f"{data['labels'][k]} {100 * v[condition]['accuracy']:.0f}%"
                                 for k, v in data["models"].items())
            ax.set_title(f"{title}\naccuracy: {accuracy}", fontsize="medium")
            ax.set_xlabel(xlabel)
            ax.tick_params(labelleft=True)
            if c == 0:
                ax.set_ylabel(ylabel)
    # One legend for all panels (the same models everywhere), outside the data.
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=len(labels))
    fig.suptitle(f"Figure 3: confidence and logits on the first {data['n_images']} test images, clean vs adversarial")
    return _save(fig, path)
