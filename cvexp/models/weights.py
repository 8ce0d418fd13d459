"""Putting a state dict into a model: prefix stripping and a strict load whose errors name the file
and the fix. Files are read by `cvexp.io.checkpoint` (never unpickling code)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import torch
from torch import nn

from cvexp.errors import CheckpointError

def strip_prefixes(state: Mapping[str, torch.Tensor], prefixes: Iterable[str]) -> dict[str, torch.Tensor]:
    """Drop a prefix (e.g. `module.` from DataParallel, `net.` from a cvexp Lightning checkpoint)
    when every key carries it."""
    state = dict(state)
    for p in prefixes:
        if state and all(k.startswith(p) for k in state):
            state = {k[len(p):]: v for k, v in state.items()}
    return state


def load_into(model: nn.Module, state: Mapping[str, torch.Tensor], source: str,
              skip: Iterable[str] = ()) -> None:
    """Strict load of every key but those starting with a prefix in `skip` (e.g. a new classifier)."""
    skip = tuple(skip)
    own = model.state_dict()
    state = {k: v for k, v in state.items() if not k.startswith(skip)} if skip else dict(state)
    missing = [k for k in own if k not in state and not (skip and k.startswith(skip))]
    unexpected = [k for k in state if k not in own]
    wrong = [f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in state
             if k in own and state[k].shape != own[k].shape]
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (e.g. {', '.join(missing[:3])})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (e.g. {', '.join(unexpected[:3])})")
        if wrong:
            parts.append(f"{len(wrong)} of wrong shape (e.g. {'; '.join(wrong[:2])})")
        raise CheckpointError(f"weights in {source} do not fit {type(model).__name__}: {'; '.join(parts)}; "
                              "check that model.* matches the architecture the file was saved from")
    model.load_state_dict(state, strict=False)
