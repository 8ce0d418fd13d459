"""What every DataModule here shares: loaders over `dataset(split, augment)` for three splits."""

from __future__ import annotations

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset

from cvexp.data.transforms import seed_worker_transforms


class SplitDataModule(pl.LightningDataModule):
    """Subclasses set `batch_size`, `num_workers` and implement `dataset(split, augment)`."""

    batch_size: int
    num_workers: int
    # a last training batch of one breaks BatchNorm (e.g. DeepLabV3+'s ASPP pooling branch)
    drop_incomplete_train_batch = False

    def dataset(self, split: str, augment: bool | None = None) -> Dataset:
        raise NotImplementedError

    def loader(self, split: str, augment: bool | None = None, shuffle: bool | None = None) -> DataLoader:
        """Augmented and shuffled for train, plain for val/test, unless told otherwise."""
        ds = self.dataset(split, augment)
        shuffle = split == "train" if shuffle is None else shuffle
        drop_last = (self.drop_incomplete_train_batch and split == "train" and shuffle
                     and len(ds) > self.batch_size)
        return DataLoader(ds, batch_size=self.batch_size, shuffle=shuffle, num_workers=self.num_workers,
                          persistent_workers=self.num_workers > 0, pin_memory=torch.cuda.is_available(),
                          drop_last=drop_last,
                          worker_init_fn=seed_worker_transforms if self.num_workers > 0 else None)

    def train_dataloader(self):
        return self.loader("train")

    def val_dataloader(self):
        return self.loader("val")

    def test_dataloader(self):
        return self.loader("test")
