"""Image classification: cross-entropy (optionally class-weighted), Adam by default; one confusion
matrix per stage gives accuracy and macro / weighted F1 (cvexp.metrics.classification); the test
stage adds per-class F1 and recall and the macro recall."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import torch
from torch import nn
from torchmetrics import MaxMetric, MeanMetric

from cvexp.theory import losses
from cvexp.metrics import names as M
from cvexp.errors import ConfigError
from cvexp.metrics.classification import ClassificationConfusion
from cvexp.tasks.base import TaskModule

log = logging.getLogger(__name__)

BALANCED = "balanced"


class ClassificationModule(TaskModule):
    """Wraps any classifier `net` with `forward_features`/`forward_head` (see TaskModule for the
    optimizer, scheduler and L2 arguments).

    `class_weights` weights the cross-entropy per class (losses.cross_entropy): None (plain),
    "balanced" (n_samples / (n_classes * count) from the training split's labels, computed when
    training starts, as scikit-learn's compute_class_weight), or one number per class. The weights
    are a buffer, saved with every checkpoint; val/test losses use them too."""

    task = "classification"
    headline = M.ACC
    per_class_metric = M.F1

    def __init__(self, net: nn.Module, class_names: Sequence[str], optimizer: Callable | None = None,
                 scheduler: Callable | None = None, scheduler_interval: str = "epoch",
                 label_smoothing: float = 0.0, l2_penalty: float = 0.0, monitor: str = M.VAL_F1_MACRO,
                 class_weights: str | Sequence[float] | None = None):
        super().__init__(net, class_names, optimizer, scheduler, scheduler_interval, l2_penalty, monitor)
        self.save_hyperparameters(ignore=["net", "optimizer", "scheduler"])
        self.label_smoothing = label_smoothing
        self.class_weights_mode = _class_weights_mode(class_weights, self.class_names)
        if self.class_weights_mode is not None:
            w = torch.ones(self.num_classes) if self.class_weights_mode == BALANCED else \
                torch.tensor([float(v) for v in class_weights])
            self.register_buffer("class_weight", w)
        else:
            self.class_weight = None
        # one confusion matrix per stage: a bincount per step, the scores at the end of the epoch.
        # ModuleDict keys may not shadow nn.Module attributes ("train"), hence the "_m" suffix
        self.confmat = nn.ModuleDict({f"{s}_m": ClassificationConfusion(self.num_classes) for s in M.STAGES})
        self.val_f1_best = MaxMetric()
        # val/test loss as a sum-state metric: exact under DDP with uneven shards (Lightning's own
        # sync_dist mean truncates the integer sample count when averaging it over processes)
        self.eval_loss = nn.ModuleDict({f"{s}_m": MeanMetric() for s in (M.VAL, M.TEST)})

    def best_state(self) -> dict:
        return {"val_f1_best": self.val_f1_best.max_value.detach().cpu()}

    def best_metrics(self) -> dict[str, float]:
        if not self.val_f1_best._update_count:
            return {}
        return {M.VAL_F1_MACRO_BEST: float(self.val_f1_best.compute())}

    def load_best_state(self, state: dict) -> None:
        if "val_f1_best" in state:
            self.val_f1_best.max_value = state["val_f1_best"].to(self.val_f1_best.max_value)
            self.val_f1_best._update_count = 1

    def setup(self, stage: str) -> None:
        if stage == "fit" and self.class_weights_mode == BALANCED:
            dm = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
            if dm is None:
                raise ConfigError("task.class_weights=balanced needs a data module (trainer.fit(module, "
                                  "datamodule=...)) to count the training labels")
            self.set_balanced_weights(dm)

    def set_balanced_weights(self, datamodule) -> torch.Tensor:
        """class_weight = n / (C * count_c) over the training split of `datamodule`."""
        labels = datamodule.split_labels("train") if hasattr(datamodule, "split_labels") else None
        if labels is None:
            raise ConfigError("task.class_weights=balanced needs the training labels, which this data "
                              "module does not list; give task.class_weights=[w1, w2, ...]")
        try:
            w = losses.balanced_class_weights(labels, self.num_classes)
        except ValueError as e:
            raise ConfigError(f"task.class_weights=balanced: {e}") from None
        self.class_weight.copy_(w.to(self.class_weight))
        log.info("class weights (balanced): %s", ", ".join(
            f"{n}={v:.3f}" for n, v in zip(self.class_names, w.tolist())))
        return self.class_weight

    def loss(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.regularized(losses.training_cross_entropy(logits, y, label_smoothing=self.label_smoothing,
                                                     weight=self.class_weight))

    def _step(self, batch, stage: str):
        x, y = batch
        logits = self(x)
        loss = self.loss(logits, y)
        self.confmat[f"{stage}_m"].update(logits.detach().argmax(dim=1), y)
        if stage == M.TRAIN:
            self.log(M.name(stage, M.LOSS), loss.detach(), on_step=True, on_epoch=True, prog_bar=True,
                     batch_size=x.shape[0])
        else:
            mean = self.eval_loss[f"{stage}_m"]
            mean.update(loss.detach(), weight=x.shape[0])
            self.log(M.name(stage, M.LOSS), mean, on_epoch=True, prog_bar=True)
        return loss

    def training_step(self, batch, batch_idx):
        return self._step(batch, M.TRAIN)

    def validation_step(self, batch, batch_idx):
        self._step(batch, M.VAL)

    def test_step(self, batch, batch_idx):
        self._step(batch, M.TEST)

    def _log_epoch(self, stage: str) -> dict[str, torch.Tensor]:
        metric = self.confmat[f"{stage}_m"]
        values = metric.compute()
        metric.reset()
        for k in M.CLASSIFICATION_METRICS:
            if k in values:
                self.log(M.name(stage, k), values[k].float(), prog_bar=k in (M.ACC, M.F1_MACRO))
        return values

    def on_train_epoch_end(self):
        self._log_epoch(M.TRAIN)

    def on_validation_epoch_end(self):
        values = self._log_epoch(M.VAL)
        if not self.trainer.sanity_checking:
            self.val_f1_best.update(values[M.F1_MACRO].float())
            self.log(M.VAL_F1_MACRO_BEST, self.val_f1_best.compute())

    def on_test_epoch_end(self):
        values = self._log_epoch(M.TEST)
        self.log(M.TEST_RECALL_MACRO, values[M.RECALL_MACRO].float())
        for kind in (M.F1, M.RECALL):
            for name, v in zip(self.class_names, values[kind].float()):
                self.log(M.per_class(M.TEST, kind, name), v)
        self.test_confusion = values["confusion"].cpu()

    def write_results(self, out, datamodule) -> dict:
        """per_class.csv and the confusion matrix (CSV, PNG) of the last test pass."""
        from cvexp.analysis import results

        if self.test_confusion is None:
            return {}
        return results.write_classification_results(out, self.test_confusion.numpy(), self.class_names)

    @torch.no_grad()
    def predict_step(self, batch, batch_idx):
        x, y = batch
        feats = self.net.forward_features(x)
        logits = self.net.forward_head(feats)
        return {"features": feats, "probs": logits.softmax(1), "labels": y}


def _class_weights_mode(class_weights, class_names: Sequence[str]) -> str | None:
    """None, "balanced" or "explicit", after checking the value (one-line ConfigError)."""
    if class_weights is None:
        return None
    if isinstance(class_weights, str):
        if class_weights != BALANCED:
            raise ConfigError(f"task.class_weights={class_weights!r} is not allowed: use balanced, null, or "
                              f"one number per class ({len(class_names)})")
        return BALANCED
    values = list(class_weights)
    if len(values) != len(class_names) or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0 for v in values):
        raise ConfigError(f"task.class_weights={values} is not allowed: give {len(class_names)} numbers >= 0, "
                          f"one per class in the order {', '.join(class_names)}; or balanced")
    return "explicit"
