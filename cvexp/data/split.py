"""Stratified, seeded train/val/test splits that can be written down and read back, and stratified
k-fold cross-validation over train+val with the test split held fixed."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import numpy as np

SPLITS = ("train", "val", "test")


def stratified_split(labels: Sequence[int], fractions: Sequence[float] = (0.7, 0.1, 0.2),
                     seed: int = 0) -> dict[str, list[int]]:
    """Indices per split; every class is divided in the given fractions (rounded, test gets the rest).

    Deterministic for a given `labels`, `fractions` and `seed`, independent of global RNG state;
    each split's indices come in a seeded random order.
    """
    if len(fractions) != 3 or any(f < 0 for f in fractions) or abs(sum(fractions) - 1) > 1e-6:
        raise ValueError(f"split fractions must be three non-negative numbers summing to 1, got {list(fractions)}")
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    out: dict[str, list[int]] = {s: [] for s in SPLITS}
    for cls in np.unique(labels):
        idx = np.flatnonzero(labels == cls)
        idx = idx[rng.permutation(len(idx))]
        n_train = int(round(fractions[0] * len(idx)))
        n_val = int(round(fractions[1] * len(idx)))
        out["train"] += idx[:n_train].tolist()
        out["val"] += idx[n_train:n_train + n_val].tolist()
        out["test"] += idx[n_train + n_val:].tolist()
    # a seeded shuffle rather than class order, so that a partial pass (limit_test_batches) is
    # still a mix of classes
    return {s: [v[i] for i in rng.permutation(len(v))] for s, v in out.items()}


def stratified_kfold_split(labels: Sequence[int], fold: int, num_folds: int,
                           fractions: Sequence[float] = (0.7, 0.1, 0.2), seed: int = 0) -> dict[str, list[int]]:
    """Fold `fold` of `num_folds` as train/val/test indices.

    The test split is `stratified_split(labels, fractions, seed)["test"]`, the same for every fold
    (and the same as without folds). Train+val is dealt into `num_folds` stratified folds: within
    each class, in a seeded random order, image j goes to fold (j + offset) % num_folds, the
    offset rotating per class so that fold sizes differ by at most one overall. Fold `fold` is
    val, the others train; every train+val image is val in exactly one fold.
    """
    if num_folds < 2:
        raise ValueError(f"num_folds must be >= 2, got {num_folds}")
    if not 0 <= fold < num_folds:
        raise ValueError(f"fold must be in 0..{num_folds - 1}, got {fold}")
    labels = np.asarray(labels)
    base = stratified_split(labels, fractions, seed)
    pool = np.asarray(sorted(base["train"] + base["val"]), dtype=np.int64)
    rng = np.random.default_rng([seed, num_folds])
    out: dict[str, list[int]] = {"train": [], "val": [], "test": list(base["test"])}
    offset = 0
    for cls in np.unique(labels[pool]) if len(pool) else []:
        idx = pool[labels[pool] == cls]
        idx = idx[rng.permutation(len(idx))]
        which = (np.arange(len(idx)) + offset) % num_folds
        offset = (offset + len(idx)) % num_folds
        out["val"] += idx[which == fold].tolist()
        out["train"] += idx[which != fold].tolist()
    return {"train": [out["train"][i] for i in rng.permutation(len(out["train"]))],
            "val": [out["val"][i] for i in rng.permutation(len(out["val"]))], "test": out["test"]}


def write_split_csv(path: str | Path, files: Sequence[str], labels: Sequence[int],
                    class_names: Sequence[str], split: dict[str, list[int]]) -> None:
    """One row per image: split, path, label id, class name. Sorted for diff-friendliness."""
    rows = [(s, files[i], labels[i], class_names[labels[i]]) for s in SPLITS for i in split[s]]
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["split", "path", "label", "class_name"])
        w.writerows(rows)


def read_split_csv(path: str | Path) -> dict[str, list[tuple[str, int]]]:
    out: dict[str, list[tuple[str, int]]] = {s: [] for s in SPLITS}
    with open(path, newline="") as fh:
        for row in csv.DictReader(fh):
            out[row["split"]].append((row["path"], int(row["label"])))
    return out
