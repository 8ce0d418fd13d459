"""Albumentations pipelines from config lists, with the model's normalisation appended.

A pipeline config is a list of transforms (already instantiated or `_target_` dicts turned into
objects by the caller). `build_pipeline` appends Normalize(mean, std) and ToTensorV2 so every
pipeline ends in the model's own input convention.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import albumentations as A
import numpy as np
import torch
from albumentations.pytorch import ToTensorV2

from cvexp.data.imagenet import IMAGENET_MEAN, IMAGENET_STD  # noqa: F401 - re-exported


def build_pipeline(transforms: Sequence[A.BasicTransform], mean: Sequence[float],
                   std: Sequence[float], additional_targets: dict[str, str] | None = None,
                   seed: int | None = 0) -> A.Compose:
    """Albumentations keeps its own RNG (global seeds do not reach it), so the pipeline is seeded
    here; DataLoader workers reseed their copy with `seed_worker_transforms`."""
    steps = list(transforms) + [A.Normalize(mean=tuple(mean), std=tuple(std), max_pixel_value=255.0),
                                ToTensorV2()]
    return A.Compose(steps, additional_targets=additional_targets or {}, seed=seed)


def seed_worker_transforms(worker_id: int) -> None:
    """DataLoader `worker_init_fn`: give each worker's copy of the dataset's albumentations
    pipeline its own seed, derived from torch's per-worker seed (which changes every epoch and
    follows `seed_everything`), so workers do not repeat each other's augmentations."""
    info = torch.utils.data.get_worker_info()
    transform = getattr(info.dataset, "transform", None) if info else None
    if transform is not None and hasattr(transform, "set_random_seed"):
        transform.set_random_seed(info.seed % 2**32)


def denormalize(img: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """(3, H, W) normalised tensor -> (H, W, 3) uint8 RGB for plotting."""
    m = torch.tensor(mean, dtype=img.dtype).view(3, 1, 1)
    s = torch.tensor(std, dtype=img.dtype).view(3, 1, 1)
    x = (img.detach().cpu() * s + m).clamp(0, 1)
    return (x.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)


def resolve_input_config(image_size: int | None = None, mean: Sequence[float] | None = None,
                         std: Sequence[float] | None = None,
                         model_config: dict[str, Any] | None = None,
                         default_size: int = 224) -> dict[str, Any]:
    """Input size and normalisation: explicit values win, then the model's pretrained config
    (timm's `input_size`, `mean`, `std`), then `default_size` and ImageNet statistics."""
    model_config = model_config or {}
    if image_size is None:
        size = model_config.get("input_size")
        image_size = int(size[-1]) if size else default_size
    return {
        "image_size": int(image_size),
        "mean": [float(v) for v in (mean if mean is not None else model_config.get("mean", IMAGENET_MEAN))],
        "std": [float(v) for v in (std if std is not None else model_config.get("std", IMAGENET_STD))],
    }
