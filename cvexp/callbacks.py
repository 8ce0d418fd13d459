"""Lightning callbacks the entry points rely on."""

from __future__ import annotations

import math

import pytorch_lightning as pl
import torch


def _scalar(v) -> float | None:
    if isinstance(v, torch.Tensor):
        if v.numel() != 1:
            return None
        v = v.item()
    try:
        v = float(v)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(v) else v


class MetricHistory(pl.Callback):
    """Per-epoch snapshot of the epoch-level metrics (`train/*`, `val/*`) for learning curves.

    Lightning calls a callback's `on_train_epoch_end` before the module logs its epoch metrics,
    so each epoch is recorded when the next one starts, and the last one at the end of fit.
    """

    def __init__(self) -> None:
        self.history: list[dict] = []
        self._pending: int | None = None

    def _snapshot(self, trainer: pl.Trainer) -> None:
        if self._pending is None:
            return
        row: dict = {"epoch": self._pending}
        for k, v in trainer.callback_metrics.items():
            if k.startswith(("train/", "val/")) and not k.endswith("_step"):
                s = _scalar(v)
                if s is not None:
                    row[k.removesuffix("_epoch")] = s
        self.history.append(row)
        self._pending = None

    def on_train_epoch_start(self, trainer, pl_module):
        self._snapshot(trainer)

    def on_train_epoch_end(self, trainer, pl_module):
        self._pending = trainer.current_epoch

    def on_fit_end(self, trainer, pl_module):
        self._snapshot(trainer)

    def state_dict(self):
        return {"history": self.history}

    def load_state_dict(self, state_dict):
        # Resuming a fit restores the earlier epochs; testing the best checkpoint after fit must
        # not roll the history back to that checkpoint's epoch.
        if not self.history:
            self.history = list(state_dict.get("history", []))
