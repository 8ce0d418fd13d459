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


# images with more pixels than this are refused before decoding: PIL's decompression-bomb limit
# (a 48 KB PNG can declare 20000 x 20000 pixels, 1.2 GB decoded and far more as logits)
MAX_PIXELS = 89_478_485


def header_size(path: str | os.PathLike) -> tuple[tuple[int, int] | None, str | None]:
    """(width, height) and format from the file's header, nothing decoded; (None, None) where PIL
    cannot tell. A one-line DataError for an image of more than MAX_PIXELS."""
    import warnings

    from PIL import Image

    def too_large(what: str) -> DataError:
        return DataError(f"image {path} is {what}, more than cvexp decodes ({MAX_PIXELS / 1e6:.0f} megapixels: "
                         "a decompression bomb or a scan); downscale or tile it")

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                size, fmt = im.size, im.format
    except Image.DecompressionBombError:
        raise too_large("larger than PIL's decompression-bomb limit") from None
    except (OSError, ValueError, SyntaxError):
        return None, None
    if size[0] * size[1] > MAX_PIXELS:
        raise too_large(f"{size[0]} x {size[1]} pixels")
    return size, fmt


def is_readable_image(path: str | os.PathLike) -> bool:
    """Cheap decode check (JPEGs decode at 1/8 scale and must not be truncated; no image of more
    than MAX_PIXELS is decoded)."""
    try:
        if os.path.getsize(path) == 0:
            return False
        size, _ = header_size(path)
        if str(path).lower().endswith((".jpg", ".jpeg")) and not has_jpeg_end(path):
            return False
        tiny = size is not None and min(size) < 8  # OpenCV's 1/8 decode fails below 8 px: decode it whole
        img = cv2.imread(str(path), cv2.IMREAD_COLOR if tiny else cv2.IMREAD_REDUCED_COLOR_8)
    except (OSError, cv2.error, DataError):
        return False
    return img is not None and img.size > 0


REDUCED_FLAGS = ((8, cv2.IMREAD_REDUCED_COLOR_8), (4, cv2.IMREAD_REDUCED_COLOR_4), (2, cv2.IMREAD_REDUCED_COLOR_2))


def jpeg_size(path: str | os.PathLike) -> tuple[int, int] | None:
    """(width, height) from a JPEG's header without decoding it; None when not a JPEG."""
    size, fmt = header_size(path)
    return size if fmt == "JPEG" else None


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
    size, fmt = header_size(path)  # (refuses a decompression bomb before decoding)
    f = decode_factor(size if fmt == "JPEG" else None, min_side) if min_side else 1
    flag = dict(REDUCED_FLAGS)[f] if f > 1 else cv2.IMREAD_COLOR
    img = cv2.imread(str(path), flag)
    if img is None:
        raise DataError(f"cannot read image {path}; delete or replace the file (classification data: or set "
                        "data.skip_corrupt=true)")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
