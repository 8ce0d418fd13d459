"""What every DataModule here shares: loaders over `dataset(split, augment)` for three splits, and
the optional class-balanced training sampler."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from cvexp.data.transforms import seed_worker_transforms
from cvexp.errors import ConfigError

SAMPLERS = ("balanced",)  # data.sampler; null = a plain shuffle


class BalancedSampler(Sampler[int]):
    """Draws `num_samples` indices with replacement, each with probability 1 / (C * count of its
    class), so every class is drawn about equally often (torch's WeightedRandomSampler with
    per-sample weights 1 / count). The draw of epoch e is seeded by (seed, e): runs repeat, and a
    resumed run draws what the uninterrupted one would have. Lightning calls `set_epoch` before
    each epoch; a pass without it (a wrapping DistributedSampler) moves on to the next epoch's draw."""

    def __init__(self, labels: Sequence[int], num_samples: int | None = None, seed: int = 0):
        y = torch.as_tensor(list(labels), dtype=torch.long)
        if y.numel() == 0:
            raise ConfigError("data.sampler=balanced: the training split is empty")
        counts = torch.bincount(y).double()
        self.weights = 1.0 / counts[y]
        self.num_samples = int(num_samples or y.numel())
        self.seed = int(seed)
        self.epoch = 0
        self._drawn: int | None = None  # the epoch of the last draw

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.num_samples

    def __iter__(self) -> Iterator[int]:
        if self._drawn is not None and self.epoch <= self._drawn:
            self.epoch = self._drawn + 1
        self._drawn = self.epoch
        g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        yield from torch.multinomial(self.weights, self.num_samples, replacement=True, generator=g).tolist()


class SplitDataModule(pl.LightningDataModule):
    """Subclasses set `batch_size`, `num_workers` and implement `dataset(split, augment)`;
    `sampler="balanced"` (data.sampler) draws training batches class-balanced (BalancedSampler),
    which needs `split_labels`."""

    batch_size: int
    num_workers: int
    sampler: str | None = None
    seed: int = 0
    # a last training batch of one breaks BatchNorm (e.g. DeepLabV3+'s ASPP pooling branch)
    drop_incomplete_train_batch = False

    def dataset(self, split: str, augment: bool | None = None) -> Dataset:
        raise NotImplementedError

    def split_labels(self, split: str) -> list[int] | None:
        """The class id of every sample of `split`, in dataset order; None where samples have no
        single class (segmentation)."""
        labels = getattr(self.dataset(split, augment=False), "labels", None)
        return list(labels) if labels is not None else None

    def train_sampler(self) -> Sampler | None:
        if self.sampler is None:
            return None
        if self.sampler not in SAMPLERS:
            raise ConfigError(f"data.sampler={self.sampler!r} is not allowed: choose one of "
                              f"{', '.join(SAMPLERS)}, or null for a plain shuffle")
        labels = self.split_labels("train")
        if labels is None:
            raise ConfigError("data.sampler=balanced needs one class per sample (classification data); "
                              "leave data.sampler=null here")
        return BalancedSampler(labels, seed=self.seed)

    def loader(self, split: str, augment: bool | None = None, shuffle: bool | None = None) -> DataLoader:
        """Augmented and shuffled (or class-balanced, with data.sampler=balanced) for train, plain
        for val/test, unless told otherwise."""
        ds = self.dataset(split, augment)
        shuffle = split == "train" if shuffle is None else shuffle
        sampler = self.train_sampler() if split == "train" and shuffle else None
        drop_last = (self.drop_incomplete_train_batch and split == "train" and shuffle
                     and len(ds) > self.batch_size)
        return DataLoader(ds, batch_size=self.batch_size, shuffle=shuffle and sampler is None, sampler=sampler,
                          num_workers=self.num_workers,
                          persistent_workers=self.num_workers > 0, pin_memory=torch.cuda.is_available(),
                          drop_last=drop_last,
                          worker_init_fn=seed_worker_transforms if self.num_workers > 0 else None)

    def train_dataloader(self):
        return self.loader("train")

    def val_dataloader(self):
        return self.loader("val")

    def test_dataloader(self):
        return self.loader("test")
