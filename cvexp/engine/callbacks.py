"""Lightning callbacks the entry points rely on.

`RunState` keeps what a faithful resume needs and writes `last.ckpt`:
- the per-epoch history of `train/*` and `val/*` metrics (history.csv, learning curves);
- `last.ckpt` after every epoch (Lightning's `save_last` refreshes it only when the monitored
  metric improves), and on a stop signal (SIGTERM, Ctrl-C) mid-epoch, as a preemption handler does;
- the random states at the end of each epoch (torch, CUDA, numpy, Python, and the albumentations
  pipeline of the training data), restored when a resumed fit loads last.ckpt, so the next epoch
  draws the same shuffles and augmentations it would have drawn without the interruption (with
  `data.num_workers=0`; worker processes reseed from the restored torch state, which is
  deterministic but not the sequence an uninterrupted run with persistent workers draws).

It runs its epoch-end work after the LightningModule's `on_train_epoch_end` (it is a `Checkpoint`,
which Lightning calls last), so the epoch's train metrics are in the row and in the checkpoint.

`OptunaPruning` (conf/hparams_search/*) reports each epoch's validation metric to the Optuna trial a
job of `hydra/sweeper=optuna` runs for, and stops hopeless trials early.
"""

from __future__ import annotations

import logging
import math
import random
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Checkpoint

log = logging.getLogger(__name__)

LAST = "last.ckpt"


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


def _aug_pipeline(trainer: pl.Trainer):
    dm = getattr(trainer, "datamodule", None)
    return getattr(dm, "train_tf", None)


def _seeded(transform) -> list:
    """The pipeline and every transform inside it that keeps its own generators, in order."""
    out = [transform] if hasattr(transform, "random_generator") and hasattr(transform, "py_random") else []
    for t in getattr(transform, "transforms", []) or []:
        out += _seeded(t)
    return out


def random_states(trainer: pl.Trainer | None = None) -> dict:
    name, keys, pos, has_gauss, gauss = np.random.get_state()
    # plain Python values only: checkpoints are read back with weights_only=True
    states = {"torch": torch.get_rng_state(), "numpy": (name, keys.tolist(), pos, has_gauss, gauss),
              "python": random.getstate()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda"] = torch.cuda.get_rng_state_all()
    tf = _aug_pipeline(trainer) if trainer is not None else None
    if tf is not None:
        states["albumentations"] = [(t.random_generator.bit_generator.state, t.py_random.getstate())
                                    for t in _seeded(tf)]
    return states


def set_random_states(states: dict, trainer: pl.Trainer | None = None) -> None:
    torch.set_rng_state(states["torch"])
    name, keys, pos, has_gauss, gauss = states["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, gauss))
    random.setstate(states["python"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])
    tf = _aug_pipeline(trainer) if trainer is not None else None
    aug = states.get("albumentations")
    if aug and tf is not None:
        for t, (np_state, py_state) in zip(_seeded(tf), aug):
            t.random_generator.bit_generator.state = np_state
            t.py_random.setstate(py_state)


class RunState(Checkpoint):
    """History, `last.ckpt` every epoch and on stop signals, random states for resume."""

    def __init__(self, dirpath: str | Path | None = None) -> None:
        self.dirpath = Path(dirpath) if dirpath else None
        self.history: list[dict] = []
        self._epoch_rng: dict | None = None

    @property
    def last_path(self) -> Path | None:
        return self.dirpath / LAST if self.dirpath else None

    # --------------------------------------------------------------------------- epoch end
    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        row: dict = {"epoch": trainer.current_epoch}
        for k, v in trainer.callback_metrics.items():
            if k.startswith(("train/", "val/")) and not k.endswith("_step"):
                s = _scalar(v)
                if s is not None:
                    row[k.removesuffix("_epoch")] = s
        if self.history and self.history[-1]["epoch"] == row["epoch"]:
            self.history[-1] = row
        else:
            self.history.append(row)
        self._epoch_rng = random_states(trainer)
        self.save_last(trainer)
        self._epoch_rng = None

    def save_last(self, trainer: pl.Trainer) -> None:
        if self.last_path is None or trainer.sanity_checking:
            return
        trainer.save_checkpoint(self.last_path)

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        """A stop signal mid-fit: keep the progress in last.ckpt (other errors keep the last
        epoch's last.ckpt as it is: after a divergence the weights are not worth keeping)."""
        from pytorch_lightning.utilities.exceptions import SIGTERMException

        from cvexp.engine.signals import Interrupted

        if not isinstance(exception, (SIGTERMException, Interrupted, KeyboardInterrupt)):
            return
        if trainer.state.fn != "fit" or trainer.sanity_checking or self.last_path is None:
            return
        try:
            self.save_last(trainer)
            log.warning("stopped by a signal: progress saved in %s", self.last_path)
        except Exception as e:  # noqa: BLE001 - the interruption is reported either way
            log.error("could not save %s after the stop signal: %s", self.last_path, e)

    # --------------------------------------------------------------------------- state
    def state_dict(self) -> dict:
        state = {"history": list(self.history)}
        # random states are only meaningful at an epoch end (resume starts the next epoch there)
        if self._epoch_rng is not None:
            state["rng"] = self._epoch_rng
        return state

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self._trainer = trainer  # (setup comes before Lightning restores a checkpoint's states)

    def load_state_dict(self, state_dict: dict) -> None:
        # Testing the best checkpoint after fit must not roll the history back to its epoch.
        if not self.history:
            self.history = list(state_dict.get("history", []))
        # Restored at once: Lightning creates the training iterator (and prefetches its first
        # batch, drawing the shuffle and the augmentations) before any later hook runs; the
        # sanity check in between runs under isolate_rng and uses the eval transforms.
        if state_dict.get("rng") is not None:
            set_random_states(state_dict["rng"], getattr(self, "_trainer", None))


class OptunaPruning(pl.Callback):
    """In a job of an Optuna search with a pruner (`hydra/sweeper/pruner=median`, conf/hparams_search/):
    after every validation, report `monitor` of that epoch to the job's trial
    (hydra_plugins.cvexp_optuna_sweeper.pruning) and, when the study's pruner calls the trial hopeless,
    stop training at the end of the epoch; the job then tests its best checkpoint and ends as usual,
    and the sweeper records the trial as pruned. In any other run (no sweep, no pruner) it does
    nothing. Rank 0 decides; other DDP processes follow."""

    def __init__(self, monitor: str) -> None:
        self.monitor = monitor
        self.pruned_at: int | None = None
        self._link = None

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.is_global_zero:
            from hydra_plugins.cvexp_optuna_sweeper.pruning import TrialLink

            self._link = TrialLink.from_env()

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        prune = False
        if self._link is not None:
            value = _scalar(trainer.callback_metrics.get(self.monitor))
            if value is not None and math.isfinite(value):
                prune = self._link.report(value, trainer.current_epoch)
        prune = bool(trainer.strategy.broadcast(prune, src=0))
        if prune and not trainer.should_stop:
            trainer.should_stop = True
            self.pruned_at = trainer.current_epoch
            if self._link is not None:
                self._link.mark_pruned(trainer.current_epoch)
                log.info("Optuna trial %d pruned after epoch %d (%s = %.4f): stopping", self._link.number,
                         trainer.current_epoch, self.monitor, _scalar(trainer.callback_metrics.get(self.monitor)))
