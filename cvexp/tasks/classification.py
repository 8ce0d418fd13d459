"""Image classification: cross-entropy, Adam by default, torchmetrics per stage."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn
from torchmetrics import MaxMetric, MetricCollection
from torchmetrics.classification import MulticlassAccuracy, MulticlassConfusionMatrix, MulticlassF1Score

from cvexp import losses
from cvexp import metric_names as M
from cvexp.tasks.base import TaskModule


def classification_metrics(num_classes: int) -> MetricCollection:
    return MetricCollection({
        M.ACC: MulticlassAccuracy(num_classes, average="micro"),
        M.F1_MACRO: MulticlassF1Score(num_classes, average="macro"),
        M.F1_WEIGHTED: MulticlassF1Score(num_classes, average="weighted"),
    })


class ClassificationModule(TaskModule):
    """Wraps any classifier `net` with `forward_features`/`forward_head` (see TaskModule for the
    optimizer, scheduler and L2 arguments)."""

    task = "classification"

    def __init__(self, net: nn.Module, class_names: Sequence[str], optimizer: Callable | None = None,
                 scheduler: Callable | None = None, scheduler_interval: str = "epoch",
                 label_smoothing: float = 0.0, l2_penalty: float = 0.0, monitor: str = M.VAL_F1_MACRO):
        super().__init__(net, class_names, optimizer, scheduler, scheduler_interval, l2_penalty, monitor)
        self.save_hyperparameters(ignore=["net", "optimizer", "scheduler"])
        self.label_smoothing = label_smoothing
        # ModuleDict keys may not shadow nn.Module attributes ("train"), hence the "_m" suffix
        self.metrics = nn.ModuleDict({f"{s}_m": classification_metrics(self.num_classes) for s in M.STAGES})
        self.f1_per_class = MulticlassF1Score(self.num_classes, average=None)
        self.confmat = nn.ModuleDict({f"{s}_m": MulticlassConfusionMatrix(self.num_classes) for s in (M.VAL, M.TEST)})
        self.val_f1_best = MaxMetric()

    def best_state(self) -> dict:
        return {"val_f1_best": self.val_f1_best.max_value.detach().cpu()}

    def load_best_state(self, state: dict) -> None:
        if "val_f1_best" in state:
            self.val_f1_best.max_value = state["val_f1_best"].to(self.val_f1_best.max_value)
            self.val_f1_best._update_count = 1

    def loss(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.regularized(losses.cross_entropy(logits, y, label_smoothing=self.label_smoothing))

    def _step(self, batch, stage: str):
        x, y = batch
        logits = self(x)
        loss = self.loss(logits, y)
        preds = logits.argmax(dim=1)
        self.metrics[f"{stage}_m"].update(preds, y)
        if f"{stage}_m" in self.confmat:
            self.confmat[f"{stage}_m"].update(preds, y)
        if stage == M.TEST:
            self.f1_per_class.update(preds, y)
        on_step = stage == M.TRAIN
        self.log(M.name(stage, M.LOSS), loss, on_step=on_step, on_epoch=True, prog_bar=True,
                 batch_size=x.shape[0], sync_dist=stage != M.TRAIN)
        return loss

    def training_step(self, batch, batch_idx):
        return self._step(batch, M.TRAIN)

    def validation_step(self, batch, batch_idx):
        self._step(batch, M.VAL)

    def test_step(self, batch, batch_idx):
        self._step(batch, M.TEST)

    def _log_epoch(self, stage: str) -> dict[str, torch.Tensor]:
        values = self.metrics[f"{stage}_m"].compute()
        self.metrics[f"{stage}_m"].reset()
        for k, v in values.items():
            self.log(M.name(stage, k), v, prog_bar=k in (M.ACC, M.F1_MACRO))
        return values

    def on_train_epoch_end(self):
        self._log_epoch(M.TRAIN)

    def on_validation_epoch_end(self):
        values = self._log_epoch(M.VAL)
        self.confmat[f"{M.VAL}_m"].reset()
        if not self.trainer.sanity_checking:
            self.val_f1_best.update(values[M.F1_MACRO])
            self.log(M.VAL_F1_MACRO_BEST, self.val_f1_best.compute())

    def on_test_epoch_end(self):
        self._log_epoch(M.TEST)
        per_class = self.f1_per_class.compute()
        self.f1_per_class.reset()
        for name, v in zip(self.class_names, per_class):
            self.log(M.per_class(M.TEST, "f1", name), v)
        self.test_confusion = self.confmat[f"{M.TEST}_m"].compute().cpu()
        self.confmat[f"{M.TEST}_m"].reset()

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
