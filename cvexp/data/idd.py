"""IDD (Indian Driving Dataset) segmentation files: discovery, the official mask encodings, mask caching.

Two layouts are read:

* the real one, `<root>/leftImg8bit/<split>/<seq>/<id>_leftImg8bit.png|jpg` with
  `<root>/gtFine/<split>/<seq>/<id>_gtFine_polygons.json`. Masks are rasterised from the polygons
  exactly as the official AutoNUE `createLabels --id-type <encoding>` does (`polygons.py`), in one
  of two encodings of AutoNUE's label table (`labels.IDD_LABELS`):
  `level3Id` (the 26-class benchmark; levels 2 and 1 are derived from it through the hierarchy),
  cached as `<id>_gtFine_labellevel3Ids.png`, and `csTrainId` (the 19 Cityscapes train ids, how a
  Cityscapes model is scored on IDD), cached as `<id>_gtFine_labelcsTrainIds.png`; both beside the
  JSON, or under `cache_dir` when the dataset is read-only. A mask that already exists there,
  official or ours, is used as it is.
* the course's flat, resized variant, `<root>/IDD20K_II/image_archive/image_<n>.jpg` with
  `mask_archive/mask_<n>.jpg` holding level3 ids as JPEG; compression leaves stray values, which
  `clean_jpeg_mask` snaps to the nearest valid id (`snap`) or sets to 255 (`ignore`). The raw
  labels are gone there, so Cityscapes train ids can only come from level3 classes.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from cvexp.data import polygons as P
from cvexp.data.labels import IDD_LEVEL3_CLASSES, IGNORE_INDEX, idd_name_to
# the rasteriser lives in polygons.py (shared with Cityscapes); these names stay importable from here
from cvexp.data.polygons import (POLYGONS_SUFFIX, fill_polygon, load_annotation,  # noqa: F401
                                 rasterize_polygons, resolve_label)
from cvexp.data.seg_files import SegSample
from cvexp.errors import ConfigError, DataError

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = ("_leftImg8bit.png", "_leftImg8bit.jpg")
LEVEL3_MASK_SUFFIX = "_gtFine_labellevel3Ids.png"
CS_TRAIN_ID_MASK_SUFFIX = "_gtFine_labelcsTrainIds.png"
JPEG_MASK_POLICIES = ("snap", "ignore")

# the encodings masks are made in: AutoNUE's `--id-type`, its file name, the label space of the values
ENCODINGS: dict[str, P.MaskEncoding] = {
    "level3Id": P.MaskEncoding("level3Id", idd_name_to("level3Id"), IGNORE_INDEX, LEVEL3_MASK_SUFFIX,
                               "idd_level3", cache_prefix="idd"),
    "csTrainId": P.MaskEncoding("csTrainId", idd_name_to("csTrainId"), IGNORE_INDEX, CS_TRAIN_ID_MASK_SUFFIX,
                                "cityscapes", cache_prefix="idd"),
}

EXPECTED_LAYOUT = ("<root>/leftImg8bit/<split>/<seq>/<id>_leftImg8bit.png (or .jpg) with "
                   "<root>/gtFine/<split>/<seq>/<id>_gtFine_polygons.json")
EXPECTED_FLAT_LAYOUT = ("<root>/IDD20K_II/image_archive/image_<n>.jpg with "
                        "<root>/IDD20K_II/mask_archive/mask_<n>.jpg")


def mask_encoding(name: str) -> P.MaskEncoding:
    """`level3Id` or `csTrainId`."""
    try:
        return ENCODINGS[name]
    except KeyError:
        raise ConfigError(f"unknown IDD mask encoding {name!r}; use one of {', '.join(ENCODINGS)}") from None


def encoding_for(space: str) -> P.MaskEncoding:
    """The encoding whose masks serve label space `space`: csTrainId for `cityscapes` (the official
    protocol), level3Id for the IDD levels (2 and 1 are derived from level3)."""
    return ENCODINGS["csTrainId"] if space == "cityscapes" else ENCODINGS["level3Id"]


# ------------------------------------------------------------------------------ real layout
def _has_layout(d: Path) -> bool:
    return (d / "leftImg8bit").is_dir() and (d / "gtFine").is_dir()


def find_idd_root(root: str | os.PathLike) -> Path:
    """The folder holding `leftImg8bit/` and `gtFine/`: `root` or one level below it."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DataError(f"dataset root {root} does not exist; expected {EXPECTED_LAYOUT}. "
                        "Set data.root=PATH or paths.data_dir=PATH")
    if _has_layout(root):
        return root
    for sub in sorted(root.iterdir()):
        if sub.is_dir() and _has_layout(sub):
            return sub
    raise DataError(f"no leftImg8bit/ and gtFine/ folders under {root}; expected {EXPECTED_LAYOUT} "
                    f"(for the flat course variant use data=idd_flat: {EXPECTED_FLAT_LAYOUT})")


