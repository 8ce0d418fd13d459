"""The theory as code: losses and regularisation used by the tasks.

(Placeholder core: cross_entropy and l2_penalty; the full set with naive references lands with
the theory issue.)
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.nn.functional as F


def cross_entropy(logits: torch.Tensor, target: torch.Tensor, label_smoothing: float = 0.0,
                  ignore_index: int = -100) -> torch.Tensor:
    """Mean cross-entropy of logits against hard class ids."""
    return F.cross_entropy(logits, target, label_smoothing=label_smoothing, ignore_index=ignore_index)


def l2_penalty(params: Iterable[torch.Tensor], lam: float) -> torch.Tensor:
    """lam/2 * sum ||w||^2: its gradient lam * w equals SGD's coupled weight decay."""
    params = list(params)
    if not params:
        return torch.zeros(())
    return 0.5 * lam * sum((p * p).sum() for p in params)
