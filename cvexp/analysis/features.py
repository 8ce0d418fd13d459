"""Penultimate-layer features, class probabilities, labels and image paths of a data split.

Every cvexp classifier has `forward_features(x) -> (B, D)` (the input of the classification head)
and `forward_head(features) -> logits`. `extract_split` runs a split through the model with the
eval transforms (no augmentation, fixed order) and keeps all four per image:

    fs = extract_split(module.net, datamodule, "val")
    fs.features.shape   # (N, D)  e.g. D=512 for resnet18
    fs.probs.shape      # (N, C)
    fs.preds, fs.confidence, fs.paths[i]

Large splits can be capped with `max_images`: a seeded, class-stratified subset is used. A progress
bar counts the batches of a long extraction (`cvexp.io.progress`).
Plain PyTorch, no Lightning trainer and no Hydra.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Subset

from cvexp.errors import ConfigError
from cvexp.io.progress import progress


@dataclass
class FeatureSet:
    features: np.ndarray            # (N, D) float32, penultimate layer
    probs: np.ndarray               # (N, C) float32, softmax of the head's logits
    labels: np.ndarray              # (N,) int64, true class ids
    paths: list[str] = field(default_factory=list)
    split: str = ""

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def preds(self) -> np.ndarray:
        return self.probs.argmax(1)

    @property
    def confidence(self) -> np.ndarray:
        """Probability of the predicted class."""
        return self.probs.max(1)

    def subset(self, idx: Sequence[int] | np.ndarray) -> FeatureSet:
        idx = np.asarray(idx, dtype=np.int64)
        return FeatureSet(self.features[idx], self.probs[idx], self.labels[idx],
                          [self.paths[i] for i in idx] if self.paths else [], self.split)


def stratified_subsample(labels: Sequence[int] | np.ndarray, max_n: int | None, seed: int = 0) -> np.ndarray:
    """Sorted indices of at most `max_n` items, every class keeping its share (at least one item
    per class when `max_n` allows). All indices when `max_n` is None or not smaller than the data."""
    labels = np.asarray(labels)
    n = len(labels)
    if max_n is None or max_n >= n:
        return np.arange(n)
    if max_n <= 0:
        return np.arange(0)
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(labels, return_counts=True)
    quota = np.floor(counts * max_n / n).astype(int)
    quota = np.maximum(quota, 1 if max_n >= len(classes) else 0)
    quota = np.minimum(quota, counts)
    # hand out what rounding left over (or take back the excess) by largest remainder
    remainder = counts * max_n / n - quota
    order = np.argsort(-remainder, kind="stable")
    i = 0
    while quota.sum() < max_n and i < 10 * len(classes):
        c = order[i % len(classes)]
        if quota[c] < counts[c]:
            quota[c] += 1
        i += 1
    while quota.sum() > max_n:
        c = int(np.argmax(quota))
        quota[c] -= 1
    picked = []
    for cls, q in zip(classes, quota):
        idx = np.flatnonzero(labels == cls)
        picked.append(rng.choice(idx, size=int(q), replace=False))
    return np.sort(np.concatenate(picked)) if picked else np.arange(0)


def pick_device(device: str | torch.device | None = "auto") -> torch.device:
    """`device=auto|cpu|cuda[:N]` as a torch device; a one-line ConfigError for anything else."""
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if isinstance(device, torch.device):
        return device
    if str(device).split(":")[0] not in ("cpu", "cuda"):
        raise ConfigError(f"device={device} is not a device cvexp runs on; use device=auto, cpu or cuda")
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device={device} but no CUDA GPU is available; use device=cpu")
    try:
        return torch.device(str(device))
    except RuntimeError:
        raise ConfigError(f"device={device} is not a device cvexp runs on; use device=auto, cpu or cuda") from None


@torch.no_grad()
def extract_features(net: nn.Module, loader: DataLoader, device: str | torch.device | None = "auto",
                     paths: Sequence[str] | None = None, split: str = "") -> FeatureSet:
    """Run `loader` (batches of (images, labels)) through `net`; `net` must have
    `forward_features` and `forward_head` (a LightningModule with `.net` is unwrapped). A progress
    bar counts the batches when there are many (`cvexp.io.progress`)."""
    if not hasattr(net, "forward_features") and hasattr(net, "net"):
        net = net.net
    if not (hasattr(net, "forward_features") and hasattr(net, "forward_head")):
        raise TypeError(f"{type(net).__name__} has no forward_features/forward_head; "
                        "use a cvexp classifier (ConvNet, TimmClassifier)")
    dev = pick_device(device)
    was_training = net.training
    net.eval().to(dev)
    feats, probs, labels = [], [], []
    try:
        n_batches = len(loader)
    except TypeError:  # an iterable dataset: length unknown, no bar
        n_batches = None
    try:
        for x, y in progress(loader, n_batches, f"features ({split or 'images'})"):
            f = net.forward_features(x.to(dev, non_blocking=True))
            logits = net.forward_head(f)
            feats.append(f.float().cpu())
            probs.append(logits.float().softmax(1).cpu())
            labels.append(torch.as_tensor(y).cpu())
    finally:
        net.train(was_training)
    if not feats:
        raise ValueError(f"the {split or 'given'} split holds no images")
    return FeatureSet(torch.cat(feats).numpy().astype(np.float32), torch.cat(probs).numpy().astype(np.float32),
                      torch.cat(labels).numpy().astype(np.int64), list(paths or []), split)


def extract_split(net: nn.Module, datamodule, split: str, max_images: int | None = None, seed: int = 0,
                  device: str | torch.device | None = "auto", batch_size: int | None = None) -> FeatureSet:
    """Features of one split of a cvexp classification DataModule, eval transforms, in file order;
    with `max_images`, of a seeded stratified subset of it."""
    ds = datamodule.dataset(split, augment=False)
    idx = stratified_subsample(ds.labels, max_images, seed)
    subset = Subset(ds, idx.tolist()) if len(idx) < len(ds) else ds
    loader = DataLoader(subset, batch_size=batch_size or datamodule.batch_size, shuffle=False,
                        num_workers=datamodule.num_workers, pin_memory=torch.cuda.is_available())
    paths = [str(ds.path(int(i))) for i in idx]
    return extract_features(net, loader, device=device, paths=paths, split=split)
