"""Segmentation metrics over a whole dataset from one confusion matrix (the Cityscapes convention).

This follows cityscapesScripts `evalPixelLevelSemanticLabeling` (and IDD's `evaluate_mIoU.py`, which
copies it):

- One confusion matrix is summed over every pixel of every image; rows are truth, columns prediction.
  Pixels whose truth is `ignore_index` (255) are left out entirely, so a prediction there is no
  false positive ("FP counts only pixels whose truth is a valid class").
- Per class: IoU = TP / (TP + FP + FN), precision = TP / (TP + FP), recall = TP / (TP + FN),
  F1 = 2 TP / (2 TP + FP + FN).
- A class with no truth pixel and no predicted pixel is *absent*: all its scores are NaN and it is
  left out of the means (mIoU is a nanmean), never counted as 0. A class that is present but has a
  0/0 ratio (truth but never predicted: precision; predicted but no truth: recall) scores 0, as in
  scikit-learn's `zero_division=0`.
- Pixel accuracy = sum(TP) / number of valid-truth pixels.

Predictions outside [0, C) -- e.g. 255 after mapping an IDD model's classes into Cityscapes train
ids -- are "no class": cityscapesScripts counts a prediction of a non-evaluated label as a miss (FN
of the true class, FP of none). `confusion_matrix(..., unassigned_column=True)` keeps them in an
extra last column, and every function here accepts a (C, C) or a (C, C+1) matrix. With a square
matrix they would be lost silently, so `confusion_matrix` refuses them instead.

`torchmetrics.segmentation.MeanIoU` averages per image, which is not the headline number; use
`SegmentationConfusion` (accumulates across batches and DDP processes) or `confusion_matrix`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
import torch
from torchmetrics import Metric

from cvexp.metrics import names as M
from cvexp.errors import DataError

PER_CLASS_KEYS = ("iou", "precision", "recall", "f1")


# --------------------------------------------------------------------------- counting

def _count(idx: torch.Tensor, n: int) -> torch.Tensor:
    """`bincount(idx, minlength=n)`; sort-based where CUDA bincount is refused (deterministic mode)
    or missing (MPS)."""
    if idx.device.type == "cpu" or (idx.device.type == "cuda" and not torch.are_deterministic_algorithms_enabled()):
        return torch.bincount(idx, minlength=n)
    return _count_sorted(idx, n)


def _count_sorted(idx: torch.Tensor, n: int) -> torch.Tensor:
    values, counts = torch.unique(idx, return_counts=True)
    out = torch.zeros(n, dtype=torch.long, device=idx.device)
    out[values] = counts
    return out


def _counts(pred: torch.Tensor, target: torch.Tensor, num_classes: int, ignore_index: int | None,
            per_image: bool) -> torch.Tensor:
    """(G, C, C+1) pixel counts, truth x prediction; column C = prediction outside [0, C).
    G = batch size with `per_image`, else 1."""
    pred, target = torch.as_tensor(pred), torch.as_tensor(target)
    if pred.shape != target.shape:
        raise ValueError(f"prediction shape {tuple(pred.shape)} differs from target shape {tuple(target.shape)}; "
                         "take argmax over the class dim and resize the prediction to the label size")
    if pred.is_floating_point() or target.is_floating_point():
        raise ValueError("pred and target must hold integer class ids (take argmax of the logits first)")
    c = int(num_classes)
    t, p = target.long(), pred.long().to(target.device)
    valid = t != ignore_index if ignore_index is not None else torch.ones_like(t, dtype=torch.bool)
    bad = valid & ((t < 0) | (t >= c))
    if bool(bad.any()):
        values = torch.unique(t[bad])[:5].tolist()
        raise DataError(f"label masks hold values {values} outside [0, {c}) that are not the ignore index "
                        f"{ignore_index}; map them to a class or to {ignore_index} in the dataset")
    col = torch.where((p >= 0) & (p < c), p, c)
    cells = c * (c + 1)
    idx = t.clamp(0, c - 1) * (c + 1) + col
    groups = 1
    if per_image:
        groups = t.shape[0] if t.dim() > 0 else 1
        offset = torch.arange(groups, device=t.device).view(-1, *([1] * (t.dim() - 1))) * cells
        idx = idx + offset
    trash = groups * cells
    idx = torch.where(valid, idx, trash).reshape(-1)
    return _count(idx, trash + 1)[:trash].view(groups, c, c + 1)


def confusion_matrix(pred: torch.Tensor, target: torch.Tensor, num_classes: int, ignore_index: int | None = 255,
                     unassigned_column: bool = False) -> torch.Tensor:
    """Pixel confusion matrix (int64, rows truth, columns prediction) of label maps of any equal shape.

    Pixels with `target == ignore_index` are excluded. Other targets outside [0, C) raise
    `DataError`. Predictions outside [0, C) are counted in an extra last column when
    `unassigned_column=True` (a (C, C+1) matrix; they are misses of the true class); with the default
    square matrix they raise `ValueError` rather than vanish.
    """
    counts = _counts(pred, target, num_classes, ignore_index, per_image=False)[0]
    if unassigned_column:
        return counts
    if bool(counts[:, -1].any()):
        raise ValueError(f"{int(counts[:, -1].sum())} predictions lie outside [0, {num_classes}); "
                         "pass unassigned_column=True to count them as misses (Cityscapes convention)")
    return counts[:, :-1]


# --------------------------------------------------------------------------- scores

def _scores(cm: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-class scores along the last two dims of a float64 (..., C, C[+1]) matrix."""
    c = cm.shape[-2]
    if cm.shape[-1] not in (c, c + 1):
        raise ValueError(f"confusion matrix must be (C, C) or (C, C+1), got {tuple(cm.shape)}")
    square = cm[..., :c]
    tp = torch.diagonal(square, dim1=-2, dim2=-1)
    truth = cm.sum(-1)  # every valid-truth pixel, unassigned predictions included
    predicted = square.sum(-2)  # predictions on valid-truth pixels only
    fp, fn = predicted - tp, truth - tp
    present = (truth + predicted) > 0
    nan = torch.full_like(tp, math.nan)

    def ratio(num, den):
        return torch.where(present, torch.where(den > 0, num / den.clamp(min=1), torch.zeros_like(num)), nan)

    return {
        "iou": ratio(tp, tp + fp + fn),
        "precision": ratio(tp, tp + fp),
        "recall": ratio(tp, tp + fn),
        "f1": ratio(2 * tp, 2 * tp + fp + fn),
        "tp": tp,
        "truth_pixels": truth,
        "predicted_pixels": predicted,
        "present": present,
    }


