"""GPU fast paths of any network, set on the model config and applied where it is built
(engine.build.build_model); checkpoints are the same with them on or off.

* `model.channels_last`: `auto` (default: on when the input is on a CUDA device), `true`, `false`.
  The weights and every 4-D input go to NHWC, which tensor cores want; on CPUs it is usually
  slower, hence `auto`.
* `model.compile`: `false` (default), `true`, or torch.compile's arguments
  (`{mode: max-autotune, backend: inductor}`). `nn.Module.compile` compiles in place, so the
  state-dict keys do not change.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from cvexp.errors import ConfigError

CHANNELS_LAST = (True, False, "auto")
COMPILE_KEYS = ("mode", "backend", "fullgraph", "dynamic", "options")


class ChannelsLast:
    """Forward pre-hook: the module's weights (once) and each 4-D input in channels_last."""

    def __init__(self, mode: bool | str):
        self.mode = mode
        self.converted = False

    def __call__(self, module: nn.Module, args: tuple) -> tuple | None:
        x = args[0] if args else None
        if not isinstance(x, torch.Tensor) or x.dim() != 4:
            return None
        if not (self.mode is True or (self.mode == "auto" and x.is_cuda)):
            return None
        if not self.converted:
            module.to(memory_format=torch.channels_last)
            self.converted = True
        return (x.contiguous(memory_format=torch.channels_last), *args[1:])


def apply_fast_paths(net: nn.Module, channels_last: Any = "auto", compile: Any = False) -> nn.Module:  # noqa: A002
    """`net` with the fast paths of its config switched on (in place; returned for chaining)."""
    if channels_last is None:
        channels_last = "auto"
    if channels_last not in CHANNELS_LAST:
        raise ConfigError(f"model.channels_last={channels_last!r} is not allowed: use auto, true or false")
    if channels_last is not False:
        net.register_forward_pre_hook(ChannelsLast(channels_last))
    if compile:
        kwargs = {} if compile is True else dict(compile) if isinstance(compile, Mapping) else None
        if kwargs is None or any(k not in COMPILE_KEYS for k in kwargs):
            raise ConfigError(f"model.compile={compile!r} is not allowed: use true, false, or a mapping of "
                              f"torch.compile arguments ({', '.join(COMPILE_KEYS)})")
        net.compile(**kwargs)
    return net
