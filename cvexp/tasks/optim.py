"""Optimizer and LR-schedule wiring shared by the task modules."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable

import pytorch_lightning as pl
import torch

from cvexp.errors import ConfigError


def configure(module: pl.LightningModule, optimizer: Callable | None, scheduler: Callable | None,
              interval: str = "epoch", monitor: str | None = None):
    """Call the `_partial_` optimizer with the trainable parameters, and the scheduler with it.

    A scheduler that needs the run's length and was not given it (`PolynomialLR.total_iters`,
    `OneCycleLR.total_steps`, `CosineAnnealingLR.T_max`) gets it from the trainer, in steps when
    `interval == "step"`, else in epochs.
    """
    params = [p for p in module.parameters() if p.requires_grad]
    try:
        opt = optimizer(params=params) if optimizer else torch.optim.Adam(params, lr=1e-3)
    except TypeError as e:  # e.g. regularization=decoupled_weight_decay (AdamW) on top of optimizer=sgd
        name = getattr(getattr(optimizer, "func", optimizer), "__name__", "optimizer")
        raise ConfigError(f"{name} cannot take the optimizer.* settings ({e}); check the optimizer=... and "
                          "regularization=... choices together (decoupled weight decay needs optimizer=adam|adamw)"
                          ) from None
    if not scheduler:
        return opt
    extra = {}
    func = scheduler.func if isinstance(scheduler, functools.partial) else scheduler
    given = scheduler.keywords if isinstance(scheduler, functools.partial) else {}
    try:
        accepted = inspect.signature(func).parameters
    except (TypeError, ValueError):
        accepted = {}
    length = (module.trainer.estimated_stepping_batches if interval == "step" else module.trainer.max_epochs)
    for key in ("total_iters", "total_steps", "T_max"):
        if key in accepted and given.get(key) is None:
            extra[key] = int(length)
    sched = scheduler(optimizer=opt, **extra)
    return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": interval, "monitor": monitor}}
