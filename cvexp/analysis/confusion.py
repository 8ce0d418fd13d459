"""Confusion matrices: per-class numbers and a readable plot."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np


def per_class_from_confusion(cm: np.ndarray, class_names: Sequence[str]) -> list[dict]:
    """Rows of precision, recall, F1 and support; rows of `cm` are truth, columns prediction.
    A ratio with a zero denominator is 0 (scikit-learn's zero_division=0)."""
    cm = np.asarray(cm, dtype=np.float64)
    tp = np.diag(cm)
    support = cm.sum(1)
    predicted = cm.sum(0)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(predicted > 0, tp / predicted, 0.0)
        recall = np.where(support > 0, tp / support, 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    return [{"class_id": i, "class_name": n, "precision": float(precision[i]), "recall": float(recall[i]),
             "f1": float(f1[i]), "support": int(support[i]), "predicted": int(predicted[i])}
            for i, n in enumerate(class_names)]


def write_rows_csv(rows: Sequence[dict], path: str | Path) -> None:
    if not rows:
        Path(path).write_text("")
        return
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0].keys()))
        w.writeheader()
        w.writerows(rows)


def plot_confusion_matrix(cm: np.ndarray, class_names: Sequence[str], path: str | Path,
                          normalize: bool = True, title: str = "Confusion matrix") -> Path:
    """Heat map with class names on both axes; cells show row-normalised rates (and counts)."""
    cm = np.asarray(cm, dtype=np.float64)
    rows = cm.sum(1, keepdims=True)
    shown = np.divide(cm, rows, out=np.zeros_like(cm), where=rows > 0) if normalize else cm
    n = len(class_names)
    size = max(5.0, 0.55 * n + 2.5)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    im = ax.imshow(shown, cmap="Blues", vmin=0, vmax=1 if normalize else None)
    ax.set_xticks(range(n), class_names, rotation=45, ha="right")
    ax.set_yticks(range(n), class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title + (" (rows normalised)" if normalize else ""))
    if n <= 30:
        thresh = 0.5 * (shown.max() if shown.size else 1)
        for i in range(n):
            for j in range(n):
                if cm[i, j]:
                    label = f"{shown[i, j]:.2f}\n{int(cm[i, j])}" if normalize and n <= 12 else (
                        f"{shown[i, j]:.2f}" if normalize else f"{int(cm[i, j])}")
                    ax.text(j, i, label, ha="center", va="center", fontsize=7 if n <= 12 else 5,
                            color="white" if shown[i, j] > thresh else "black")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    fig.tight_layout()
    fig.savefig(path, dpi=100)  # 10 classes: ~900 px, every cell's two lines legible
    plt.close(fig)
    return Path(path)
