"""Cityscapes segmentation files: `leftImg8bit/<split>/<city>/*_leftImg8bit.png` with, in
`gtFine/<split>/<city>/`, per image the first of

* `*_gtFine_labelTrainIds.png` (made by createTrainIdLabelImgs; the 19 train ids, used as they are),
* `*_gtFine_labelIds.png` (34 label ids, mapped to the 19 train ids through the official table in
  `labels.py`),
* `*_gtFine_polygons.json` alone: rasterised once into label ids as cityscapesScripts'
  `json2labelImg` does (`polygons.py`: background `unlabeled` 0, objects in file order, `deleted`
  skipped, `<label>group` read as `<label>`, an unknown label is an error) and cached as
  `*_gtFine_labelIds.png` beside the JSON, or under `cache_dir` when the dataset is read-only.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

from cvexp.data import polygons as P
from cvexp.data.labels import CITYSCAPES_NAME_TO_ID
from cvexp.data.seg_files import SegSample
from cvexp.errors import DataError

log = logging.getLogger(__name__)

IMAGE_SUFFIX = "_leftImg8bit.png"
LABEL_IDS_SUFFIX = "_gtFine_labelIds.png"
TRAIN_IDS_SUFFIX = "_gtFine_labelTrainIds.png"
POLYGONS_SUFFIX = P.POLYGONS_SUFFIX

# json2labelImg's "ids" encoding. It draws a 2-point polygon (as PIL does: a line) and stops at an
# unknown label; polygons with fewer points, which it cannot draw, are skipped here.
LABEL_IDS = P.MaskEncoding("labelIds", CITYSCAPES_NAME_TO_ID, CITYSCAPES_NAME_TO_ID["unlabeled"],
                           LABEL_IDS_SUFFIX, "cityscapes_ids", cache_prefix="cityscapes", min_points=2,
                           on_unknown="error")

EXPECTED_LAYOUT = ("<root>/leftImg8bit/<split>/<city>/<city>_<seq>_<frame>_leftImg8bit.png with "
                   "<root>/gtFine/<split>/<city>/<city>_<seq>_<frame>_gtFine_labelIds.png "
                   "(or _gtFine_polygons.json)")


def find_cityscapes_root(root: str | os.PathLike) -> Path:
    """The folder holding `leftImg8bit/` and `gtFine/`: `root` or one level below it."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DataError(f"dataset root {root} does not exist; expected {EXPECTED_LAYOUT}. "
                        "Set data.root=PATH or paths.data_dir=PATH")
    for d in [root] + [s for s in sorted(root.iterdir()) if s.is_dir()]:
        if (d / "leftImg8bit").is_dir() and (d / "gtFine").is_dir():
            return d
    raise DataError(f"no leftImg8bit/ and gtFine/ folders under {root}; expected {EXPECTED_LAYOUT}")


def find_cityscapes_samples(root: str | os.PathLike, split_dir: str,
                            cache_dir: str | os.PathLike | None = None) -> list[SegSample]:
    """Image/label pairs of one split folder, sorted; `_labelTrainIds.png` preferred over
    `_labelIds.png` (beside, else made earlier under `cache_dir`). A sample with only a polygons
    JSON has `mask=None` until `ensure_masks` makes it. Images with none of these are skipped with
    a warning."""
    cs_root = find_cityscapes_root(root)
    img_dir = cs_root / "leftImg8bit" / split_dir
    if not img_dir.is_dir():
        found = sorted(d.name for d in (cs_root / "leftImg8bit").iterdir() if d.is_dir())
        raise DataError(f"no split folder {img_dir}; found {', '.join(found) or 'none'}. Expected "
                        f"{EXPECTED_LAYOUT}; set data.split_dirs to the folder names")
    images = sorted(p for p in img_dir.rglob(f"*{IMAGE_SUFFIX}") if p.is_file())
    samples, unlabelled = [], []
    for img in images:
        rel_dir = img.parent.relative_to(img_dir)
        stem = img.name[: -len(IMAGE_SUFFIX)]
        gt_dir = cs_root / "gtFine" / split_dir / rel_dir
        train_ids, polygons = gt_dir / f"{stem}{TRAIN_IDS_SUFFIX}", gt_dir / f"{stem}{POLYGONS_SUFFIX}"
        sid = "/".join((split_dir, *rel_dir.parts, stem))
        if train_ids.is_file():
            samples.append(SegSample(sid, img, train_ids, "cityscapes"))
        elif (label_ids := P.find_mask(polygons, cs_root, LABEL_IDS, cache_dir)) is not None:
            samples.append(SegSample(sid, img, label_ids, LABEL_IDS.space))
        elif polygons.is_file():
            samples.append(SegSample(sid, img, None, LABEL_IDS.space, polygons))
        else:
            unlabelled.append(img)
    if unlabelled:
        log.warning("%d image(s) in %s have no %s or %s; skipped (first: %s)", len(unlabelled), img_dir,
                    LABEL_IDS_SUFFIX, POLYGONS_SUFFIX, unlabelled[0])
    if not samples:
        raise DataError(f"no image/label pairs in {img_dir} ({len(images)} image(s), none with a "
                        f"{LABEL_IDS_SUFFIX}, {TRAIN_IDS_SUFFIX} or {POLYGONS_SUFFIX}); expected {EXPECTED_LAYOUT}")
    return samples


def ensure_masks(samples: Sequence[SegSample], root: str | os.PathLike,
                 cache_dir: str | os.PathLike | None = None, workers: int = 0) -> list[SegSample]:
    """Every sample with a label file on disk: the polygons-only ones are rasterised into label
    ids (in `workers` processes when there are many) and cached."""
    return P.ensure_masks(samples, find_cityscapes_root(root), LABEL_IDS, cache_dir, workers,
                          what="Cityscapes mask")
