"""What every DataModule here shares: loaders over `dataset(split, augment)` for three splits, the
optional class-balanced training sampler, and evaluation loaders that score every sample exactly once
under multi-process training (DDP).

Why the last: Lightning gives val/test loaders of a DDP run its `DistributedSampler`, which pads the
split to a multiple of the process count by repeating samples (239 test images on 2 processes are
scored as 240). The torchmetrics states (sums) are then added up over the processes with the repeats
in them, and the run's test numbers differ from a single-process evaluation of the same checkpoint.
`val_dataloader`/`test_dataloader` therefore hand Lightning loaders that already carry an
`UnpaddedDistributedSampler` (rank r takes samples r, r+R, r+2R, ...): Lightning leaves a
`DistributedSampler` it finds in place, the shards differ in length by at most one, and the summed
metric states count every sample once. Training keeps Lightning's padded sampler (DDP needs the same
number of steps on every process). The shards are cut whatever `trainer.use_distributed_sampler`
says: that flag hands the *training* loader to the user, but an unsharded evaluation would count
every sample once per process."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler, SequentialSampler

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


class UnpaddedDistributedSampler(DistributedSampler):
    """Every sample exactly once over `num_replicas` processes, in order: process `rank` takes samples
    rank, rank + R, rank + 2R, ... Nothing is repeated or dropped; shards differ in length by at most one,
    so the processes may run one batch more or less (fine for evaluation, where nothing is synchronised
    per step; not for training). A `DistributedSampler`, so Lightning does not replace it."""

    def __init__(self, dataset: Dataset, num_replicas: int, rank: int):
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=False, drop_last=False)
        self.total_size = len(dataset)
        self.num_samples = len(range(rank, self.total_size, num_replicas))

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.rank, self.total_size, self.num_replicas))


def process_shard(trainer) -> tuple[int, int] | None:
    """(number of processes, this one's rank) when `trainer` runs several processes (DDP and other
    parallel strategies), else None."""
    kwargs = getattr(trainer, "distributed_sampler_kwargs", None) if trainer is not None else None
    if not kwargs or int(kwargs.get("num_replicas", 1)) <= 1:
        return None
    return int(kwargs["num_replicas"]), int(kwargs.get("rank", 0))


def sharded_for_eval(loader: DataLoader, num_replicas: int, rank: int, split: str = "eval") -> DataLoader:
    """The same loader (dataset, batch size, workers, collate function) reading only this process's
    unpadded shard. Loaders that do not read in order (a shuffled or custom sampler) are returned as
    they are."""
    if not isinstance(loader.sampler, SequentialSampler) or loader.batch_size is None:
        return loader
    n = len(loader.dataset)
    if 0 < n < num_replicas:
        raise ConfigError(f"the {split} split has {n} sample(s), fewer than the {num_replicas} processes of "
                          f"this run (trainer.devices x trainer.num_nodes); each needs at least one: use "
                          f"fewer trainer.devices or a larger {split} split")
    return DataLoader(loader.dataset, batch_size=loader.batch_size,
                      sampler=UnpaddedDistributedSampler(loader.dataset, num_replicas, rank),
                      num_workers=loader.num_workers, collate_fn=loader.collate_fn, pin_memory=loader.pin_memory,
                      drop_last=loader.drop_last, timeout=loader.timeout, worker_init_fn=loader.worker_init_fn,
                      multiprocessing_context=loader.multiprocessing_context, generator=loader.generator,
                      prefetch_factor=loader.prefetch_factor, persistent_workers=loader.persistent_workers,
                      pin_memory_device=loader.pin_memory_device)


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

    def eval_loader(self, split: str) -> DataLoader:
        """`loader(split)`, cut into this process's unpadded shard when the attached Trainer runs
        several processes (module docstring); as it is otherwise."""
        loader = self.loader(split)
        shard = process_shard(self.trainer)
        return sharded_for_eval(loader, *shard, split=split) if shard else loader

    def val_dataloader(self):
        return self.eval_loader("val")

    def test_dataloader(self):
        return self.eval_loader("test")
