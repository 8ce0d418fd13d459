"""Loading local weight files safely (`weights_only`) with errors that name the file and the fix."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path

import torch
from torch import nn

from cvexp.errors import CheckpointError

STATE_DICT_KEYS = ("state_dict", "model_state", "model", "net", "module")


def load_state_dict_file(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """A state dict from a `.pth`/`.pt`/`.ckpt`/`.safetensors` file; nested dicts such as
    `{"state_dict": ...}` (Lightning) or `{"model_state": ...}` are unwrapped. Never unpickles code."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise CheckpointError(f"weights file {path} does not exist; check the path given in model.weights")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            obj = load_file(str(path))
        else:
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any failure here means an unusable file
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"cannot load weights file {path} ({first[:200]}); "
                              "give a PyTorch state dict saved with torch.save(model.state_dict())") from None
    for _ in range(3):
        if isinstance(obj, Mapping) and not _is_state_dict(obj):
            inner = next((obj[k] for k in STATE_DICT_KEYS if k in obj and isinstance(obj[k], Mapping)), None)
            if inner is None:
                break
            obj = inner
    if not (isinstance(obj, Mapping) and _is_state_dict(obj)):
        raise CheckpointError(f"weights file {path} holds no state dict (tensors by name); "
                              "give a file saved with torch.save(model.state_dict())")
    return dict(obj)


def _is_state_dict(obj: Mapping) -> bool:
    return len(obj) > 0 and all(isinstance(v, torch.Tensor) for v in obj.values())


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
