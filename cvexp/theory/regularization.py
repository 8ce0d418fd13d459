"""L2 regularisation three ways, on a tiny logistic regression small enough to reason about.

The modes match the config group ``conf/regularization``:

- ``none``: plain loss, no decay.
- ``l2_penalty``: explicit penalty, loss + lam/2 * ||w||^2 (``cvexp.theory.losses.l2_penalty``).
- ``weight_decay``: coupled decay, the optimizer adds lam * w to the gradient (SGD/Adam ``weight_decay``).
  Identical to ``l2_penalty`` for SGD *and* Adam, because both only ever see the summed gradient.
- ``decoupled_weight_decay``: AdamW; w <- (1 - lr lam) w, then the Adam step on the data gradient
  alone, so the decay is not rescaled by Adam's per-coordinate step sizes.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import nn

from cvexp.theory import losses

MODES = ("none", "l2_penalty", "weight_decay", "decoupled_weight_decay")
OPTIMIZERS = ("sgd", "adam")


def make_optimizer(params: Iterable[torch.Tensor], mode: str, lr: float, lam: float,
                   optimizer: str = "sgd", momentum: float = 0.0) -> torch.optim.Optimizer:
    """The optimizer for one regularisation mode (the penalty of ``l2_penalty`` goes in the loss).

    ``decoupled_weight_decay`` is AdamW for ``optimizer='adam'``; for plain SGD (no momentum)
    decoupled and coupled decay are the same update, so SGD with ``weight_decay`` is returned.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {optimizer!r}")
    wd = lam if mode in ("weight_decay", "decoupled_weight_decay") else 0.0
    if optimizer == "adam":
        cls = torch.optim.AdamW if mode == "decoupled_weight_decay" else torch.optim.Adam
        return cls(params, lr=lr, weight_decay=wd)
    if mode == "decoupled_weight_decay" and momentum:
        raise ValueError("torch.optim.SGD has no decoupled weight decay with momentum; use optimizer='adam'")
    return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=wd)


def make_logistic_data(n: int = 200, d: int = 5, seed: int = 0, margin: float = 0.5,
                       dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    """A linearly separable binary problem: x ~ N(0, I), y = [x . w* > 0], points within
    `margin` of the boundary dropped. Separable data is where L2 matters most: without it the
    logistic loss keeps falling as ||w|| grows, so the weights never stop growing."""
    g = torch.Generator().manual_seed(seed)
    w_true = torch.randn(d, generator=g, dtype=dtype)
    w_true = w_true / w_true.norm()
    x = torch.randn(4 * n, d, generator=g, dtype=dtype)
    score = x @ w_true
    keep = score.abs() > margin
    x, score = x[keep][:n], score[keep][:n]
    return x, (score > 0).to(dtype)


@dataclass
class FitResult:
    mode: str
    optimizer: str
    lam: float
    weight: torch.Tensor
    bias: torch.Tensor
    data_loss: float
    accuracy: float

    @property
    def weight_norm(self) -> float:
        return float(self.weight.norm())


def train_logistic_regression(x: torch.Tensor, y: torch.Tensor, mode: str = "none", lam: float = 1e-2,
                              lr: float = 0.5, steps: int = 300, optimizer: str = "sgd",
                              seed: int = 0) -> FitResult:
    """Full-batch training of sigmoid(x w + b) with `bce_with_logits`, regularised by `mode`.

    The explicit penalty (mode ``l2_penalty``) covers weight and bias, like optimizer weight decay
    does, so ``l2_penalty`` and ``weight_decay`` follow the same trajectory.
    """
    torch.manual_seed(seed)
    model = nn.Linear(x.shape[1], 1).to(x.dtype)
    nn.init.zeros_(model.weight)
    nn.init.zeros_(model.bias)
    opt = make_optimizer(model.parameters(), mode, lr=lr, lam=lam, optimizer=optimizer)
    for _ in range(steps):
        opt.zero_grad()
        loss = losses.bce_with_logits(model(x).squeeze(1), y)
        if mode == "l2_penalty":
            loss = loss + losses.l2_penalty(model.parameters(), lam)
        loss.backward()
        opt.step()
    with torch.no_grad():
        logits = model(x).squeeze(1)
        data_loss = float(losses.bce_with_logits(logits, y))
        acc = float(((logits > 0).to(y.dtype) == y).to(torch.float32).mean())
    return FitResult(mode, optimizer, lam, model.weight.detach().squeeze(0).clone(),
                     model.bias.detach().clone(), data_loss, acc)
