"""Learning curves from the per-epoch history a run records (history.csv)."""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt


def write_history_csv(history: Sequence[dict], path: str | Path) -> None:
    keys = sorted({k for row in history for k in row}, key=lambda k: (k != "epoch", k))
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=keys)
        w.writeheader()
        w.writerows(history)


def plot_learning_curves(history: Sequence[dict], path: str | Path,
                         metrics: Sequence[str] = ("loss", "acc", "f1_macro")) -> Path | None:
    """One panel per metric, train and val per epoch. Returns None when there is nothing to draw."""
    panels = [m for m in metrics if any(f"{s}/{m}" in row for row in history for s in ("train", "val"))]
    if not panels:
        return None
    fig, axes = plt.subplots(1, len(panels), figsize=(4.5 * len(panels), 3.6), squeeze=False)
    for ax, metric in zip(axes[0], panels):
        for stage, style in (("train", "-o"), ("val", "-s")):
            key = f"{stage}/{metric}"
            pts = [(row["epoch"], row[key]) for row in history
                   if key in row and not math.isnan(row[key])]
            if pts:
                ax.plot(*zip(*pts), style, label=stage, markersize=3)
        ax.set_title(metric)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)
