"""Segmentation pictures: masks in a palette, error maps, image | truth | prediction | error panels."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.patches import Patch

IGNORE_COLOR = (0, 0, 0)
CORRECT_COLOR = (60, 60, 60)
WRONG_COLOR = (255, 40, 40)


def colorize(mask: np.ndarray, palette: Sequence[Sequence[int]], ignore_index: int = 255) -> np.ndarray:
    """(H, W) class ids -> (H, W, 3) uint8 RGB; ignore and out-of-range ids are black."""
    lut = np.zeros((256, 3), np.uint8)
    lut[: len(palette)] = np.asarray(palette, np.uint8)
    lut[ignore_index] = IGNORE_COLOR
    return lut[np.clip(mask, 0, 255).astype(np.uint8)]


def error_map(pred: np.ndarray, truth: np.ndarray, ignore_index: int = 255) -> np.ndarray:
    """Grey where right, red where wrong, black where the truth is ignored."""
    out = np.empty((*truth.shape, 3), np.uint8)
    out[:] = CORRECT_COLOR
    out[pred != truth] = WRONG_COLOR
    out[truth == ignore_index] = IGNORE_COLOR
    return out


def overlay(image: np.ndarray, mask_rgb: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    return (image.astype(np.float32) * (1 - alpha) + mask_rgb.astype(np.float32) * alpha).astype(np.uint8)


PANEL_DPI = 80  # ~1400 px wide for 2:1 street scenes: every class boundary visible, a third of dpi 110's pixels


def plot_panels(rows: Sequence[dict], class_names: Sequence[str], palette: Sequence[Sequence[int]],
                path: str | Path, ignore_index: int = 255, title: str | None = None) -> Path:
    """One row per image: image | truth | prediction | error map, with a legend of the classes
    that appear. Each row dict: image (H,W,3 uint8 RGB), truth, pred (H,W ids), label (one line,
    written under the image)."""
    n = len(rows)
    h, w = rows[0]["truth"].shape if n else (1, 1)
    aspect = w / max(h, 1)
    fig_h = 2.6 * max(n, 1) + 1.0
    fig, axes = plt.subplots(max(n, 1), 4, figsize=(4 * 2.4 * aspect, fig_h), squeeze=False)
    present: set[int] = set()
    for r, row in enumerate(rows):
        truth, pred = row["truth"], row["pred"]
        present |= {int(v) for v in np.unique(truth) if v != ignore_index}
        present |= {int(v) for v in np.unique(pred) if v != ignore_index and v < len(class_names)}
        panels = (row["image"], colorize(truth, palette, ignore_index), colorize(pred, palette, ignore_index),
                  error_map(pred, truth, ignore_index))
        for c, (img, name) in enumerate(zip(panels, ("image", "truth", "prediction", "errors (red)"))):
            ax = axes[r, c]
            ax.imshow(img, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(name, fontsize=9)
        axes[r, 0].set_xlabel(row.get("label", ""), fontsize=7, loc="left")
    handles = [Patch(color=np.asarray(palette[i]) / 255, label=class_names[i]) for i in sorted(present)
               if i < len(palette)]
    handles.append(Patch(color=np.asarray(IGNORE_COLOR) / 255, label="ignore (255)"))
    fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 7), fontsize=7, frameon=False)
    if title:
        fig.suptitle(title, fontsize=10)
    legend_rows = -(-len(handles) // 7)
    fig.tight_layout(rect=(0, (0.25 + 0.22 * legend_rows) / fig_h, 1, 1 - 0.35 / fig_h if title else 1))
    fig.savefig(path, dpi=PANEL_DPI)
    plt.close(fig)
    return Path(path)


def plot_per_class_comparison(table: dict[str, Sequence[float]], class_names: Sequence[str], path: str | Path,
                              title: str = "Per-class IoU", ylabel: str = "IoU") -> Path:
    """Grouped bars: one group per class, one bar per series (e.g. per evaluated dataset); NaN = absent."""
    series = list(table)
    n, k = len(class_names), max(len(series), 1)
    x = np.arange(n)
    width = 0.8 / k
    fig, ax = plt.subplots(figsize=(max(8, 0.45 * n * max(1, k / 2) + 2), 4))
    for j, name in enumerate(series):
        vals = np.asarray(table[name], dtype=float)
        ax.bar(x + (j - (k - 1) / 2) * width, np.nan_to_num(vals, nan=0.0), width, label=name)
        for i in np.flatnonzero(np.isnan(vals)):
            ax.text(x[i] + (j - (k - 1) / 2) * width, 0.01, "-", ha="center", fontsize=7)
    ax.set_xticks(x, class_names, rotation=60, ha="right", fontsize=8)
    ax.set_ylim(0, 1)
    ax.set_ylabel(ylabel)
    ax.set_title(title + "  ('-': class absent)")
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)
