"""What the task modules share: the network, class names, optimizer/scheduler partials, the
explicit L2 penalty, the divergence check, and what a checkpoint records about the run."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pytorch_lightning as pl
import torch
from torch import nn

from pytorch_lightning.utilities import rank_zero_warn

from cvexp.theory import losses
from cvexp.errors import DivergenceError
from cvexp.io.checkpoint import confine_callback_paths
from cvexp.tasks import optim


class TaskModule(pl.LightningModule):
    """`optimizer` and `scheduler` are partials (Hydra `_partial_: true`) called with the trainable
    parameters and the optimizer (cvexp.tasks.optim). `l2_penalty` adds lambda/2 * ||w||^2 to the
    loss (explicit L2, docs/theory.md); optimizer weight decay is the coupled/decoupled alternative.
    Entry points put their resolved config into `extra_checkpoint`; it is saved under
    `checkpoint["cvexp"]` with `checkpoint_info()`."""

    task = "task"
    headline = "loss"  # the one number a cross-dataset table shows (test/<headline>)
    per_class_metric = ""  # the per_class.csv column a per-class comparison plots

    @classmethod
    def data_objects(cls, datamodule) -> dict[str, Any]:
        """What the module takes from its data module when it is built: the class names (the
        network's class count is their number), plus what a task adds."""
        return {"class_names": list(datamodule.class_names)}

    def configure_evaluation(self, eval_mode: Any = None, split: str = "test") -> None:
        """Before a test pass of `cvexp.eval`: how to score (`eval_mode=...`, tasks that have
        such modes) and which split the test stage reads."""
        if eval_mode is not None:
            from cvexp.errors import ConfigError

            raise ConfigError(f"eval_mode / task.eval set how segmentation is scored; this is a {self.task} "
                              "checkpoint: drop eval_mode=...")

    @classmethod
    def evaluation_data(cls, space: str | None) -> dict[str, Any]:
        """Data config keys an evaluation in label space `space` (cvexp.eval space=...) sets."""
        if space:
            from cvexp.errors import ConfigError

            raise ConfigError(f"space={space} maps segmentation labels into a shared space; a {cls.task} "
                              "checkpoint is scored in its own classes: drop space=...")
        return {}

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
        self._nonfinite: torch.Tensor | None = None  # any non-finite training loss since the last check

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

    def adapt_to(self, datamodule) -> None:
        """Before evaluating on `datamodule`: adjust to its label space where the task can."""

    def check_compatible(self, datamodule, path: str) -> None:
        """Raise a CheckpointError when this model cannot be scored on `datamodule`."""
        if list(self.class_names) != list(datamodule.class_names):
            from cvexp.errors import CheckpointError

            raise CheckpointError(f"checkpoint {path} predicts classes {self.class_names} but the data has "
                                  f"{list(datamodule.class_names)}; evaluate on data with the same classes in "
                                  "the same order")

    def write_results(self, out, datamodule) -> dict:
        """The task's tables and pictures of the last test pass into the run directory `out`;
        returns {name: path}."""
        return {}

    # ------------------------------------------------------------------ best-so-far trackers
    def best_state(self) -> dict[str, Any]:
        """The best-metric trackers (e.g. val/f1_macro_best), saved with every checkpoint so that a
        resumed run goes on from them; subclasses add theirs."""
        return {}

    def load_best_state(self, state: dict[str, Any]) -> None:
        pass

    def best_metrics(self) -> dict[str, float]:
        """The best-so-far trackers as metric names -> values (e.g. a resumed run that had no epoch
        left to train still reports `val/f1_macro_best` from its checkpoint)."""
        return {}

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        self.check_finite("before saving a checkpoint")  # a diverged model is never saved
        checkpoint["cvexp"] = {**self.checkpoint_info(), **self.extra_checkpoint}
        checkpoint["cvexp_best"] = self.best_state()

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        if checkpoint.get("cvexp_best"):
            self.load_best_state(checkpoint["cvexp_best"])
        # runs before Lightning restores the callbacks: no file path from the checkpoint outside the
        # checkpoint callbacks' own folders survives (Lightning would load or delete it)
        trainer = self._trainer
        if trainer is not None:
            dropped = confine_callback_paths(
                checkpoint, {cb.state_key: getattr(cb, "dirpath", None) for cb in trainer.callbacks})
            if dropped:
                rank_zero_warn(f"the checkpoint names {len(dropped)} file(s) outside this run's checkpoint "
                               f"folder (e.g. {dropped[0][:120]}); they are ignored")

    # ------------------------------------------------------------------ divergence
    def on_before_backward(self, loss: torch.Tensor) -> None:
        # flagged on the device: no host sync per step; read at the checks below
        bad = ~torch.isfinite(loss.detach())
        self._nonfinite = bad if self._nonfinite is None else self._nonfinite | bad

    def on_train_batch_end(self, outputs, batch, batch_idx) -> None:
        every = max(1, int(getattr(self.trainer, "log_every_n_steps", 50) or 50))
        if (self.global_step + 1) % every == 0:
            self.check_finite("during training")

    def on_validation_start(self) -> None:
        if not self.trainer.sanity_checking and self.trainer.state.fn == "fit":
            self.check_finite("before validation")

    def check_finite(self, where: str) -> None:
        """Stop the run with a one-line DivergenceError once a training loss was nan or inf."""
        if self._nonfinite is None or not bool(self._nonfinite):
            return
        lr = None
        try:
            lr = self.trainer.optimizers[0].param_groups[0]["lr"]
        except (AttributeError, IndexError, KeyError, RuntimeError):
            pass
        now = f" (now {lr:g})" if isinstance(lr, float) else ""
        raise DivergenceError(
            f"training diverged: the loss became nan/inf by epoch {self.current_epoch}, step {self.global_step} "
            f"(noticed {where}); the checkpoints saved before it are kept. Lower optimizer.lr{now}, or "
            "clip gradients with trainer.gradient_clip_val=1.0")
