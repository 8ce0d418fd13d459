"""What the task modules share: the network, class names, optimizer/scheduler partials, the
explicit L2 penalty, and what a checkpoint records about the run."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pytorch_lightning as pl
import torch
from torch import nn

from cvexp import losses
from cvexp.tasks import optim


class TaskModule(pl.LightningModule):
    """`optimizer` and `scheduler` are partials (Hydra `_partial_: true`) called with the trainable
    parameters and the optimizer (cvexp.tasks.optim). `l2_penalty` adds lambda/2 * ||w||^2 to the
    loss (explicit L2, docs/theory.md); optimizer weight decay is the coupled/decoupled alternative.
    Entry points put their resolved config into `extra_checkpoint`; it is saved under
    `checkpoint["cvexp"]` with `checkpoint_info()`."""

    task = "task"

    def __init__(self, net: nn.Module, class_names: Sequence[str], optimizer: Callable | None,
                 scheduler: Callable | None, scheduler_interval: str, l2_penalty: float, monitor: str):
        super().__init__()
        self.net = net
        self.class_names = list(class_names)
        self.num_classes = len(self.class_names)
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.scheduler_interval = scheduler_interval
        self.l2_penalty = l2_penalty
        self.monitor = monitor
        self.test_confusion: torch.Tensor | None = None
        self.extra_checkpoint: dict[str, Any] = {}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def regularized(self, loss: torch.Tensor) -> torch.Tensor:
        if self.l2_penalty:
            loss = loss + losses.l2_penalty((p for p in self.parameters() if p.requires_grad), self.l2_penalty)
        return loss

    def configure_optimizers(self):
        return optim.configure(self, self.optimizer_factory, self.scheduler_factory, self.scheduler_interval,
                               self.monitor)

    def checkpoint_info(self) -> dict[str, Any]:
        return {"task": self.task, "class_names": self.class_names}

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["cvexp"] = {**self.checkpoint_info(), **self.extra_checkpoint}
