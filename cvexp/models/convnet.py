"""A CNN from scratch, built from a list of block configs; the flatten size is computed."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn

from cvexp.errors import ConfigError

ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "silu": nn.SiLU, "leaky_relu": nn.LeakyReLU}

# The course's reference CNN (README "Classification"): 3x3 convs 32/64/128, max-pool 4 then 2 then 2.
REFERENCE_BLOCKS = (
    {"channels": 32, "kernel": 3, "stride": 1, "padding": 1, "pool": 4},
    {"channels": 64, "kernel": 3, "stride": 1, "padding": 1, "pool": 2},
    {"channels": 128, "kernel": 3, "stride": 1, "padding": 1, "pool": 2},
)


def conv_block(in_ch: int, channels: int, kernel: int = 3, stride: int = 1, padding: int = 1,
               pool: int | None = None, activation: str = "relu", batch_norm: bool = False,
               dropout: float = 0.0) -> nn.Sequential:
    if activation not in ACTIVATIONS:
        raise ConfigError(f"model.activation={activation!r} is unknown; choose one of {sorted(ACTIVATIONS)}")
    layers: list[nn.Module] = [nn.Conv2d(in_ch, channels, kernel, stride, padding, bias=not batch_norm)]
    if batch_norm:
        layers.append(nn.BatchNorm2d(channels))
    layers.append(ACTIVATIONS[activation]())
    if pool and pool > 1:
        layers.append(nn.MaxPool2d(pool, pool))
    if dropout:
        layers.append(nn.Dropout2d(dropout))
    return nn.Sequential(*layers)


# what a block of model.blocks may set: conv_block's arguments
BLOCK_KEYS = {"channels", "kernel", "stride", "padding", "pool", "activation", "batch_norm", "dropout"}


class ConvNet(nn.Module):
    """`blocks` is a list of dicts with keys channels, kernel, stride, padding, pool, activation,
    batch_norm, dropout (missing keys take `conv_block`'s defaults, and `activation`,
    `batch_norm`, `dropout` given here apply to every block that does not set them)."""

    def __init__(self, num_classes: int, blocks: Sequence[Mapping] = REFERENCE_BLOCKS,
                 input_size: int = 224, in_channels: int = 3, activation: str = "relu",
                 batch_norm: bool = False, dropout: float = 0.0, global_pool: bool = False,
                 head_dropout: float = 0.0):
        super().__init__()
        defaults = {"activation": activation, "batch_norm": batch_norm, "dropout": dropout}
        layers, ch = [], in_channels
        for i, block in enumerate(blocks):
            spec = {**defaults, **dict(block)}
            unknown = sorted(set(spec) - BLOCK_KEYS)
            if unknown:
                raise ConfigError(f"model.blocks[{i}] has unknown key(s) {', '.join(map(str, unknown))}; a block takes "
                                  f"{', '.join(sorted(BLOCK_KEYS))}")
            if "channels" not in spec:
                raise ConfigError(f"model.blocks[{i}] needs 'channels' (e.g. {{channels: 32, pool: 2}})")
            layers.append(conv_block(ch, **spec))
            ch = spec["channels"]
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1) if global_pool else nn.Identity()
        try:
            with torch.no_grad():
                n_features = self._flat(self.features(torch.zeros(1, in_channels, input_size, input_size))).shape[1]
        except RuntimeError:  # a pool or conv larger than what is left of the image
            n_features = 0
        if n_features == 0:
            raise ConfigError(f"model.blocks shrink a {input_size}px input to nothing; use fewer pools or a larger input")
        self.num_features = n_features
        self.input_size = input_size
        self.head = nn.Sequential(nn.Dropout(head_dropout) if head_dropout else nn.Identity(),
                                  nn.Linear(n_features, num_classes))

    def _flat(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(self.pool(x), 1)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self._flat(self.features(x))

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        return self.head(features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))
