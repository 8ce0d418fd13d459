"""t-SNE of penultimate-layer features: 2-D for train and val, 3-D for val, coloured by class.

Features are first reduced with PCA to at most `pca_dim` (default 50) dimensions, the usual
practice (van der Maaten & Hinton): it removes noise and makes t-SNE fast on thousands of images.
Splits larger than `max_points` are replaced by a seeded, class-stratified subsample. Both the
PCA and the t-SNE are seeded, so a rerun gives the same picture.

    emb = embed(fs.features, dim=2)                    # (N, 2)
    files = write_tsne_plots({"train": train_fs, "val": val_fs}, class_names, out_dir)
"""

from __future__ import annotations

import csv
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from cvexp.analysis.features import FeatureSet, stratified_subsample


def reduce_pca(features: np.ndarray, pca_dim: int | None = 50, seed: int = 0) -> np.ndarray:
    """Centred PCA to min(pca_dim, N, D) dimensions; unchanged when already that small."""
    from sklearn.decomposition import PCA

    x = np.asarray(features, dtype=np.float32)
    n, d = x.shape
    k = min(pca_dim or d, n, d)
    if k >= d:
        return x - x.mean(0, keepdims=True)
    return PCA(n_components=k, random_state=seed).fit_transform(x).astype(np.float32)


def embed(features: np.ndarray, dim: int = 2, pca_dim: int | None = 50, perplexity: float = 30.0,
          seed: int = 0, max_iter: int = 1000) -> np.ndarray:
    """(N, D) features -> (N, dim) t-SNE coordinates (PCA first). Perplexity is lowered for small N
    (it must stay below N)."""
    from sklearn.manifold import TSNE

    x = np.asarray(features, dtype=np.float32)
    n = len(x)
    if n == 0:
        return np.zeros((0, dim), dtype=np.float32)
    if n < 4:  # t-SNE needs a few points; place them on PCA axes instead
        out = np.zeros((n, dim), dtype=np.float32)
        red = reduce_pca(x, dim, seed)
        out[:, : red.shape[1]] = red
        return out
    from threadpoolctl import threadpool_limits

    x = reduce_pca(x, pca_dim, seed)
    perp = float(min(perplexity, max(2.0, (n - 1) / 3.0)))
    tsne = TSNE(n_components=dim, perplexity=perp, init="pca", learning_rate="auto", random_state=seed,
                max_iter=max(250, int(max_iter)))
    # Barnes-Hut t-SNE's OpenMP threads slow it down many times over when they outnumber idle
    # cores (measured: 300 points 20 s with 2 threads on a busy 2-core machine, 3 s with 1)
    with threadpool_limits(limits=tsne_threads(), user_api="openmp"):
        return tsne.fit_transform(x).astype(np.float32)


