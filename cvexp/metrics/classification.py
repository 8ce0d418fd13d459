"""Classification scores from one confusion matrix per stage (rows truth, columns prediction).

One `bincount` per step is all a stage costs: accuracy, macro / weighted F1, per-class F1 and
recall and the macro recall are read from the summed matrix at the end of the epoch, with
torchmetrics' definitions (and so scikit-learn's with `zero_division=0`):

- per class: F1 = 2 TP / (2 TP + FP + FN), recall = TP / (TP + FN); 0 where the denominator is 0;
- macro: the mean over classes that occur in the truth or the predictions (TP + FP + FN > 0);
  a class absent from both is left out, not counted as 0;
- weighted: the mean weighted by each class's support (TP + FN);
- accuracy (micro): trace / total.

The states are sums, so DDP processes with unequal shards combine exactly.
"""

from __future__ import annotations

import torch
from torchmetrics import Metric

from cvexp.metrics import names as M


def confusion_counts(preds: torch.Tensor, target: torch.Tensor, num_classes: int) -> torch.Tensor:
    """(C, C) int64 counts of (truth, prediction) pairs; no host sync. Ids must lie in [0, C)
    (the data modules guarantee it for labels, argmax for predictions)."""
    c = int(num_classes)
    idx = target.reshape(-1).long() * c + preds.reshape(-1).long().to(target.device)
    return torch.bincount(idx, minlength=c * c)[: c * c].view(c, c)


def _divide(num: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
    return torch.where(den > 0, num / den.clamp(min=1e-12), torch.zeros_like(num))


def scores_from_confusion(cm: torch.Tensor) -> dict[str, torch.Tensor]:
    """`acc`, `f1_macro`, `f1_weighted`, `recall_macro` (scalars) and `f1`, `recall` (per class)
    of a (C, C) confusion matrix, as float64 tensors on the matrix's device."""
    cm = cm.to(torch.float64)
    tp = torch.diagonal(cm)
    support = cm.sum(1)  # TP + FN
    predicted = cm.sum(0)  # TP + FP
    fp, fn = predicted - tp, support - tp
    f1 = _divide(2 * tp, 2 * tp + fp + fn)
    recall = _divide(tp, support)
    seen = ((tp + fp + fn) > 0).to(cm.dtype)
    return {
        M.ACC: _divide(tp.sum(), cm.sum()),
        M.F1_MACRO: _divide((f1 * seen).sum(), seen.sum()),
        M.F1_WEIGHTED: _divide((f1 * support).sum(), support.sum()),
        M.RECALL_MACRO: _divide((recall * seen).sum(), seen.sum()),
        M.F1: f1,
        M.RECALL: recall,
    }


class ClassificationConfusion(Metric):
    """The confusion matrix of one stage, summed over batches (and DDP processes).

    `update(preds, target)` takes class ids (N,) or logits (N, C); `compute()` returns
    `scores_from_confusion` plus `confusion`, the (C, C) int64 matrix."""

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    def __init__(self, num_classes: int, **kwargs):
        super().__init__(**kwargs)
        self.num_classes = int(num_classes)
        c = self.num_classes
        self.add_state("confmat", default=torch.zeros(c, c, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, preds: torch.Tensor, target: torch.Tensor) -> None:
        if preds.is_floating_point() and preds.dim() == target.dim() + 1:
            preds = preds.argmax(1)
        self.confmat += confusion_counts(preds, target, self.num_classes)

    def compute(self) -> dict[str, torch.Tensor]:
        return {**scores_from_confusion(self.confmat), "confusion": self.confmat.detach().clone()}
