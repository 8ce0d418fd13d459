"""Segmentation pictures: masks in a palette, error maps, image | truth | prediction | error panels."""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

IGNORE_COLOR = (0, 0, 0)
CORRECT_COLOR = (60, 60, 60)
WRONG_COLOR = (255, 40, 40)


def colorize(mask: np.ndarray, palette: Sequence[Sequence[int]], ignore_index: int = 255) -> np.ndarray:
    """(H, W) class ids -> (H, W, 3) uint8 RGB; ignore and out-of-range ids are black."""
    lut = np.zeros((256, 3), np.uint8)
    lut[: len(palette)] = np.asarray(palette, np.uint8)
    lut[ignore_index] = IGNORE_COLOR
    return lut[np.clip(mask, 0, 255).astype(np.uint8)]


def error_map(pred: np.ndarray, truth: np.ndarray, ignore_index: int = 255) -> np.ndarray:
    """Grey where right, red where wrong, black where the truth is ignored."""
    out = np.empty((*truth.shape, 3), np.uint8)
    out[:] = CORRECT_COLOR
    out[pred != truth] = WRONG_COLOR
    out[truth == ignore_index] = IGNORE_COLOR
    return out


def overlay(image: np.ndarray, mask_rgb: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """The colour mask blended over the image (uint8 RGB, same size), `alpha` the mask's weight."""
    return (image.astype(np.float32) * (1 - alpha) + mask_rgb.astype(np.float32) * alpha).round().astype(np.uint8)


TILE_MIN, TILE_MAX = 320, 480  # a tile's long side in the picture: small masks are enlarged (whole pixels), big ones shrunk
PNG_COMPRESS_LEVEL = 3  # zlib level: most of level 9's size at a fraction of its time
_WHITE, _TEXT, _EDGE = (255, 255, 255), (20, 20, 20), (150, 150, 150)
_MARGIN, _GAP = 10, 6


@functools.lru_cache(maxsize=8)
def _font(size: int):
    """Pillow's own font at `size` px (FreeType); the fixed bitmap font where FreeType is missing."""
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except (TypeError, ImportError, OSError):
        return ImageFont.load_default()


def _text_height(font) -> int:
    box = font.getbbox("Ag(|y")
    return int(box[3]) + 2


def _text_width(font, text: str) -> int:
    return int(math.ceil(font.getlength(text))) if hasattr(font, "getlength") else int(font.getbbox(text)[2])


def _fit(tile: np.ndarray, side: int, nearest: bool) -> np.ndarray:
    """`tile` with its long side `side`: whole-pixel repeats when enlarged by an integer factor,
    nearest (masks) or area-like (photos) resampling otherwise."""
    h, w = tile.shape[:2]
    if max(h, w) == side:
        return tile
    if side % max(h, w) == 0:
        k = side // max(h, w)
        return tile.repeat(k, 0).repeat(k, 1)
    from PIL import Image

    f = side / max(h, w)
    size = (max(1, round(w * f)), max(1, round(h * f)))
    resample = Image.Resampling.NEAREST if nearest else (Image.Resampling.BOX if f < 1 else Image.Resampling.BILINEAR)
    return np.asarray(Image.fromarray(tile).resize(size, resample))


def _tile_side(h: int, w: int) -> int:
    """The long side a (h, w) tile is drawn at: in [TILE_MIN, TILE_MAX], a whole multiple when enlarged."""
    long = max(h, w, 1)
    if long > TILE_MAX:
        return TILE_MAX
    if long >= TILE_MIN:
        return long
    return long * math.ceil(TILE_MIN / long)


def _present_classes(rows: Sequence[dict], n_names: int, n_colours: int, ignore_index: int) -> list[int]:
    """Class ids shown in the truths (any) or predictions (named ones), that have a colour."""
    seen = np.zeros(256, bool)
    for row in rows:
        for mask, named_only in ((row["truth"], False), (row["pred"], True)):
            ids = np.bincount(np.clip(np.asarray(mask).ravel(), 0, 255).astype(np.int64), minlength=256) > 0
            if named_only:
                ids[n_names:] = False
            seen |= ids
    seen[ignore_index] = False
    return [int(i) for i in np.flatnonzero(seen) if i < n_colours]


def plot_panels(rows: Sequence[dict], class_names: Sequence[str], palette: Sequence[Sequence[int]],
                path: str | Path, ignore_index: int = 255, title: str | None = None) -> Path:
    """One row per image: image | truth | prediction | error map, with a legend of the classes
    that appear. Each row dict: image (H,W,3 uint8 RGB), truth, pred (H,W ids), label (one line,
    written under the row).

    Drawn with numpy + PIL (no matplotlib): each tile is its array enlarged by whole pixels (or
    shrunk) to a long side of TILE_MIN..TILE_MAX px, on a white sheet with column titles, the row
    labels, an optional title and a legend (colour swatch + class name, and the ignore colour)."""
    from PIL import Image, ImageDraw

    heads = ("image", "truth", "prediction", "errors (red)")
    f_title, f_head, f_label, f_legend = _font(18), _font(14), _font(12), _font(12)
    h_title, h_head, h_label, h_legend = (_text_height(f) for f in (f_title, f_head, f_label, f_legend))

    # tiles, one strip per row
    strips = []
    for row in rows:
        truth, pred = np.asarray(row["truth"]), np.asarray(row["pred"])
        image = np.asarray(row["image"])
        if image.ndim == 2:
            image = np.repeat(image[..., None], 3, axis=2)
        side = _tile_side(*truth.shape)
        tiles = [_fit(image[..., :3].astype(np.uint8, copy=False), side, nearest=False),
                 _fit(colorize(truth, palette, ignore_index), side, True),
                 _fit(colorize(pred, palette, ignore_index), side, True),
                 _fit(error_map(pred, truth, ignore_index), side, True)]
        strips.append(tiles)
    tile_w = max((t[1].shape[1] for t in strips), default=TILE_MAX)
    grid_w = 4 * tile_w + 3 * _GAP

    # legend entries: swatch + name, laid out in equal columns
    present = _present_classes(rows, len(class_names), len(palette), ignore_index)
    entries = [(tuple(int(c) for c in palette[i][:3]), str(class_names[i]) if i < len(class_names) else str(i))
               for i in present]
    entries.append((IGNORE_COLOR, f"ignore ({ignore_index})"))
    sw = h_legend - 2
    entry_w = max(_text_width(f_legend, name) for _, name in entries) + sw + 18
    ncol = max(1, min(len(entries), grid_w // entry_w))
    nlines = -(-len(entries) // ncol)

    width = grid_w + 2 * _MARGIN
    y = _MARGIN
    y_title = y
    if title:
        y += h_title + 6
    y_head = y
    y += h_head + 2
    row_y = []
    for tiles in strips:
        row_y.append(y)
        y += tiles[1].shape[0] + 2 + h_label + _GAP
    if not strips:
        y += h_label + _GAP  # "(no images)"
    y_legend = y + 4
    height = y_legend + nlines * (h_legend + 4) + _MARGIN

    sheet = np.empty((height, width, 3), np.uint8)
    sheet[:] = _WHITE
    for y0, tiles in zip(row_y, strips):
        for c, tile in enumerate(tiles):
            x0 = _MARGIN + c * (tile_w + _GAP)
            sheet[y0:y0 + tile.shape[0], x0:x0 + tile.shape[1]] = tile
    canvas = Image.fromarray(sheet)
    draw = ImageDraw.Draw(canvas)
    if title:
        draw.text((width // 2, y_title), title, fill=_TEXT, font=f_title, anchor="ma")
    for c, head in enumerate(heads):
        draw.text((_MARGIN + c * (tile_w + _GAP) + tile_w // 2, y_head), head, fill=_TEXT, font=f_head, anchor="ma")
    for y0, tiles, row in zip(row_y, strips, rows):
        draw.text((_MARGIN, y0 + tiles[1].shape[0] + 2), str(row.get("label", "")), fill=_TEXT, font=f_label)
    if not strips:
        draw.text((_MARGIN, y_head + h_head + 2), "(no images)", fill=_TEXT, font=f_label)
    x_start = _MARGIN + (grid_w - ncol * entry_w) // 2
    for j, (colour, name) in enumerate(entries):
        x0 = x_start + (j % ncol) * entry_w
        y0 = y_legend + (j // ncol) * (h_legend + 4)
        draw.rectangle((x0, y0 + 1, x0 + sw, y0 + 1 + sw), fill=colour, outline=_EDGE)
        draw.text((x0 + sw + 6, y0), name, fill=_TEXT, font=f_legend)
    canvas.save(path, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
    return Path(path)


def plot_per_class_comparison(table: dict[str, Sequence[float]], class_names: Sequence[str], path: str | Path,
                              title: str = "Per-class IoU", ylabel: str = "IoU") -> Path:
    """Grouped bars: one group per class, one bar per series (e.g. per evaluated dataset); NaN = absent."""
    import matplotlib.pyplot as plt

    series = list(table)
    n, k = len(class_names), max(len(series), 1)
    x = np.arange(n)
    width = 0.8 / k
    fig, ax = plt.subplots(figsize=(max(8, 0.45 * n * max(1, k / 2) + 2), 4))
    for j, name in enumerate(series):
        vals = np.asarray(table[name], dtype=float)
        ax.bar(x + (j - (k - 1) / 2) * width, np.nan_to_num(vals, nan=0.0), width, label=name)
        for i in np.flatnonzero(np.isnan(vals)):
            ax.text(x[i] + (j - (k - 1) / 2) * width, 0.01, "-", ha="center", fontsize=7)
    ax.set_xticks(x, class_names, rotation=60, ha="right", fontsize=8)
    ax.set_ylim(0, 1)
    ax.set_ylabel(ylabel)
    ax.set_title(title + "  ('-': class absent)")
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)
