"""Misclassified validation images: a CSV of all of them and a grid of the worst per class.

For each misclassified image the CSV holds its path, true and predicted class, the confidence
(softmax probability of the predicted class), the probability given to the true class, and its
Euclidean distance in the penultimate feature space to the centroid of its true class and to the
centroid of the predicted class.

Centroids are the mean feature vector of each class computed from the TRAIN split (eval
transforms, no augmentation), i.e. from what the model learned from, never from the images being
judged. An image that lies closer to the predicted class's centroid than to its own looks like the
other class to the model (the features are the problem: ambiguous image, label noise); one that
lies closer to its own centroid but is still misclassified sits where the head's decision boundary
cuts badly. When no train features are given, val centroids are used (say so in the output).

    cents = class_centroids(train.features, train.labels, num_classes)
    rows = misclassified_rows(val, cents, class_names)
    write_misclassified_csv(rows, out / "misclassified.csv")
    plot_misclassified_grid(rows, class_names, out / "misclassified_grid.png", k=3)
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from cvexp.analysis.features import FeatureSet

CSV_FIELDS = ("path", "true_id", "true", "pred_id", "pred", "confidence", "prob_true",
              "dist_true_centroid", "dist_pred_centroid", "closer_to_pred")


def class_centroids(features: np.ndarray, labels: np.ndarray, num_classes: int) -> np.ndarray:
    """(C, D) mean feature per class; NaN rows for classes without images."""
    features = np.asarray(features, dtype=np.float64)
    labels = np.asarray(labels)
    out = np.full((num_classes, features.shape[1]), np.nan)
    for c in range(num_classes):
        m = labels == c
        if m.any():
            out[c] = features[m].mean(0)
    return out


def centroid_distances(features: np.ndarray, true: np.ndarray, pred: np.ndarray,
                       centroids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Euclidean distance of each feature vector to its true-class and to its predicted-class
    centroid (NaN where that class has no centroid)."""
    f = np.asarray(features, dtype=np.float64)
    d_true = np.linalg.norm(f - centroids[np.asarray(true)], axis=1)
    d_pred = np.linalg.norm(f - centroids[np.asarray(pred)], axis=1)
    return d_true, d_pred


def misclassified_rows(fs: FeatureSet, centroids: np.ndarray, class_names: Sequence[str]) -> list[dict]:
    """One dict per misclassified image of `fs`, most confident mistakes first."""
    preds = fs.preds
    wrong = np.flatnonzero(preds != fs.labels)
    if len(wrong) == 0:
        return []
    d_true, d_pred = centroid_distances(fs.features[wrong], fs.labels[wrong], preds[wrong], centroids)
    rows = []
    for j, i in enumerate(wrong):
        t, p = int(fs.labels[i]), int(preds[i])
        rows.append({
            "path": fs.paths[i] if fs.paths else "",
            "true_id": t, "true": class_names[t], "pred_id": p, "pred": class_names[p],
            "confidence": float(fs.probs[i, p]), "prob_true": float(fs.probs[i, t]),
            "dist_true_centroid": float(d_true[j]), "dist_pred_centroid": float(d_pred[j]),
            "closer_to_pred": bool(d_pred[j] < d_true[j]),
        })
    rows.sort(key=lambda r: -r["confidence"])
    return rows


def write_misclassified_csv(rows: Sequence[dict], path: str | Path) -> Path:
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(CSV_FIELDS))
        w.writeheader()
        for r in rows:
            w.writerow({k: (f"{v:.6f}" if isinstance(v, float) else v) for k, v in r.items() if k in CSV_FIELDS})
    return Path(path)


def per_class_summary(fs: FeatureSet, rows: Sequence[dict], class_names: Sequence[str]) -> list[dict]:
    """Per true class: images, misclassified, error rate, most frequent wrong prediction."""
    out = []
    for c, name in enumerate(class_names):
        n = int((fs.labels == c).sum())
        mine = [r for r in rows if r["true_id"] == c]
        preds = [r["pred"] for r in mine]
        top = max(set(preds), key=preds.count) if preds else ""
        out.append({"class": name, "images": n, "misclassified": len(mine),
                    "error_rate": round(len(mine) / n, 4) if n else 0.0, "most_often_predicted_as": top})
    return out


