"""One segmentation sample on disk (image + label image), and reading and writing label images.

Shared by the dataset readers (`idd.py`, `cityscapes.py`) and the torch Dataset (`segmentation.py`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np

from cvexp.data.images import read_rgb  # noqa: F401  (re-exported for the segmentation readers)
from cvexp.errors import DataError


@dataclass(frozen=True)
class SegSample:
    """An image and the file its label ids come from.

    `id` is stable and relative (`val/0/000123`, `val/frankfurt/frankfurt_000000_000294`,
    `image_17`): it names the sample in failure analyses and split files. `mask_space` is the label
    space of the values stored in `mask` (`idd_level3`, `cityscapes`, `cityscapes_ids`). IDD samples
    start with `mask=None` and `polygons=<json>` until their mask is made (see `idd.ensure_masks`).
    """

    id: str
    image: Path
    mask: Path | None
    mask_space: str
    polygons: Path | None = None
    jpeg_mask: bool = False  # label ids stored as JPEG: stray values need snapping

    def with_mask(self, mask: Path) -> SegSample:
        return replace(self, mask=Path(mask))


def read_label_image(path: str | os.PathLike, grayscale: bool = False) -> np.ndarray:
    """(H, W) uint8 label ids from an 8-bit single-channel PNG (or a grey image saved as 3 channels).
    `grayscale=True` converts whatever is stored (for JPEG masks, whose channels drift apart)."""
    arr = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE if grayscale else cv2.IMREAD_UNCHANGED)
    if arr is None:
        raise DataError(f"cannot read label image {path}; delete it (IDD masks are remade from the "
                        "polygons JSON) or replace it")
    if arr.ndim == 3:
        if arr.shape[2] >= 3 and np.array_equal(arr[..., 0], arr[..., 1]) and np.array_equal(arr[..., 0], arr[..., 2]):
            arr = arr[..., 0]
        else:
            raise DataError(f"label image {path} has colour channels; expected 8-bit single-channel class "
                            "ids (e.g. *_gtFine_labelIds.png, not *_gtFine_color.png)")
    if arr.dtype != np.uint8:
        if arr.size and (arr.min() < 0 or arr.max() > 255):
            raise DataError(f"label image {path} holds values outside 0..255; expected 8-bit class ids")
        arr = arr.astype(np.uint8)
    return arr


def write_png_atomic(path: str | os.PathLike, array: np.ndarray) -> Path:
    """Write `array` as PNG to `path` via a temporary file and a rename (cvexp.io.atomic), so readers
    never see half a file and parallel writers of the same content cannot clash. Raises OSError if
    not writable."""
    from cvexp.io.atomic import atomic_write_bytes

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ok, png = cv2.imencode(".png", array)
    if not ok:
        raise OSError(f"cannot encode {path} as PNG")
    atomic_write_bytes(path, png.tobytes())
    return path
