"""Semantic segmentation: cross-entropy with ignore 255 (+ optional Dice), poly LR, dataset-level
IoU from one confusion matrix, per-image IoU for failure analysis, and the run's pictures.

Batches are dicts `{"image", "mask", "id", "index"}` (cvexp.data.segmentation), plus `"size"`
when a batch of images of different sizes was padded. Networks return logits at input resolution,
(B, C, H, W).

Val and test images are scored as `eval` says (`task.eval`, `cvexp.tasks.seg_inference.EvalMode`):
`resized` (as loaded, the default), `full` or `sliding` (at the masks' own resolution, image by
image, the confusion matrix accumulated per image), with optional multi-scale + flip. The module
tells the data module which resolution to serve (`configure_data`, called from `setup` and
`adapt_to`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torchmetrics import MeanMetric

from cvexp.theory import losses
from cvexp.metrics import names as M
from cvexp.metrics import segmentation as seg_metrics
from cvexp.errors import CheckpointError
from cvexp.tasks.base import TaskModule
from cvexp.tasks.seg_inference import EvalMode, crops_of, predict_logits

IGNORE_INDEX = 255
# 1 when the test/* numbers were measured on val images (datasets without public test labels)
TEST_IS_VAL = M.name(M.TEST, "is_val")


class SegmentationModule(TaskModule):
    """`label_space` names the space the network's classes live in (e.g. `idd_level3`,
    `cityscapes`). For evaluation in another space, `set_prediction_mapping(lut, class_names)`
    maps predicted ids through a (256,) table first (unmapped -> 255, counted as a miss)."""

    task = "segmentation"
    headline = M.MIOU
    per_class_metric = "iou"

    @classmethod
    def data_objects(cls, datamodule) -> dict[str, Any]:
        """Class names, the palette, and the label space the network's classes live in."""
        return {**super().data_objects(datamodule), "palette": datamodule.palette,
                "label_space": datamodule.target_space.name}

    def configure_evaluation(self, eval_mode: Any = None, split: str = "test") -> None:
        self.set_eval_mode(eval_mode)
        self.scored_split = split

    @classmethod
    def evaluation_data(cls, space: str | None) -> dict[str, Any]:
        return {"target_space": space} if space else {}  # the data's masks into the shared space

    def __init__(self, net: nn.Module, class_names: Sequence[str], palette: Sequence[Sequence[int]] | None = None,
                 label_space: str | None = None, optimizer: Callable | None = None,
                 scheduler: Callable | None = None, scheduler_interval: str = "step",
                 ignore_index: int = IGNORE_INDEX, dice_weight: float = 0.0, l2_penalty: float = 0.0,
                 monitor: str = M.VAL_MIOU, n_visualize: int = 6, k_failures: int = 6,
                 failure_iou: float = 0.5, eval: Mapping | EvalMode | None = None):  # noqa: A002 - task.eval
        super().__init__(net, class_names, optimizer, scheduler, scheduler_interval, l2_penalty, monitor)
        self.save_hyperparameters(ignore=["net", "optimizer", "scheduler", "eval"])
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
        self.eval_loss = nn.ModuleDict({f"{s}_m": MeanMetric() for s in (M.VAL, M.TEST)})
        self.register_buffer("prediction_lut", torch.empty(0, dtype=torch.long), persistent=False)
        self.eval_class_names = self.class_names
        self.test_images: list[dict] = []
        self.eval_mode = EvalMode.from_config(eval)
        self.hparams["eval"] = asdict(self.eval_mode)  # plain values (a config node would not load weights-only)
        self.data_test_is_val: bool | None = None  # from the data module (configure_data)
        self.scored_split = "test"  # the split the test stage reads (cvexp.eval split=val: val)

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
        self.configure_data(dm)

    def predict_ids(self, logits: torch.Tensor) -> torch.Tensor:
        pred = logits.max(1).indices  # = argmax(1) (first maximum), ~5x faster on large CPU tensors
        if self.prediction_lut.numel():
            pred = self.prediction_lut.to(pred.device)[pred]
        return pred

    # ------------------------------------------------------------------ evaluation mode
    def set_eval_mode(self, mode: Mapping | EvalMode | None) -> None:
        """How val/test images are scored from now on (see cvexp.tasks.seg_inference)."""
        self.eval_mode = EvalMode.from_config(mode)

    def configure_data(self, dm) -> None:
        """Ask `dm` for val/test masks at the resolution the eval mode scores at, and remember
        whether its test split is its val split."""
        set_resolution = getattr(dm, "set_eval_resolution", None)
        if set_resolution is not None:
            set_resolution("original" if self.eval_mode.original_resolution else "base")
        elif self.eval_mode.original_resolution:
            import logging

            logging.getLogger(__name__).warning(
                "task.eval.mode=%s but %s cannot serve masks at their original size; scoring at the size it "
                "loads them", self.eval_mode.mode, type(dm).__name__)
        self.data_test_is_val = getattr(dm, "test_is_val", None)

    def setup(self, stage: str) -> None:
        dm = getattr(self._trainer, "datamodule", None) if self._trainer is not None else None
        if dm is not None:
            self.configure_data(dm)

    @property
    def test_is_val(self) -> bool | None:
        """Whether the test stage's numbers come from val images (None: unknown)."""
        if self.scored_split == "val":
            return True
        return self.data_test_is_val if self.scored_split == "test" else False

    def infer(self, images: torch.Tensor) -> torch.Tensor:
        """Logits at the size of `images` (B, 3, H, W) as the eval mode runs the network (scales,
        flip, windows)."""
        return predict_logits(self, images, self.eval_mode)

    def evaluation_record(self) -> dict[str, Any]:
        """How the test numbers were measured (evaluation.json)."""
        return {**self.eval_mode.describe(), "scored_split": self.scored_split, "test_is_val": self.test_is_val}

    def check_compatible(self, dm, path: str) -> None:
        n = len(self.eval_class_names)
        if n != dm.num_classes:
            raise CheckpointError(
                f"checkpoint {path} predicts {self.num_classes} classes ({self.label_space or 'unknown space'}) "
                f"but the data has {dm.num_classes} ({dm.target_space.name}); set space=<shared label space> "
                "(e.g. space=cityscapes) or data.target_space to map both into one")

    # ------------------------------------------------------------------ steps
    def loss(self, logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        loss = losses.training_cross_entropy(logits, mask, ignore_index=self.ignore_index)
        if self.dice_weight:
            loss = loss + self.dice_weight * losses.dice_loss(logits, mask, ignore_index=self.ignore_index)
        return self.regularized(loss)

    def training_step(self, batch, batch_idx):
        x, y = batch["image"], batch["mask"]
        logits = self(x)
        loss = self.loss(logits, y)
        self.confusion[f"{M.TRAIN}_m"].update(logits.argmax(1), y)
        self.log(M.name(M.TRAIN, M.LOSS), loss, on_step=True, on_epoch=True, prog_bar=True, batch_size=x.shape[0])
        return loss

    def _eval_step(self, batch: dict, stage: str) -> None:
        """Score a val/test batch: as loaded (`resized`), or image by image at each mask's own size."""
        images, masks = batch["image"], batch["mask"]
        mapped = bool(self.prediction_lut.numel())
        if self.eval_mode.original_resolution:
            groups = ((j, x, masks[j:j + 1, :x.shape[-2], :x.shape[-1]])
                      for j, x in crops_of(images, batch.get("size")))
        else:
            groups = [(None, images, masks)]
        losses = []
        for j, x, y in groups:
            logits = self.infer(x)
            if not mapped:
                losses.append(self.loss(logits, y))
            pred = self.predict_ids(logits)
            del logits
            self.confusion[f"{stage}_m"].update(pred, y)
            if stage == M.TEST:
                self._record_test_images(batch, pred, y, j)
        if losses:  # (mapped predictions have no loss in the data's space)
            mean = self.eval_loss[f"{stage}_m"]  # a sum-state metric: exact under DDP with uneven shards
            mean.update(torch.stack(losses).mean().detach(), weight=images.shape[0])
            self.log(M.name(stage, M.LOSS), mean, on_epoch=True, prog_bar=True)

    def _record_test_images(self, batch: dict, pred: torch.Tensor, y: torch.Tensor, j: int | None) -> None:
        n = len(self.eval_class_names)
        per_image = seg_metrics.per_image_iou(pred, y, n, self.ignore_index)
        positions = range(pred.shape[0]) if j is None else [j]
        for k, pos in enumerate(positions):
            truth = y[k][y[k] != self.ignore_index]
            record = {"id": batch["id"][pos], "index": int(batch["index"][pos]),
                      "miou": float(per_image.miou[k]), "pixel_acc": float(per_image.pixel_acc[k]),
                      "iou": per_image.iou[k].numpy(),
                      "truth_pixels": torch.bincount(truth, minlength=n)[:n].cpu().numpy()}
            self.test_images.append(record)
            self._panel_candidates.offer(record, pred[k])

    def validation_step(self, batch, batch_idx):
        self._eval_step(batch, M.VAL)

    def test_step(self, batch, batch_idx):
        self._eval_step(batch, M.TEST)

    def on_test_epoch_start(self):
        from cvexp.analysis.seg_report import PanelCandidates

        self.test_images = []
        self._panel_candidates = PanelCandidates(self.n_visualize, self.k_failures, self.failure_iou)

    @property
    def panel_preds(self) -> dict:
        """The last test pass's predictions of the images its pictures can show (seg_report)."""
        candidates = getattr(self, "_panel_candidates", None)
        return candidates.preds if candidates is not None else {}

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
        self._gather_test_images()
        for name, v in zip(self.eval_class_names, values["iou"]):
            self.log(M.per_class(M.TEST, "iou", name), float(v))
        if self.test_is_val is not None:
            self.log(TEST_IS_VAL, float(self.test_is_val))
        self.test_confusion = values["confusion"]

    def _gather_test_images(self) -> None:
        """Under DDP each process scored its own shard: every process gets all per-image records
        (in test order), so per_image.csv and the failure pictures cover the whole split."""
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() < 2:
            return
        shards: list = [None] * dist.get_world_size()
        dist.all_gather_object(shards, self.test_images)
        self.test_images = sorted((r for shard in shards for r in shard), key=lambda r: r["index"])

    def best_state(self) -> dict:
        return {"best_miou": self.best_miou}

    def best_metrics(self) -> dict[str, float]:
        return {M.VAL_MIOU_BEST: self.best_miou} if self.best_miou > -math.inf else {}

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
