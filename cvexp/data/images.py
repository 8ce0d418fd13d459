"""Reading images: the one decoder call, and the cheap check that a file is a whole image."""

from __future__ import annotations

import os

import cv2
import numpy as np

from cvexp.errors import DataError

JPEG_EOI = b"\xff\xd9"


def has_jpeg_end(path: str | os.PathLike, tail: int = 4096) -> bool:
    """A JPEG ends with its end-of-image marker (a truncated file, e.g. an interrupted copy, does
    not: decoders then fill the missing part with grey and only print a warning). The marker cannot
    occur inside entropy-coded data, so finding it near the end is enough; trailing padding or
    metadata after it is allowed."""
    with open(path, "rb") as fh:
        fh.seek(0, os.SEEK_END)
        size = fh.tell()
        fh.seek(max(0, size - tail))
        return JPEG_EOI in fh.read()


def is_readable_image(path: str | os.PathLike) -> bool:
    """Cheap decode check (JPEGs decode at 1/8 scale and must not be truncated)."""
    try:
        if os.path.getsize(path) == 0:
            return False
        if str(path).lower().endswith((".jpg", ".jpeg")) and not has_jpeg_end(path):
            return False
        img = cv2.imread(str(path), cv2.IMREAD_REDUCED_COLOR_8)
    except (OSError, cv2.error):
        return False
    return img is not None and img.size > 0


REDUCED_FLAGS = ((8, cv2.IMREAD_REDUCED_COLOR_8), (4, cv2.IMREAD_REDUCED_COLOR_4), (2, cv2.IMREAD_REDUCED_COLOR_2))


def jpeg_size(path: str | os.PathLike) -> tuple[int, int] | None:
    """(width, height) from a JPEG's header without decoding it; None when not a JPEG."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            return im.size if im.format == "JPEG" else None
    except (OSError, ValueError):
        return None


def decode_factor(size: tuple[int, int] | None, min_side: int | None) -> int:
    """The largest JPEG DCT reduction (8, 4, 2) that keeps the shorter side >= `min_side`; 1 for none."""
    if not min_side or size is None:
        return 1
    short = min(size)
    return next((f for f, _ in REDUCED_FLAGS if short // f >= min_side), 1)


def read_rgb(path: str | os.PathLike, min_side: int | None = None) -> np.ndarray:
    """(H, W, 3) uint8 RGB; a one-line DataError naming the file when it cannot be decoded.

    `min_side`: the caller only needs a shorter side of this many pixels (e.g. twice the network's
    input for a plain resize), so a large JPEG is decoded at 1/2, 1/4 or 1/8 scale in the DCT
    domain, several times faster than a full decode followed by a downscale."""
    f = decode_factor(jpeg_size(path), min_side) if min_side else 1
    flag = dict(REDUCED_FLAGS)[f] if f > 1 else cv2.IMREAD_COLOR
    img = cv2.imread(str(path), flag)
    if img is None:
        raise DataError(f"cannot read image {path}; delete or replace the file (classification data: or set "
                        "data.skip_corrupt=true)")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