def select_per_class(rows: Sequence[dict], k: int = 3) -> dict[int, list[dict]]:
    """Up to k mistakes per true class, most confident first (rows are already sorted)."""
    picked: dict[int, list[dict]] = {}
    for r in rows:
        lst = picked.setdefault(r["true_id"], [])
        if len(lst) < k:
            lst.append(r)
    return dict(sorted(picked.items()))


def _thumbnail(path: str, size: int) -> np.ndarray:
    import cv2

    img = cv2.imread(str(path), cv2.IMREAD_COLOR) if path else None
    if img is None:
        return np.full((size, size, 3), 200, np.uint8)
    img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    h, w = img.shape[:2]
    s = size / max(h, w)
    img = cv2.resize(img, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
    canvas = np.full((size, size, 3), 255, np.uint8)
    y, x = (size - img.shape[0]) // 2, (size - img.shape[1]) // 2
    canvas[y:y + img.shape[0], x:x + img.shape[1]] = img
    return canvas


def plot_misclassified_grid(rows: Sequence[dict], class_names: Sequence[str], path: str | Path, k: int = 3,
                            thumb: int = 128, title: str = "") -> Path:
    """One row per true class that has mistakes, up to k images each, titled with true label,
    predicted label and confidence (most confident mistakes first)."""
    import matplotlib.pyplot as plt

    picked = select_per_class(rows, k)
    if not picked:
        fig, ax = plt.subplots(figsize=(5, 1.5))
        ax.text(0.5, 0.5, "no misclassified images", ha="center", va="center")
        ax.set_axis_off()
        fig.savefig(path, dpi=80)
        plt.close(fig)
        return Path(path)
    n_rows, n_cols = len(picked), max(len(v) for v in picked.values())
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(2.1 * n_cols + 1.2, 2.35 * n_rows), squeeze=False)
    for r, (c, items) in enumerate(picked.items()):
        for j in range(n_cols):
            ax = axes[r, j]
            ax.set_xticks([])
            ax.set_yticks([])
            for s in ax.spines.values():
                s.set_visible(False)
            if j >= len(items):
                continue
            it = items[j]
            ax.imshow(_thumbnail(it["path"], thumb))
            ax.set_title(f"true: {it['true']}\npred: {it['pred']} ({it['confidence']:.2f})", fontsize=8,
                         color="firebrick")
        axes[r, 0].set_ylabel(class_names[c], fontsize=9, rotation=0, ha="right", va="center")
    fig.suptitle(title or f"misclassified validation images, up to {k} per true class "
                          "(most confident mistakes first)", fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.35 / fig.get_figheight()))
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return Path(path)


def write_misclassified(val: FeatureSet, class_names: Sequence[str], out_dir: str | Path,
                        train: FeatureSet | None = None, k: int = 3, thumb: int = 128) -> tuple[dict[str, Path], dict]:
    """misclassified.csv, misclassified_per_class.csv and misclassified_grid.png; returns
    (files, summary numbers). Centroids from `train` (else from `val`, recorded in the summary)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    source = train if train is not None and len(train) else val
    cents = class_centroids(source.features, source.labels, len(class_names))
    rows = misclassified_rows(val, cents, class_names)
    files = {"misclassified_csv": write_misclassified_csv(rows, out_dir / "misclassified.csv")}
    summary_rows = per_class_summary(val, rows, class_names)
    with open(out_dir / "misclassified_per_class.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(summary_rows[0].keys()))
        w.writeheader()
        w.writerows(summary_rows)
    files["misclassified_per_class"] = out_dir / "misclassified_per_class.csv"
    files["misclassified_grid"] = plot_misclassified_grid(rows, class_names, out_dir / "misclassified_grid.png",
                                                          k=k, thumb=thumb)
    n = len(val)
    summary = {
        "val_images": n, "misclassified": len(rows),
        "val_error_rate": len(rows) / n if n else 0.0,
        "centroids_from": "train" if source is train else "val",
        "misclassified_closer_to_pred_centroid": sum(r["closer_to_pred"] for r in rows),
    }
    return files, summary