def image_id(path: Path) -> str:
    """`000123` from `000123_leftImg8bit.png`."""
    for suf in IMAGE_SUFFIXES:
        if path.name.endswith(suf):
            return path.name[: -len(suf)]
    raise ValueError(path)


def mask_cache_path(cache_dir: str | os.PathLike, idd_root: Path, polygons: Path,
                    encoding: str = "level3Id") -> Path:
    """Where a mask goes when the dataset is read-only: a folder per dataset root, same sub-layout."""
    return P.mask_cache_path(cache_dir, idd_root, polygons, mask_encoding(encoding))


def find_idd_samples(root: str | os.PathLike, split_dir: str, cache_dir: str | os.PathLike | None = None,
                     encoding: str = "level3Id") -> list[SegSample]:
    """Image/label pairs of one split folder, sorted. A sample's `mask` is an existing mask in
    `encoding` (beside the JSON, else in `cache_dir`) or None when it still has to be made from
    `polygons`. Without a JSON, an existing level3 mask still serves a `csTrainId` request (mapped
    from level3, with a warning). Images with neither are skipped with a warning."""
    enc, level3 = mask_encoding(encoding), ENCODINGS["level3Id"]
    idd_root = find_idd_root(root)
    img_dir = idd_root / "leftImg8bit" / split_dir
    if not img_dir.is_dir():
        found = sorted(d.name for d in (idd_root / "leftImg8bit").iterdir() if d.is_dir())
        raise DataError(f"no split folder {img_dir}; found {', '.join(found) or 'none'}. Expected "
                        f"{EXPECTED_LAYOUT}; set data.split_dirs to the folder names")
    images = sorted(p for p in img_dir.rglob("*") if p.is_file() and p.name.endswith(IMAGE_SUFFIXES))
    samples, unlabelled, from_level3 = [], [], []
    for img in images:
        rel_dir = img.parent.relative_to(img_dir)
        ident = image_id(img)
        polygons = idd_root / "gtFine" / split_dir / rel_dir / f"{ident}{POLYGONS_SUFFIX}"
        has_json = polygons.is_file()
        mask, space = P.find_mask(polygons, idd_root, enc, cache_dir), enc.space
        if mask is None and not has_json and enc is not level3:
            mask, space = P.find_mask(polygons, idd_root, level3, cache_dir), level3.space
            if mask is not None:
                from_level3.append(img)
        if mask is None and not has_json:
            unlabelled.append(img)
            continue
        sid = "/".join((split_dir, *rel_dir.parts, ident))
        samples.append(SegSample(sid, img, mask, space, polygons if has_json else None))
    if unlabelled:
        log.warning("%d image(s) in %s have no %s; skipped (first: %s)", len(unlabelled), img_dir,
                    POLYGONS_SUFFIX, unlabelled[0])
    if from_level3:
        log.warning("%d image(s) in %s have a level3 mask but no %s: their %s masks are mapped from "
                    "level3 classes, not drawn from the raw labels as the official protocol does (first: %s)",
                    len(from_level3), img_dir, POLYGONS_SUFFIX, enc.name, from_level3[0])
    if not samples:
        raise DataError(f"no image/label pairs in {img_dir} ({len(images)} image(s), none with a "
                        f"polygons JSON or level3 mask); expected {EXPECTED_LAYOUT}")
    return samples


