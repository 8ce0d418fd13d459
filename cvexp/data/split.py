"""Stratified, seeded train/val/test splits that can be written down and read back."""

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
