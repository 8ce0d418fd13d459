"""Semantic segmentation: cross-entropy with ignore 255 (+ optional Dice), poly LR, dataset-level
IoU from one confusion matrix, per-image IoU for failure analysis, and the run's pictures.

Batches are dicts `{"image", "mask", "id", "index"}` (cvexp.data.segmentation). Networks return
logits at input resolution, (B, C, H, W).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from cvexp import losses
from cvexp import metric_names as M
from cvexp.analysis import seg_metrics
from cvexp.errors import CheckpointError
from cvexp.tasks.base import TaskModule

IGNORE_INDEX = 255


class SegmentationModule(TaskModule):
    """`label_space` names the space the network's classes live in (e.g. `idd_level3`,
    `cityscapes`). For evaluation in another space, `set_prediction_mapping(lut, class_names)`
    maps predicted ids through a (256,) table first (unmapped -> 255, counted as a miss)."""

    task = "segmentation"

    def __init__(self, net: nn.Module, class_names: Sequence[str], palette: Sequence[Sequence[int]] | None = None,
                 label_space: str | None = None, optimizer: Callable | None = None,
                 scheduler: Callable | None = None, scheduler_interval: str = "step",
                 ignore_index: int = IGNORE_INDEX, dice_weight: float = 0.0, l2_penalty: float = 0.0,
                 monitor: str = M.VAL_MIOU, n_visualize: int = 6, k_failures: int = 6,
                 failure_iou: float = 0.5):
        super().__init__(net, class_names, optimizer, scheduler, scheduler_interval, l2_penalty, monitor)
        self.save_hyperparameters(ignore=["net", "optimizer", "scheduler"])
        self.palette = [tuple(int(v) for v in c) for c in palette] if palette else _default_palette(self.num_classes)
        self.label_space = label_space
        self.ignore_index = ignore_index
        self.dice_weight = dice_weight
        self.n_visualize = n_visualize
        self.k_failures = k_failures
        self.failure_iou = failure_iou
        self.confusion = nn.ModuleDict({f"{s}_m": seg_metrics.SegmentationConfusion(self.num_classes, ignore_index)
                                        for s in M.STAGES})
        self.best_miou = -math.inf
        self.register_buffer("prediction_lut", torch.empty(0, dtype=torch.long), persistent=False)
        self.eval_class_names = self.class_names
        self.test_images: list[dict] = []

    # ------------------------------------------------------------------ label spaces
    def set_prediction_mapping(self, lut: np.ndarray | torch.Tensor | None, class_names: Sequence[str]) -> None:
        """Evaluate in another label space: predictions go through `lut` (256,) and metrics are
        counted over `class_names` (the data's classes)."""
        self.prediction_lut = torch.as_tensor(lut, dtype=torch.long) if lut is not None else torch.empty(0, dtype=torch.long)
        self.eval_class_names = list(class_names)
        n = len(self.eval_class_names)
        for s in (M.VAL, M.TEST):
            self.confusion[f"{s}_m"] = seg_metrics.SegmentationConfusion(n, self.ignore_index)

    def adapt_to(self, dm) -> None:
        """Map predictions into the data's label space when the two differ (e.g. an IDD level3
        model evaluated on Cityscapes train ids)."""
        from cvexp.data.labels import get_mapping

        data_space = dm.target_space.name
        if self.label_space and self.label_space != data_space:
            self.set_prediction_mapping(get_mapping(self.label_space, data_space), dm.class_names)

    def predict_ids(self, logits: torch.Tensor) -> torch.Tensor:
        pred = logits.argmax(1)
        if self.prediction_lut.numel():
            pred = self.prediction_lut.to(pred.device)[pred]
        return pred

    def check_compatible(self, dm, path: str) -> None:
        n = len(self.eval_class_names)
        if n != dm.num_classes:
            raise CheckpointError(
                f"checkpoint {path} predicts {self.num_classes} classes ({self.label_space or 'unknown space'}) "
                f"but the data has {dm.num_classes} ({dm.target_space.name}); set space=<shared label space> "
                "(e.g. space=cityscapes) or data.target_space to map both into one")

    # ------------------------------------------------------------------ steps
    def loss(self, logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        loss = losses.cross_entropy(logits, mask, ignore_index=self.ignore_index)
        if self.dice_weight:
            loss = loss + self.dice_weight * losses.dice_loss(logits, mask, ignore_index=self.ignore_index)
        return self.regularized(loss)

    def _step(self, batch: dict, stage: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x, y = batch["image"], batch["mask"]
        logits = self(x)
        mapped = stage != M.TRAIN and self.prediction_lut.numel()
        loss = self.loss(logits, y) if not mapped else torch.full((), math.nan, device=logits.device)
        pred = self.predict_ids(logits) if stage != M.TRAIN else logits.argmax(1)
        self.confusion[f"{stage}_m"].update(pred, y)
        if not mapped:
            self.log(M.name(stage, M.LOSS), loss, on_step=stage == M.TRAIN, on_epoch=True, prog_bar=True,
                     batch_size=x.shape[0], sync_dist=stage != M.TRAIN)
        return loss, pred, y

    def training_step(self, batch, batch_idx):
        return self._step(batch, M.TRAIN)[0]

    def validation_step(self, batch, batch_idx):
        self._step(batch, M.VAL)

    def test_step(self, batch, batch_idx):
        _, pred, y = self._step(batch, M.TEST)
        n = len(self.eval_class_names)
        per_image = seg_metrics.per_image_iou(pred, y, n, self.ignore_index)
        for j in range(pred.shape[0]):
            truth = y[j][y[j] != self.ignore_index]
            self.test_images.append({"id": batch["id"][j], "index": int(batch["index"][j]),
                                     "miou": float(per_image.miou[j]), "pixel_acc": float(per_image.pixel_acc[j]),
                                     "iou": per_image.iou[j].numpy(),
                                     "truth_pixels": torch.bincount(truth, minlength=n)[:n].cpu().numpy()})

    def on_test_epoch_start(self):
        self.test_images = []

    def _log_epoch(self, stage: str) -> dict:
        values = self.confusion[f"{stage}_m"].compute()
        self.confusion[f"{stage}_m"].reset()
        for k in (M.MIOU, M.PIXEL_ACC, M.MEAN_PRECISION, M.MEAN_RECALL, M.MEAN_F1):
            self.log(M.name(stage, k), values[k].float(), prog_bar=k == M.MIOU)
        return values

    def on_train_epoch_end(self):
        self._log_epoch(M.TRAIN)

    def on_validation_epoch_end(self):
        values = self._log_epoch(M.VAL)
        if not self.trainer.sanity_checking:
            miou = float(values[M.MIOU])
            if not math.isnan(miou):
                self.best_miou = max(self.best_miou, miou)
            self.log(M.VAL_MIOU_BEST, self.best_miou if self.best_miou > -math.inf else math.nan)

    def on_test_epoch_end(self):
        values = self._log_epoch(M.TEST)
        for name, v in zip(self.eval_class_names, values["iou"]):
            self.log(M.per_class(M.TEST, "iou", name), float(v))
        self.test_confusion = values["confusion"]

    def best_state(self) -> dict:
        return {"best_miou": self.best_miou}

    def load_best_state(self, state: dict) -> None:
        self.best_miou = float(state.get("best_miou", self.best_miou))

    def checkpoint_info(self) -> dict[str, Any]:
        return {**super().checkpoint_info(), "label_space": self.label_space,
                "palette": [list(c) for c in self.palette]}

    # ------------------------------------------------------------------ outputs
    def write_results(self, out: Path, dm) -> dict[str, Path]:
        """Tables and pictures of the last test run (see cvexp.analysis.seg_report)."""
        from cvexp.analysis import seg_report

        if self.test_confusion is None:
            return {}
        return seg_report.write_segmentation_results(out, self, dm)


def _default_palette(n: int) -> list[tuple[int, int, int]]:
    rng = np.random.default_rng(0)
    return [tuple(int(v) for v in rng.integers(30, 256, 3)) for _ in range(n)]