def _nanmean(x: torch.Tensor) -> torch.Tensor:
    """nanmean over the last dim; NaN (no warning) where every entry is NaN."""
    keep = ~torch.isnan(x)
    n = keep.sum(-1)
    total = torch.where(keep, x, torch.zeros_like(x)).sum(-1)
    return torch.where(n > 0, total / n.clamp(min=1), torch.full_like(total, math.nan))


def _summary(s: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    valid = s["truth_pixels"].sum(-1)
    acc = torch.where(valid > 0, s["tp"].sum(-1) / valid.clamp(min=1), torch.full_like(valid, math.nan))
    return {M.MIOU: _nanmean(s["iou"]), M.PIXEL_ACC: acc, M.MEAN_PRECISION: _nanmean(s["precision"]),
            M.MEAN_RECALL: _nanmean(s["recall"]), M.MEAN_F1: _nanmean(s["f1"])}


def _as_f64(cm) -> torch.Tensor:
    if isinstance(cm, torch.Tensor):
        return cm.detach().to("cpu", torch.float64)
    return torch.as_tensor(np.asarray(cm), dtype=torch.float64)


def metrics_from_confusion(cm) -> dict[str, Any]:
    """Dataset-level scores from a (C, C) or (C, C+1) confusion matrix (numpy or torch).

    Returns the summary under the names in `cvexp.metrics.names` -- `miou`, `pixel_acc`,
    `mean_precision`, `mean_recall`, `mean_f1` (Python floats; NaN when nothing is valid) -- and
    per-class numpy arrays `iou`, `precision`, `recall`, `f1` (float64, NaN for absent classes),
    `tp`, `truth_pixels`, `predicted_pixels` (int64) and `present` (bool).
    """
    s = _scores(_as_f64(cm))
    out: dict[str, Any] = {k: float(v) for k, v in _summary(s).items()}
    for k in PER_CLASS_KEYS:
        out[k] = s[k].numpy()
    for k in ("tp", "truth_pixels", "predicted_pixels"):
        out[k] = s[k].numpy().astype(np.int64)
    out["present"] = s["present"].numpy()
    return out


def per_class_rows(metrics: dict[str, Any], class_names: Sequence[str]) -> list[dict]:
    """Rows for a CSV (`cvexp.analysis.confusion.write_rows_csv`): one per class, NaN kept as NaN."""
    return [{"class_id": i, "class_name": n,
             **{k: float(metrics[k][i]) for k in PER_CLASS_KEYS},
             "truth_pixels": int(metrics["truth_pixels"][i]), "predicted_pixels": int(metrics["predicted_pixels"][i])}
            for i, n in enumerate(class_names)]


class PerImageIoU(NamedTuple):
    """Per-image scores (float64, CPU): `miou` (B,), `iou` (B, C) with NaN for classes absent from
    that image, `pixel_acc` (B,). An image with no valid pixel has NaN everywhere."""
    miou: torch.Tensor
    iou: torch.Tensor
    pixel_acc: torch.Tensor


def per_image_iou(pred: torch.Tensor, target: torch.Tensor, num_classes: int,
                  ignore_index: int | None = 255) -> PerImageIoU:
    """IoU of each image on its own (for failure analysis: sort by `miou`); pred/target (B, H, W).
    Same definitions as the dataset-level numbers, predictions outside [0, C) count as misses."""
    if torch.as_tensor(target).dim() < 3:
        raise ValueError("per_image_iou expects a batch of label maps (B, H, W); add a batch dim with [None]")
    counts = _counts(pred, target, num_classes, ignore_index, per_image=True)
    s = _scores(counts.to("cpu", torch.float64))
    summary = _summary(s)
    return PerImageIoU(miou=summary[M.MIOU], iou=s["iou"], pixel_acc=summary[M.PIXEL_ACC])


# --------------------------------------------------------------------------- torchmetrics

class SegmentationConfusion(Metric):
    """Accumulates the pixel confusion matrix over batches (and DDP processes: states are summed).

    `update(preds, target)` takes class ids (B, H, W) or logits (B, C, H, W, argmax is taken).
    `compute()` returns `metrics_from_confusion` as tensors: float64 scalars under the
    `cvexp.metrics.names` keys (log these), per-class float64 vectors, and `confusion`, the
    (C, C+1) int64 matrix whose last column counts predictions outside [0, C) (none from argmax).
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    def __init__(self, num_classes: int, ignore_index: int | None = 255, **kwargs):
        super().__init__(**kwargs)
        self.num_classes = int(num_classes)
        self.ignore_index = ignore_index
        c = self.num_classes
        self.add_state("confmat", default=torch.zeros(c, c + 1, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, preds: torch.Tensor, target: torch.Tensor) -> None:
        if preds.is_floating_point() and preds.dim() == target.dim() + 1:
            preds = preds.argmax(1)
        self.confmat += _counts(preds, target, self.num_classes, self.ignore_index, per_image=False)[0]

    def compute(self) -> dict[str, torch.Tensor]:
        cm = self.confmat.detach().cpu()
        s = _scores(cm.to(torch.float64))
        out = dict(_summary(s))
        out.update({k: s[k] for k in PER_CLASS_KEYS})
        out.update({k: s[k].long() for k in ("tp", "truth_pixels", "predicted_pixels")})
        out["confusion"] = cm
        return out
