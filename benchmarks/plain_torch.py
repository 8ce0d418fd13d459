"""The hand-written PyTorch side of the benchmarks: the course's reference CNN, the wildlife files,
a stratified split, the albumentations pipelines of conf/aug/basic.yaml and the metrics, written
out in plain torch/numpy/OpenCV/albumentations. Shares nothing with cvexp but the data files.

Written as a user would write them in a notebook or a single script: no framework, no config.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

# the course's class order (not alphabetical)
CLASSES = ["amur_leopard", "amur_tiger", "birds", "black_bear", "brown_bear", "dog", "roe_deer",
           "sika_deer", "wild_boar", "people"]
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
EXTENSIONS = (".jpg", ".jpeg", ".png")


# ------------------------------------------------------------------------------ model
def _block(cin: int, cout: int, pool: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, 1, 1), nn.ReLU(), nn.MaxPool2d(pool, pool))


class ReferenceCNN(nn.Module):
    """3x3 convs 32/64/128 (stride 1, padding 1), ReLU, max-pool 4 then 2 then 2, flatten, linear."""

    def __init__(self, num_classes: int = 10, input_size: int = 64):
        super().__init__()
        self.features = nn.Sequential(_block(3, 32, 4), _block(32, 64, 2), _block(64, 128, 2))
        side = input_size // 16
        self.head = nn.Sequential(nn.Identity(), nn.Linear(128 * side * side, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.flatten(self.features(x), 1))


def load_weights_in_order(model: nn.Module, state: dict, prefix: str = "net.") -> None:
    """Copy the tensors under `prefix` of a Lightning checkpoint's state dict into `model`, matched
    by order and shape (the names of another code base need not match ours)."""
    theirs = [v for k, v in state.items() if k.startswith(prefix) and torch.is_tensor(v) and v.dtype.is_floating_point]
    ours = list(model.state_dict().items())
    if len(theirs) != len(ours) or any(t.shape != o.shape for t, (_, o) in zip(theirs, ours)):
        raise ValueError(f"checkpoint tensors {[tuple(t.shape) for t in theirs]} do not fit the model "
                         f"{[tuple(o.shape) for _, o in ours]}")
    model.load_state_dict({k: t for (k, _), t in zip(ours, theirs)})


# ------------------------------------------------------------------------------ data
def scan(root: str | os.PathLike) -> tuple[list[str], list[int]]:
    """`<root>/<class>/*.jpg` in the course's class order; paths relative to root, sorted."""
    root = Path(root)
    files, labels = [], []
    for label, cls in enumerate(CLASSES):
        names = sorted(p.name for p in (root / cls).iterdir() if p.suffix.lower() in EXTENSIONS)
        files += [f"{cls}/{n}" for n in names]
        labels += [label] * len(names)
    return files, labels


def stratified_split(labels, fractions=(0.7, 0.1, 0.2), seed: int = 42) -> dict[str, list[int]]:
    rng = np.random.default_rng(seed)
    labels = np.asarray(labels)
    out = {"train": [], "val": [], "test": []}
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        n_val = round(fractions[1] * len(idx))
        n_test = round(fractions[2] * len(idx))
        out["val"] += idx[:n_val].tolist()
        out["test"] += idx[n_val:n_val + n_test].tolist()
        out["train"] += idx[n_val + n_test:].tolist()
    return out


def read_split_csv(path: str | os.PathLike, split: str = "test") -> tuple[list[str], list[int]]:
    """Rows (`split,path,label,...`) of a run's split.csv: the exact files a run tested on."""
    import csv

    files, labels = [], []
    with open(path, newline="") as fh:
        for row in csv.DictReader(fh):
            if row["split"] == split:
                files.append(row["path"])
                labels.append(int(row["label"]))
    return files, labels


class Files(Dataset):
    def __init__(self, root, files, labels, transform):
        self.root, self.files, self.labels, self.transform = str(root), list(files), list(labels), transform

    def __len__(self):
        return len(self.files)

    def __getitem__(self, i):
        import cv2

        img = cv2.cvtColor(cv2.imread(os.path.join(self.root, self.files[i]), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        return self.transform(image=img)["image"], self.labels[i]


def train_transform(size: int, seed: int = 42):
    """conf/aug/basic.yaml's train list + normalisation, as albumentations code."""
    import albumentations as A
    from albumentations.pytorch import ToTensorV2

    return A.Compose([A.RandomResizedCrop(size=(size, size), scale=(0.6, 1.0)), A.HorizontalFlip(p=0.5),
                      A.Normalize(IMAGENET_MEAN, IMAGENET_STD), ToTensorV2()], seed=seed)


def eval_transform(size: int):
    import albumentations as A
    from albumentations.pytorch import ToTensorV2

    return A.Compose([A.Resize(size, size), A.Normalize(IMAGENET_MEAN, IMAGENET_STD), ToTensorV2()])


# ------------------------------------------------------------------------------ metrics
def confusion(preds: torch.Tensor, labels: torch.Tensor, n: int) -> np.ndarray:
    return torch.bincount(labels * n + preds, minlength=n * n).reshape(n, n).numpy()


def scores(cm: np.ndarray) -> dict[str, float]:
    tp = np.diag(cm).astype(float)
    support = cm.sum(1)
    predicted = cm.sum(0)
    denom = support + predicted
    f1 = np.divide(2 * tp, denom, out=np.zeros_like(tp), where=denom > 0)
    return {"acc": float(tp.sum() / max(cm.sum(), 1)), "f1_macro": float(f1.mean()),
            "f1_weighted": float((f1 * support).sum() / max(support.sum(), 1))}


@torch.no_grad()
def evaluate(model: nn.Module, loader, n_classes: int, limit: int | None = None) -> dict[str, float]:
    model.eval()
    cm = np.zeros((n_classes, n_classes), np.int64)
    loss_sum, count = 0.0, 0
    for b, (x, y) in enumerate(loader):
        if limit is not None and b >= limit:
            break
        logits = model(x)
        loss_sum += float(nn.functional.cross_entropy(logits, y, reduction="sum"))
        count += len(y)
        cm += confusion(logits.argmax(1), y, n_classes)
    return {"loss": loss_sum / max(count, 1), **scores(cm)}