def tsne_threads() -> int:
    """OpenMP threads for t-SNE: half the usable cores (1 on a 2-core machine), at most 8."""
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        n = os.cpu_count() or 1
    return max(1, min(8, n // 2))


def class_colors(n: int) -> list:
    import matplotlib.pyplot as plt

    cmap = plt.get_cmap("tab10" if n <= 10 else "tab20")
    return [cmap(i % cmap.N) for i in range(n)]


def plot_embedding(emb: np.ndarray, labels: np.ndarray, class_names: Sequence[str], path: str | Path,
                   title: str = "", point_size: float | None = None) -> Path:
    """Scatter of 2-D or 3-D coordinates, one colour per class, legend with class names."""
    import matplotlib.pyplot as plt

    emb = np.asarray(emb)
    labels = np.asarray(labels)
    dim = emb.shape[1]
    colors = class_colors(len(class_names))
    size = point_size or float(np.clip(3000 / max(len(emb), 1), 4, 30))
    fig = plt.figure(figsize=(8.2, 6.0))
    ax = fig.add_subplot(111, projection="3d" if dim == 3 else None)
    for c, name in enumerate(class_names):
        m = labels == c
        if not m.any():
            continue
        pts = [emb[m, j] for j in range(dim)]
        extra = {"depthshade": False} if dim == 3 else {}  # depth shading washes the class colours out
        ax.scatter(*pts, s=size, color=colors[c], label=f"{name} ({int(m.sum())})",
                   alpha=0.9 if dim == 3 else 0.75, edgecolors="none", **extra)
    if dim == 3:
        ax.view_init(elev=20, azim=35)
        ax.set_xlabel("t-SNE 1")
        ax.set_ylabel("t-SNE 2")
        ax.set_zlabel("t-SNE 3")
    else:
        ax.set_xlabel("t-SNE 1")
        ax.set_ylabel("t-SNE 2")
        ax.set_xticks([])
        ax.set_yticks([])
    ax.set_title(title, fontsize=10)
    ax.legend(loc="upper left", bbox_to_anchor=(1.02 if dim == 2 else 1.08, 1.0), fontsize=8,
              markerscale=2.0 if size < 10 else 1.0, frameon=False, title="class")
    fig.tight_layout()
    fig.savefig(path, dpi=80, bbox_inches="tight")
    plt.close(fig)
    return Path(path)


def write_embedding_csv(emb: np.ndarray, fs: FeatureSet, class_names: Sequence[str], path: str | Path) -> Path:
    dims = ["x", "y", "z"][: emb.shape[1]]
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["path", "label", "class_name", "pred", *dims])
        preds = fs.preds
        for i in range(len(emb)):
            w.writerow([fs.paths[i] if fs.paths else "", int(fs.labels[i]), class_names[int(fs.labels[i])],
                        int(preds[i]), *(f"{v:.4f}" for v in emb[i])])
    return Path(path)


# which plots: (split, dim)
DEFAULT_PLOTS = (("train", 2), ("val", 2), ("val", 3))


def write_tsne_plots(splits: Mapping[str, FeatureSet], class_names: Sequence[str], out_dir: str | Path,
                     plots: Sequence[Sequence] = DEFAULT_PLOTS, max_points: int | None = 2000,
                     pca_dim: int | None = 50, perplexity: float = 30.0, seed: int = 0,
                     title: str = "", prefix: str = "tsne", max_iter: int = 1000) -> dict[str, Path]:
    """`tsne_<split>_<dim>d.png` (and `.csv` with the coordinates) for each requested plot whose
    split is given. Returns {"tsne_val_2d": path, ...}; the CSV paths under "<key>_csv"."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    files: dict[str, Path] = {}
    for split, dim in plots:
        fs = splits.get(split)
        if fs is None or len(fs) == 0:
            continue
        idx = stratified_subsample(fs.labels, max_points, seed)
        sub = fs.subset(idx)
        emb = embed(sub.features, dim=int(dim), pca_dim=pca_dim, perplexity=perplexity, seed=seed,
                    max_iter=max_iter)
        key = f"{prefix}_{split}_{int(dim)}d"
        shown = f"{len(sub)} of {len(fs)}" if len(sub) < len(fs) else f"{len(sub)}"
        t = f"{title + ': ' if title else ''}{split} features, {int(dim)}-D t-SNE ({shown} images)"
        files[key] = plot_embedding(emb, sub.labels, class_names, out_dir / f"{key}.png", title=t)
        files[f"{key}_csv"] = write_embedding_csv(emb, sub, class_names, out_dir / f"{key}.csv")
    return files


def feature_space_stats(train: FeatureSet | None, val: FeatureSet, k: int = 5,
                        max_points: int | None = 5000, seed: int = 0) -> dict[str, float]:
    """Numbers that go with the pictures: how well classes separate in the feature space itself,
    independent of the classification head (so pretrained and fine-tuned features compare fairly).

    - `val_knn_acc`: accuracy of a k-nearest-neighbour vote (cosine) of val images among train images;
    - `val_silhouette`: silhouette score of the val features by true class (cosine, -1..1).
    """
    from sklearn.metrics import silhouette_score
    from sklearn.neighbors import KNeighborsClassifier

    out: dict[str, float] = {}
    v = val.subset(stratified_subsample(val.labels, max_points, seed))
    if train is not None and len(train) >= k:
        knn = KNeighborsClassifier(n_neighbors=k, metric="cosine").fit(train.features, train.labels)
        out[f"val_knn{k}_acc"] = float((knn.predict(v.features) == v.labels).mean())
    if 1 < len(np.unique(v.labels)) < len(v):
        out["val_silhouette"] = float(silhouette_score(v.features, v.labels, metric="cosine"))
    return out
