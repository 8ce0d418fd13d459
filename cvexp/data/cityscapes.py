"""Cityscapes segmentation files: `leftImg8bit/<split>/<city>/*_leftImg8bit.png` with
`gtFine/<split>/<city>/*_gtFine_labelIds.png` (34 label ids, mapped to the 19 train ids through
the official table in `labels.py`), or `*_gtFine_labelTrainIds.png` when it has been generated
(used as it is)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from cvexp.data.seg_files import SegSample
from cvexp.errors import DataError

log = logging.getLogger(__name__)

IMAGE_SUFFIX = "_leftImg8bit.png"
LABEL_IDS_SUFFIX = "_gtFine_labelIds.png"
TRAIN_IDS_SUFFIX = "_gtFine_labelTrainIds.png"

EXPECTED_LAYOUT = ("<root>/leftImg8bit/<split>/<city>/<city>_<seq>_<frame>_leftImg8bit.png with "
                   "<root>/gtFine/<split>/<city>/<city>_<seq>_<frame>_gtFine_labelIds.png")


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


def find_cityscapes_samples(root: str | os.PathLike, split_dir: str) -> list[SegSample]:
    """Image/label pairs of one split folder, sorted; `_labelTrainIds.png` preferred over
    `_labelIds.png`. Images without either are skipped with a warning."""
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
        train_ids, label_ids = gt_dir / f"{stem}{TRAIN_IDS_SUFFIX}", gt_dir / f"{stem}{LABEL_IDS_SUFFIX}"
        sid = "/".join((split_dir, *rel_dir.parts, stem))
        if train_ids.is_file():
            samples.append(SegSample(sid, img, train_ids, "cityscapes"))
        elif label_ids.is_file():
            samples.append(SegSample(sid, img, label_ids, "cityscapes_ids"))
        else:
            unlabelled.append(img)
    if unlabelled:
        log.warning("%d image(s) in %s have no %s; skipped (first: %s)", len(unlabelled), img_dir,
                    LABEL_IDS_SUFFIX, unlabelled[0])
    if not samples:
        raise DataError(f"no image/label pairs in {img_dir} ({len(images)} image(s), none with a "
                        f"{LABEL_IDS_SUFFIX}); expected {EXPECTED_LAYOUT}")
    return samples
