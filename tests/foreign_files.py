"""Files the tests write themselves, in other projects' formats (no network, no foreign files)."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn


def save_vainf_checkpoint(model: nn.Module, path: str | os.PathLike, cur_itrs: int = 0,
                          best_score: float = 0.0, lr: float = 0.01) -> Path:
    """Write `model` in DeepLabV3Plus-Pytorch's checkpoint format: `model_state`, an SGD
    `optimizer_state` (backbone lr/10, as VainF), a PolyLR `scheduler_state`, `cur_itrs`, `best_score`.
    The optimizer/scheduler states are fresh (no momentum buffers); VainF's own loader takes the file."""
    state = model.state_dict()
    backbone = [p for n, p in model.named_parameters() if n.startswith("backbone.")]
    rest = [p for n, p in model.named_parameters() if not n.startswith("backbone.")]
    groups = [g for g in ({"params": backbone, "lr": 0.1 * lr}, {"params": rest, "lr": lr}) if g["params"]]
    optimizer = torch.optim.SGD(groups, lr=lr, momentum=0.9, weight_decay=1e-4)
    base_lrs = [g["lr"] for g in groups]
    scheduler = {"max_iters": 30000, "power": 0.9, "min_lr": 1e-6, "base_lrs": base_lrs,
                 "last_epoch": int(cur_itrs), "_step_count": int(cur_itrs) + 1, "verbose": False,
                 "_get_lr_called_within_step": False,
                 "_last_lr": [max(b * (1 - min(cur_itrs, 30000) / 30000) ** 0.9, 1e-6) for b in base_lrs]}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"cur_itrs": int(cur_itrs), "model_state": state, "optimizer_state": optimizer.state_dict(),
                "scheduler_state": scheduler, "best_score": best_score}, path)
    return path