def ensure_masks(samples: Sequence[SegSample], root: str | os.PathLike,
                 cache_dir: str | os.PathLike | None = None, workers: int = 0,
                 encoding: str = "level3Id") -> list[SegSample]:
    """Every sample with its mask on disk; the missing ones are rasterised in `encoding` from
    their polygons (in `workers` processes when there are many) and cached."""
    return P.ensure_masks(samples, find_idd_root(root), mask_encoding(encoding), cache_dir, workers,
                          what="IDD mask")


# ------------------------------------------------------------------------------ flat variant
_FLAT_IMAGE = re.compile(r"^image_(\d+)\.(jpe?g|png)$", re.IGNORECASE)
_FLAT_MASK = re.compile(r"^mask_(\d+)\.(jpe?g|png)$", re.IGNORECASE)


def find_idd_flat_root(root: str | os.PathLike) -> Path:
    """The folder holding `image_archive/` and `mask_archive/`: root, root/IDD20K_II, or one below."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DataError(f"dataset root {root} does not exist; expected {EXPECTED_FLAT_LAYOUT}. "
                        "Set data.root=PATH or paths.data_dir=PATH")
    cands = [root, root / "IDD20K_II"] + [d for d in sorted(root.iterdir()) if d.is_dir()]
    for d in cands:
        if (d / "image_archive").is_dir() and (d / "mask_archive").is_dir():
            return d
    raise DataError(f"no image_archive/ and mask_archive/ folders under {root}; expected "
                    f"{EXPECTED_FLAT_LAYOUT} (for the real layout use data=idd)")


def find_idd_flat_samples(root: str | os.PathLike) -> list[SegSample]:
    """`image_<n>` / `mask_<n>` pairs, sorted by n; unmatched files are skipped with a warning."""
    flat = find_idd_flat_root(root)

    def index(folder: Path, pattern: re.Pattern) -> dict[int, Path]:
        return {int(m.group(1)): p for p in folder.iterdir() if p.is_file() and (m := pattern.match(p.name))}

    images, masks = index(flat / "image_archive", _FLAT_IMAGE), index(flat / "mask_archive", _FLAT_MASK)
    common = sorted(images.keys() & masks.keys())
    lonely = len(images) + len(masks) - 2 * len(common)
    if lonely:
        log.warning("%d file(s) in %s without a partner image/mask; skipped", lonely, flat)
    if not common:
        raise DataError(f"no image_<n>/mask_<n> pairs in {flat} ({len(images)} image(s), {len(masks)} "
                        f"mask(s)); expected {EXPECTED_FLAT_LAYOUT}")
    return [SegSample(f"image_{n}", images[n], masks[n], "idd_level3",
                      jpeg_mask=masks[n].suffix.lower() in (".jpg", ".jpeg")) for n in common]


def jpeg_mask_table(policy: str = "snap", valid_ids: Iterable[int] | None = None) -> np.ndarray:
    """(256,) uint8 table cleaning JPEG-stored ids in one indexing op: valid ids stay; any other value
    goes to the nearest valid id (`snap`, ties to the smaller) or to 255 (`ignore`)."""
    if policy not in JPEG_MASK_POLICIES:
        raise ConfigError(f"data.jpeg_mask_policy={policy!r}; use one of {', '.join(JPEG_MASK_POLICIES)}")
    valid = np.array(sorted(set(valid_ids if valid_ids is not None
                                else [*range(len(IDD_LEVEL3_CLASSES)), IGNORE_INDEX])), np.int64)
    values = np.arange(256)
    if policy == "ignore":
        return np.where(np.isin(values, valid), values, IGNORE_INDEX).astype(np.uint8)
    nearest = np.abs(values[:, None] - valid[None, :]).argmin(axis=1)  # argmin: first = smaller on ties
    return valid[nearest].astype(np.uint8)


def clean_jpeg_mask(mask: np.ndarray, policy: str = "snap", valid_ids: Iterable[int] | None = None) -> np.ndarray:
    """Stray values of a JPEG mask snapped or ignored (see `jpeg_mask_table`). Values that JPEG moved
    onto another valid id cannot be told apart and stay as they are."""
    return jpeg_mask_table(policy, valid_ids)[mask]
