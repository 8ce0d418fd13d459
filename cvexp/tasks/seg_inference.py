"""How a segmentation network is run on an evaluation image: the evaluation modes.

`EvalMode` (the `task.eval` config node, or `eval_mode=<option>`) says where the scored labels come
from and how the network sees the image:

* `resized`: images and masks as the data module loads them (brought to `data.base_size` first),
  scored at that size. Fast; not the datasets' protocol when `base_size` is smaller than the images.
* `full`: the masks at their own (original) resolution. The network sees the original image,
  or the image brought to long side `size` (e.g. the training resolution), at each of `scales`;
  logits are upsampled bilinearly to the mask's size and scored there (Cityscapes at 2048x1024,
  IDD at its own label size).
* `sliding`: as `full`, but every forward pass sees one `crop` window (h, w) at a time, windows
  `stride` apart (overlapping where stride < crop, the last one shifted back to end at the border),
  `tile_batch` windows per pass; logits of overlapping windows are averaged (mmsegmentation's
  `slide` inference). Memory stays bounded on images larger than the crop.

`flip: true` adds the mirrored image at every scale (its logits mirrored back); with several
`scales` and/or the flip, logits are averaged over all passes (multi-scale + flip testing).
The image size a scale means: `round(s * size / max(H, W) * H)` (x W), `size: null` = the image's own.

`predict_logits(net, images, mode)` returns logits at the input images' size; the caller scores
them against masks of that size (the data module serves original-size masks in `full`/`sliding`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from cvexp.errors import ConfigError

MODES = ("resized", "full", "sliding")


def _pair(value: Any, key: str) -> tuple[int, int] | None:
    if value is None:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = (value, value)
    try:
        h, w = (int(v) for v in value)
    except (TypeError, ValueError):
        raise ConfigError(f"task.eval.{key}={value!r}: expected a side or [height, width]") from None
    if h < 1 or w < 1:
        raise ConfigError(f"task.eval.{key}={list(value)!r}: sides must be >= 1")
    return h, w


@dataclass(frozen=True)
class EvalMode:
    """One evaluation mode (see the module docstring); `from_config` checks a config node."""

    mode: str = "resized"
    size: int | None = None
    scales: tuple[float, ...] = (1.0,)
    flip: bool = False
    crop: tuple[int, int] = (512, 512)
    stride: tuple[int, int] | None = None  # None = two thirds of the crop
    tile_batch: int = 4

    @classmethod
    def from_config(cls, cfg: Mapping | EvalMode | None) -> EvalMode:
        if isinstance(cfg, EvalMode):
            return cfg
        c = {k: v for k, v in dict(cfg or {}).items() if v is not None or k in ("size", "stride")}
        unknown = set(c) - {"mode", "size", "scales", "flip", "crop", "stride", "tile_batch"}
        if unknown:
            raise ConfigError(f"task.eval has unknown key(s) {', '.join(sorted(unknown))}; use mode, size, scales, "
                              "flip, crop, stride, tile_batch")
        mode = str(c.get("mode", "resized"))
        if mode not in MODES:
            raise ConfigError(f"task.eval.mode={mode!r}; use one of {', '.join(MODES)} (or eval_mode=<option>)")
        size = c.get("size")
        if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 1):
            raise ConfigError(f"task.eval.size={size!r}: the long side to predict at, an integer >= 1 "
                              "(null = the image's own)")
        scales = c.get("scales", (1.0,))
        scales = (scales,) if isinstance(scales, (int, float)) else tuple(scales)
        if not scales or any(isinstance(s, bool) or not isinstance(s, (int, float)) or not s > 0 for s in scales):
            raise ConfigError(f"task.eval.scales={list(scales)!r}: expected a non-empty list of factors > 0")
        crop = _pair(c.get("crop", 512), "crop")
        stride = _pair(c.get("stride"), "stride")
        if stride is not None and (stride[0] > crop[0] or stride[1] > crop[1]):
            raise ConfigError(f"task.eval.stride={list(stride)} is larger than the crop {list(crop)}: pixels "
                              "between windows would get no prediction; use a stride <= crop")
        tile_batch = int(c.get("tile_batch", 4))
        if tile_batch < 1:
            raise ConfigError(f"task.eval.tile_batch={tile_batch}: windows per forward pass, >= 1")
        return cls(mode=mode, size=int(size) if size is not None else None,
                   scales=tuple(float(s) for s in scales), flip=bool(c.get("flip", False)), crop=crop,
                   stride=stride, tile_batch=tile_batch)

    @property
    def original_resolution(self) -> bool:
        """Scored against masks at their own size (`full`, `sliding`), not the loaded size."""
        return self.mode != "resized"

    @property
    def window_stride(self) -> tuple[int, int]:
        return self.stride or (max(1, self.crop[0] * 2 // 3), max(1, self.crop[1] * 2 // 3))

    @property
    def passes(self) -> int:
        return len(self.scales) * (2 if self.flip else 1)

    def describe(self) -> dict[str, Any]:
        """What a run records about how it scored (evaluation.json)."""
        d = asdict(self)
        d["scales"] = list(self.scales)
        d["crop"] = list(self.crop)
        d["stride"] = list(self.window_stride)
        if self.mode != "sliding":
            d.pop("crop"), d.pop("stride"), d.pop("tile_batch")
        d["labels"] = "original size" if self.original_resolution else "as loaded (data.base_size)"
        return d

    def with_caps(self, size: int, crop: int) -> tuple[EvalMode, list[str]]:
        """A copy that predicts at long side <= `size` and slides windows <= `crop` (debug=fast),
        and the changes as `key old -> new` strings."""
        changes, new = [], {}
        if (self.size or 0) > size or (self.original_resolution and self.size is None):
            new["size"] = size
            changes.append(f"task.eval.size {self.size} -> {size}")
        if self.mode == "sliding" and max(self.crop) > crop:
            c = (min(self.crop[0], crop), min(self.crop[1], crop))
            s = tuple(max(1, min(c[i], round(self.window_stride[i] * c[i] / self.crop[i]))) for i in range(2))
            new.update(crop=c, stride=s)
            changes.append(f"task.eval.crop {list(self.crop)} -> {list(c)}")
        if not new:
            return self, []
        return replace(self, **new), changes


# --------------------------------------------------------------------------- inference

def scaled_size(h: int, w: int, scale: float, size: int | None) -> tuple[int, int]:
    """The (h, w) the network sees at `scale` of long side `size` (None = the image's own)."""
    f = scale * (size / max(h, w) if size else 1.0)
    return max(1, int(h * f + 0.5)), max(1, int(w * f + 0.5))


def window_starts(length: int, crop: int, stride: int) -> list[int]:
    """Start offsets of the windows along one side: every `stride`, the last one moved back so
    that it ends at the border (mmsegmentation's grid). One window when the side fits the crop."""
    if length <= crop:
        return [0]
    n = (length - crop + stride - 1) // stride + 1
    return sorted({min(i * stride, length - crop) for i in range(n)})


def sliding_logits(net: nn.Module, images: torch.Tensor, crop: Sequence[int], stride: Sequence[int],
                   tile_batch: int = 4) -> torch.Tensor:
    """Logits (B, C, H, W) from windows of `crop` (h, w) every `stride`, `tile_batch` windows of
    every image per forward pass, overlaps averaged. A side shorter than the crop is one window."""
    b, _, h, w = images.shape
    ch, cw = min(int(crop[0]), h), min(int(crop[1]), w)
    boxes = [(y, x) for y in window_starts(h, ch, int(stride[0])) for x in window_starts(w, cw, int(stride[1]))]
    out: torch.Tensor | None = None
    count = images.new_zeros((1, 1, h, w), dtype=torch.float32)
    for i in range(0, len(boxes), tile_batch):
        chunk = boxes[i:i + tile_batch]
        tiles = torch.cat([images[:, :, y:y + ch, x:x + cw] for y, x in chunk])
        logits = net(tiles).float()
        if out is None:
            out = images.new_zeros((b, logits.shape[1], h, w), dtype=torch.float32)
        for k, (y, x) in enumerate(chunk):
            out[:, :, y:y + ch, x:x + cw] += logits[k * b:(k + 1) * b]
            count[:, :, y:y + ch, x:x + cw] += 1
    return out / count


def _forward(net: nn.Module, x: torch.Tensor, mode: EvalMode) -> torch.Tensor:
    if mode.mode == "sliding":
        return sliding_logits(net, x, mode.crop, mode.window_stride, mode.tile_batch)
    return net(x).float()


@torch.no_grad()
def predict_logits(net: nn.Module, images: torch.Tensor, mode: EvalMode | Mapping | None = None) -> torch.Tensor:
    """Float32 logits (B, C, H, W) at the size of `images` (B, 3, H, W): at every scale (and
    mirrored, with `flip`) the images are resized bilinearly, run through `net` (whole or in
    windows), the logits brought back bilinearly and averaged over all passes."""
    mode = EvalMode.from_config(mode)
    h, w = images.shape[-2:]
    total: torch.Tensor | None = None
    for scale in mode.scales:
        sh, sw = scaled_size(h, w, scale, mode.size)
        x = images if (sh, sw) == (h, w) else F.interpolate(images, size=(sh, sw), mode="bilinear",
                                                            align_corners=False)
        for flipped in ((False, True) if mode.flip else (False,)):
            logits = _forward(net, x.flip(-1) if flipped else x, mode)
            if flipped:
                logits = logits.flip(-1)
            if logits.shape[-2:] != (h, w):
                logits = F.interpolate(logits, size=(h, w), mode="bilinear", align_corners=False)
            total = logits if total is None else total + logits  # (never in place: logits may alias images)
    return total / mode.passes if mode.passes > 1 else total


def crops_of(images: torch.Tensor, sizes: torch.Tensor | None) -> Iterable[tuple[int, torch.Tensor]]:
    """(index, (1, 3, h, w) image) of a padded batch, each cut back to its own size."""
    for j in range(images.shape[0]):
        if sizes is None:
            yield j, images[j:j + 1]
        else:
            h, w = (int(v) for v in sizes[j])
            yield j, images[j:j + 1, :, :h, :w]
