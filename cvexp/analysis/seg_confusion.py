"""Where a segmentation model's pixels go: the most confused class pairs and the row-normalised
confusion heat map, from a (C, C) or (C, C+1) pixel confusion matrix (cvexp.metrics.segmentation)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from cvexp.metrics.segmentation import _as_f64

UNASSIGNED = "(no class)"
CONFUSION_DPI = 100  # 26 classes: ~1500 px, the two-digit cells stay legible


def _labels(cm: np.ndarray, class_names: Sequence[str]) -> tuple[list[str], list[str]]:
    rows = list(class_names)
    if len(rows) != cm.shape[0]:
        raise ValueError(f"{len(rows)} class names for a confusion matrix with {cm.shape[0]} rows")
    cols = rows + ([UNASSIGNED] if cm.shape[1] == cm.shape[0] + 1 else [])
    return rows, cols


def most_confused_pairs(cm, class_names: Sequence[str], k: int = 10) -> list[dict]:
    """The k largest off-diagonal cells: `{"true", "predicted", "pixels", "share_of_true"}` where
    share_of_true = pixels / truth pixels of that class (what fraction of the class goes there)."""
    cm = _as_f64(cm).numpy()
    rows, cols = _labels(cm, class_names)
    off = cm.copy()
    n = cm.shape[0]
    off[np.arange(n), np.arange(n)] = 0
    truth = cm.sum(1)
    order = np.argsort(off, axis=None, kind="stable")[::-1]
    out = []
    for flat in order[:max(int(k), 0)]:
        i, j = np.unravel_index(flat, off.shape)
        if off[i, j] <= 0:
            break
        out.append({"true": rows[i], "predicted": cols[j], "pixels": int(off[i, j]),
                    "share_of_true": float(off[i, j] / truth[i]) if truth[i] else math.nan})
    return out


def plot_normalized_confusion(cm, class_names: Sequence[str], path: str | Path,
                              title: str = "Pixel confusion matrix") -> Path:
    """Row-normalised heat map sized for 19-26 classes: a row is where that class's pixels went.

    Cells show rates >= 0.01 as two digits ('.37'), the diagonal is outlined, row labels carry the
    class's share of valid pixels, rows without truth are hatched grey.
    """
    cm = _as_f64(cm).numpy()
    rows, cols = _labels(cm, class_names)
    truth = cm.sum(1, keepdims=True)
    rates = np.divide(cm, truth, out=np.zeros_like(cm), where=truth > 0)
    share = truth[:, 0] / truth.sum() if truth.sum() else np.zeros(len(rows))
    n_r, n_c = rates.shape
    size = max(6.0, 0.42 * n_c + 3.0)
    fig, ax = plt.subplots(figsize=(size + 1.2, max(5.0, 0.42 * n_r + 3.0)))
    shown = np.ma.masked_where(np.repeat(truth == 0, n_c, axis=1), rates)
    cmap = plt.get_cmap("Blues").with_extremes(bad="#dddddd")
    im = ax.imshow(shown, cmap=cmap, vmin=0, vmax=1, interpolation="nearest")
    ax.set_xticks(range(n_c), cols, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(n_r), [f"{r} ({s:.1%})" for r, s in zip(rows, share)], fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true (share of valid pixels)")
    ax.set_title(f"{title} (rows normalised)")
    font = 6 if n_c > 20 else 7
    for i in range(n_r):
        if truth[i, 0] == 0:
            ax.add_patch(plt.Rectangle((-0.5, i - 0.5), n_c, 1, fill=False, hatch="///", lw=0, color="#999999"))
            continue
        for j in range(n_c):
            v = rates[i, j]
            if v >= 0.01:
                text = "1.0" if v >= 0.995 else f"{v:.2f}"[1:]
                ax.text(j, i, text, ha="center", va="center", fontsize=font,
                        color="white" if v > 0.5 else "black")
    for i in range(min(n_r, n_c)):
        ax.add_patch(plt.Rectangle((i - 0.5, i - 0.5), 1, 1, fill=False, lw=0.8, ec="#444444"))
    fig.colorbar(im, ax=ax, fraction=0.035, pad=0.02)
    fig.tight_layout()
    fig.savefig(path, dpi=CONFUSION_DPI)
    plt.close(fig)
    return Path(path)
